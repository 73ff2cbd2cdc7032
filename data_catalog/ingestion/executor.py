"""Running the ingest's tasks: on a thread pool in this process or on a dask.distributed cluster, with progress
displays and phase timings."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from data_catalog.catalog import is_catalog_name
from data_catalog.ingestion.blocks import (
    BlockJob,
    OpenedSourcesCache,
    narrow_to_block,
    write_block,
    write_block_on_worker,
)
from data_catalog.ingestion.checksums import HashProgress, SourceChecksums
from data_catalog.ingestion.config import IngestConfig, RunOptions
from data_catalog.ingestion.partials import BlockPartial, PartialCombiner
from data_catalog.ingestion.sources import OpenedSources


def progress_display(enabled: bool, total: int, description: str, unit: str = "blocks"):
    """A rich progress display on stderr (disabled: shows nothing) and its task."""
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
    task = progress.add_task(description, total=total)
    return progress, task


@contextlib.contextmanager
def dask_client(run: RunOptions) -> Iterator[Any]:
    """A dask.distributed Client for ``--scheduler``/``--workers`` (a LocalCluster of single-threaded worker
    processes), None for the default thread pool; closed (and the local cluster stopped) on exit."""
    if not run.clustered:
        yield None
        return
    import dask
    from dask.distributed import Client, LocalCluster

    cluster = None
    if run.scheduler:
        client = Client(run.scheduler)
    else:
        # dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers: every block- or field-sized buffer is
        # then handed back to the OS when freed and faulted in again when the next is made, which measured 1.8x
        # slower per climatology task here; the ingest's buffers are short-lived, so glibc's default is kept
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=run.workers, threads_per_worker=1, processes=run.cluster_processes, dashboard_address=None
            )
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def parallelism(run: RunOptions, client: Any) -> int:
    """How many tasks run at once: the cluster's threads, else ``run.threads``."""
    return max(1, sum(client.nthreads().values())) if client is not None else max(1, run.threads)


def run_tasks(
    run: RunOptions,
    client: Any,
    calls: Sequence[tuple[Any, Callable, tuple]],
    on_result: Callable[[Any, Any], None],
    description: str,
    unit: str,
) -> int:
    """Run ``calls`` [(key, fn, args)] on the cluster (``client``) or on ``run.threads`` threads, at most two per
    thread queued at once; ``on_result(key, result)`` in this process as each finishes. Returns how many ran.
    The first failure cancels the rest and is raised."""
    if not calls:
        return 0
    progress, task = progress_display(run.progress, len(calls), description, unit)
    done = 0
    with progress:
        if client is not None:
            from dask.distributed import as_completed

            futures = {client.submit(fn, *args, pure=False): key for key, fn, args in calls}
            try:
                for fut in as_completed(futures):
                    on_result(futures[fut], fut.result())
                    done += 1
                    progress.advance(task)
            except BaseException:
                client.cancel(list(futures))
                raise
            return done
        threads = max(1, run.threads)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            pending: set = set()
            keys: dict[Any, Any] = {}
            queue = list(calls)
            try:
                while queue or pending:
                    while queue and len(pending) < 2 * threads:
                        key, fn, args = queue.pop(0)
                        fut = pool.submit(fn, *args)
                        keys[fut] = key
                        pending.add(fut)
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        on_result(keys.pop(fut), fut.result())
                        done += 1
                        progress.advance(task)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    return done


def run_blocks(
    run: RunOptions,
    opened: OpenedSources,
    jobs: list[BlockJob],
    after_block: Callable[[int], None] | None,
    combiner: PartialCombiner | None = None,
    client: Any = None,
) -> int:
    """Write the blocks ``jobs``; return how many were written. ``after_block(n_done)`` is called after each (in
    this process). Each block's partial sums (computed by the writer from the block it holds) go to
    ``combiner``, keyed by the block's start. On a cluster each task names only its block's files."""
    done = 0

    def on_result(a: int, result: tuple[int, BlockPartial | None]) -> None:
        nonlocal done
        if combiner is not None:
            combiner.offer(a, result[1])
        done += 1
        if after_block:
            after_block(done)

    if client is None:
        calls = [(job.start, write_block, (job, opened)) for job in jobs]
        return run_tasks(run, client, calls, on_result, "write", "blocks")
    cache = client.scatter(OpenedSourcesCache(), broadcast=True, hash=False)
    try:
        calls = []
        for job in jobs:
            sources_json, first_time = narrow_to_block(opened, job.start, job.stop, job.offset)
            job = dataclasses.replace(job, sources_json=sources_json, first_time=first_time)
            calls.append((job.start, write_block_on_worker, (job, cache)))
        return run_tasks(run, client, calls, on_result, "write", "blocks")
    finally:
        client.cancel([cache])


@contextlib.contextmanager
def source_progress(
    cfg: IngestConfig, run: RunOptions, n_files: int, hashed: HashProgress
) -> Iterator[Callable[[str], None]]:
    """Progress of the two steps that begin before anything is written, which take minutes for a large archive:
    the checksums (``hashed``, called by the hashing threads per file) and opening + validating the sources
    (yields the callback :func:`~data_catalog.ingestion.sources.open_sources` calls after each source)."""
    progress, task = progress_display(run.progress, n_files, "checksums", "files")
    opened = progress.add_task(
        "open + validate", total=None if any(is_catalog_name(s) for s in cfg.sources) else n_files
    )
    with progress, hashed.attached(progress, task):
        yield lambda name: progress.advance(opened)


def await_checksums(run: RunOptions, checksums: SourceChecksums, hashed: HashProgress) -> list[dict[str, Any]]:
    """The sources' fingerprints, showing the progress of the hashing that went on after the opening's display
    closed (and may outlast the writes)."""
    if checksums.done() and hashed.shown == len(checksums.paths):
        return checksums.result()
    progress, task = progress_display(run.progress, len(checksums.paths), "checksums", "files")
    with progress, hashed.attached(progress, task):
        return checksums.result()


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Add the seconds the ``with`` block takes to ``timings[name]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0
