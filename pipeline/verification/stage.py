"""``verify(config)``: validate every input, score each forecast variable block by block, write the scores."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog.regions import parse_regions, region_weights
from pipeline import metrics as M
from pipeline.verification.config import VerifyConfig, VerifyError, VerifyResult, parse_leads
from pipeline.verification.distributed import dask_client, score_variable_distributed
from pipeline.verification.inputs import open_climatology_for, open_dataset
from pipeline.verification.plan import BlockPlan, ForecastPlan, plan_blocks, plan_forecast
from pipeline.verification.reader import F32, climatology_keys
from pipeline.verification.scoring import (
    BAD_FORECAST,
    BAD_TRUTH,
    MISSING,
    NO_TRUTH,
    Sources,
    SpectrumGrid,
    VariableJob,
    VariableStats,
    score_variable,
    spectrum_grid,
    variable_scores,
    variable_spectra,
)
from pipeline.verification.store import output_lock, provenance, write_scores
from pipeline.verification.wb2 import export_wb2
from pipeline.weights import latitude_weights


def _release_large_blocks_to_os() -> None:
    """Ask glibc to serve allocations >= 1 MiB with mmap, so the freed blocks go back to the OS at once.

    Without it the default dynamic threshold keeps freed 1-30 MiB blocks in the heap and the RSS of a long
    verification creeps up (docs/benchmarks.md). No-op off glibc.
    """
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def choose_metrics(config: VerifyConfig, any_ensemble: bool, have_clim: bool) -> tuple[list[M.Metric], list[str]]:
    """The metrics to compute and notes on what the default set left out (and why)."""
    if config.metrics is not None:
        metrics = M.get_metrics(config.metrics)
        missing = [m.name for m in metrics if M.needs_climatology(m)]
        if missing and not have_clim:
            raise VerifyError(
                f"metric(s) {', '.join(missing)} need a climatology: the truth {config.truth} has no group "
                f"'climatology'; pass --climatology STORE (VerifyConfig.climatology), or leave them out of --metrics"
            )
        return metrics, []
    names = list(M.ENSEMBLE_DEFAULT if any_ensemble else M.DETERMINISTIC_DEFAULT)
    metrics = M.get_metrics(names)
    if have_clim:
        return metrics, []
    left = [m.name for m in metrics if M.needs_climatology(m)]
    notes = [
        f"left out {', '.join(left)}: no climatology (the truth {config.truth} has no group 'climatology'; "
        f"pass --climatology STORE to score it)"
    ]
    return [m for m in metrics if not M.needs_climatology(m)], notes


def _lead(value: np.timedelta64) -> str:
    return f"+{pd.Timedelta(value) / pd.Timedelta(hours=1):g} h"


def check_finite(plan: ForecastPlan, name: str, var: str, vstats: VariableStats) -> None:
    """Raise :class:`VerifyError` when scores of ``var`` would be non-finite: NaN/Inf in the forecast or the
    truth at a scored (init, lead), or a lead whose forecast is NaN at every initial time."""
    status = vstats.status
    for code, what in (
        (BAD_FORECAST, "the forecast holds NaN/Inf"),
        (BAD_TRUTH, "the truth or climatology holds NaN/Inf"),
    ):
        bad = status == code
        if bad.any():
            j = int(np.nonzero(bad.any(axis=0))[0][0])
            i = int(np.nonzero(bad[:, j])[0][0])
            raise VerifyError(
                f"forecast {name} ({plan.path}): variable {var!r} would get NaN/Inf scores from lead "
                f"{_lead(plan.leads[j])} on (first at initial time {pd.Timestamp(plan.inits[i])}, "
                f"{int(bad.sum())} of {int((status != NO_TRUTH).sum())} scored (init, lead) pairs): {what} there; "
                f"pass --allow-nan (VerifyConfig.allow_nan) to write such scores anyway"
            )
    with_truth = (status != NO_TRUTH).any(axis=0)
    empty = with_truth & ((status == MISSING) | (status == NO_TRUTH)).all(axis=0)
    if empty.any():
        j = int(np.nonzero(empty)[0][0])
        n = int((status[:, j] == MISSING).sum())
        raise VerifyError(
            f"forecast {name} ({plan.path}): variable {var!r} is NaN everywhere at lead "
            f"{_lead(plan.leads[j])} for all {n} initial times with truth ({int(empty.sum())} of "
            f"{len(plan.leads)} leads are): nothing to score (a model with NaN weights?); pass --allow-nan "
            f"(VerifyConfig.allow_nan) to write NaN scores anyway"
        )


def _unique_names(plans: Sequence[ForecastPlan]) -> list[str]:
    names = [p.name for p in plans]
    if len(set(names)) != len(names):
        names = [f"{p.name}:{Path(p.path).name}" if names.count(p.name) > 1 else p.name for p in plans]
    return names


@dataclasses.dataclass(frozen=True)
class _Context:
    """What every forecast of a run is scored against."""

    config: VerifyConfig
    truth: xr.Dataset
    climatology: xr.Dataset | None
    regions: list
    weights: np.ndarray  # (npoints, n_regions) float32
    grid: SpectrumGrid | None


def _variable_job(ctx: _Context, plan: ForecastPlan, var: str, stat_names: tuple[str, ...]) -> VariableJob:
    fda = plan.forecast[var]
    levels = fda["level"].values if "level" in fda.dims else None
    clim_keys = None
    if any(s in M.ANOMALY_STATISTICS for s in stat_names):
        used = np.unique(plan.truth_index[plan.truth_index >= 0])
        clim_keys = np.full(ctx.truth.sizes["time"], -1)
        clim_keys[used] = climatology_keys(ctx.climatology[var], ctx.truth["time"].values[used])
    return VariableJob(
        plan.path, ctx.config.truth, ctx.config.climatology, var, plan.leads, plan.truth_index,
        plan.regrid is not None, levels, fda.sizes.get("number", 1), plan.ensemble, stat_names, ctx.weights,
        clim_keys, ctx.grid,
    )  # fmt: skip


def _block_plan(ctx: _Context, job: VariableJob, prefetch: bool) -> BlockPlan:
    row_bytes = job.n_levels * ctx.weights.shape[0] * F32
    # per (init, lead): err + one statistic field + 2 anomalies; ensembles: mean, members - truth, sorted
    temp_bytes = row_bytes * (4 + (2 * job.n_members + 1 if job.ensemble else 0))
    init_bytes = len(job.leads) * job.n_members * row_bytes
    budget = ctx.config.block_mb * 2**20
    return plan_blocks(
        job.truth_index, job.clim_keys, init_bytes, row_bytes, temp_bytes, budget, allow_prefetch=prefetch
    )


def _score_forecast(
    ctx: _Context, plan: ForecastPlan, metrics: list[M.Metric], name: str, client: Any, progress: bool
) -> tuple[xr.Dataset, xr.Dataset, dict[str, xr.DataArray], dict[tuple[str, str], list[tuple[int, int]]]]:
    """Scores and per-init scores of one forecast (dim ``forecast`` = [name]), its spectra per variable and the
    blocks read, in this process (``client`` None) or as tasks on a dask cluster."""
    stat_names = tuple(M.required_statistics(metrics))
    sc_vars, pi_vars, spectra, blocks = {}, {}, {}, {}
    for var in plan.variables:
        job = _variable_job(ctx, plan, var, stat_names)
        bplan = _block_plan(ctx, job, prefetch=client is None)
        blocks[(name, var)] = list(bplan.blocks)
        if client is None:
            cda = ctx.climatology[var] if job.clim_keys is not None else None
            sources = Sources(plan.forecast[var], ctx.truth[var], cda, ctx.truth)
            vstats = score_variable(sources, job, bplan, progress=progress, label=plan.name)
        else:
            vstats = score_variable_distributed(client, job, bplan)
        if not ctx.config.allow_nan:
            check_finite(plan, name, var, vstats)
        sc_vars[var], pi_vars[var] = variable_scores(plan, var, vstats, metrics, ctx.regions, job.levels)
        if ctx.grid is not None:
            sp = variable_spectra(plan, var, vstats, ctx.grid, job.levels)
            spectra[var] = sp.assign_coords(forecast=[name, "truth"])
    counts = xr.DataArray(
        (plan.truth_index >= 0).sum(axis=0), dims="prediction_timedelta", coords={"prediction_timedelta": plan.leads}
    )
    scores = xr.Dataset(sc_vars).assign_coords(n_init=counts).expand_dims(forecast=[name])
    return scores, xr.Dataset(pi_vars).expand_dims(forecast=[name]), spectra, blocks


def verify(
    config: VerifyConfig, *, progress: bool = False, workers: int | None = None, scheduler: str | None = None
) -> VerifyResult:
    """Score ``config.forecasts`` against ``config.truth``; write the scores to ``config.out`` when set.

    Everything is validated before any scoring (a bad input raises a :class:`~data_catalog.errors.WxemuError`
    naming the file); the output is written to a temporary sibling path and renamed into place, so an error
    leaves no partial store. ``workers``/``scheduler``: score blocks of initial times as tasks on a
    dask.distributed LocalCluster of that many processes / the scheduler at that address (same numbers).
    """
    _release_large_blocks_to_os()
    truth = open_dataset(config.truth, "truth")
    regions = parse_regions(config.regions)
    leads = parse_leads(config.leads)
    if config.out and Path(config.out).exists() and not config.overwrite:
        raise VerifyError(f"output {config.out} exists; pass --overwrite to replace it")
    forecasts = [(p, open_dataset(p, "forecast")) for p in config.forecasts]
    any_ens = any("number" in ds.dims for _, ds in forecasts)
    climatology = open_climatology_for(config.truth, config.climatology)
    metrics, notes = choose_metrics(config, any_ens, climatology is not None)
    tlat, tlon = truth["latitude"].values, truth["longitude"].values
    weights = region_weights(regions, tlat, tlon, latitude_weights(tlat), grid_name=f"the truth {config.truth}")
    weights = weights.reshape(len(regions), -1).T.astype(np.float32).copy()
    grid = spectrum_grid(tlat, tlon) if config.spectra else None
    plans, per_plan_metrics = [], []
    for path, ds in forecasts:
        ms = metrics if config.metrics is not None else [m for m in metrics if not m.ensemble or "number" in ds.dims]
        per_plan_metrics.append(ms)
        plans.append(
            plan_forecast(
                path, ds, truth, config.truth, variables=config.variables, metrics=ms, leads=leads,
                climatology=climatology,
            )
        )  # fmt: skip
    names = _unique_names(plans)
    if config.reference is not None and config.reference not in names:
        raise VerifyError(f"--reference {config.reference!r} is not one of the forecasts {names}")
    ctx = _Context(config, truth, climatology, regions, weights, grid)
    all_scores, all_per_init, all_spectra, blocks = [], [], {}, {}
    with contextlib.ExitStack() as stack:
        stack.enter_context(output_lock(config.out))  # the writer lock: held until the output is written
        client = (
            stack.enter_context(dask_client(workers=workers, scheduler=scheduler)) if workers or scheduler else None
        )
        for plan, ms, name in zip(plans, per_plan_metrics, names):
            sc, pi, spectra, plan_blocks_ = _score_forecast(ctx, plan, ms, name, client, progress)
            all_scores.append(sc)
            all_per_init.append(pi)
            blocks.update(plan_blocks_)
            for var, sp in spectra.items():
                all_spectra.setdefault(var, []).append(sp)
        scores = xr.concat(all_scores, dim="forecast", join="outer", coords="different", compat="equals")
        per_init = xr.concat(all_per_init, dim="forecast", join="outer")
        per_init = per_init.transpose("metric", "forecast", "region", "time", ...)
        scores = scores.transpose("metric", "forecast", "region", "prediction_timedelta", ...)
        scores.attrs = provenance(config, plans, names, regions, metrics, climatology is not None, notes)
        per_init.attrs = {
            "description": "per-initial-time scores: the quantity each metric averages over initial "
            "times (MSE for rmse, ensemble variance for spread, ...)"
        }
        spectra = _spectra_dataset(all_spectra)
        if config.out and config.out_format == "wb2":
            export_wb2(scores, config.out, overwrite=config.overwrite)
        elif config.out:
            write_scores(scores, per_init, config.out, spectra=spectra, overwrite=config.overwrite)
    return VerifyResult(config.out, scores, per_init, spectra, blocks, tuple(notes))


def _spectra_dataset(per_var: dict[str, list[xr.DataArray]]) -> xr.Dataset:
    """One variable per forecast variable, dims (forecast, prediction_timedelta, [level], wavenumber): each
    forecast's spectra, then ``truth`` (at the valid times of the first forecast that has the variable)."""
    out = {}
    for var, parts in per_var.items():
        fcs = [p.isel(forecast=[0]) for p in parts] + [parts[0].isel(forecast=[1])]
        out[var] = xr.concat(fcs, dim="forecast", join="outer").assign_attrs(parts[0].attrs)
    return xr.Dataset(out).assign_attrs(
        description="mean power spectral density over initial times (wavenumber 0 left out); forecast 'truth' is "
        "the truth at the same valid times"
    )
