"""Validating a forecast against the truth before any work, and cutting its initial times into blocks.

:func:`plan_forecast` checks variables, units, levels, leads, grids and valid-time overlap and returns a
:class:`ForecastPlan` (or raises :class:`~pipeline.verification.config.VerifyError` naming the files);
:func:`plan_blocks` sizes blocks of initial times to a memory budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from pipeline import metrics as M
from pipeline.verification.config import VerifyError
from pipeline.verification.inputs import check_regrid, forecast_name, same_grid

FORECAST_DIMS = ("time", "prediction_timedelta")


@dataclasses.dataclass
class ForecastPlan:
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
) -> ForecastPlan:
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
    needs_clim = [m.name for m in metrics if any(s in M.ANOMALY_STATISTICS for s in m.statistics)]
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
        if climatology is not None and needs_clim and v not in climatology:
            raise VerifyError(
                f"{', '.join(needs_clim)} needs a climatology of {v!r}, but the climatology of {truth_path} lacks it"
            )
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
    regrid = None if same_grid(forecast, truth) else check_regrid(forecast, truth, path, truth_path)
    return ForecastPlan(forecast_name(forecast, path), path, forecast, chosen, lead_vals, inits, idx, regrid, ensemble)


@dataclasses.dataclass(frozen=True)
class BlockPlan:
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
    *,
    allow_prefetch: bool = True,
) -> BlockPlan:
    """Cut the initial times into blocks whose resident data fit ``budget`` bytes.

    A block of inits holds its forecast (``init_bytes`` per init), the distinct truth rows of its valid times and
    the distinct climatology fields of those (``row_bytes`` each); ``temp_bytes`` is the scoring temporaries
    (one init and lead). The next block is prefetched (read while this one is scored) only when two one-init
    blocks fit (and ``allow_prefetch``); then each block gets half the budget. A single init always forms a
    block, even over budget.
    """
    n_init = truth_index.shape[0]

    def cost_of(t0: int, t1: int) -> float:
        idx = truth_index[t0:t1]
        rows = np.unique(idx[idx >= 0])
        n_clim = 0 if clim_keys is None else np.unique(clim_keys[rows]).size
        return (t1 - t0) * init_bytes + (rows.size + n_clim) * row_bytes

    first = max((cost_of(t, t + 1) for t in range(min(n_init, 4))), default=0.0)
    prefetch = allow_prefetch and 2 * first + temp_bytes <= budget and n_init > 1
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
    return BlockPlan(blocks, prefetch, peak * (2 if prefetch else 1) + temp_bytes)
