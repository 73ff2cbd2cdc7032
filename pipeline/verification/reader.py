"""Reading blocks of forecast, truth and climatology data as float32 numpy arrays on the truth grid.

Arrays are read in the order they are stored (latitude before longitude or after, any dimension order) and
transposed in memory: a lazily transposed xarray read gathers chunks point by point, many times slower. Reads
follow the time chunks of the store, so each chunk is read once and the peak is the block plus one chunk.
Output layout: the grid flattened latitude-major (``npoints = nlat * nlon``), levels as an axis of length 1 for
single-level variables.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.verification.config import VerifyError
from pipeline.verification.inputs import interp_to_truth

F32 = np.dtype(np.float32).itemsize


def time_chunk_bounds(da: xr.DataArray, dim: str = "time") -> np.ndarray | None:
    """Start offsets of the (dask or Zarr) chunks of ``da`` along ``dim`` (then the end), or None if one chunk."""
    if da.chunks is not None:  # dask
        chunks = da.chunksizes.get(dim)
        return None if chunks is None else np.concatenate([[0], np.cumsum(chunks)])
    size = dict(zip(da.dims, da.encoding.get("chunks") or ())).get(dim)  # Zarr chunks (lazy, no dask)
    if not size or da.sizes[dim] <= size:
        return None
    return np.arange(0, da.sizes[dim] + size, size)


def _pieces(t0: int, t1: int, bounds: np.ndarray | None) -> list[tuple[int, int]]:
    """[t0, t1) cut at the chunk boundaries ``bounds`` (one piece if None), so each read is one chunk."""
    if bounds is None:
        return [(t0, t1)]
    cuts = [b for b in bounds.tolist() if t0 < b < t1]
    return list(itertools.pairwise([t0, *cuts, t1]))


def read_as(da: xr.DataArray, order: Sequence[str]) -> np.ndarray:
    """``da``'s values as float32 with dims in ``order``: read in storage order, transposed in memory."""
    arr = np.asarray(da.values)
    perm = [da.dims.index(d) for d in order]
    if perm != list(range(arr.ndim)):
        arr = np.transpose(arr, perm)
    return np.ascontiguousarray(arr, dtype=np.float32)


def forecast_dims(da: xr.DataArray, path: str, var: str) -> list[str]:
    """The dims of a forecast variable in the reader's order (time, lead, [level], [number], lat, lon)."""
    order = (
        ["time", "prediction_timedelta"]
        + (["level"] if "level" in da.dims else [])
        + (["number"] if "number" in da.dims else [])
        + ["latitude", "longitude"]
    )
    extra = [d for d in da.dims if d not in order]
    if extra:
        raise VerifyError(f"forecast {path}: variable {var!r} has unexpected dimensions {extra}")
    return order


def load_forecast_block(
    da: xr.DataArray, path: str, leads: np.ndarray, t0: int, t1: int, truth: xr.Dataset, regrid: bool
) -> np.ndarray:
    """Forecast inits [t0, t1) of ``da`` as float32 (time, lead, L, [member], npoints) on the truth grid.

    ``leads``: the lead times to take (timedelta64[ns]); ``regrid``: interpolate onto the truth grid.
    """
    var = str(da.name)
    if len(leads) != da.sizes["prediction_timedelta"] or not np.array_equal(
        da["prediction_timedelta"].values.astype("timedelta64[ns]"), leads
    ):
        da = da.sel(prediction_timedelta=leads)
    order = forecast_dims(da, path, var)
    out = None
    for a, b in _pieces(t0, t1, time_chunk_bounds(da)):
        piece = da.isel(time=slice(a, b))
        if regrid:
            piece = interp_to_truth(piece.load(), truth)
        arr = read_as(piece, order)
        if "level" not in piece.dims:
            arr = arr[:, :, None]
        arr = arr.reshape(*arr.shape[:-2], -1)
        if a == t0 and b == t1:
            return arr
        if out is None:
            out = np.empty((t1 - t0, *arr.shape[1:]), np.float32)
        out[a - t0 : b - t0] = arr
        del arr, piece
    return out


def _load_rows(da: xr.DataArray, dim: str, rows: np.ndarray, levels: np.ndarray | None) -> np.ndarray:
    """Rows ``rows`` of ``da`` along ``dim`` as float32 (n, L, npoints)."""
    sub = da.isel({dim: rows})
    if levels is not None:
        sub = sub.sel(level=levels)
        arr = read_as(sub, [dim, "level", "latitude", "longitude"])
    else:
        arr = read_as(sub, [dim, "latitude", "longitude"])[:, None]
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


def truth_rows(
    tda: xr.DataArray, rows: Sequence[int], levels: np.ndarray | None, have: dict[int, np.ndarray]
) -> dict[int, np.ndarray]:
    """Truth rows ``rows`` as {row: float32 (L, npoints)}: those in ``have`` are reused, the others read, those
    sharing a time chunk in one read (each truth chunk is read once per block, not once per row)."""
    out = {k: have[k] for k in rows if k in have}
    new = np.array(sorted(k for k in rows if k not in have), dtype=int)
    if new.size:
        bounds = time_chunk_bounds(tda)
        groups = np.searchsorted(bounds, new, side="right") if bounds is not None else np.zeros(new.size, int)
        for g in np.unique(groups):
            sel = new[groups == g]
            arr = _load_rows(tda, "time", sel, levels)
            out.update(zip(sel.tolist(), arr))
    return out


def climatology_keys(cda: xr.DataArray, valid: np.ndarray) -> np.ndarray:
    """Index ``dayofyear_pos * n_hour + hour_pos`` of the climatology field of each valid time."""
    vt = pd.DatetimeIndex(valid)
    pos_d = pd.Index(cda["dayofyear"].values).get_indexer(vt.dayofyear.values)
    if "hour" in cda.dims:
        pos_h, n_hour = pd.Index(cda["hour"].values).get_indexer(vt.hour.values), cda.sizes["hour"]
    else:
        pos_h, n_hour = np.zeros(len(vt), int), 1
    if (pos_d < 0).any() or (pos_h < 0).any():
        raise VerifyError(
            f"the climatology has no field for day of year / hour of valid time(s) "
            f"{[str(t) for t in vt[(pos_d < 0) | (pos_h < 0)][:3]]}"
        )
    return pos_d * n_hour + pos_h


def climatology_fields(
    cda: xr.DataArray, keys: Sequence[int], levels: np.ndarray | None, have: dict[int, np.ndarray]
) -> dict[int, np.ndarray]:
    """Climatology fields ``keys`` (see :func:`climatology_keys`) as {key: float32 (L, npoints)}; each is read
    once and reused from ``have`` (the previous block's) while consecutive blocks share it."""
    n_hour = cda.sizes["hour"] if "hour" in cda.dims else 1
    out = {k: have[k] for k in keys if k in have}
    for k in keys:
        if k not in out:
            field = cda.isel(dayofyear=k // n_hour, hour=k % n_hour) if "hour" in cda.dims else cda.isel(dayofyear=k)
            out[k] = _load_rows(field.expand_dims("v"), "v", np.arange(1), levels)[0]
    return out
