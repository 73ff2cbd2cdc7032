"""Appending the times that follow a complete store's last one (writing only new chunks), or resuming an
interrupted append. The new blocks' sums are added to the kept ones; the climatology is redone only for the
days whose window holds a new day."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog import store as st
from data_catalog import store_protocol as sp
from data_catalog.climatology import climatology_days
from data_catalog.errors import InputDataError, WxemuError
from data_catalog.ingestion.blocks import BlockJob, plan_blocks, source_bounds, steps_per_block
from data_catalog.ingestion.checksums import SourceChecksums, describe_changes
from data_catalog.ingestion.config import IngestConfig, IngestResult, RunOptions, same_recipe
from data_catalog.ingestion.executor import run_blocks
from data_catalog.ingestion.finish import finish, kept_partial
from data_catalog.ingestion.hooks import IngestHooks
from data_catalog.ingestion.partials import (
    PartialCombiner,
    StatsPlan,
    bytes_per_step,
    climatology_in_memory,
    make_stats_plan,
    read_back,
    recorded_partials,
)
from data_catalog.ingestion.sources import first_step, open_sources, resolve_sources


def append(cfg: IngestConfig, run: RunOptions, hooks: IngestHooks, client: Any = None) -> IngestResult:
    """Extend a complete store with the times that follow its last one (or resume an interrupted append); the
    caller holds the writer lock."""
    if not sp.store_exists(cfg.out, storage_options=cfg.options):
        raise WxemuError(f"{cfg.out}: --append needs an existing store; run without --append to create it")
    checksums = SourceChecksums(  # hashed beside the writes
        cfg,
        resolve_sources(cfg),
        lambda: None,
        client,
        threads=run.threads,
        hash_file=hooks.hash_file,
        on_known=hooks.checksums_known,
    )
    try:
        return _append_to(cfg, run, hooks, client, checksums)
    except BaseException:
        checksums.stop()
        raise


def _append_to(
    cfg: IngestConfig, run: RunOptions, hooks: IngestHooks, client: Any, checksums: SourceChecksums
) -> IngestResult:
    attrs = sp.root_attrs(cfg.out, storage_options=cfg.options)
    resume_plan = sp.read_resume_plan(cfg.out, storage_options=cfg.options)
    new_recipe = cfg.recipe()
    resuming = not attrs.get(sp.COMPLETE_ATTR)
    if resuming:
        if resume_plan is None or resume_plan.get("mode") != "append":
            raise IncompleteAppend(cfg.out)
        current = checksums.matching(resume_plan.get("sources") or [])
        if resume_plan.get("sources") != current or not same_recipe(resume_plan.get("recipe") or {}, new_recipe):
            raise WxemuError(
                f"{cfg.out}: cannot resume the interrupted append: the inputs or the command differ "
                f"({describe_changes(resume_plan.get('sources') or [], current)}); re-run "
                f"{(resume_plan.get('recipe') or {}).get('command')!r}"
            )
    old_recipe = attrs.get("wxemu_recipe") or {}
    existing = st.open_store(cfg.out, storage_options=cfg.options, check_complete=False)
    opened = open_sources(cfg)
    new = opened.ds
    check_append_compatible(existing, new, cfg, old_recipe, resume_plan if resuming else None)
    if resuming:
        offset = int(resume_plan["time_offset"])
    else:
        offset = existing.sizes["time"]
    n_new = new.sizes["time"]
    per_block = steps_per_block(new, cfg.block_mb, cfg.chunk_time)
    blocks = plan_blocks(offset, offset + n_new, cfg.chunk_time, per_block, source_bounds(new, offset))
    old_sources = list(attrs.get("wxemu_sources") or [])
    # the stats period of the original recipe applies (default: every time, including the appended ones)
    base = {k: v for k, v in old_recipe.items() if k != "appended"}
    stats_cfg = dataclasses.replace(
        cfg,
        stats_start=base.get("stats_start"),
        stats_end=base.get("stats_end"),
        climatology_window=int(base.get("climatology_window", 61)),
        climatology_hour_step=int(base.get("climatology_hour_step", 1)),
    )
    times = np.concatenate([existing["time"].values[:offset], new["time"].values])
    names = st.time_variables(new)

    reads: list[tuple[int, int]] = []
    firsts: dict[int, dict[str, np.ndarray]] = {}

    def first(p0: int) -> dict[str, np.ndarray]:
        if p0 not in firsts:
            if p0 < offset:
                firsts[p0] = {
                    k: v[0] for k, v in st.read_steps(cfg.out, names, p0, p0 + 1, storage_options=cfg.options).items()
                }
                reads.append((p0, p0 + 1))
            else:
                firsts[p0] = first_step(new, names, p0 - offset)
        return firsts[p0]

    # before anything is written: the stats plan, and how the sums are redone when the period reaches the new times
    plan = make_stats_plan(stats_cfg, times, first, {v: new[v].dims for v in names}, cfg.out, clim_in_memory=False)
    kept = kept_partial(cfg, attrs, plan, times, offset, first(plan.p0), reads) if plan.p0 < offset < plan.p1 else None
    if plan.p1 > offset and kept is None:
        plan = dataclasses.replace(
            plan,
            clim_in_memory=climatology_in_memory(
                stats_cfg,
                times,
                bytes_per_step(new),
                cfg.out,
                clustered=run.clustered,
                available=hooks.available_memory(),
            ),
        )
    plan_record = {"mode": "append", "recipe": new_recipe, "blocks": blocks, "time_offset": offset}
    if not resuming:
        # incomplete; a reader is told to re-run this append to complete it
        sp.set_root_attrs(
            cfg.out, {sp.COMPLETE_ATTR: False, "wxemu_command": new_recipe["command"]}, storage_options=cfg.options
        )
        sp.write_resume_plan(cfg.out, {**plan_record, "sources": checksums.for_plan()}, storage_options=cfg.options)
        st.extend_time(cfg.out, new["time"].values, storage_options=cfg.options)
        sp.consolidate(cfg.out, storage_options=cfg.options)
    elif [tuple(r) for r in resume_plan.get("blocks", [])] != blocks:
        raise WxemuError(
            f"{cfg.out}: cannot resume the interrupted append: the planned blocks differ; re-run "
            f"{new_recipe['command']!r} with the block size of the interrupted one"
        )
    done = sp.blocks_done(cfg.out, storage_options=cfg.options)
    todo = [(i, a, b) for i, (a, b) in enumerate(blocks) if i not in done]
    combiner, clim_days = None, None
    if kept is not None:
        # the sums of the existing part of the period were kept by the ingest that wrote it: nothing of it is read
        # back, and the climatology is redone from the store for the days whose window holds a new day only
        combiner = PartialCombiner(plan, [plan.p0] + [a for a, _ in blocks])
        combiner.offer(plan.p0, kept)
        units_done = [(i, a, b) for i, (a, b) in enumerate(blocks) if i in done]
        recorded = recorded_partials(cfg, plan, units_done, times, names, reads)
        if recorded is None:
            read_back(cfg, combiner, [(a, b) for _, a, b in units_done], times, names, reads)
        for a, partial in recorded or ():
            combiner.offer(a, partial)
        clim_days = climatology_days_to_redo(stats_cfg, plan, times, offset)
    elif plan.p1 > offset:  # the period reaches into the new times: the existing part is read back once
        old_blocks = plan_blocks(plan.p0, offset, cfg.chunk_time, per_block) if plan.p0 < offset else []
        combiner = PartialCombiner(plan, [a for a, _ in old_blocks] + [a for a, _ in blocks])
        read_back(cfg, combiner, old_blocks + [r for i, r in enumerate(blocks) if i in done], times, names, reads)
    appended = list(old_recipe.get("appended", [])) + [new_recipe]
    after_each = checksums.block_hook(plan_record, hooks.after_block)
    stats_plan = combiner.plan if combiner is not None else None
    jobs = [BlockJob(i, a, b, offset, stats_plan) for i, a, b in todo]
    try:
        written = run_blocks(run, opened, jobs, after_each, combiner=combiner, client=client)
        sources = checksums.result()
    except WxemuError:
        # bad new data (or a source rewritten meanwhile): roll the store back to its old extent, complete again
        st.truncate_time(cfg.out, offset, storage_options=cfg.options)
        sp.set_root_attrs(cfg.out, {"wxemu_command": attrs.get("wxemu_command")}, storage_options=cfg.options)
        sp.mark_complete(cfg.out, storage_options=cfg.options)
        raise
    merged_sources = old_sources + [s for s in sources if s not in old_sources]
    # a period that ends before the new times (bounded --stats-end) keeps its statistics and climatology
    made = finish(
        stats_cfg,
        run,
        merged_sources,
        {**base, "appended": appended},
        combiner=combiner,
        times=times,
        client=client,
        clim_days=clim_days,
    )
    return IngestResult(
        cfg.out,
        offset + n_new,
        written,
        len(blocks) - len(todo),
        sources,
        status="appended (resumed)" if resuming else "appended",
        read_back=reads,
        climatology=made if combiner is not None else "kept",
        climatology_days=[int(d) for d in clim_days] if clim_days is not None else None,
    )


def climatology_days_to_redo(cfg: IngestConfig, plan: StatsPlan, times: np.ndarray, offset: int) -> np.ndarray | None:
    """Days of year whose climatology an append changes: those whose window holds a new time at the
    climatology's hours; None (redo every day) when the existing group has other hours or another window."""
    try:
        existing = st.open_climatology(cfg.out, storage_options=cfg.options, check_complete=False)
    except WxemuError:
        return None
    if (
        not np.array_equal(existing["hour"].values, plan.hours)
        or int(existing.attrs.get("window_days", -1)) != plan.window
    ):
        return None
    return climatology_days(times[max(plan.p0, offset) : plan.p1], plan.hour_step, plan.window)


