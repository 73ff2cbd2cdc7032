"""The sources' fingerprints (sha256 and size of every file): provenance of the store and the resume check.

They are computed beside the ingest (:class:`SourceChecksums`), not before it: an archive that takes hours to
hash does not delay the first write by hours.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import fsspec

from data_catalog import store_protocol as sp
from data_catalog.errors import InputDataError
from data_catalog.ingestion.config import IngestConfig

#: fingerprint function: (path, storage_options) -> {path, sha256, bytes}
HashFile = Callable[[str, "dict | None"], dict[str, Any]]


def file_fingerprint(path: str, storage_options: dict | None = None) -> dict[str, Any]:
    """{path, sha256, bytes} of a file; of a local directory (a Zarr store): sha256 over its sorted
    (relative path, size, sha256 of metadata files) listing, and the total bytes. A remote Zarr store is not
    listed (ARCO-ERA5 holds millions of chunks: a listing, and a size request per key, would take hours): its
    sha256 is that of its consolidated metadata (``.zmetadata``, else the v3 root ``zarr.json``; named under
    ``hashed``) and ``bytes`` is None."""
    fs, fpath = fsspec.core.url_to_fs(path, **(storage_options or {}))
    if "://" in path and not path.startswith("file://"):
        for meta in (".zmetadata", "zarr.json"):  # v2 consolidated metadata, else the v3 root (consolidated)
            key = f"{fpath.rstrip('/')}/{meta}"
            if fs.exists(key):
                return {
                    "path": path,
                    "sha256": hashlib.sha256(fs.cat_file(key)).hexdigest(),
                    "bytes": None,
                    "hashed": meta,
                }
    try:
        if fs.isdir(fpath):
            h = hashlib.sha256()
            total = 0
            for key in sorted(fs.find(fpath)):
                size = int(fs.size(key))
                rel = key[len(fpath) :].lstrip("/")
                h.update(f"{rel}\0{size}\0".encode())
                if rel.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"):
                    h.update(fs.cat_file(key))
                total += size
            return {"path": path, "sha256": h.hexdigest(), "bytes": total}
        with fs.open(fpath, "rb") as f:
            if hasattr(hashlib, "file_digest"):  # Python >= 3.11: reads into one buffer, hashes without the GIL
                h = hashlib.file_digest(f, "sha256")
            else:  # pragma: no cover - Python 3.10
                h = hashlib.sha256()
                while block := f.read(8 * 2**20):
                    h.update(block)
            total = f.tell()
        return {"path": path, "sha256": h.hexdigest(), "bytes": total}
    except FileNotFoundError:
        raise InputDataError(f"{path}: no such file") from None


def stat_fingerprint(path: str) -> dict[str, Any] | None:
    """{path, bytes, mtime_ns} of a local regular file (one stat, nothing read); None for anything else (a
    directory such as a Zarr store, a remote object, a missing file)."""
    local = path[len("file://") :] if path.startswith("file://") else path
    if "://" in local:
        return None
    try:
        info = os.stat(local)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return {"path": path, "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


class Cancelled(Exception):
    """The background checksums were stopped (the ingest failed before needing them)."""


class SourceChecksums:
    """The sources' fingerprints (provenance, resume checks), computed beside the ingest instead of before it.

    Every source is hashed (sha256) in the background from the start, on ``threads - 1`` threads or as tasks
    on the cluster (:func:`fingerprint_sources`), while the sources are opened and validated and then while the blocks
    are written: an archive that takes hours to hash no longer delays the first write by hours. Until its sha256
    is known, a local file is identified in the plan by its size and modification time (:meth:`for_plan`, what
    make and rsync go by); the plan is rewritten with the checksums as soon as they are known
    (:meth:`update_plan`), so a resume after that compares checksums. When a source is not a local file (a
    directory, a remote object), every fingerprint is waited for before the plan is written. :meth:`result` waits for
    every checksum and refuses a local file whose size or modification time changed meanwhile (rewritten while it
    was being read: the store could hold parts of both versions)."""

    def __init__(
        self,
        cfg: IngestConfig,
        paths: Sequence[str],
        on_done: Callable[[], None],
        client: Any = None,
        *,
        threads: int = 2,
        hash_file: HashFile | None = None,
        on_known: Callable[[list[dict[str, Any]]], None] | None = None,
    ) -> None:
        self.cfg, self.paths = cfg, list(paths)
        self.stats = [stat_fingerprint(p) for p in self.paths]
        self._stop = False
        self._planned = False  # the plan holds the checksums
        self._known: list[dict[str, Any]] | None = None  # every checksum, once computed

        def done_one() -> None:
            if self._stop:
                raise Cancelled()
            on_done()

        def run() -> list[dict[str, Any]]:
            t0 = time.perf_counter()
            try:
                known = fingerprint_sources(
                    self.paths, cfg.options, threads=threads, on_done=done_one, client=client, hash_file=hash_file
                )
            finally:
                self.seconds = time.perf_counter() - t0
            self._known = known
            if on_known is not None:
                on_known(known)
            return known

        self.seconds: float | None = None  # how long the hashing took, once done
        pool = ThreadPoolExecutor(max_workers=1)
        self._future = pool.submit(run)
        pool.shutdown(wait=False)

    def done(self) -> bool:
        return self._known is not None or self._future.done()

    def stop(self) -> None:
        """Stop hashing after the current file (nothing will need the checksums: the ingest failed)."""
        self._stop = True

    def for_plan(self) -> list[dict[str, Any]]:
        """What the plan records before the first write: the checksums if they are known (or a source is not a
        local file), else each file's size and modification time."""
        if self.done() or any(s is None for s in self.stats):
            self._planned = True
            return self.result()
        return [dict(s) for s in self.stats]

    def update_plan(self, plan: dict[str, Any]) -> None:
        """Rewrite the plan (of the store being written) with the checksums once they are known; once."""
        if not self._planned and self._known is not None:
            sp.write_resume_plan(self.cfg.out, {**plan, "sources": self.result()}, storage_options=self.cfg.options)
            self._planned = True

    def block_hook(self, plan: dict[str, Any], after_block: Callable[[int], None] | None) -> Callable[[int], None]:
        """The callback after each block written (in this process): :meth:`update_plan` with ``plan``, then
        ``after_block(n_done)`` (:class:`~data_catalog.ingestion.hooks.IngestHooks`)."""

        def hook(n_done: int) -> None:
            self.update_plan(plan)
            if after_block:
                after_block(n_done)

        return hook

    def matching(self, planned: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """This run's fingerprints in the form of ``planned`` (an interrupted run's plan): checksums when it holds
        them (waited for), else sizes and modification times."""
        if planned and all("sha256" in s for s in planned):
            return self.result()
        return [dict(s) if s is not None else {"path": p} for p, s in zip(self.paths, self.stats)]

    def result(self) -> list[dict[str, Any]]:
        sources = self._future.result()
        for before in self.stats:
            if before is not None and stat_fingerprint(before["path"]) != before:
                raise InputDataError(
                    f"{before['path']}: changed while it was being ingested (its size or "
                    "modification time differs); run the command again"
                )
        return sources


def describe_changes(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str:
    """What differs between two lists of source fingerprints (for the resume refusal)."""
    old_by = {s["path"]: s for s in old}
    new_by = {s["path"]: s for s in new}
    parts = [f"{p} removed" for p in old_by if p not in new_by] + [f"{p} added" for p in new_by if p not in old_by]
    for p in (p for p in new_by if p in old_by and old_by[p] != new_by[p]):
        a, b = old_by[p], new_by[p]
        if "sha256" in a and "sha256" in b:
            parts.append(f"{p} checksum {a['sha256'][:12]} -> {b['sha256'][:12]}")
        elif set(b) == {"path"}:
            parts.append(f"{p} missing (or no longer a file)")
        else:
            parts.append(
                f"{p} modified (size {a.get('bytes')} -> {b.get('bytes')}, modification time "
                f"{'changed' if a.get('mtime_ns') != b.get('mtime_ns') else 'the same'})"
            )
    return "; ".join(parts) or "source list changed"


def fingerprint_sources(
    paths: Sequence[str],
    storage_options: dict | None = None,
    *,
    threads: int = 2,
    on_done: Callable[[], None] | None = None,
    client: Any = None,
    hash_file: HashFile | None = None,
) -> list[dict[str, Any]]:
    """The fingerprints of ``paths``, in order: on the cluster's workers when there is a
    ``client`` (a TB-scale archive is hashed by every node at once), else on ``threads - 1`` threads (sha256
    releases the GIL; one core is left to the opening, validation and writes that run meanwhile: on 2 cores a
    second hashing thread only slowed the opening; a node with more cores and a parallel file system hashes a
    large archive that many times faster). ``on_done()`` after each file (progress). ``hash_file``: the
    fingerprint of one file (default :func:`file_fingerprint`)."""
    hash_file = hash_file or file_fingerprint
    if client is not None and paths:
        from dask.distributed import as_completed

        futures = client.map(hash_file, list(paths), storage_options=storage_options, pure=False)
        for _ in as_completed(futures):
            if on_done is not None:
                on_done()
        return client.gather(futures)

    def one(path: str) -> dict[str, Any]:
        fp = hash_file(path, storage_options)
        if on_done is not None:
            on_done()
        return fp

    threads = min(len(paths), threads - 1)
    if threads <= 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, paths))  # a failure (or a stop) cancels the files not started


class HashProgress:
    """Counts the files hashed (called by the hashing thread) and advances the progress display attached at the
    time: the opening's, then, if the hashing outlasts it, one of its own (``executor.await_checksums``)."""

    def __init__(self) -> None:
        self.done = 0
        self.shown = 0  # files the last display had shown when it was detached
        self._show: Callable[[], None] | None = None
        self._lock = threading.Lock()  # counting and showing move together

    def __call__(self) -> None:
        with self._lock:
            self.done += 1
            if self._show is not None:
                self._show()

    @contextlib.contextmanager
    def attached(self, progress: Any, task: Any):
        with self._lock:
            progress.update(task, completed=self.done)
            self._show = lambda: progress.advance(task)
        try:
            yield
        finally:
            with self._lock:
                self._show, self.shown = None, self.done
