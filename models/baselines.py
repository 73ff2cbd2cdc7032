"""Reference forecasts that do not learn: persistence and climatology.

``PersistenceEmulator`` has the emulator calling convention and predicts a zero normalised difference, so a
rollout keeps the initial state. Climatology depends on the valid time, which the emulator call does not carry,
so it is a pure function over the climatology array of the canonical store (dims dayofyear 1..366, hour, ...).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from models.base import Emulator


class PersistenceEmulator(Emulator):
    """delta = 0: every step repeats the latest input state. Has no parameters."""

    kind = "persistence"

    def config_dict(self) -> dict[str, Any]:
        return {}

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor) -> torch.Tensor:
        self.check_inputs(state, forcings, lead_hours)
        b, _, h, w = state.shape
        return state.new_zeros((b, self.n_state, h, w))


def persistence_forecast(initial: np.ndarray, n_leads: int) -> np.ndarray:
    """Repeat ``initial`` (...) ``n_leads`` times along a new leading lead axis: (n_leads, ...)."""
    initial = np.asarray(initial)
    return np.broadcast_to(initial, (int(n_leads),) + initial.shape).copy()


def climatology_forecast(clim: np.ndarray, valid_times: np.ndarray, hours: np.ndarray | None = None) -> np.ndarray:
    """The climatology at each valid time: (T, ...) from ``clim`` (dayofyear, hour, ...).

    clim: axis 0 is day of year 1..366 (index = day of year - 1), axis 1 the hour of day, listed in ``hours``
    (default: evenly spaced from 0, i.e. ``arange(n_hour) * 24 / n_hour``). Each valid time takes its day of year
    (1 Jan = 1; leap years reach 366) and its hour of day, which must be one of ``hours`` (else ``ValueError``).
    NaN in the climatology passes through.
    """
    clim = np.asarray(clim)
    if clim.ndim < 2 or clim.shape[0] != 366:
        raise ValueError(f"climatology must have shape (366, n_hour, ...); got {clim.shape}")
    n_hour = clim.shape[1]
    hours = np.arange(n_hour) * (24.0 / n_hour) if hours is None else np.asarray(hours, dtype=np.float64)
    if hours.shape != (n_hour,):
        raise ValueError(f"hours has {hours.size} values but the climatology has {n_hour} hours")
    t = np.asarray(valid_times).astype("datetime64[ns]").reshape(-1)
    day = t.astype("datetime64[D]")
    doy = (day - t.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1
    hour = (t - day.astype("datetime64[ns]")).astype(np.int64) / 3.6e12
    match = np.abs(hour[:, None] - hours[None, :]) < 1e-6
    missing = ~match.any(axis=1)
    if missing.any():
        raise ValueError(
            f"valid time {t[missing][0]} falls at hour {hour[missing][0]:g}, which the climatology "
            f"does not hold (hours: {', '.join(f'{h:g}' for h in hours)})"
        )
    return clim[doy - 1, match.argmax(axis=1)]
