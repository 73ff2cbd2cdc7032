"""Per-grid-point linear regression: the fitted statistical baseline (kind ``linear``) and the linear part of the
residual emulators.

For each trained step size s, output channel c and grid point (i, j) the normalised one-step difference is

    delta[c, i, j] = sum_k coef[s, c, k, i, j] * feature[k, c, i, j]

with the features, all normalised as the emulators see them (``models.base``):

- the state of channel c at every history step (oldest..newest; with history 2 this spans the last change),
- every forcing channel valid at the step's target time (insolation, sin/cos of the local hour and of the day
  of year, static fields, the climatology of each state channel at the target time: a linear function of the
  state and the climatology is a damped climatology anomaly),
- the second harmonic of the local hour (sin 2a, cos 2a, from the sin/cos local-hour forcings when
  ``local_hour_index`` gives their position),
- 1.

``coef`` is a buffer (not trained by gradient descent): ``pipeline.linear_fit`` sets it by least squares on the
training period. Its size is steps x C x K x H x W floats, K = history + n_forcing + 3: meant for regional grids
and few channels.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from models.base import Emulator, ModelConfigError, config_from_dict
from models.registry import register_model


@dataclasses.dataclass
class LinearConfig:
    """Configuration of ``LinearEmulator`` (and of the linear part of a residual emulator)."""

    step_hours: list[float] = dataclasses.field(default_factory=lambda: [1.0])  # one regression per step size
    local_hour_index: int | None = 1  # position of (sin, cos) local hour among the forcings (None: no harmonic)

    def validate(self) -> None:
        if not self.step_hours or any(float(s) <= 0 for s in self.step_hours):
            raise ModelConfigError(f"linear config: step_hours must be positive hours; got {self.step_hours}")
        if len(set(float(s) for s in self.step_hours)) != len(self.step_hours):
            raise ModelConfigError(f"linear config: step_hours has duplicates: {self.step_hours}")
        if self.local_hour_index is not None and self.local_hour_index < 0:
            raise ModelConfigError(f"linear config: local_hour_index must be >= 0; got {self.local_hour_index}")


class LinearRegression(nn.Module):
    """The per-grid-point regressions of one emulator: ``forward(state, forcings, lead_hours) -> delta``.

    Shapes as ``models.base.Emulator``. ``lead_hours`` selects the regression of that step size (each sample may
    differ); a value that is not one of ``step_hours`` raises ``ValueError``. Starts at zero (delta = 0,
    persistence) until fitted.
    """

    def __init__(
        self, *, grid_shape: tuple[int, int], n_state: int, n_forcing: int, history: int, config: LinearConfig
    ) -> None:
        super().__init__()
        self.n_state, self.n_forcing, self.history = int(n_state), int(n_forcing), int(history)
        self.step_hours = [float(s) for s in config.step_hours]
        hi = config.local_hour_index
        self.hour_index = hi if hi is not None and hi + 2 <= n_forcing else None
        if hi is not None and self.hour_index is None and n_forcing > 0:
            raise ModelConfigError(
                f"linear config: local_hour_index {hi} needs two forcing channels there; the model has {n_forcing}"
            )
        h, w = grid_shape
        self.register_buffer("coef", torch.zeros(len(self.step_hours), n_state, self.n_features, h, w))
        self.register_buffer("steps", torch.tensor(self.step_hours, dtype=torch.float32), persistent=False)

    @property
    def n_features(self) -> int:
        """K: history states + forcings + (2 harmonics when the local hour is known) + 1."""
        return self.history + self.n_forcing + (2 if self.hour_index is not None else 0) + 1

    def features(self, state: torch.Tensor, forcings: torch.Tensor) -> torch.Tensor:
        """(B, K, C, H, W): the regressors of every output channel (state (B, history*C, H, W), forcings
        (B, F, H, W))."""
        b, _, h, w = state.shape
        c = self.n_state
        own = state.reshape(b, self.history, c, h, w)
        shared = [forcings]
        if self.hour_index is not None:
            s, co = forcings[:, self.hour_index], forcings[:, self.hour_index + 1]
            shared.append(torch.stack([2 * s * co, co * co - s * s], dim=1))
        shared.append(torch.ones_like(state[:, :1]))
        shared_t = torch.cat(shared, dim=1)[:, :, None].expand(b, -1, c, h, w)
        return torch.cat([own, shared_t], dim=1)

    def step_index(self, lead_hours: torch.Tensor) -> torch.Tensor:
        """(B,) index into ``step_hours`` of each sample's step; ``ValueError`` for a step not fitted."""
        diff = (lead_hours.float()[:, None] - self.steps.to(lead_hours.device)[None, :]).abs()
        best, idx = diff.min(dim=1)
        if bool((best > 1e-4).any()):
            bad = float(lead_hours.flatten()[int((best > 1e-4).nonzero()[0, 0])])
            raise ValueError(f"linear regression: no fit for a step of {bad:g} h (fitted: {self.step_hours} h)")
        return idx

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor) -> torch.Tensor:
        coef = self.coef[self.step_index(lead_hours)]  # (B, C, K, H, W)
        feats = self.features(state, forcings)  # (B, K, C, H, W)
        return torch.einsum("bkchw,bckhw->bchw", feats.to(coef.dtype), coef)


@register_model
class LinearEmulator(Emulator):
    """Kind ``linear``: the fitted per-grid-point regression alone (no trained network)."""

    kind = "linear"

    def __init__(
        self,
        *,
        latitude: np.ndarray,
        longitude: np.ndarray,
        n_state: int,
        n_forcing: int,
        history: int = 1,
        config: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(latitude=latitude, longitude=longitude, n_state=n_state, n_forcing=n_forcing, history=history)
        self.config = config_from_dict(LinearConfig, config, where="linear")
        self.linear = LinearRegression(
            grid_shape=self.grid_shape, n_state=n_state, n_forcing=n_forcing, history=history, config=self.config
        )

    def config_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self.config)
        d["step_hours"] = [float(s) for s in d["step_hours"]]
        return d

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor) -> torch.Tensor:
        self.check_inputs(state, forcings, lead_hours)
        return self.linear(state, forcings, lead_hours)


def forcing_mask(n_forcing: int, ignored: list[int]) -> torch.Tensor:
    """(1, n_forcing, 1, 1) float mask: 0 for the ``ignored`` forcing channels, 1 elsewhere; ModelConfigError for
    an index outside 0..n_forcing-1."""
    bad = [i for i in ignored if not 0 <= int(i) < n_forcing]
    if bad:
        raise ModelConfigError(f"network_ignores_forcings: {bad} not in 0..{n_forcing - 1} (the model's forcings)")
    mask = torch.ones(1, n_forcing, 1, 1)
    mask[:, [int(i) for i in ignored]] = 0.0
    return mask


def linear_part(
    emulator: Emulator, step_hours: list[float] | None, local_hour_index: int | None
) -> LinearRegression | None:
    """The linear part of a residual emulator (None when ``step_hours`` is empty or None)."""
    if not step_hours:
        return None
    cfg = config_from_dict(
        LinearConfig,
        {"step_hours": [float(s) for s in step_hours], "local_hour_index": local_hour_index},
        where=f"{emulator.kind} linear_steps",
    )
    return LinearRegression(
        grid_shape=emulator.grid_shape,
        n_state=emulator.n_state,
        n_forcing=emulator.n_forcing,
        history=emulator.history,
        config=cfg,
    )
