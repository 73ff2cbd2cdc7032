"""Creating a store, or resuming the interrupted ingest that was creating it."""

from __future__ import annotations

import dataclasses
from typing import Any

from data_catalog import store as st
from data_catalog import store_protocol as sp
from data_catalog.errors import WxemuError
from data_catalog.ingestion.blocks import BlockJob, plan_blocks, source_bounds, steps_per_block
from data_catalog.ingestion.checksums import HashProgress, SourceChecksums, describe_changes
from data_catalog.ingestion.config import IngestConfig, IngestResult, RunOptions, same_recipe
from data_catalog.ingestion.executor import await_checksums, run_blocks, source_progress, timed
from data_catalog.ingestion.finish import finish
from data_catalog.ingestion.hooks import IngestHooks
from data_catalog.ingestion.partials import (
    PartialCombiner,
    bytes_per_step,
    climatology_in_memory,
    make_stats_plan,
    read_back,
    recorded_partials,
)
from data_catalog.ingestion.sources import first_step, open_sources, resolve_sources


def check_resumable(cfg: IngestConfig, checksums: SourceChecksums, recipe: dict[str, Any]) -> IngestResult | None:
    """For an existing store (no --overwrite): an "already complete" result when it holds exactly this ingest,
    None when it is an interrupted run of the same command on the same inputs (resume); else a WxemuError."""
    attrs = sp.root_attrs(cfg.out, storage_options=cfg.options)
    plan = sp.read_resume_plan(cfg.out, storage_options=cfg.options)
    if attrs.get(sp.COMPLETE_ATTR):
        sources = checksums.result()
        if same_recipe(attrs.get("wxemu_recipe") or {}, recipe) and attrs.get("wxemu_sources") == sources:
            n = int(st.open_store(cfg.out, storage_options=cfg.options).sizes["time"])
            return IngestResult(cfg.out, n, 0, 0, sources, status="already complete", climatology="kept")
        raise WxemuError(
            f"{cfg.out}: a complete store exists (made by {sp.written_by(attrs)!r}); use --overwrite "
            "to replace it or --append to add later times"
        )
    if plan is not None and plan.get("mode") == "append":
        raise WxemuError(
            f"{cfg.out}: an --append into this store was interrupted; complete it by "
            f"re-running {(plan.get('recipe') or {}).get('command')!r}"
        )
    if plan is None or plan.get("mode") != "create":
        raise WxemuError(
            f"{cfg.out}: an incomplete store without an ingest plan (not resumable); use --overwrite to replace it"
        )
    current = checksums.matching(plan.get("sources") or [])
    if plan.get("sources") != current:
        raise WxemuError(
            f"{cfg.out}: cannot resume: the inputs changed since the interrupted ingest "
            f"({describe_changes(plan.get('sources') or [], current)}); use --overwrite to start again"
        )
    if not same_recipe(plan.get("recipe") or {}, recipe):
        raise WxemuError(
            f"{cfg.out}: cannot resume: this command differs from the interrupted one "
            f"({(plan.get('recipe') or {}).get('command')!r}); re-run that, or use --overwrite"
        )
    return None


