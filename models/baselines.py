"""Reference forecasts that do not learn: persistence and climatology (the one implementation; ``wxemu forecast``
runs them through ``pipeline.forecasting``).

Pure numpy over arrays: persistence repeats the initial state; climatology looks up a (dayofyear 1..366, hour,
...) array at each valid time's day of year and hour of day (:func:`climatology_indices` gives the positions, so a
lazily read climatology group can be indexed the same way).
"""

from __future__ import annotations

import numpy as np

N_DAYS = 366


def persistence_forecast(initial: np.ndarray, n_leads: int) -> np.ndarray:
    """Repeat ``initial`` (...) ``n_leads`` times along a new leading lead axis: (n_leads, ...), a writable copy."""
    initial = np.asarray(initial)
    return np.broadcast_to(initial, (int(n_leads),) + initial.shape).copy()


def climatology_indices(valid_times: np.ndarray, hours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of each valid time in a (dayofyear 1..366, hour, ...) climatology: (day index (T,), hour index (T,)).

    Day index = day of year - 1 (1 Jan = 1; leap years reach 366); hour index = the position of the time's hour
    of day in ``hours`` (hours of day, float), which must hold it (else ``ValueError`` naming the time).
    """
    hours = np.asarray(hours, dtype=np.float64).reshape(-1)
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
    return doy - 1, match.argmax(axis=1)


def climatology_forecast(clim: np.ndarray, valid_times: np.ndarray, hours: np.ndarray | None = None) -> np.ndarray:
    """The climatology at each valid time: (T, ...) from ``clim`` (dayofyear, hour, ...).

    clim: axis 0 is day of year 1..366 (index = day of year - 1), axis 1 the hour of day, listed in ``hours``
    (default: evenly spaced from 0, i.e. ``arange(n_hour) * 24 / n_hour``); see :func:`climatology_indices`.
    NaN in the climatology passes through.
    """
    clim = np.asarray(clim)
    if clim.ndim < 2 or clim.shape[0] != N_DAYS:
        raise ValueError(f"climatology must have shape (366, n_hour, ...); got {clim.shape}")
    n_hour = clim.shape[1]
    hours = np.arange(n_hour) * (24.0 / n_hour) if hours is None else np.asarray(hours, dtype=np.float64)
    if hours.shape != (n_hour,):
        raise ValueError(f"hours has {hours.size} values but the climatology has {n_hour} hours")
    day, hour = climatology_indices(valid_times, hours)
    return clim[day, hour]
