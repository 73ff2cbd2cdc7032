"""The scoring loop: per-(init, lead) spatial-mean statistics (and spectra) of one variable, block by block.

A :class:`VariableJob` holds everything needed to score one variable of one forecast (picklable, so blocks can run
as tasks elsewhere, see :mod:`pipeline.verification.distributed`). :func:`read_block` reads a block of initial times,
:func:`compute_block` turns it into a :class:`BlockResult`, :func:`combine` puts the blocks' results together
(the same way whichever process computed them) and :func:`score_variable` runs the blocks in this process, reading
the next block on a thread while this one is scored.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import sys
from collections.abc import Sequence

import numpy as np
import xarray as xr

from data_catalog.regions import AnyRegion
from pipeline import metrics as M
from pipeline import spectra as S
from pipeline.verification.plan import BlockPlan, ForecastPlan
from pipeline.verification.reader import climatology_fields, load_forecast_block, truth_rows
from pipeline.weights import latitude_weights


@dataclasses.dataclass(frozen=True)
class SpectrumGrid:
    """How spectra are taken on the truth grid: ``kind`` "zonal" (global grids: zonal spectra averaged over
    latitude with area weights) or "radial" (regional grids: radially binned 2-D spectra)."""

    kind: str
    nlat: int
    nlon: int
    lat_weights: np.ndarray | None
    bins: np.ndarray | None
    wavelength_km: np.ndarray  # (n_wavenumbers,), inf for wavenumber 0

    def __call__(self, fields: np.ndarray) -> np.ndarray:
        """Spectra of ``fields`` (..., npoints) (the grid flattened latitude-major): (..., n_wavenumbers)."""
        grid = fields.reshape(*fields.shape[:-1], self.nlat, self.nlon)
        if self.kind == "zonal":
            return S.zonal_spectrum(grid, self.lat_weights)
        return S.radial_power_spectrum(grid, self.bins)


def spectrum_grid(latitude: np.ndarray, longitude: np.ndarray) -> SpectrumGrid:
    """The :class:`SpectrumGrid` of a regular latitude/longitude grid."""
    nlat, nlon = len(latitude), len(longitude)
    if S.is_global(longitude):
        wl = S.zonal_wavelength_km(nlon // 2 + 1)
        return SpectrumGrid("zonal", nlat, nlon, latitude_weights(latitude), None, wl)
    bins, wl = S.radial_bins(nlat, nlon, *S.grid_spacing_km(latitude, longitude))
    return SpectrumGrid("radial", nlat, nlon, None, bins, wl)


@dataclasses.dataclass(frozen=True)
class VariableJob:
    """Everything to score one variable of one forecast against the truth (picklable).

    truth_index: (n_init, n_lead) truth row of each valid time (-1: none); weights: (npoints, n_regions) float32
    normalised region weights on the truth grid; clim_keys: climatology field of each truth row (-1: unused) or
    None; spectrum: None to skip spectra.
    """

    forecast_path: str
    truth_path: str
    climatology_path: str | None
    var: str
    leads: np.ndarray
    truth_index: np.ndarray
    regrid: bool
    levels: np.ndarray | None
    n_members: int
    ensemble: bool
    stat_names: tuple[str, ...]
    weights: np.ndarray
    clim_keys: np.ndarray | None
    spectrum: SpectrumGrid | None

    @property
    def n_levels(self) -> int:
        return 1 if self.levels is None else len(self.levels)


@dataclasses.dataclass
class Sources:
    """The lazily opened arrays a job reads: forecast and truth variable, climatology variable, the truth grid."""

    forecast: xr.DataArray
    truth: xr.DataArray
    climatology: xr.DataArray | None
    truth_grid: xr.Dataset


@dataclasses.dataclass
class BlockData:
    """A block read into memory: forecast (n, lead, L, [member], npoints), truth rows and climatology fields."""

    forecast: np.ndarray | None
    rows: dict[int, np.ndarray]
    clim: dict[int, np.ndarray]


#: :attr:`BlockResult.status` values of an (init, lead) pair.
SCORED, NO_TRUTH, MISSING, BAD_FORECAST, BAD_TRUTH = 0, 1, 2, 3, 4


@dataclasses.dataclass
class BlockResult:
    """Statistics of inits [t0, t1): {name: (t1 - t0, n_lead, L, n_regions) float32}; status: (t1 - t0,
    n_lead) int8, SCORED, NO_TRUTH (valid time not in the truth), MISSING (forecast all NaN: skipped),
    BAD_FORECAST / BAD_TRUTH (non-finite statistics, from NaN/Inf in the forecast / the truth or climatology);
    spectra: sums over the block's scored pairs per lead, {"forecast"|"truth": (n_lead, L, n_wavenumbers)
    float64, "count": (n_lead,)}."""

    t0: int
    t1: int
    stats: dict[str, np.ndarray]
    status: np.ndarray
    spectra: dict[str, np.ndarray] | None


@dataclasses.dataclass
class VariableStats:
    """All inits of one variable: stats {name: (n_init, n_lead, L, n_regions)}, status (n_init, n_lead) and
    spectra sums as in :class:`BlockResult`."""

    stats: dict[str, np.ndarray]
    status: np.ndarray
    spectra: dict[str, np.ndarray] | None


def read_block(sources: Sources, job: VariableJob, t0: int, t1: int, have: BlockData | None = None) -> BlockData:
    """Read inits [t0, t1): the forecast block, the truth rows of its valid times and their climatology fields
    (rows and fields already in ``have`` are reused, not read again)."""
    idx = job.truth_index[t0:t1]
    need = np.unique(idx[idx >= 0]).tolist()
    if not need:
        return BlockData(None, {}, {})
    rows = truth_rows(sources.truth, need, job.levels, have.rows if have else {})
    clim = {}
    if sources.climatology is not None:
        keys = np.unique(job.clim_keys[need]).tolist()
        clim = climatology_fields(sources.climatology, keys, job.levels, have.clim if have else {})
    fc = load_forecast_block(sources.forecast, job.forecast_path, job.leads, t0, t1, sources.truth_grid, job.regrid)
    return BlockData(fc, rows, clim)


def compute_block(
    job: VariableJob, data: BlockData, t0: int, t1: int, truth_spectra: dict[int, np.ndarray] | None = None
) -> BlockResult:
    """Statistics (and spectra sums) of inits [t0, t1) from the block read by :func:`read_block`.

    ``truth_spectra``: spectra of truth rows already computed ({row: (L, n_wavenumbers)}), reused and filled in
    (the previous block's, in :func:`score_variable`).
    """
    n_lead, n_lev, n_reg = len(job.leads), job.n_levels, job.weights.shape[1]
    stats = {s: np.full((t1 - t0, n_lead, n_lev, n_reg), np.nan, np.float32) for s in job.stat_names}
    spectra = None
    if job.spectrum is not None:
        nk = len(job.spectrum.wavelength_km)
        spectra = {
            "forecast": np.zeros((n_lead, n_lev, nk)),
            "truth": np.zeros((n_lead, n_lev, nk)),
            "count": np.zeros(n_lead),
        }
        truth_spectra = {} if truth_spectra is None else truth_spectra
    member_axis = 1 if job.ensemble else None
    fc = data.forecast
    status = np.full((t1 - t0, n_lead), SCORED, np.int8)
    for i in range(t1 - t0):
        for j in range(n_lead):
            r = job.truth_index[t0 + i, j]
            if r < 0:
                status[i, j] = NO_TRUTH
                continue
            c = data.clim[job.clim_keys[r]] if data.clim else None
            finite = True
            for name, field in M.pointwise_statistics(
                fc[i, j], data.rows[r], job.stat_names, member_axis=member_axis, climatology=c
            ):
                stats[name][i, j] = means = M.spatial_means(field, job.weights)
                finite = finite and bool(np.isfinite(means).all())
                del field
            if not finite:
                if np.isnan(fc[i, j]).all():
                    status[i, j] = MISSING
                elif np.isfinite(fc[i, j]).all():
                    status[i, j] = BAD_TRUTH
                else:
                    status[i, j] = BAD_FORECAST
                continue
            if spectra is not None:
                fs = job.spectrum(fc[i, j])
                spectra["forecast"][j] += fs.mean(axis=1) if job.ensemble else fs
                if r not in truth_spectra:
                    truth_spectra[r] = job.spectrum(data.rows[r])
                spectra["truth"][j] += truth_spectra[r]
                spectra["count"][j] += 1
    return BlockResult(t0, t1, stats, status, spectra)


def combine(job: VariableJob, results: Sequence[BlockResult]) -> VariableStats:
    """The blocks' results as one :class:`VariableStats` (spectra summed in block order)."""
    n_init, n_lead = job.truth_index.shape
    n_lev, n_reg = job.n_levels, job.weights.shape[1]
    stats = {s: np.full((n_init, n_lead, n_lev, n_reg), np.nan, np.float32) for s in job.stat_names}
    status = np.full((n_init, n_lead), NO_TRUTH, np.int8)
    spectra = None
    for res in sorted(results, key=lambda r: r.t0):
        status[res.t0 : res.t1] = res.status
        for s in job.stat_names:
            stats[s][res.t0 : res.t1] = res.stats[s]
        if res.spectra is not None:
            if spectra is None:
                spectra = {k: np.zeros_like(v) for k, v in res.spectra.items()}
            for k, v in res.spectra.items():
                spectra[k] += v
    return VariableStats(stats, status, spectra)


def score_variable(
    sources: Sources, job: VariableJob, bplan: BlockPlan, *, progress: bool = False, label: str = ""
) -> VariableStats:
    """Score all blocks of ``bplan`` in this process; with ``bplan.prefetch`` the next block is read on a thread
    while this one is scored."""
    n_init = job.truth_index.shape[0]
    results = []
    blocks = bplan.blocks
    held: BlockData | None = None
    truth_spectra: dict[int, np.ndarray] = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(read_block, sources, job, *blocks[0], held) if bplan.prefetch else None
        for k, (t0, t1) in enumerate(blocks):
            if bplan.prefetch:
                data = future.result()
                future = pool.submit(read_block, sources, job, *blocks[k + 1], data) if k + 1 < len(blocks) else None
            else:
                data = read_block(sources, job, t0, t1, held)
            held = data  # the next block reuses the truth rows and climatology fields it shares
            if data.forecast is not None:
                truth_spectra = {r: v for r, v in truth_spectra.items() if r in data.rows}  # the rows shared
                results.append(compute_block(job, data, t0, t1, truth_spectra))
            if progress:
                print(f"  {label}: {job.var} inits {t1}/{n_init}", file=sys.stderr, flush=True)
    return combine(job, results)


def variable_scores(
    plan: ForecastPlan,
    var: str,
    vstats: VariableStats,
    metrics: Sequence[M.Metric],
    regions: Sequence[AnyRegion],
    levels: np.ndarray | None,
) -> tuple[xr.DataArray, xr.DataArray]:
    """(scores, per_init) DataArrays of one variable: dims (metric, region, prediction_timedelta, [level]) and
    (metric, region, time, prediction_timedelta, [level])."""
    stats = vstats.stats
    dims = ["time", "prediction_timedelta", "level", "region"]
    coords = {"time": plan.inits, "prediction_timedelta": plan.leads, "region": [r.name for r in regions]}
    if levels is not None:
        coords["level"] = levels
    names = {"metric": [m.name for m in metrics]}
    per_init = np.stack([m.per_init(stats) for m in metrics])
    final = np.stack([m.reduce_time(stats, axis=0) for m in metrics]).astype(np.float64)
    pi = xr.DataArray(per_init, dims=["metric"] + dims, coords={**coords, **names})
    sc = xr.DataArray(
        final, dims=["metric"] + dims[1:], coords={k: v for k, v in coords.items() if k != "time"} | names
    )
    if levels is None:
        pi, sc = pi.squeeze("level", drop=True), sc.squeeze("level", drop=True)
    order = ["metric", "region", "prediction_timedelta"] + (["level"] if levels is not None else [])
    fda = plan.forecast[var]
    attrs = {"units": str(fda.attrs.get("units", "")), "long_name": str(fda.attrs.get("long_name", var))}
    return sc.transpose(*order).assign_attrs(attrs), pi.transpose(*order[:2], "time", *order[2:]).assign_attrs(attrs)


def variable_spectra(
    plan: ForecastPlan, var: str, vstats: VariableStats, grid: SpectrumGrid, levels: np.ndarray | None
) -> xr.DataArray | None:
    """Mean spectra of the forecast and of the truth at the same valid times: dims (forecast = [name, "truth"],
    prediction_timedelta, [level], wavenumber), wavenumber 0 (the mean) left out; None without spectra."""
    if vstats.spectra is None:
        return None
    sp = vstats.spectra
    with np.errstate(invalid="ignore", divide="ignore"):
        count = sp["count"][:, None, None]
        values = np.stack([sp["forecast"] / count, sp["truth"] / count])[..., 1:]
    k = np.arange(1, values.shape[-1] + 1)
    da = xr.DataArray(
        values,
        dims=["forecast", "prediction_timedelta", "level", "wavenumber"],
        coords={
            "forecast": [plan.name, "truth"],
            "prediction_timedelta": plan.leads,
            "level": levels if levels is not None else [0],
            "wavenumber": k,
            "wavelength_km": ("wavenumber", grid.wavelength_km[1:]),
        },
    )
    if levels is None:
        da = da.squeeze("level", drop=True)
    units = str(plan.forecast[var].attrs.get("units", ""))
    kind = "zonal, area-weighted over latitudes" if grid.kind == "zonal" else "radially binned 2-D"
    return da.assign_attrs(units=f"({units})^2" if units else "", spectrum=kind)