class IncompleteAppend(WxemuError):
    """An --append into a store that an interrupted ingest (not an append) left incomplete."""

    def __init__(self, out: str) -> None:
        super().__init__(
            f"{out}: the store is incomplete (an interrupted ingest); complete it first by re-running "
            "the command that created it"
        )


def check_append_compatible(
    existing: xr.Dataset, new: xr.Dataset, cfg: IngestConfig, old_recipe: dict, plan: dict | None
) -> None:
    names = ", ".join(cfg.sources)
    if sorted(st.time_variables(existing)) != sorted(st.time_variables(new)):
        raise InputDataError(
            f"{names}: variables {sorted(st.time_variables(new))} differ from the store's "
            f"{sorted(st.time_variables(existing))} ({cfg.out}); select them with --variables"
        )
    for coord in ("latitude", "longitude", "level"):
        a, b = coord in existing.coords, coord in new.coords
        if a != b or (
            a
            and (existing[coord].size != new[coord].size or not np.allclose(existing[coord].values, new[coord].values))
        ):
            raise InputDataError(
                f"{names}: {coord} axis differs from the store's ({cfg.out}); the grid and levels "
                "of appended data must match (see --grid/--levels)"
            )
    if int(old_recipe.get("chunk_time", 1)) != cfg.chunk_time:
        raise InputDataError(
            f"{cfg.out}: was written with --chunk-time {old_recipe.get('chunk_time')}, not {cfg.chunk_time}"
        )
    t_old = existing["time"].values
    if plan is not None:  # resuming: the store already holds the extended time axis
        t_old = t_old[: int(plan["time_offset"])]
    t_new = new["time"].values
    step = np.diff(t_old).min() if t_old.size > 1 else (np.diff(t_new).min() if t_new.size > 1 else None)
    if t_new[0] <= t_old[-1]:
        raise InputDataError(
            f"{names}: times {pd.Timestamp(t_new[0])} .. {pd.Timestamp(t_new[-1])} overlap the store "
            f"{cfg.out} (which ends at {pd.Timestamp(t_old[-1])}); append only later times "
            "(use --start)"
        )
    if step is not None and t_new[0] - t_old[-1] != step:
        raise InputDataError(
            f"{names}: first new time {pd.Timestamp(t_new[0])} does not follow the store's last "
            f"{pd.Timestamp(t_old[-1])} by its step {pd.Timedelta(step)} (non-contiguous append)"
        )
    if t_new.size > 1 and step is not None and np.diff(t_new).min() != step:
        raise InputDataError(
            f"{names}: time step {pd.Timedelta(np.diff(t_new).min())} differs from the store's {pd.Timedelta(step)}"
        )
