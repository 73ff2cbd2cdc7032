"""The ``wxemu verify`` stage: score forecast stores against the truth, WeatherBench2's way, fast.

Pipeline per forecast store (WeatherBench2 layout: ``time``, ``prediction_timedelta``, [``level``], ``latitude``,
``longitude``, [``number``]):

1. validate everything first (variables, units, levels, grids, regions, overlapping valid times, climatology) so
   that a bad input fails before any work, with a message naming the file;
2. stream over blocks of initial times sized by a memory budget that counts the forecast block, its distinct truth
   rows and climatology fields and the temporaries (:func:`plan_blocks`); each forecast chunk, truth row and
   climatology field is read once (the next block is prefetched on a thread while this one is scored when two
   blocks fit the budget), regridded to the truth grid if needed, and every metric statistic (squared / absolute
   / signed error, anomaly products, CRPS terms, ensemble variance) is computed per (init, lead) from views of
   the block and reduced over the grid for all regions with one matrix product
   (:func:`pipeline.metrics.spatial_means`);
3. per-init statistics -> per-init scores (kept, for scorecards) -> scores averaged over initial times.

The scores store (Zarr) has dims (``metric``, ``forecast``, ``region``, ``prediction_timedelta``, [``level``]),
one data variable per forecast variable, and a group ``per_init`` with the per-initial-time scores (dim ``time``
added) that :mod:`pipeline.scorecard` tests for significance. It is written to a temporary path and renamed, so
an error never leaves a partial store.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import datetime as _dt
import itertools
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog.errors import InputDataError
from pipeline import metrics as M
from pipeline.regions import AnyRegion, describe_grid, parse_regions, region_weights
from pipeline.weights import latitude_weights

HELP = "score forecast stores against the truth (WeatherBench2 metrics)"
FORECAST_DIMS = ("time", "prediction_timedelta")
PER_INIT_GROUP = "per_init"


class VerifyError(InputDataError):
    """The forecasts, truth or options given to ``wxemu verify`` cannot be scored together."""


# ------------------------------------------------------------------------------------------------------ config
@dataclasses.dataclass
class VerifyConfig:
    """Options of a verification run (the command line maps onto this one to one)."""

    forecasts: list[str]
    truth: str
    out: str | None = None
    regions: list[str] = dataclasses.field(default_factory=lambda: ["global"])
    variables: list[str] | None = None
    metrics: list[str] | None = None
    leads: list[str] | None = None
    climatology: str | None = None
    reference: str | None = None
    block_mb: float = 64.0  # memory budget (MiB) of the data held at once, see plan_blocks
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.forecasts:
            raise VerifyError("no forecast store given (--forecast)")
        if self.block_mb <= 0:
            raise VerifyError(f"--block-mb must be positive, got {self.block_mb}")


# ------------------------------------------------------------------------------------------------------ opening
def _is_wxemu_store(path: str) -> bool:
    try:
        from data_catalog.store import root_attrs

        return "wxemu_complete" in root_attrs(path)
    except Exception:  # noqa: BLE001 - not a readable Zarr v3 root: opened (and reported) elsewhere
        return False


def _open_lazy(path: str, group: str | None = None) -> xr.Dataset:
    """Open a Zarr store lazily *without dask* (xarray's lazy indexing reads only the chunks selected): the
    blocks are read one chunk at a time anyway, and not importing dask saves ~1 s and ~20 MiB."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(str(path), group=group, chunks=None)


def open_dataset(path: str, role: str) -> xr.Dataset:
    """Open a truth or forecast Zarr store lazily (no dask); an incomplete wxemu store is refused by
    ``data_catalog.store.open_store``; stores written elsewhere (WeatherBench2's) are opened as they are."""
    if not Path(path).exists() and "://" not in str(path):
        raise VerifyError(f"{role} store {path}: no such file or directory")
    if _is_wxemu_store(path):
        from data_catalog.store import is_complete, open_store

        ds = _open_lazy(path) if is_complete(path) else open_store(path)  # open_store raises the error
    else:
        try:
            ds = _open_lazy(path)
        except Exception as exc:
            raise VerifyError(f"{role} store {path}: cannot open as Zarr: {exc}") from exc
    return _canonical_grid(ds, path, role)


def open_climatology_for(truth_path: str, climatology_path: str | None) -> xr.Dataset | None:
    """The climatology: ``climatology_path`` (a store whose root or group ``climatology`` has dims dayofyear,
    [hour], ...), else the truth store's ``climatology`` group, else None."""
    candidates = [(climatology_path, True)] if climatology_path else [(truth_path, False)]
    for path, required in candidates:
        for group in ("climatology", None):
            try:
                if group and _is_wxemu_store(path):
                    from data_catalog.store import is_complete, open_climatology

                    ds = _open_lazy(path, group) if is_complete(path) else open_climatology(path)
                else:
                    ds = _open_lazy(path, group)
            except Exception:  # noqa: BLE001, S112 - no such group / not Zarr: try the next layout
                continue
            if "dayofyear" in ds.dims:
                return _canonical_grid(ds, path, "climatology")
        if required:
            raise VerifyError(f"climatology {path}: no group 'climatology' or root with a 'dayofyear' dimension")
    return None


def _canonical_grid(ds: xr.Dataset, path: str, role: str) -> xr.Dataset:
    for a, b in (("lat", "latitude"), ("lon", "longitude")):
        if a in ds.dims and b not in ds.dims:
            ds = ds.rename({a: b})
    for d in ("latitude", "longitude"):
        if d not in ds.dims:
            raise VerifyError(f"{role} store {path}: no {d!r} dimension (dims: {dict(ds.sizes)})")
    if ds.sizes["latitude"] > 1 and float(ds["latitude"][0]) > float(ds["latitude"][-1]):
        ds = ds.isel(latitude=slice(None, None, -1))
    return ds


def forecast_name(ds: xr.Dataset, path: str) -> str:
    """A forecast's name: its ``wxemu_model`` or ``model`` attribute, else the store's file stem."""
    for key in ("wxemu_model", "model"):
        value = ds.attrs.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and value.get("name"):
            return str(value["name"])
    return Path(str(path).rstrip("/")).stem


# ------------------------------------------------------------------------------------------------------ plan
@dataclasses.dataclass
class _Plan:
    """Everything validated about one forecast store before scoring it."""

    name: str
    path: str
    forecast: xr.Dataset
    variables: list[str]
    leads: np.ndarray  # timedelta64[ns], selected
    inits: np.ndarray  # datetime64[ns]
    truth_index: np.ndarray  # (n_init, n_lead) int: row of truth for each valid time, -1 if none
    regrid: str | None  # None, or how the forecast is put onto the truth grid
    ensemble: bool


def parse_leads(specs: Sequence[str] | None) -> list[pd.Timedelta] | None:
    """``["24h", "48", "3d"]`` -> Timedeltas (a bare number means hours); commas also split."""
    if not specs:
        return None
    out = []
    for spec in specs:
        for item in str(spec).split(","):
            item = item.strip()
            if not item:
                continue
            try:
                out.append(
                    pd.Timedelta(hours=float(item)) if item.replace(".", "", 1).isdigit() else pd.Timedelta(item)
                )
            except ValueError:
                raise VerifyError(f"--leads: cannot read {item!r} as a lead time (e.g. 24h, 2d, 36)") from None
    return out


def _same_grid(a: xr.Dataset, b: xr.Dataset) -> bool:
    return all(
        a.sizes[d] == b.sizes[d] and np.allclose(a[d].values, b[d].values, atol=1e-6) for d in ("latitude", "longitude")
    )


def _interp_forecast(block: xr.DataArray, truth: xr.Dataset) -> xr.DataArray:
    """Bilinear interpolation of a forecast block onto the truth grid, longitudes matched modulo 360."""
    lon = block["longitude"].values.astype(np.float64)
    t_lon = truth["longitude"].values.astype(np.float64)
    span = lon.max() - lon.min()
    spacing = np.median(np.diff(lon)) if lon.size > 1 else 360.0
    periodic = span + spacing >= 360.0 - 1e-6
    # shift the forecast longitudes into the window that contains the truth's western edge
    base = t_lon.min()
    lon_m = base + (lon - base) % 360.0
    order = np.argsort(lon_m)
    block = block.isel(longitude=order).assign_coords(longitude=lon_m[order])
    if periodic:  # add wrap-around columns on both sides
        left = block.isel(longitude=[-1]).assign_coords(longitude=block["longitude"].values[-1:] - 360.0)
        right = block.isel(longitude=[0]).assign_coords(longitude=block["longitude"].values[:1] + 360.0)
        block = xr.concat([left, block, right], dim="longitude")
    target_lon = base + (t_lon - base) % 360.0
    out = block.interp(latitude=truth["latitude"].values, longitude=target_lon, method="linear")
    return out.assign_coords(longitude=t_lon)


def _check_regrid(forecast: xr.Dataset, truth: xr.Dataset, fpath: str, tpath: str) -> str:
    ones = xr.DataArray(
        np.ones((forecast.sizes["latitude"], forecast.sizes["longitude"]), np.float32),
        dims=("latitude", "longitude"),
        coords={"latitude": forecast["latitude"].values, "longitude": forecast["longitude"].values},
    )
    probe = _interp_forecast(ones, truth)
    if np.isnan(probe.values).any():
        raise VerifyError(
            f"forecast {fpath} (grid {describe_grid(forecast.latitude, forecast.longitude)}) does not cover the "
            f"grid of the truth {tpath} ({describe_grid(truth.latitude, truth.longitude)}): cannot regrid it"
        )
    return (
        f"bilinear interpolation (xarray interp) from {forecast.sizes['latitude']}x"
        f"{forecast.sizes['longitude']} ({describe_grid(forecast.latitude, forecast.longitude)}) to the truth "
        f"grid {truth.sizes['latitude']}x{truth.sizes['longitude']}"
    )


def plan_forecast(
    path: str,
    forecast: xr.Dataset,
    truth: xr.Dataset,
    truth_path: str,
    *,
    variables: Sequence[str] | None,
    metrics: Sequence[M.Metric],
    leads: Sequence[pd.Timedelta] | None,
    climatology: xr.Dataset | None,
) -> _Plan:
    """Validate one forecast against the truth; raise :class:`VerifyError` naming the files on any problem."""
    for d in FORECAST_DIMS:
        if d not in forecast.dims:
            raise VerifyError(
                f"forecast {path}: no {d!r} dimension; expected WeatherBench2's layout "
                f"(time, prediction_timedelta, [level], latitude, longitude, [number]), "
                f"got dims {dict(forecast.sizes)}"
            )
    if "time" not in truth.dims:
        raise VerifyError(f"truth {truth_path}: no 'time' dimension")
    candidates = [
        str(v) for v in forecast.data_vars if "time" in forecast[v].dims and "prediction_timedelta" in forecast[v].dims
    ]
    if variables:
        missing_f = [v for v in variables if v not in candidates]
        if missing_f:
            raise VerifyError(f"forecast {path}: no variable(s) {missing_f}; it has {candidates}")
        chosen = list(variables)
        missing_t = [v for v in chosen if v not in truth.data_vars]
        if missing_t:
            raise VerifyError(
                f"truth {truth_path}: variable(s) {missing_t} of forecast {path} are missing; "
                f"the truth has {list(truth.data_vars)}"
            )
    else:
        chosen = [v for v in candidates if v in truth.data_vars]
        if not chosen:
            raise VerifyError(
                f"forecast {path} and truth {truth_path} share no variable: forecast has "
                f"{candidates}, truth has {list(truth.data_vars)}"
            )
    ensemble = "number" in forecast.dims
    for v in chosen:
        fu, tu = forecast[v].attrs.get("units"), truth[v].attrs.get("units")
        if fu and tu and fu != tu:
            raise VerifyError(
                f"variable {v!r}: units differ: forecast {path} has {fu!r}, truth {truth_path} "
                f"has {tu!r}; convert one of them"
            )
        if "level" in forecast[v].dims:
            if "level" not in truth[v].dims:
                raise VerifyError(f"variable {v!r} has levels in forecast {path} but not in truth {truth_path}")
            missing = sorted(set(forecast["level"].values.tolist()) - set(truth["level"].values.tolist()))
            if missing:
                raise VerifyError(f"variable {v!r}: levels {missing} of forecast {path} are not in truth {truth_path}")
        if climatology is not None and any(isinstance(m, M.ACC) for m in metrics) and v not in climatology:
            raise VerifyError(f"ACC needs a climatology of {v!r}, but the climatology of {truth_path} lacks it")
    for m in metrics:
        if m.ensemble and not ensemble:
            raise VerifyError(
                f"metric {m.name!r} needs an ensemble forecast, but forecast {path} has no 'number' dimension"
            )
    all_leads = pd.to_timedelta(forecast["prediction_timedelta"].values)
    if leads:
        missing = [str(x) for x in leads if x not in set(all_leads)]
        if missing:
            raise VerifyError(f"forecast {path}: no lead time(s) {missing}; it has {[str(x) for x in all_leads]}")
        lead_vals = np.array([np.timedelta64(x.value, "ns") for x in leads])
    else:
        lead_vals = all_leads.values.astype("timedelta64[ns]")
    inits = forecast["time"].values.astype("datetime64[ns]")
    valid = inits[:, None] + lead_vals[None, :]
    tindex = pd.Index(truth["time"].values.astype("datetime64[ns]"))
    idx = tindex.get_indexer(valid.ravel()).reshape(valid.shape)
    if (idx < 0).all():
        raise VerifyError(
            f"forecast {path} and truth {truth_path} have no valid time in common: forecast valid times "
            f"{pd.Timestamp(valid.min())} .. {pd.Timestamp(valid.max())}, truth {pd.Timestamp(tindex.min())} .. "
            f"{pd.Timestamp(tindex.max())}"
        )
    regrid = None if _same_grid(forecast, truth) else _check_regrid(forecast, truth, path, truth_path)
    return _Plan(forecast_name(forecast, path), path, forecast, chosen, lead_vals, inits, idx, regrid, ensemble)


# ------------------------------------------------------------------------------------------------------ scoring
_F32 = np.dtype(np.float32).itemsize


def _time_chunk_bounds(da: xr.DataArray, dim: str = "time") -> np.ndarray | None:
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
    edges = [t0, *cuts, t1]
    return list(itertools.pairwise(edges))


def _load_forecast_block(plan: _Plan, var: str, t0: int, t1: int, truth: xr.Dataset) -> np.ndarray:
    """Forecast inits [t0, t1) as float32 ndarray (time, lead, L, [member], npoints) on the truth grid.

    Read one (dask / Zarr) time chunk at a time into one preallocated array, so the peak is the block plus one
    chunk (a single ``.values`` on several chunks holds the chunks and their concatenation, twice the block).
    """
    da = plan.forecast[var]
    if len(plan.leads) != da.sizes["prediction_timedelta"] or not np.array_equal(
        da["prediction_timedelta"].values.astype("timedelta64[ns]"), plan.leads
    ):
        da = da.sel(prediction_timedelta=plan.leads)
    order = (
        ["time", "prediction_timedelta"]
        + (["level"] if "level" in da.dims else [])
        + (["number"] if "number" in da.dims else [])
        + ["latitude", "longitude"]
    )
    extra = [d for d in da.dims if d not in order]
    if extra:
        raise VerifyError(f"forecast {plan.path}: variable {var!r} has unexpected dimensions {extra}")
    da = da.transpose(*order)
    out = None
    for a, b in _pieces(t0, t1, _time_chunk_bounds(da)):
        piece = da.isel(time=slice(a, b))
        if plan.regrid is not None:
            piece = _interp_forecast(piece.load(), truth)
        arr = np.asarray(piece.values, dtype=np.float32)
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
        sub = sub.transpose(dim, "level", "latitude", "longitude")
    else:
        sub = sub.transpose(dim, "latitude", "longitude")
    arr = np.asarray(sub.values, dtype=np.float32)
    if levels is None:
        arr = arr[:, None]
    return arr.reshape(arr.shape[0], arr.shape[1], -1)


def _truth_rows(
    tda: xr.DataArray, rows: Sequence[int], levels: np.ndarray | None, have: dict[int, np.ndarray]
) -> dict[int, np.ndarray]:
    """Truth rows ``rows`` as {row: float32 (L, npoints)}: those in ``have`` are reused, the others read, those
    sharing a time chunk in one read (each truth chunk is read once per block, not once per row)."""
    out = {k: have[k] for k in rows if k in have}
    new = np.array(sorted(k for k in rows if k not in have), dtype=int)
    if new.size:
        bounds = _time_chunk_bounds(tda)
        groups = np.searchsorted(bounds, new, side="right") if bounds is not None else np.zeros(new.size, int)
        for g in np.unique(groups):
            sel = new[groups == g]
            arr = _load_rows(tda, "time", sel, levels)
            out.update(zip(sel.tolist(), arr))
    return out


def _climatology_keys(cda: xr.DataArray, valid: np.ndarray) -> np.ndarray:
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


def _climatology_fields(
    cda: xr.DataArray, keys: Sequence[int], levels: np.ndarray | None, have: dict[int, np.ndarray]
) -> dict[int, np.ndarray]:
    """Climatology fields ``keys`` (see :func:`_climatology_keys`) as {key: float32 (L, npoints)}; each is read
    once and reused from ``have`` (the previous block's) while consecutive blocks share it."""
    n_hour = cda.sizes["hour"] if "hour" in cda.dims else 1
    out = {k: have[k] for k in keys if k in have}
    for k in keys:
        if k not in out:
            field = cda.isel(dayofyear=k // n_hour, hour=k % n_hour) if "hour" in cda.dims else cda.isel(dayofyear=k)
            out[k] = _load_rows(field.expand_dims("v"), "v", np.arange(1), levels)[0]
    return out


@dataclasses.dataclass(frozen=True)
class _BlockPlan:
    """Blocks of initial times of one variable, sized so everything resident fits ``budget`` bytes."""

    blocks: list[tuple[int, int]]
    prefetch: bool
    peak_bytes: float  # estimated resident bytes of the largest block (twice with prefetch) + temporaries


def plan_blocks(
    truth_index: np.ndarray,
    clim_keys: np.ndarray | None,
    init_bytes: float,
    row_bytes: float,
    temp_bytes: float,
    budget: float,
) -> _BlockPlan:
    """Cut the initial times into blocks whose resident data fit ``budget`` bytes.

    A block of inits holds its forecast (``init_bytes`` per init), the distinct truth rows of its valid times and
    the distinct climatology fields of those (``row_bytes`` each); ``temp_bytes`` is the scoring temporaries
    (one init and lead). The next block is prefetched (read while this one is scored) only when two one-init
    blocks fit; then each block gets half the budget. A single init always forms a block, even over budget.
    """
    n_init = truth_index.shape[0]

    def cost_of(t0: int, t1: int) -> float:
        idx = truth_index[t0:t1]
        rows = np.unique(idx[idx >= 0])
        n_clim = 0 if clim_keys is None else np.unique(clim_keys[rows]).size
        return (t1 - t0) * init_bytes + (rows.size + n_clim) * row_bytes

    first = max((cost_of(t, t + 1) for t in range(min(n_init, 4))), default=0.0)
    prefetch = 2 * first + temp_bytes <= budget and n_init > 1
    limit = (budget - temp_bytes) / (2 if prefetch else 1)
    blocks, peak = [], 0.0
    t0 = 0
    while t0 < n_init:
        rows: set[int] = set()
        clim: set[int] = set()
        t1, cost = t0, 0.0
        while t1 < n_init:
            r = truth_index[t1][truth_index[t1] >= 0]
            new_rows = rows.union(r.tolist())
            new_clim = clim if clim_keys is None else clim.union(clim_keys[r].tolist())
            c = (t1 + 1 - t0) * init_bytes + (len(new_rows) + len(new_clim)) * row_bytes
            if c > limit and t1 > t0:
                break
            rows, clim, t1, cost = new_rows, new_clim, t1 + 1, c
        blocks.append((t0, t1))
        peak = max(peak, cost)
        t0 = t1
    return _BlockPlan(blocks, prefetch, peak * (2 if prefetch else 1) + temp_bytes)


def score_forecast(
    plan: _Plan,
    truth: xr.Dataset,
    metrics: Sequence[M.Metric],
    regions: Sequence[AnyRegion],
    weights: np.ndarray,
    climatology: xr.Dataset | None,
    block_bytes: float,
    progress: bool = False,
) -> tuple[xr.Dataset, xr.Dataset]:
    """Score one validated forecast. Returns (scores, per_init) Datasets.

    scores: dims (metric, region, prediction_timedelta, [level]) per variable; per_init: the same plus ``time``.
    ``weights``: (npoints, n_regions) float32 normalised region weights on the truth grid. ``block_bytes``: the
    memory budget of the forecast, truth and climatology data held at once (current and prefetched block) and the
    scoring temporaries, see :func:`plan_blocks`. Statistics are computed per (init, lead) from views of the
    block (no gathered copies of truth or climatology).
    """
    stat_names = M.required_statistics(metrics)
    need_clim = any(s in M.ANOMALY_STATISTICS for s in stat_names)
    n_init, n_lead, n_reg = len(plan.inits), len(plan.leads), len(regions)
    npoints = weights.shape[0]
    used = np.unique(plan.truth_index[plan.truth_index >= 0])
    scores_vars: dict[str, xr.DataArray] = {}
    per_init_vars: dict[str, xr.DataArray] = {}
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        for var in plan.variables:
            fda = plan.forecast[var]
            levels = fda["level"].values if "level" in fda.dims else None
            n_lev = 1 if levels is None else len(levels)
            n_mem = fda.sizes.get("number", 1)
            stats = {s: np.full((n_init, n_lead, n_lev, n_reg), np.nan, np.float32) for s in stat_names}
            tda = truth[var]
            cda = climatology[var] if need_clim else None
            clim_keys = None
            if cda is not None:
                clim_keys = np.full(truth.sizes["time"], -1)
                clim_keys[used] = _climatology_keys(cda, truth["time"].values[used])
            row_bytes = n_lev * npoints * _F32
            # per (init, lead): err + one statistic field + 2 anomalies; ensembles: mean, members - truth, sorted
            temp_bytes = row_bytes * (4 + (2 * n_mem + 1 if plan.ensemble else 0))
            bplan = plan_blocks(
                plan.truth_index, clim_keys, n_lead * n_mem * row_bytes, row_bytes, temp_bytes, block_bytes
            )
            member_axis = 1 if plan.ensemble else None
            held: dict[str, dict[int, np.ndarray]] = {"rows": {}, "clim": {}}

            def load(
                block: tuple[int, int],
                var: str = var,
                tda: xr.DataArray = tda,
                cda: xr.DataArray | None = cda,
                levels: np.ndarray | None = levels,
                clim_keys: np.ndarray | None = clim_keys,
                held: dict = held,
            ) -> tuple:
                t0, t1 = block
                idx = plan.truth_index[t0:t1]
                need = np.unique(idx[idx >= 0]).tolist()
                rows = _truth_rows(tda, need, levels, held["rows"]) if need else {}
                clim = {}
                if cda is not None and need:
                    clim = _climatology_fields(cda, np.unique(clim_keys[need]).tolist(), levels, held["clim"])
                fc = _load_forecast_block(plan, var, t0, t1, truth) if need else None
                return fc, rows, clim

            blocks = bplan.blocks
            future = pool.submit(load, blocks[0]) if bplan.prefetch else None
            for k, (t0, t1) in enumerate(blocks):
                if bplan.prefetch:
                    fc, rows, clim = future.result()
                    held["rows"], held["clim"] = rows, clim  # the next block reuses the rows it shares
                    future = pool.submit(load, blocks[k + 1]) if k + 1 < len(blocks) else None
                else:
                    fc, rows, clim = load((t0, t1))
                    held["rows"], held["clim"] = rows, clim
                for i in range(t1 - t0):
                    for j in range(n_lead):
                        r = plan.truth_index[t0 + i, j]
                        if r < 0:
                            continue
                        c = clim[clim_keys[r]] if clim else None
                        for name, field in M.pointwise_statistics(
                            fc[i, j], rows[r], stat_names, member_axis=member_axis, climatology=c
                        ):
                            stats[name][t0 + i, j] = M.spatial_means(field, weights)
                            del field
                del fc, rows, clim
                if progress:
                    print(f"  {plan.name}: {var} inits {t1}/{n_init}", file=sys.stderr, flush=True)
            held.clear()
            dims = ["time", "prediction_timedelta", "level", "region"]
            coords: dict[str, Any] = {
                "time": plan.inits,
                "prediction_timedelta": plan.leads,
                "region": [r.name for r in regions],
            }
            if levels is not None:
                coords["level"] = levels
            per_init = np.stack([m.per_init(stats) for m in metrics])
            final = np.stack([m.reduce_time(stats, axis=0) for m in metrics]).astype(np.float64)
            pi = xr.DataArray(per_init, dims=["metric"] + dims, coords={**coords, "metric": [m.name for m in metrics]})
            sc = xr.DataArray(
                final,
                dims=["metric"] + dims[1:],
                coords={k: v for k, v in coords.items() if k != "time"} | {"metric": [m.name for m in metrics]},
            )
            if levels is None:
                pi, sc = pi.squeeze("level", drop=True), sc.squeeze("level", drop=True)
            order = ["metric", "region", "prediction_timedelta"] + (["level"] if levels is not None else [])
            sc = sc.transpose(*order)
            pi = pi.transpose(*order[:2], "time", *order[2:])
            attrs = {"units": str(fda.attrs.get("units", "")), "long_name": str(fda.attrs.get("long_name", var))}
            scores_vars[var] = sc.assign_attrs(attrs)
            per_init_vars[var] = pi.assign_attrs(attrs)
    finally:
        pool.shutdown(wait=True)
    counts = xr.DataArray(
        (plan.truth_index >= 0).sum(axis=0), dims="prediction_timedelta", coords={"prediction_timedelta": plan.leads}
    )
    scores = xr.Dataset(scores_vars).assign_coords(n_init=counts)
    return scores, xr.Dataset(per_init_vars)


# ------------------------------------------------------------------------------------------------------ driver
def _release_large_blocks_to_os() -> None:
    """Ask glibc to serve allocations >= 1 MiB with mmap, so the freed blocks go back to the OS at once.

    Without it the default dynamic threshold keeps freed 1-30 MiB blocks in the heap and the RSS of a long
    verification creeps up (measured: 1.4 GB instead of 0.5 GB on the 1.5 deg benchmark). No-op off glibc.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def _default_metrics(ensemble: bool, have_clim: bool) -> list[str]:
    names = list(M.ENSEMBLE_DEFAULT if ensemble else M.DETERMINISTIC_DEFAULT)
    return [n for n in names if n != "acc" or have_clim]


def verify(config: VerifyConfig, *, progress: bool = False) -> tuple[xr.Dataset, xr.Dataset]:
    """Run a verification; returns (scores, per_init) and writes them to ``config.out`` when set.

    Everything is validated before any scoring; the output is written to a temporary sibling path and renamed
    into place, so an error leaves no partial store.
    """
    _release_large_blocks_to_os()
    truth = open_dataset(config.truth, "truth")
    regions = parse_regions(config.regions)
    leads = parse_leads(config.leads)
    if config.out and Path(config.out).exists() and not config.overwrite:
        raise VerifyError(f"output {config.out} exists; pass --overwrite to replace it")
    forecasts = [(p, open_dataset(p, "forecast")) for p in config.forecasts]
    any_ens = any("number" in ds.dims for _, ds in forecasts)
    explicit = config.metrics is not None
    climatology = open_climatology_for(config.truth, config.climatology)
    metric_names = list(config.metrics) if explicit else _default_metrics(any_ens, climatology is not None)
    metrics = M.get_metrics(metric_names)
    if any(isinstance(m, M.ACC) for m in metrics) and climatology is None:
        raise VerifyError(
            f"metric 'acc' needs a climatology: the truth {config.truth} has no group "
            f"'climatology'; pass --climatology STORE"
        )
    tlat, tlon = truth["latitude"].values, truth["longitude"].values
    weights = region_weights(regions, tlat, tlon, latitude_weights(tlat), grid_name=f"the truth {config.truth}")
    weights = weights.reshape(len(regions), -1).T.astype(np.float32).copy()
    plans = []
    for path, ds in forecasts:
        ms = metrics if explicit else [m for m in metrics if not m.ensemble or "number" in ds.dims]
        plans.append(
            (
                plan_forecast(
                    path,
                    ds,
                    truth,
                    config.truth,
                    variables=config.variables,
                    metrics=ms,
                    leads=leads,
                    climatology=climatology,
                ),
                ms,
            )
        )
    names = [p.name for p, _ in plans]
    if len(set(names)) != len(names):
        names = [f"{p.name}:{Path(p.path).name}" if names.count(p.name) > 1 else p.name for p, _ in plans]
    if config.reference is not None and config.reference not in names:
        raise VerifyError(f"--reference {config.reference!r} is not one of the forecasts {names}")
    all_scores, all_per_init = [], []
    for (plan, ms), name in zip(plans, names):
        sc, pi = score_forecast(
            plan, truth, ms, regions, weights, climatology, config.block_mb * 2**20, progress=progress
        )
        all_scores.append(sc.expand_dims(forecast=[name]))
        all_per_init.append(pi.expand_dims(forecast=[name]))
    scores = xr.concat(all_scores, dim="forecast", join="outer", coords="different", compat="equals")
    per_init = xr.concat(all_per_init, dim="forecast", join="outer")
    per_init = per_init.transpose("metric", "forecast", "region", "time", ...)
    scores = scores.transpose("metric", "forecast", "region", "prediction_timedelta", ...)
    scores.attrs = _provenance(config, plans, names, regions, metrics, climatology is not None)
    per_init.attrs = {
        "description": "per-initial-time scores: the quantity each metric averages over initial "
        "times (MSE for rmse, ensemble variance for spread, ...)"
    }
    if config.out:
        write_scores(scores, per_init, config.out, overwrite=config.overwrite)
    return scores, per_init


def _provenance(
    config: VerifyConfig,
    plans: list,
    names: list[str],
    regions: Sequence[AnyRegion],
    metrics: Sequence[M.Metric],
    have_clim: bool,
) -> dict[str, Any]:
    try:
        from importlib.metadata import version

        wx_version = version("wxemu")
    except Exception:  # noqa: BLE001
        wx_version = "unknown"
    return {
        "wxemu_complete": True,
        "wxemu_version": wx_version,
        "wxemu_stage": "verify",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "truth": str(config.truth),
        "climatology": str(config.climatology or (config.truth + "#climatology" if have_clim else "")),
        "forecasts": json.dumps(
            [
                {
                    "name": n,
                    "path": str(p.path),
                    "variables": p.variables,
                    "ensemble": p.ensemble,
                    "regridding": p.regrid or "none (same grid as truth)",
                }
                for (p, _), n in zip(plans, names)
            ]
        ),
        "regridding": "; ".join(f"{n}: {p.regrid}" for (p, _), n in zip(plans, names) if p.regrid) or "none",
        "regions": json.dumps({r.name: r.describe() for r in regions}),
        "metrics": [m.name for m in metrics],
        "conventions": "WeatherBench2: truth at valid time = time + prediction_timedelta; area weights "
        "sin(upper)-sin(lower) per latitude band; per-init spatial means averaged over init times "
        "(RMSE = sqrt of mean MSE); ACC per init then averaged; fair CRPS",
    }


def write_scores(scores: xr.Dataset, per_init: xr.Dataset, out: str, *, overwrite: bool = False) -> None:
    """Write scores (root) and per-init scores (group ``per_init``) to Zarr at ``out`` atomically."""
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        import zarr

        with warnings.catch_warnings():  # fixed-length unicode coords and consolidated metadata are "unstable" v3
            warnings.simplefilter("ignore")
            scores.to_zarr(tmp, mode="w", consolidated=False, zarr_format=3)
            per_init.to_zarr(tmp, group=PER_INIT_GROUP, mode="w", consolidated=False, zarr_format=3)
            zarr.consolidate_metadata(str(tmp), zarr_format=3)
        if target.exists():
            if not overwrite:
                raise VerifyError(f"output {out} exists; pass --overwrite to replace it")
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def open_scores(path: str) -> tuple[xr.Dataset, xr.Dataset]:
    """Read a scores store written by :func:`write_scores`: (scores, per_init), loaded into memory."""
    if not Path(path).exists():
        raise VerifyError(f"scores store {path}: no such file or directory")
    scores = xr.open_zarr(path, consolidated=False).load()
    per_init = xr.open_zarr(path, group=PER_INIT_GROUP, consolidated=False).load()
    return scores, per_init


# ------------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--forecast", nargs="+", required=True, metavar="STORE", help="forecast Zarr store(s), WeatherBench2 layout"
    )
    parser.add_argument("--truth", required=True, metavar="STORE", help="analysis / truth Zarr store")
    parser.add_argument("--out", required=True, metavar="SCORES.zarr", help="scores store to write")
    parser.add_argument(
        "--regions",
        nargs="+",
        default=["global"],
        metavar="REGION",
        help="region names (global tropics extra_tropics northern_extra_tropics "
        "southern_extra_tropics northern_hemisphere southern_hemisphere europe north_america uk) "
        "or boxes lat0,lat1,lon0,lon1 (default: global)",
    )
    parser.add_argument("--variables", nargs="+", metavar="VAR", help="variables to score (default: all shared)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help=f"metrics: {', '.join(M.METRICS)} (default: rmse mae bias [acc]; plus crps "
        f"ens_mean_rmse spread spread_skill for ensembles)",
    )
    parser.add_argument(
        "--leads",
        nargs="+",
        metavar="LEAD",
        help="lead times to score, e.g. 24h 48h 5d (bare numbers are hours; default: all)",
    )
    parser.add_argument(
        "--climatology",
        metavar="STORE",
        help="climatology store for ACC (default: group 'climatology' of the truth store)",
    )
    parser.add_argument("--reference", metavar="NAME", help="print a scorecard of every forecast against NAME")
    parser.add_argument("--scorecard-metric", default="rmse", help="metric of the scorecard (default rmse)")
    parser.add_argument(
        "--block-mb",
        type=float,
        default=64.0,
        help="memory budget in MiB of the forecast, truth and climatology data held at once (default 64)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing scores store")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    config = VerifyConfig(
        forecasts=list(args.forecast),
        truth=args.truth,
        out=args.out,
        regions=args.regions,
        variables=args.variables,
        metrics=args.metrics,
        leads=args.leads,
        climatology=args.climatology,
        reference=args.reference,
        block_mb=args.block_mb,
        overwrite=args.overwrite,
    )
    scores, per_init = verify(config, progress=not args.quiet)
    print(
        f"wrote {args.out}: {', '.join(scores.data_vars)} x metrics {list(scores.metric.values)} x forecasts "
        f"{list(scores.forecast.values)} x regions {list(scores.region.values)}"
    )
    if config.reference is not None:
        from pipeline.scorecard import print_scorecards

        print_scorecards(scores, per_init, reference=config.reference, metric=args.scorecard_metric)
    return 0
