"""The emulator interface shared by every model, the model factory and typed-config helpers.

Every emulator maps normalised inputs to a normalised one-step difference::

    delta = model(state, forcings, lead_hours)
    # state      (B, history * n_state, H, W)   history steps stacked oldest..newest
    # forcings   (B, n_forcing, H, W)           forcings (valid at the target and/or input time)
    # lead_hours (B,) float                     hours since the initial condition of this step's target
    # delta      (B, n_state, H, W)

``build_model(kind, ..., config=model.config_dict())`` rebuilds the same architecture, so a checkpoint holds
the kind, the config dict and the weights (``state_dict``, which carries no graph arrays: those are rebuilt
from the grid).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any, TypeVar

import numpy as np
import torch

from data_catalog.errors import ConfigError
from models.registry import model_class, model_kinds

log = logging.getLogger(__name__)


class ModelConfigError(ConfigError, ValueError):
    """A model config has an unknown key or a bad value (a ``ValueError`` and a ``WxemuError``)."""


class Emulator(torch.nn.Module):
    """Base class of the emulators: holds the grid and channel counts, defines the call signature."""

    kind: str = "base"

    def __init__(
        self, *, latitude: np.ndarray, longitude: np.ndarray, n_state: int, n_forcing: int, history: int = 1
    ) -> None:
        super().__init__()
        lat = np.asarray(latitude, dtype=np.float64)
        lon = np.asarray(longitude, dtype=np.float64)
        check_grid(lat, lon)
        if n_state < 1 or n_forcing < 0 or history < 1:
            raise ModelConfigError(
                f"need n_state >= 1, n_forcing >= 0, history >= 1; got {n_state}, {n_forcing}, {history}"
            )
        self.latitude = lat
        self.longitude = lon
        self.n_state = int(n_state)
        self.n_forcing = int(n_forcing)
        self.history = int(history)

    @property
    def grid_shape(self) -> tuple[int, int]:
        return len(self.latitude), len(self.longitude)

    @property
    def n_input(self) -> int:
        """Channels of the stacked input: history * n_state + n_forcing."""
        return self.history * self.n_state + self.n_forcing

    def config_dict(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def check_inputs(self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the mismatch when the inputs do not fit this model."""
        h, w = self.grid_shape
        b = state.shape[0]
        want_state = (b, self.history * self.n_state, h, w)
        if tuple(state.shape) != want_state:
            raise ValueError(f"{self.kind} emulator: state has shape {tuple(state.shape)}, expected {want_state}")
        want_forc = (b, self.n_forcing, h, w)
        if tuple(forcings.shape) != want_forc:
            raise ValueError(f"{self.kind} emulator: forcings have shape {tuple(forcings.shape)}, expected {want_forc}")
        if tuple(lead_hours.shape) != (b,):
            raise ValueError(f"{self.kind} emulator: lead_hours has shape {tuple(lead_hours.shape)}, expected ({b},)")

    def forward(
        self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor
    ) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def check_grid(latitude: np.ndarray, longitude: np.ndarray) -> None:
    """Raise ``ModelConfigError`` unless latitude/longitude are 1-D, strictly ascending, finite, in range."""
    for name, arr in (("latitude", latitude), ("longitude", longitude)):
        if arr.ndim != 1 or arr.size < 2:
            raise ModelConfigError(f"{name} must be a 1-D array of >= 2 values; got shape {arr.shape}")
        if not np.all(np.isfinite(arr)) or not np.all(np.diff(arr) > 0):
            raise ModelConfigError(f"{name} must be finite and strictly ascending")
    if latitude[0] < -90 - 1e-6 or latitude[-1] > 90 + 1e-6:
        raise ModelConfigError(f"latitude must lie in [-90, 90]; got {latitude[0]}..{latitude[-1]}")
    if longitude[-1] - longitude[0] >= 360:
        raise ModelConfigError("longitude spans 360 degrees or more (a duplicated wrap-around column?)")


def is_global_grid(longitude: np.ndarray, override: bool | None = None) -> bool:
    """True when the longitudes are uniformly spaced and wrap around the globe (periodic in longitude).

    ``override`` (True/False) wins over the detection; None means detect.
    """
    if override is not None:
        return bool(override)
    lon = np.asarray(longitude, dtype=np.float64)
    d = np.diff(lon)
    if d.size == 0 or not np.allclose(d, d[0], rtol=0, atol=1e-4 * max(abs(d[0]), 1e-9) + 1e-6):
        return False
    return bool(abs(lon.size * d[0] - 360.0) < 1e-3 * d[0] + 1e-6)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) float -> (B, dim) sin/cos features with periods from 2*pi to 2*pi*max_period (units of ``t``)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


C = TypeVar("C")


def config_from_dict(cls: type[C], config: dict[str, Any] | None, *, where: str) -> C:
    """Validate ``config`` into dataclass ``cls``: unknown keys raise ``ModelConfigError`` naming the key."""
    config = dict(config or {})
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(config) - names)
    if unknown:
        raise ModelConfigError(
            f"{where} config: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(sorted(names))}"
        )
    try:
        obj = cls(**config)
    except TypeError as exc:
        raise ModelConfigError(f"{where} config: {exc}") from exc
    validate = getattr(obj, "validate", None)
    if validate is not None:
        validate()
    return obj


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_model(
    kind: str,
    *,
    latitude: np.ndarray,
    longitude: np.ndarray,
    n_state: int,
    n_forcing: int,
    history: int = 1,
    config: dict[str, Any] | None = None,
) -> Emulator:
    """Build an emulator of a registered ``kind`` (models.registry: "graph", "transformer", ...) for the given grid
    and channel counts.

    ``config`` is validated into the model's config dataclass (``GraphConfig`` / ``TransformerConfig``);
    unknown keys raise ``ModelConfigError`` (a ``ValueError``). ``model.config_dict()`` returns the full config.
    """
    cls = model_class(kind)
    if cls is None:
        raise ModelConfigError(f"unknown model kind {kind!r}; choose one of {', '.join(model_kinds())}")
    model = cls(
        latitude=latitude, longitude=longitude, n_state=n_state, n_forcing=n_forcing, history=history, config=config
    )
    log.info(
        "built %s emulator: %s trainable parameters, grid %dx%d, inputs %d -> outputs %d",
        kind,
        f"{count_parameters(model):,}",
        len(latitude),
        len(longitude),
        model.n_input,
        n_state,
    )
    return model
