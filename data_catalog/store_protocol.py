"""What every store wxemu writes (analysis, forecast, scores) records about itself, and who may write it.

One module owns, for any fsspec location (a local path, ``memory://``, ``s3://`` ...):

* the completeness marker: root attribute ``wxemu_complete`` (False while a writer works; :func:`mark_complete`,
  :func:`mark_incomplete`, :func:`is_complete`), and :func:`require_complete`, which every reader calls, so an
  incomplete store of any role is refused with the same :class:`~data_catalog.errors.IncompleteStoreError`;
* the resume record under the key prefix ``wxemu_progress/`` (zarr ignores it): the plan of the write
  (:func:`write_resume_plan`) and one marker per finished block (:func:`mark_block_done`), dropped when the
  store is marked complete;
* atomic finalisation for writers that build the whole store at once: write under :func:`tmp_sibling`, then
  :func:`publish` (move into place, mark complete);
* provenance attributes (:func:`provenance`): ``wxemu_version``, ``wxemu_command``, ``wxemu_created``,
  ``wxemu_sources``;
* the writer lock (:func:`writer_lock`): a lock object ``STORE.lock`` beside the store, created atomically, recording
  the owner's host, PID, stage and start time. A second writer fails at once with :class:`StoreLockedError`; a
  lock left by a dead process of this host is taken over (with a warning on the ``wxemu`` logger).

Example (a stage that writes ``out``)::

    from data_catalog import store_protocol as sp

    with sp.writer_lock(out, stage="forecast", storage_options=options):
        ...  # write the store, marked incomplete (wxemu_complete False), blocks recorded with mark_block_done
        sp.set_root_attrs(out, sp.provenance(command=cmd, sources=fingerprints), storage_options=options)
        sp.mark_complete(out, storage_options=options)

and a reader: ``sp.require_complete(path, "forecast", storage_options=options)``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import fsspec
import zarr
from fsspec.implementations.local import LocalFileSystem

from data_catalog.errors import IncompleteStoreError, WxemuError
from data_catalog.version import wxemu_version

COMPLETE_ATTR = "wxemu_complete"
PROGRESS_PREFIX = "wxemu_progress"
LOCK_SUFFIX = ".lock"
#: The stage that writes each store role (named in the hint of :func:`require_complete`).
WRITER_OF = {"analysis": "ingest", "forecast": "forecast", "scores": "verify"}

log = logging.getLogger("wxemu")


class StoreLockedError(WxemuError):
    """Another live process holds the writer lock of a store."""


# --------------------------------------------------------------------------------------------------- access
def mapper(path_or_url: str, storage_options: Mapping[str, Any] | None = None) -> fsspec.FSMap:
    """The store as an fsspec key -> bytes mapping."""
    return fsspec.get_mapper(str(path_or_url), **dict(storage_options or {}))


def zarr_store(path_or_url: str, storage_options: Mapping[str, Any] | None = None) -> zarr.abc.store.Store:
    """A zarr-python store object for a local path or an fsspec URL (``memory://``, ``s3://``, ``http://``)."""
    url = str(path_or_url)
    if "://" in url and not url.startswith("file://"):
        return zarr.storage.FsspecStore.from_url(url, storage_options=dict(storage_options or {}))
    return zarr.storage.LocalStore(url.removeprefix("file://"))


def store_exists(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when ``path_or_url`` holds a Zarr root (``zarr.json``)."""
    return "zarr.json" in mapper(path_or_url, storage_options)


def root_attrs(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The root group attributes, read straight from ``zarr.json`` (cheap; no array metadata parsed)."""
    try:
        meta = json.loads(mapper(path_or_url, storage_options)["zarr.json"])
    except KeyError:
        raise WxemuError(f"{path_or_url}: not a Zarr v3 store (no zarr.json)") from None
    return dict(meta.get("attributes", {}))


def consolidate(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Re-write the consolidated metadata (after arrays were resized, groups added or attributes changed)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr.*")
        zarr.consolidate_metadata(zarr_store(path_or_url, storage_options), zarr_format=3)


def set_root_attrs(
    path_or_url: str, attrs: Mapping[str, Any], *, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Update root attributes and re-consolidate the metadata."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr.*")
        group = zarr.open_group(
            zarr_store(path_or_url, storage_options), mode="r+", zarr_format=3, use_consolidated=False
        )
    group.attrs.update(dict(attrs))
    consolidate(path_or_url, storage_options=storage_options)


# --------------------------------------------------------------------------------------------------- complete
def is_complete(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True when the store exists and its root attribute ``wxemu_complete`` is True."""
    if not store_exists(path_or_url, storage_options=storage_options):
        return False
    return bool(root_attrs(path_or_url, storage_options=storage_options).get(COMPLETE_ATTR, False))


def written_by(attrs: Mapping[str, Any]) -> str | None:
    """The command line that wrote a store (``wxemu_command``, else its recipe's), or None."""
    recipe = attrs.get("wxemu_recipe")
    command = attrs.get("wxemu_command") or (recipe.get("command") if isinstance(recipe, dict) else None)
    return command if isinstance(command, str) else None


def require_complete(path_or_url: str, role: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Refuse a missing store, or one whose writer has not finished (:class:`IncompleteStoreError`), naming the
    command that completes it. ``role``: "analysis", "forecast" or "scores" (names the stage that writes it)."""
    stage = WRITER_OF.get(role, role)
    if not store_exists(path_or_url, storage_options=storage_options):
        raise WxemuError(f"{path_or_url}: no store there (no zarr.json); create it with `wxemu {stage}`")
    if not is_complete(path_or_url, storage_options=storage_options):
        command = written_by(root_attrs(path_or_url, storage_options=storage_options))
        how = f"re-run the same {stage} command" + (f" ({command!r})" if command else f" (`wxemu {stage} ...`)")
        raise IncompleteStoreError(
            f"{path_or_url}: store is incomplete ({role} store; wxemu_complete is not True): its writer was "
            f"interrupted or is still running; to complete it {how}, which resumes where it stopped"
        )


def mark_incomplete(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Set ``wxemu_complete`` False: every reader refuses the store until :func:`mark_complete`."""
    set_root_attrs(path_or_url, {COMPLETE_ATTR: False}, storage_options=storage_options)


def mark_complete(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Re-consolidate, set ``wxemu_complete`` True and drop the resume record (the last step of every writer)."""
    set_root_attrs(path_or_url, {COMPLETE_ATTR: True}, storage_options=storage_options)
    clear_progress(path_or_url, storage_options=storage_options)


def provenance(*, command: str, sources: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """The provenance attributes of a store: wxemu version, the command line, creation time (UTC ISO), sources."""
    return {
        "wxemu_version": wxemu_version(),
        "wxemu_command": command,
        "wxemu_created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "wxemu_sources": [dict(s) for s in sources],
    }


# --------------------------------------------------------------------------------------------------- finalise
def tmp_sibling(out: str) -> str:
    """A fresh hidden name beside ``out`` to write a whole store under before :func:`publish`."""
    parent, _, name = str(out).rstrip("/").rpartition("/")
    tmp = f".{name}.tmp-{uuid.uuid4().hex[:8]}"
    return f"{parent}/{tmp}" if parent else tmp


def move_into_place(tmp: str, out: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Move the fully written store ``tmp`` to ``out``, replacing an old one only now (still incomplete)."""
    fs, out_path = fsspec.core.url_to_fs(str(out), **dict(storage_options or {}))
    tmp_fs, tmp_path = fsspec.core.url_to_fs(str(tmp), **dict(storage_options or {}))
    if fs.exists(out_path):
        fs.rm(out_path, recursive=True)
    tmp_fs.mv(tmp_path, out_path, recursive=True)


def publish(tmp: str, out: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """:func:`move_into_place`, then :func:`mark_complete`: the last step of a writer that built ``tmp``."""
    move_into_place(tmp, out, storage_options=storage_options)
    mark_complete(out, storage_options=storage_options)


def discard(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete a store (or a temporary one) if it exists."""
    fs, path = fsspec.core.url_to_fs(str(path_or_url), **dict(storage_options or {}))
    if fs.exists(path):
        fs.rm(path, recursive=True)


# --------------------------------------------------------------------------------------------------- resume
def _block_key(index: int) -> str:
    return f"{PROGRESS_PREFIX}/block-{index:06d}"


def write_resume_plan(
    path_or_url: str, plan: Mapping[str, Any], *, storage_options: Mapping[str, Any] | None = None
) -> None:
    """Store the plan of a resumable write (JSON: its inputs' fingerprints, its blocks) as
    ``wxemu_progress/plan.json``."""
    mapper(path_or_url, storage_options)[f"{PROGRESS_PREFIX}/plan.json"] = json.dumps(dict(plan)).encode()


def read_resume_plan(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """The stored plan, or None when there is none (a complete store, or one written without a plan)."""
    try:
        return json.loads(mapper(path_or_url, storage_options)[f"{PROGRESS_PREFIX}/plan.json"])
    except KeyError:
        return None


def mark_block_done(
    path_or_url: str,
    index: int,
    record: Mapping[str, Any] | None = None,
    *,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Record that block ``index`` is fully written (call after its chunks are stored), with an optional JSON
    ``record`` about it (the ingest keeps the block's moment sums there)."""
    mapper(path_or_url, storage_options)[_block_key(index)] = json.dumps(dict(record or {})).encode()


def block_record(path_or_url: str, index: int, *, storage_options: Mapping[str, Any] | None = None) -> dict | None:
    """The record of a block marked done (None when it is not)."""
    try:
        return json.loads(mapper(path_or_url, storage_options)[_block_key(index)])
    except KeyError:
        return None


def blocks_done(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> set[int]:
    """Indices of the blocks recorded as written."""
    m = mapper(path_or_url, storage_options)
    prefix = f"{PROGRESS_PREFIX}/block-"
    try:
        keys: Iterable[str] = m.fs.find(f"{m.root}/{PROGRESS_PREFIX}")
    except FileNotFoundError:
        return set()
    out: set[int] = set()
    for key in keys:
        rel = key[len(m.root) :].lstrip("/") if key.startswith(m.root) else key
        if rel.startswith(prefix):
            out.add(int(rel[len(prefix) :]))
    return out


def clear_progress(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove the ``wxemu_progress/`` records."""
    m = mapper(path_or_url, storage_options)
    path = f"{m.root}/{PROGRESS_PREFIX}"
    if m.fs.exists(path):
        m.fs.rm(path, recursive=True)


# --------------------------------------------------------------------------------------------------- lock
def lock_path(path_or_url: str) -> str:
    """Where the writer lock of a store lives: ``STORE.lock`` beside it (outside the store, which writers may
    delete and re-create)."""
    return f"{str(path_or_url).rstrip('/')}{LOCK_SUFFIX}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _read_lock(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, Any] | None:
    """The lock record; None when there is no lock. A lock being written (empty for an instant) is re-read."""
    for _ in range(20):
        try:
            raw = fs.cat_file(path)
        except FileNotFoundError:
            return None
        try:
            record = json.loads(raw)
            if isinstance(record, dict):
                return record
        except ValueError:
            pass
        time.sleep(0.05)
    return {}


def _create_lock(fs: fsspec.AbstractFileSystem, path: str, payload: bytes) -> bool:
    """Create the lock object with ``payload`` unless it exists (atomic); True when created."""
    if isinstance(fs, LocalFileSystem):
        tmp = f"{path}.{uuid.uuid4().hex}"
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(tmp, "wb") as f:
            f.write(payload)
        try:
            os.link(tmp, path)  # atomic, fails if the lock exists; the record is whole when it appears
            return True
        except FileExistsError:
            return False
        finally:
            os.unlink(tmp)
    try:
        with fs.open(path, "xb") as f:  # exclusive create (memory, s3 and gcs with conditional writes)
            f.write(payload)
        return True
    except FileExistsError:
        return False
    except (ValueError, NotImplementedError):  # a file system without exclusive create: check, then write
        log.warning("%s: this file system cannot create the lock atomically; checking, then writing it", path)
        if fs.exists(path):
            return False
        with fs.open(path, "wb") as f:
            f.write(payload)
        return True


def _describe(record: Mapping[str, Any]) -> str:
    if not record:
        return "an unknown writer (the lock record is unreadable)"
    return (
        f"wxemu {record.get('stage')} on host {record.get('host')} (PID {record.get('pid')}) since "
        f"{record.get('started')}"
    )


@contextlib.contextmanager
def writer_lock(
    path_or_url: str, *, stage: str, storage_options: Mapping[str, Any] | None = None
) -> Iterator[dict[str, Any]]:
    """Hold the writer lock of the store ``path_or_url`` for the ``with`` block; yields the lock record.

    Raises :class:`StoreLockedError` at once, naming the owner (host, PID, stage, start time) and how to clear
    the lock, when another live process holds it. A lock whose owner was on this host and is dead is taken over
    (logged on the ``wxemu`` logger). The lock is removed on exit if it is still this one's.
    """
    fs, path = fsspec.core.url_to_fs(lock_path(path_or_url), **dict(storage_options or {}))
    record = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "stage": stage,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "token": uuid.uuid4().hex,
    }
    payload = json.dumps(record).encode()
    for _ in range(3):
        if _create_lock(fs, path, payload):
            break
        held = _read_lock(fs, path)
        if held is None:  # released meanwhile: try again
            continue
        stale = held.get("host") == record["host"] and isinstance(held.get("pid"), int) and not _pid_alive(held["pid"])
        if not stale:
            raise StoreLockedError(
                f"{path_or_url}: another writer holds the store: {_describe(held)}; wait for it to finish, or, if "
                f"that process is gone, delete the lock {lock_path(path_or_url)}"
            )
        if _read_lock(fs, path) == held:  # still the same stale record: take it over
            log.warning("%s: taking over the stale lock of %s (no such process)", path_or_url, _describe(held))
            with contextlib.suppress(FileNotFoundError):
                fs.rm(path)
    else:
        raise StoreLockedError(f"{path_or_url}: could not take the writer lock {lock_path(path_or_url)}")
    try:
        yield record
    finally:
        if (_read_lock(fs, path) or {}).get("token") == record["token"]:
            with contextlib.suppress(FileNotFoundError):
                fs.rm(path)
