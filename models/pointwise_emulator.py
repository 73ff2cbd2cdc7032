"""Kind ``pointwise``: a per-grid-point network, the same small MLP at every grid point, with no spatial mixing.

At each point it maps the stacked input (history states, forcings) and the point's normalised latitude and
longitude to the change of the state (1 x 1 convolutions: ``layers`` hidden layers of ``hidden`` units, GELU).
Meant as the residual of the fitted linear part (``linear_steps``, ``models.linear``): the output layer starts at
zero, so training starts at the linear skill, and the network can only learn a nonlinear function of the local
state, which is what validates on the UK sample where spatial corrections learned on the training weeks do not
(docs/models.md, "What the networks add over their linear part"). Shapes as ``models.base.Emulator``.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch
from torch import nn

from models.base import Emulator, ModelConfigError, config_from_dict
from models.linear import forcing_mask, linear_part
from models.registry import register_model


@dataclasses.dataclass
class PointwiseConfig:
    """Configuration of ``PointwiseEmulator`` (all keys optional)."""

    hidden: int = 32  # units of each hidden layer
    layers: int = 2  # hidden layers
    linear_steps: list[float] = dataclasses.field(default_factory=list)  # residual design, as the other kinds
    network_ignores_forcings: list[int] = dataclasses.field(default_factory=list)  # forcings the network sees as 0

    def validate(self) -> None:
        if self.hidden < 1 or self.layers < 0:
            raise ModelConfigError(f"pointwise config: need hidden >= 1, layers >= 0; got {self.hidden}, {self.layers}")


def position_features(latitude: np.ndarray, longitude: np.ndarray) -> torch.Tensor:
    """(1, 2, H, W) float32: latitude and longitude scaled to [-1, 1] over the grid (rows, columns)."""
    lat, lon = np.asarray(latitude, dtype=np.float64), np.asarray(longitude, dtype=np.float64)

    def scaled(v: np.ndarray) -> np.ndarray:
        return (v - v.mean()) / (np.ptp(v) / 2)

    h, w = len(lat), len(lon)
    rows = np.broadcast_to(scaled(lat)[:, None], (h, w))
    cols = np.broadcast_to(scaled(lon)[None, :], (h, w))
    return torch.from_numpy(np.stack([rows, cols]).astype(np.float32))[None]


@register_model
class PointwiseEmulator(Emulator):
    """The same MLP at every grid point (plus the fitted linear part when ``linear_steps`` is set)."""

    kind = "pointwise"

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
        cfg = config_from_dict(PointwiseConfig, config, where="pointwise")
        self.config = cfg
        self.register_buffer("position", position_features(self.latitude, self.longitude), persistent=False)
        layers: list[nn.Module] = []
        width = self.n_input + 2
        for _ in range(cfg.layers):
            layers += [nn.Conv2d(width, cfg.hidden, kernel_size=1), nn.GELU()]
            width = cfg.hidden
        self.net = nn.Sequential(*layers, nn.Conv2d(width, n_state, kernel_size=1))
        self.register_buffer(
            "forcing_mask", forcing_mask(self.n_forcing, cfg.network_ignores_forcings), persistent=False
        )
        self.linear = linear_part(self, cfg.linear_steps, 1 if self.n_forcing >= 3 else None)
        if self.linear is not None:  # residual: start exactly at the fitted regression
            nn.init.zeros_(self.net[-1].weight)
            nn.init.zeros_(self.net[-1].bias)

    def config_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self.config)
        d["linear_steps"] = [float(s) for s in d["linear_steps"]]
        return d

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor) -> torch.Tensor:
        self.check_inputs(state, forcings, lead_hours)
        position = self.position.to(state.dtype).expand(state.shape[0], -1, -1, -1)
        out = self.net(torch.cat([state, self.forcing_mask.to(forcings) * forcings, position], dim=1))
        return out if self.linear is None else out + self.linear(state, forcings, lead_hours)
