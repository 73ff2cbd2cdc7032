"""The store protocol: completeness marker, resume record, publication, provenance and the writer lock, on a
local path and on an fsspec ``memory://`` store."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import uuid

import fsspec
import pytest

from data_catalog import store_protocol as sp
from data_catalog.errors import IncompleteStoreError, WxemuError
from data_catalog.testing import synthetic_dataset, write_canonical_store


@pytest.fixture(params=["local", "memory"])
def location(request, tmp_path):
    """A store location that does not exist yet: a local path, or a fresh ``memory://`` URL (removed after)."""
    if request.param == "local":
        yield str(tmp_path / "s.zarr")
        return
    url = f"memory://wxemu-protocol-{uuid.uuid4().hex}/s.zarr"
    yield url
    fs = fsspec.filesystem("memory")
    for path in (url, sp.lock_path(url)):
        if fs.exists(path):
            fs.rm(path, recursive=True)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(location: str, record: dict) -> None:
    with fsspec.open(sp.lock_path(location), "wb") as f:
        f.write(json.dumps(record).encode())


def test_second_writer_fails_at_once_naming_the_owner(location) -> None:
    with sp.writer_lock(location, stage="ingest") as held:
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(sp.StoreLockedError) as err:
            with sp.writer_lock(location, stage="forecast"):
                pass
        text = str(err.value)
        assert f"wxemu ingest on host {socket.gethostname()} (PID {os.getpid()}) since {held['started']}" in text
        assert f"delete the lock {sp.lock_path(location)}" in text
        assert isinstance(err.value, WxemuError)
    # released on exit: the next writer gets it
    with sp.writer_lock(location, stage="verify"):
        pass
    assert not fsspec.core.url_to_fs(sp.lock_path(location))[0].exists(sp.lock_path(location))


def test_lock_released_when_the_writer_fails(location) -> None:
    with pytest.raises(RuntimeError):
        with sp.writer_lock(location, stage="ingest"):
            raise RuntimeError("boom")
    with sp.writer_lock(location, stage="ingest"):
        pass


def test_stale_lock_of_a_dead_process_is_taken_over(location, caplog) -> None:
    pid = _dead_pid()
    _write_lock(location, {"host": socket.gethostname(), "pid": pid, "stage": "ingest", "started": "then"})
    with caplog.at_level(logging.WARNING, logger="wxemu"):
        with sp.writer_lock(location, stage="ingest") as held:
            assert held["pid"] == os.getpid()
    assert f"taking over the stale lock of wxemu ingest on host {socket.gethostname()} (PID {pid})" in caplog.text


def test_lock_of_another_host_is_never_taken_over(location) -> None:
    _write_lock(location, {"host": "elsewhere.example", "pid": 1, "stage": "train", "started": "2026-01-01T00:00"})
    with pytest.raises(sp.StoreLockedError, match=r"wxemu train on host elsewhere\.example \(PID 1\)"):
        with sp.writer_lock(location, stage="ingest"):
            pass


def test_unreadable_lock_is_refused_with_the_way_to_clear_it(location) -> None:
    with fsspec.open(sp.lock_path(location), "wb") as f:
        f.write(b"\x00garbage")
    with pytest.raises(sp.StoreLockedError, match="unknown writer .* delete the lock"):
        with sp.writer_lock(location, stage="ingest"):
            pass


def test_completeness_marker_and_the_same_error_for_every_role(location, tmp_path) -> None:
    ds = synthetic_dataset(n_time=4, n_lat=3, n_lon=4, levels=(500,))
    for role, stage in (("analysis", "ingest"), ("forecast", "forecast"), ("scores", "verify")):
        with pytest.raises(WxemuError, match=f"no store there .* `wxemu {stage}`"):
            sp.require_complete(location, role)
    write_canonical_store(ds, tmp_path / "src.zarr")
    fs = fsspec.core.url_to_fs(location)[0]
    fs.put(str(tmp_path / "src.zarr"), fsspec.core.url_to_fs(location)[1], recursive=True)
    sp.require_complete(location, "analysis")
    sp.set_root_attrs(location, {"wxemu_command": "wxemu forecast --out x"})
    sp.mark_incomplete(location)
    assert not sp.is_complete(location)
    for role in ("analysis", "forecast", "scores"):
        with pytest.raises(
            IncompleteStoreError, match=rf"store is incomplete \({role} store.*'wxemu forecast --out x'"
        ):
            sp.require_complete(location, role)
    sp.write_resume_plan(location, {"blocks": [[0, 2], [2, 4]]})
    sp.mark_block_done(location, 1, {"sums": 3})
    assert sp.read_resume_plan(location) == {"blocks": [[0, 2], [2, 4]]}
    assert sp.blocks_done(location) == {1} and sp.block_record(location, 1) == {"sums": 3}
    assert sp.block_record(location, 0) is None
    sp.mark_complete(location)
    assert sp.is_complete(location) and sp.read_resume_plan(location) is None and sp.blocks_done(location) == set()


def test_publish_replaces_atomically_and_provenance(location, tmp_path) -> None:
    ds = synthetic_dataset(n_time=4, n_lat=3, n_lon=4, levels=(500,))
    write_canonical_store(ds, tmp_path / "src.zarr")
    fs, path = fsspec.core.url_to_fs(location)
    tmp = sp.tmp_sibling(location)
    assert tmp.rsplit("/", 1)[0] == location.rsplit("/", 1)[0] and tmp != location
    fs.put(str(tmp_path / "src.zarr"), fsspec.core.url_to_fs(tmp)[1], recursive=True)
    sp.set_root_attrs(tmp, {sp.COMPLETE_ATTR: False, **sp.provenance(command="wxemu x", sources=[{"path": "a"}])})
    assert not sp.is_complete(tmp)
    sp.publish(tmp, location)
    assert sp.is_complete(location) and not fs.exists(fsspec.core.url_to_fs(tmp)[1])
    attrs = sp.root_attrs(location)
    assert attrs["wxemu_command"] == "wxemu x" and attrs["wxemu_sources"] == [{"path": "a"}]
    assert attrs["wxemu_version"] and attrs["wxemu_created"].endswith("+00:00")
    sp.discard(location)
    assert not sp.store_exists(location)
