"""Writing the climatology group: from the bins accumulated in memory while the blocks were written, or from
the data already in the store (``store_climatology``: tasks of contiguous days; the same numbers)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from data_catalog import store as st
from data_catalog import store_climatology as sc
from data_catalog.climatology import N_DAYS, climatology_days, climatology_template, day_runs
from data_catalog.ingestion.config import IngestConfig, RunOptions
from data_catalog.ingestion.executor import parallelism, run_tasks
from data_catalog.ingestion.partials import StatsPlan


def write_climatology(
    cfg: IngestConfig, run: RunOptions, ds: xr.Dataset, clim, *, days_per_block: int | None = None
) -> None:
    """Write the climatology group: only the days whose window holds data (the other chunks are never written
    and read as NaN), ``days_per_block`` days per write (default: about ``cfg.block_mb`` of float32). The blocks
    are computed in order here while earlier ones are written on ``run.threads`` threads (the writes release
    the GIL). ``clim``: (accumulator, {name: dims after time})."""
    acc, dims = clim
    create_climatology_group(cfg, ds, acc.hours, acc.window, dims)
    runs = day_runs(acc.days(), days_per_block or climatology_days_per_block(cfg, ds, len(acc.hours), dims))
    free: dict[tuple, list[np.ndarray]] = {}  # output buffers whose write has finished, by shape

    def alloc(shape: tuple[int, ...], dtype: str) -> np.ndarray:
        spare = free.get((shape, dtype))
        return spare.pop() if spare else np.empty(shape, dtype=dtype)

    blocks = {n: acc.blocks(n, runs, dtype="f4", alloc=alloc) for n in dims}
    threads = max(1, run.threads)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: list[tuple[Any, dict[str, np.ndarray]]] = []

        def retire() -> None:
            fut, arrays = pending.pop(0)
            fut.result()
            for a in arrays.values():
                free.setdefault((a.shape, a.dtype.str[1:]), []).append(a)

        for run in runs:
            arrays = {n: next(blocks[n]) for n in dims}
            pending.append(
                (
                    pool.submit(
                        st.write_steps,
                        cfg.out,
                        arrays,
                        int(run[0]) - 1,
                        storage_options=cfg.options,
                        group=st.CLIMATOLOGY_GROUP,
                    ),
                    arrays,
                )
            )
            while len(pending) > threads:  # bounded memory: at most a few blocks in flight
                retire()
        while pending:
            retire()


def climatology_days_per_block(cfg: IngestConfig, ds: xr.Dataset, n_hours: int, dims: dict) -> int:
    """Days of climatology per write: about ``cfg.block_mb`` of float32 over every variable."""
    day_bytes = 4 * n_hours * sum(int(np.prod([ds.sizes[d] for d in trailing])) for trailing in dims.values())
    return int(np.clip(cfg.block_mb * 1e6 // max(1, day_bytes), 1, 366))


def create_climatology_group(cfg: IngestConfig, ds: xr.Dataset, hours: np.ndarray, window: int, dims: dict) -> None:
    """(Re)create the climatology group, all NaN (metadata only: chunks of one day of year, every hour)."""
    template = climatology_template(ds, hours, window, dims, chunk_days=N_DAYS)
    st.write_group(
        cfg.out, st.CLIMATOLOGY_GROUP, template, storage_options=cfg.options, compute=False, chunks={"dayofyear": 1}
    )


def write_climatology_from_store(
    cfg: IngestConfig,
    run: RunOptions,
    ds: xr.Dataset,
    plan: StatsPlan,
    times: np.ndarray,
    client: Any = None,
    *,
    days: np.ndarray | None = None,
) -> None:
    """Write the climatology group from the data already in the store (``data_catalog.store_climatology``):
    tasks of contiguous days per variable, on ``client``'s workers or on ``run.threads`` threads. ``days``:
    only these days of year, into the existing group (an append's); default: the group is made anew."""
    names = st.time_variables(ds)
    dims = {n: ds[n].dims[1:] for n in names}
    if days is None:
        create_climatology_group(cfg, ds, plan.hours, plan.window, dims)
        days = climatology_days(times[plan.p0 : plan.p1], plan.hour_step, plan.window)
    runs = day_runs(days, climatology_days_per_block(cfg, ds, len(plan.hours), dims))
    tasks = sc.plan_tasks(
        cfg.out,
        cfg.options,
        names,
        times,
        plan.p0,
        plan.p1,
        plan.hours,
        plan.hour_step,
        plan.window,
        runs,
        parallelism(run, client),
        per_point=cfg.allow_nan,
    )
    run_tasks(
        run,
        client,
        [(i, sc.run_task, (t,)) for i, t in enumerate(tasks)],
        lambda key, days: None,
        "climatology",
        "tasks",
    )