def create(cfg: IngestConfig, run: RunOptions, hooks: IngestHooks, client: Any) -> IngestResult:
    """A new store, or the resumption of an interrupted ingest into one (the caller holds the writer lock)."""
    timings: dict[str, float] = {}
    exists = sp.store_exists(cfg.out, storage_options=cfg.options)
    paths = resolve_sources(cfg)
    hashed = HashProgress()
    # the checksums (sha256 releases the GIL) are computed while the sources are opened and validated, and on
    # while the blocks are written (SourceChecksums)
    checksums = SourceChecksums(
        cfg, paths, hashed, client, threads=run.threads, hash_file=hooks.hash_file, on_known=hooks.checksums_known
    )
    try:
        with source_progress(cfg, run, len(paths), hashed) as on_open:
            recipe = cfg.recipe()
            resuming = False
            if exists and not cfg.overwrite:
                complete = check_resumable(cfg, checksums, recipe)
                if complete is not None:
                    return complete
                resuming = True
            with timed(timings, "open"):
                opened = open_sources(cfg, on_open)  # validates all sources' metadata: nothing written before this
    except BaseException:
        checksums.stop()  # a bad source fails at once, the hashing of the rest stopped
        raise
    created = False
    try:
        ds = opened.ds
        n = ds.sizes["time"]
        blocks = plan_blocks(
            0, n, cfg.chunk_time, steps_per_block(ds, cfg.block_mb, cfg.chunk_time), source_bounds(ds, 0)
        )
        names = st.time_variables(ds)
        times = ds["time"].values
        source = ", ".join(cfg.sources)
        # before anything is written: an empty stats period writes nothing
        with timed(timings, "create"):
            in_memory = climatology_in_memory(
                cfg,
                times,
                bytes_per_step(ds),
                source,
                clustered=run.clustered,
                available=hooks.available_memory(),
            )
            stats_plan = make_stats_plan(
                cfg,
                times,
                lambda p0: first_step(ds, names, p0),
                {v: ds[v].dims for v in names},
                source,
                clim_in_memory=in_memory,
            )
            if not resuming:
                if exists:
                    st.remove_store(cfg.out, storage_options=cfg.options)
                st.create_store(
                    cfg.out,
                    ds,
                    attrs={
                        "wxemu_recipe": recipe,
                        **sp.provenance(command=recipe["command"]),
                        **{k: ds.attrs[k] for k in ("regridding",) if k in ds.attrs},  # metoffice: provenance
                    },
                    chunk_time=cfg.chunk_time,
                    storage_options=cfg.options,
                )
                created = True
                sp.write_resume_plan(
                    cfg.out,
                    {"mode": "create", "sources": checksums.for_plan(), "recipe": recipe, "blocks": blocks},
                    storage_options=cfg.options,
                )
            else:
                plan = sp.read_resume_plan(cfg.out, storage_options=cfg.options) or {}
                if [tuple(r) for r in plan.get("blocks", [])] != blocks:
                    raise WxemuError(
                        f"{cfg.out}: cannot resume: the planned blocks differ (re-run the interrupted command "
                        f"{(plan.get('recipe') or {}).get('command')!r}); or use --overwrite"
                    )
        done = sp.blocks_done(cfg.out, storage_options=cfg.options)
        todo = [BlockJob(i, a, b, 0, stats_plan) for i, (a, b) in enumerate(blocks) if i not in done]
        units_done = [(i, a, b) for i, (a, b) in enumerate(blocks) if i in done]
        reads: list[tuple[int, int]] = []
        recorded = recorded_partials(cfg, stats_plan, units_done, times, names, reads) if done else None
        if recorded is not None:  # resumed: the done blocks' kept sums; the climatology from the store
            stats_plan = dataclasses.replace(stats_plan, clim_in_memory=False)
            todo = [dataclasses.replace(job, stats_plan=stats_plan) for job in todo]
        combiner = PartialCombiner(stats_plan, [a for a, _ in blocks])
        for a, partial in recorded or ():
            combiner.offer(a, partial)
        if done and recorded is None:  # resumed from markers without sums: those blocks are read back
            with timed(timings, "read back"):
                read_back(cfg, combiner, [(a, b) for _, a, b in units_done], times, names, reads)
        after_each = checksums.block_hook({"mode": "create", "recipe": recipe, "blocks": blocks}, hooks.after_block)
        with timed(timings, "write"):
            written = run_blocks(run, opened, todo, after_each, combiner=combiner, client=client)
        with timed(timings, "checksums wait"):  # only what the hashing outlasted the writes by
            sources = await_checksums(run, checksums, hashed)
        timings["fingerprint"] = checksums.seconds  # beside the opening and the writes
        made = finish(cfg, run, sources, timings=timings, combiner=combiner, times=times, client=client)
    except BaseException as exc:
        checksums.stop()
        if created and isinstance(exc, WxemuError):  # bad data found while writing a store this run created:
            st.remove_store(cfg.out, storage_options=cfg.options)  # leave nothing behind
        raise
    return IngestResult(
        cfg.out,
        n,
        written,
        len(blocks) - len(todo),
        sources,
        status="resumed" if resuming else "written",
        timings=timings,
        read_back=reads,
        climatology=made,
    )
