"""Smoothed climatology by day of year and hour of day, as WeatherBench2 computes it.

For every hour of day present in the data and every day of year d = 1..366, the climatology is the mean over all
samples at that hour whose day of year lies within a circular window of ``window`` days centred on d (61 by
default, i.e. d-30 .. d+30, wrapping across the year end; day of year is the calendar day 1..366 of the timestamp,
as ``time.dt.dayofyear``). NaN where the window holds no sample.

The computation is two pure steps on arrays: :func:`doy_hour_sums` accumulates sums and counts per (day of year,
hour) bin in float64 (one pass over the data, block by block), and :func:`smooth_circular` sums the bins of each
window and divides.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import xarray as xr

N_DAYS = 366


def window_matrix(window: int = 61, n_days: int = N_DAYS) -> np.ndarray:
    """(n_days, n_days) 0/1 float64 matrix: M[d, e] = 1 where circular |d - e| <= window // 2."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"climatology window must be a positive odd number of days, got {window}")
    idx = np.arange(n_days)
    dist = np.abs(idx[:, None] - idx[None, :])
    dist = np.minimum(dist, n_days - dist)
    return (dist <= window // 2).astype("f8")


def doy_hour_sums(values: np.ndarray, dayofyear: np.ndarray, hour_index: np.ndarray, n_hours: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of ``values`` (time first, any trailing shape) per (day of year, hour) bin.

    ``dayofyear``: int (time,) in 1..366; ``hour_index``: int (time,) in 0..n_hours-1. Returns
    ``sums`` (366, n_hours, *trailing) float64 and ``counts`` of the same shape (NaNs are not counted).
    """
    v = np.asarray(values, dtype="f8")
    valid = ~np.isnan(v)
    trailing = v.shape[1:]
    sums = np.zeros((N_DAYS * n_hours, *trailing))
    counts = np.zeros((N_DAYS * n_hours, *trailing))
    flat = (np.asarray(dayofyear) - 1) * n_hours + np.asarray(hour_index)
    np.add.at(sums, flat, np.where(valid, v, 0.0))
    np.add.at(counts, flat, valid.astype("f8"))
    return sums.reshape(N_DAYS, n_hours, *trailing), counts.reshape(N_DAYS, n_hours, *trailing)


def smooth_circular(sums: np.ndarray, counts: np.ndarray, window: int = 61) -> np.ndarray:
    """Windowed mean along axis 0 (day of year, circular): float64 of the input shape, NaN where the window
    holds no data. Window sums come from a cumulative sum over the circularly padded axis (O(n), exact counts).
    """
    n_days = sums.shape[0]
    if window < 1 or window % 2 == 0 or window > n_days:
        raise ValueError(f"climatology window must be an odd number of days in 1..{n_days}, got {window}")
    half = window // 2

    def window_sums(a: np.ndarray) -> np.ndarray:
        ext = np.concatenate([a[n_days - half:], a, a[:half]], axis=0) if half else a
        c = np.cumsum(ext, axis=0)
        c = np.concatenate([np.zeros((1, *a.shape[1:])), c], axis=0)
        return c[window:window + n_days] - c[:n_days]

    s, n = window_sums(sums), window_sums(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0.5, s / np.where(n > 0.5, n, 1.0), np.nan)


def _time_blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def compute_climatology(ds: xr.Dataset, *, window: int = 61, block: int = 48) -> xr.Dataset:
    """Climatology of every time-dependent data variable of a canonical dataset (lazy or in memory).

    Reads ``block`` time steps at a time (all variables together). Returns float32 variables with dims
    (``dayofyear`` 1..366, ``hour``, [``level``], ``latitude``, ``longitude``); ``hour`` = the hours of day
    present in ``ds`` (sorted). Attribute ``window_days`` records the window.
    """
    names = [str(v) for v in ds.data_vars if "time" in ds[v].dims]
    times = ds["time"].to_index()
    hours = np.unique(times.hour)
    hour_index = np.searchsorted(hours, times.hour)
    doy = np.asarray(times.dayofyear)
    orders = {n: ("time",) + tuple(d for d in ds[n].dims if d != "time") for n in names}
    acc: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for sl in _time_blocks(len(times), block):
        chunk = ds[names].isel(time=sl).load()
        for n in names:
            s, c = doy_hour_sums(chunk[n].transpose(*orders[n]).values, doy[sl], hour_index[sl], len(hours))
            if n in acc:
                acc[n][0].__iadd__(s)
                acc[n][1].__iadd__(c)
            else:
                acc[n] = (s, c)
    out = xr.Dataset(coords={"dayofyear": np.arange(1, N_DAYS + 1), "hour": hours.astype("int64")})
    for name in ("level", "latitude", "longitude"):
        if name in ds.coords:
            out = out.assign_coords({name: ds[name].values})
    for n in names:
        clim = smooth_circular(*acc[n], window=window).astype("f4")
        dims = ("dayofyear", "hour") + orders[n][1:]
        out[n] = (dims, clim, {k: v for k, v in ds[n].attrs.items() if k in ("units", "long_name", "standard_name")})
    out.attrs["window_days"] = int(window)
    return out
