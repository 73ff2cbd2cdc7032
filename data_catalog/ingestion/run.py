"""The ingest stage: :func:`ingest` over an :class:`~data_catalog.ingestion.config.IngestConfig`."""

from __future__ import annotations

from data_catalog.ingestion.append import append
from data_catalog.ingestion.config import IngestConfig, IngestResult, RunOptions
from data_catalog.ingestion.create import create
from data_catalog.ingestion.executor import dask_client
from data_catalog.ingestion.hooks import IngestHooks
from data_catalog.store_protocol import writer_lock


def ingest(
    cfg: IngestConfig,
    *,
    threads: int = 2,
    workers: int | None = None,
    scheduler: str | None = None,
    cluster_processes: bool = True,
    progress: bool = False,
    hooks: IngestHooks | None = None,
) -> IngestResult:
    """Write (create, resume or append to) the canonical store ``cfg.out`` from ``cfg.sources``; see
    docs/ingest.md. How it runs (the same store either way): ``threads``, ``workers``/``scheduler`` (a dask
    cluster), ``cluster_processes``, ``progress`` (:class:`~data_catalog.ingestion.config.RunOptions`). Holds the
    store's writer lock throughout (a concurrent writer fails at once with ``StoreLockedError``). Raises
    WxemuError subclasses for user errors. ``hooks``: callbacks at fixed points (default
    :meth:`IngestHooks.from_env`: the crash hook of ``$WXEMU_INGEST_CRASH_AFTER`` when it is set)."""
    run = RunOptions(
        threads=threads, workers=workers, scheduler=scheduler, cluster_processes=cluster_processes, progress=progress
    )
    hooks = hooks if hooks is not None else IngestHooks.from_env()
    with writer_lock(cfg.out, stage="ingest", storage_options=cfg.options):
        with dask_client(run) as client:  # one cluster (or none) for the checksums, the blocks and the climatology
            if cfg.append:
                return append(cfg, run, hooks, client)
            return create(cfg, run, hooks, client)
