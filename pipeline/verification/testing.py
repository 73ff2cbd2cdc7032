"""Synthetic truth, climatology and forecast stores for tests and benchmarks (as WeatherBench2's ``schema.mock_*``).

:func:`synthetic_stores` writes, into a directory, a truth store (``temperature`` on levels and
``2m_temperature``, a group ``climatology``) and a forecast store (truth at the valid time + a bias + an error
growing with lead) on a global regular grid, with the arrays stored latitude first or longitude first
(WeatherBench2's published stores keep ``longitude`` before ``latitude``). Fields are smooth travelling waves, so
spectra and scores are meaningful.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr


def wave_fields(
    hours: np.ndarray, lat: np.ndarray, lon: np.ndarray, levels: Sequence[float] | None, seed: int
) -> np.ndarray:
    """Smooth float32 fields (n_time, [n_level], nlat, nlon): a latitude/level background + 3 travelling waves."""
    rng = np.random.default_rng(seed)
    phi, lam = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
    lev = np.asarray(levels or [1000], float)
    base = (288.0 - 60 * np.sin(phi) ** 2 + 0 * lam)[None] - 0.05 * (1000 - lev)[:, None, None]
    out = np.empty((len(hours), lev.size, lat.size, lon.size), np.float32)
    waves = [(k, rng.uniform(2, 8), rng.uniform(0.02, 0.1), rng.uniform(0, 2 * np.pi)) for k in (2, 4, 7)]
    for i, t in enumerate(hours):
        f = base.copy()
        for k, amp, speed, ph in waves:
            f += (amp * np.cos(phi) * np.sin(k * lam - speed * t + ph))[None] * (0.5 + lev / 2000)[:, None, None]
        out[i] = f
    return out if levels else out[:, 0]


def synthetic_stores(
    root: str | Path,
    *,
    n_init: int = 4,
    n_lead: int = 3,
    nlat: int = 19,
    nlon: int = 36,
    levels: Sequence[int] = (500, 850),
    step_hours: int = 12,
    lon_first: bool = False,
    time_chunk: int = 1,
    model: str = "synthetic",
) -> dict[str, str]:
    """Write ``truth.zarr`` (with group ``climatology``) and ``forecast.zarr`` under ``root``; return their paths
    ({"truth": ..., "forecast": ...}). ``lon_first``: arrays stored (..., longitude, latitude)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    lat = np.linspace(-90, 90, nlat)
    lon = np.arange(nlon) * (360.0 / nlon)
    levels = list(levels)
    t0 = np.datetime64("2020-01-01T00", "ns")
    n_truth = n_init + n_lead
    times = t0 + np.arange(n_truth) * np.timedelta64(step_hours, "h")
    hours = np.arange(n_truth) * float(step_hours)
    grid = ("longitude", "latitude") if lon_first else ("latitude", "longitude")

    def stored(da: xr.DataArray) -> xr.DataArray:
        return da.transpose(*[d for d in da.dims if d not in grid], *grid)

    truth = xr.Dataset(
        {
            "temperature": stored(
                xr.DataArray(
                    wave_fields(hours, lat, lon, levels, 1),
                    dims=("time", "level", "latitude", "longitude"),
                    attrs={"units": "K"},
                )
            ),
            "2m_temperature": stored(
                xr.DataArray(
                    wave_fields(hours, lat, lon, None, 2), dims=("time", "latitude", "longitude"), attrs={"units": "K"}
                )
            ),
        },
        coords={"time": times, "level": levels, "latitude": lat, "longitude": lon},
    )
    paths = {"truth": str(root / "truth.zarr"), "forecast": str(root / "forecast.zarr")}
    truth.chunk({"time": time_chunk}).to_zarr(paths["truth"], mode="w", zarr_format=3, consolidated=True)
    doy = np.unique(pd.DatetimeIndex(times).day_of_year)
    hours_of_day = sorted(set(pd.DatetimeIndex(times).hour))
    clim = truth.mean("time").expand_dims(dayofyear=doy, hour=hours_of_day).astype(np.float32)
    clim = clim.chunk({"dayofyear": 1, "hour": 1})
    clim.to_zarr(paths["truth"], group="climatology", mode="w", zarr_format=3, consolidated=True)
    leads = (np.arange(1, n_lead + 1) * np.timedelta64(step_hours, "h")).astype("timedelta64[ns]")
    scale = np.sqrt(np.arange(1, n_lead + 1) / n_lead).astype(np.float32)
    idx = np.arange(n_init)[:, None] + np.arange(1, n_lead + 1)[None]
    err_t = wave_fields(np.arange(n_init) * 37.0, lat, lon, levels, 3) - wave_fields(np.zeros(1), lat, lon, levels, 3)
    err_s = wave_fields(np.arange(n_init) * 37.0, lat, lon, None, 4) - wave_fields(np.zeros(1), lat, lon, None, 4)
    t_vals = truth["temperature"].transpose("time", "level", "latitude", "longitude").values
    s_vals = truth["2m_temperature"].transpose("time", "latitude", "longitude").values
    fc = xr.Dataset(
        {
            "temperature": stored(
                xr.DataArray(
                    t_vals[idx] + 0.3 + scale[None, :, None, None, None] * err_t[:, None],
                    dims=("time", "prediction_timedelta", "level", "latitude", "longitude"),
                    attrs={"units": "K"},
                )
            ),
            "2m_temperature": stored(
                xr.DataArray(
                    s_vals[idx] - 0.2 + scale[None, :, None, None] * err_s[:, None],
                    dims=("time", "prediction_timedelta", "latitude", "longitude"),
                    attrs={"units": "K"},
                )
            ),
        },
        coords={
            "time": times[:n_init],
            "prediction_timedelta": leads,
            "level": levels,
            "latitude": lat,
            "longitude": lon,
        },
        attrs={"wxemu_model": model},
    )
    fc.astype(np.float32).chunk({"time": time_chunk}).to_zarr(
        paths["forecast"], mode="w", zarr_format=3, consolidated=True
    )
    return paths
