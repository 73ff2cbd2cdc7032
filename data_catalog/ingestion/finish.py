"""Finishing a write: statistics and climatology from the combined sums, the period's moment sums kept for later
appends (:data:`KEPT_SUMS_ATTR`), provenance, and the completeness marker."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from data_catalog import store as st
from data_catalog import store_protocol as sp
from data_catalog.climatology import ClimatologyAccumulator
from data_catalog.errors import WxemuError
from data_catalog.ingestion.climatology_write import write_climatology, write_climatology_from_store
from data_catalog.ingestion.config import IngestConfig, RunOptions
from data_catalog.ingestion.executor import timed
from data_catalog.ingestion.partials import BlockPartial, PartialCombiner, StatsPlan
from data_catalog.stats import MomentSums, stats_dataset, stats_from_sums

KEPT_SUMS_ATTR = "wxemu_stats_sums"


def kept_sums_attr(plan: StatsPlan, sums: dict[str, Any], times: np.ndarray) -> dict[str, Any]:
    """The stats period's combined moment sums and conditioning shifts as JSON (float64 round-trips exactly)."""
    return {
        "start": iso(times[plan.p0]),
        "end": iso(times[plan.p1 - 1]),
        "variables": {n: {"shift": np.asarray(plan.shifts[n]).tolist(), **m.to_json()} for n, m in sums.items()},
    }


def iso(t: np.datetime64) -> str:
    """ISO text of a time."""
    return pd.Timestamp(t).isoformat()


def kept_partial(
    cfg: IngestConfig,
    attrs: dict[str, Any],
    plan: StatsPlan,
    times: np.ndarray,
    offset: int,
    first: dict[str, np.ndarray],
    reads: list[tuple[int, int]],
) -> BlockPartial | None:
    """The existing part [p0, offset) of the stats period as one block partial, from the sums the last ingest or
    append kept (:data:`KEPT_SUMS_ATTR`), the part's ``first`` step ({variable: values without time}) and its
    last step (read); None when the sums are missing (a store written before they were kept) or describe another
    period or conditioning."""
    kept = attrs.get(KEPT_SUMS_ATTR) or {}
    if kept.get("start") != iso(times[plan.p0]) or kept.get("end") != iso(times[offset - 1]):
        return None
    sums = {}
    for n in first:
        v = (kept.get("variables") or {}).get(n)
        if v is None or not np.array_equal(np.asarray(v["shift"], dtype="f8"), np.asarray(plan.shifts[n])):
            return None
        sums[n] = MomentSums.from_json(v)
    last = st.read_steps(cfg.out, list(first), offset - 1, offset, storage_options=cfg.options)
    reads.append((offset - 1, offset))
    return BlockPartial(
        plan.p0,
        offset,
        sums,
        ClimatologyAccumulator(plan.hours, plan.window),
        {n: v[None] for n, v in first.items()},
        last,
        np.datetime64(times[plan.p0], "ns"),
        np.datetime64(times[offset - 1], "ns"),
    )


def finish(
    cfg: IngestConfig,
    run: RunOptions,
    sources: list[dict[str, Any]],
    recipe: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    *,
    combiner: PartialCombiner | None = None,
    times: np.ndarray | None = None,
    client: Any = None,
    clim_days: np.ndarray | None = None,
) -> str:
    """Statistics and climatology from the partial sums gathered while writing (``combiner``; None: leave the
    stats and climatology groups as they are; a plan without in-memory bins: the climatology is made from the
    store, on ``client`` or the thread pool: every day, or only ``clim_days`` into the existing group), the
    period's moment sums (kept for later appends), provenance, complete. Returns how the climatology was made
    ("bins", "store" or "kept")."""
    timings = timings if timings is not None else {}
    if combiner is not None:
        if not combiner.complete:
            raise WxemuError(f"{cfg.out}: internal error: partial statistics missing for some blocks")
        plan = combiner.plan
        lazy = st.open_store(cfg.out, storage_options=cfg.options, check_complete=False)
        names = st.time_variables(lazy)
        with timed(timings, "stats"):
            values = {n: stats_from_sums(combiner.sums[n], plan.shifts[n]) for n in names}
            st.write_group(cfg.out, st.STATS_GROUP, stats_dataset(lazy, values), storage_options=cfg.options)
        with timed(timings, "climatology"):
            dims = {n: lazy[n].dims[1:] for n in names}
            made = "bins" if plan.clim_in_memory else "store"
            if plan.clim_in_memory:
                write_climatology(cfg, run, lazy, (combiner.clim, dims))
            else:
                write_climatology_from_store(cfg, run, lazy, plan, times, client, days=clim_days)
        stats_period = [iso(times[plan.p0]), iso(times[plan.p1 - 1])]
        kept = kept_sums_attr(plan, combiner.sums, times)
    else:
        made = "kept"
        old = st.root_attrs(cfg.out, storage_options=cfg.options)
        stats_period, kept = old.get("wxemu_stats_period"), old.get(KEPT_SUMS_ATTR)
    recipe = recipe if recipe is not None else cfg.recipe()
    attrs = {
        KEPT_SUMS_ATTR: kept,
        **sp.provenance(command=recipe["command"], sources=sources),
        "wxemu_recipe": recipe,
        "wxemu_stats_period": stats_period,
    }
    with timed(timings, "complete"):
        sp.set_root_attrs(cfg.out, attrs, storage_options=cfg.options)
        sp.mark_complete(cfg.out, storage_options=cfg.options)
    return made
