"""Scoring blocks of initial times as tasks on a dask.distributed cluster.

Each task opens the stores itself (from the paths in the :class:`~pipeline.verification.scoring.VariableJob`), reads
one block and returns its :class:`~pipeline.verification.scoring.BlockResult`; the client combines them with
:func:`~pipeline.verification.scoring.combine`, exactly as a single process does, so the per-init statistics (and the
scores) are the same numbers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pipeline.verification.inputs import open_climatology_for, open_dataset
from pipeline.verification.plan import BlockPlan
from pipeline.verification.scoring import (
    BlockResult,
    Sources,
    VariableJob,
    VariableStats,
    combine,
    compute_block,
    read_block,
)


@contextlib.contextmanager
def dask_client(*, workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` of the scheduler at ``scheduler`` (e.g. ``tcp://host:8786``, a Slurm cluster
    started with dask-jobqueue), else of a LocalCluster of ``workers`` single-threaded worker processes, closed on
    exit. (distributed is imported here only: a single-process run does not pay for it.)"""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(n_workers=int(workers or 1), threads_per_worker=1, processes=True, dashboard_address=None) as lc,
        Client(lc) as client,
    ):
        yield client


def open_sources(job: VariableJob) -> Sources:
    """Open the forecast, truth and climatology arrays of ``job`` (lazily, in the process that reads them)."""
    forecast = open_dataset(job.forecast_path, "forecast")
    truth = open_dataset(job.truth_path, "truth")
    clim = open_climatology_for(job.truth_path, job.climatology_path) if job.clim_keys is not None else None
    return Sources(forecast[job.var], truth[job.var], None if clim is None else clim[job.var], truth)


def score_block_task(job: VariableJob, t0: int, t1: int) -> BlockResult | None:
    """One task: read inits [t0, t1) and compute their statistics (None when no valid time has truth)."""
    data = read_block(open_sources(job), job, t0, t1)
    return None if data.forecast is None else compute_block(job, data, t0, t1)


def score_variable_distributed(client: Any, job: VariableJob, bplan: BlockPlan) -> VariableStats:
    """Score the blocks of ``bplan`` as tasks on ``client``'s cluster and combine them."""
    shared = client.scatter(job, broadcast=True)
    futures = [client.submit(score_block_task, shared, t0, t1, pure=False) for t0, t1 in bplan.blocks]
    results = [r for r in client.gather(futures) if r is not None]
    return combine(job, results)
