"""`wxemu ingest` resumed and appended to, on NetCDF cuts of the real ERA5 UK GRIB: a resume after a crash equals
an uninterrupted ingest, appends write only the new chunks and resume when interrupted, and the sources' checksums
are computed beside the writes (the first block does not wait for them; a resume compares them, or the files'
sizes and times while they are not known yet; a file changed or unreadable meanwhile fails the ingest).

The daily NetCDF files and the uninterrupted reference store are session fixtures (conftest.py).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
import warnings
from pathlib import Path

import pytest
import xarray as xr
from _ingest import make_cfg

from data_catalog import ingestion as ing
from data_catalog import store
from data_catalog import store_protocol as sp
from data_catalog.errors import IncompleteStoreError, InputDataError, WxemuError
from data_catalog.ingestion.checksums import fingerprint_sources
from workflows.cli import main as wxemu


@pytest.mark.parametrize("markers", ["with sums", "without sums"])
def test_resume_after_crash_is_identical(tmp_path, uk_nc, uk_store, markers) -> None:
    """The done-markers keep each block's moment sums: a resume reads two steps of each done block, not the
    block, and makes the climatology from the store. Markers without sums (an older wxemu's) are read back."""
    out = tmp_path / "uk.zarr"
    cfg = make_cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], out, block_mb=0.08)

    def crash(done: int) -> None:
        if done >= 2:
            raise ing.SimulatedCrash("killed")

    with pytest.raises(ing.SimulatedCrash):
        ing.ingest(cfg, threads=1, hooks=ing.IngestHooks(after_block=crash))
    assert not store.is_complete(str(out))
    with pytest.raises(IncompleteStoreError, match="re-run the same ingest command"):
        store.open_store(str(out))
    k = len(sp.blocks_done(str(out)))
    assert 2 <= k < 6  # a block already being written when the crash came may still finish
    if markers == "without sums":
        for i in sp.blocks_done(str(out)):
            sp.mark_block_done(str(out), i)
    result = ing.ingest(cfg)
    assert (result.blocks_skipped, result.blocks_written) == (k, 6 - k)
    whole = [(a, b) for a, b in result.read_back if b - a == 12]  # done blocks read back whole
    assert len(whole) == (0 if markers == "with sums" else k)
    if markers == "with sums":  # only the first and last step of each done block
        assert len(result.read_back) == 2 * k and all(b - a == 1 for a, b in result.read_back)
    a, b = store.open_store(str(out)).load(), store.open_store(uk_store).load()
    xr.testing.assert_identical(a.drop_attrs(), b.drop_attrs())
    # the same sums (kept exactly, or read back), combined in the same order; the climatology from either path
    xr.testing.assert_identical(store.open_stats(str(out)), store.open_stats(uk_store))
    xr.testing.assert_identical(store.open_climatology(str(out)).load(), store.open_climatology(uk_store).load())


def _held_checksums(**kw) -> tuple[threading.Event, threading.Event, ing.IngestHooks]:
    """Hooks under which the ingest's background hashing waits until ``release`` is set (or 30 s pass: then it
    fails); ``known`` is set once every checksum is known. ``kw``: further hooks."""
    release, known = threading.Event(), threading.Event()

    def held(path, options):
        if not release.wait(30):
            raise AssertionError("the hashing was never released: the ingest waited for it before writing")
        return ing.file_fingerprint(path, options)

    return release, known, ing.IngestHooks(hash_file=held, checksums_known=lambda sources: known.set(), **kw)


def test_first_write_does_not_wait_for_the_checksums(tmp_path, uk_nc, uk_store) -> None:
    """The sources are hashed beside the writes: blocks are written (the plan naming each file by size and
    modification time) while no checksum is known yet; the provenance then holds every sha256, as before."""
    out = tmp_path / "uk.zarr"
    planned = []

    def after(n: int) -> None:
        if n == 1:
            planned.append(sp.read_resume_plan(str(out))["sources"])
            release.set()

    release, _, hooks = _held_checksums(after_block=after)
    paths = [uk_nc["01"], uk_nc["02"], uk_nc["03"]]
    ing.ingest(make_cfg(paths, out, block_mb=0.08), threads=1, hooks=hooks)
    assert [set(s) for s in planned[0]] == [{"path", "bytes", "mtime_ns"}] * 3
    assert planned[0][0]["bytes"] == Path(paths[0]).stat().st_size
    assert store.root_attrs(str(out))["wxemu_sources"] == store.root_attrs(uk_store)["wxemu_sources"]
    assert sp.read_resume_plan(str(out)) is None  # complete: the progress records are gone


def _interrupted_ingest(tmp_path, uk_nc, *, hashed: bool) -> tuple[Path, ing.IngestConfig]:
    """Day 1 copied to day.nc, its ingest killed after a block: with the checksums known by then (the plan is
    rewritten with them after the next block) or not yet (the hashing held until the crash)."""
    src = tmp_path / "day.nc"
    shutil.copy(uk_nc["01"], src)
    cfg = make_cfg([src], tmp_path / "uk.zarr", block_mb=0.08)

    def crash(n: int) -> None:
        release.set()
        if hashed and n == 1:
            assert known.wait(30)
        else:
            raise ing.SimulatedCrash("x")

    release, known, hooks = _held_checksums(after_block=crash)
    with pytest.raises(ing.SimulatedCrash):
        ing.ingest(cfg, threads=1, hooks=hooks)
    return src, cfg


def test_resume_before_the_checksums_are_known_compares_size_and_time(tmp_path, uk_nc) -> None:
    src, cfg = _interrupted_ingest(tmp_path, uk_nc, hashed=False)
    assert "sha256" not in sp.read_resume_plan(cfg.out)["sources"][0]
    with xr.open_dataset(uk_nc["01"]) as ds:
        (ds + 1.0).to_netcdf(src)
    with pytest.raises(WxemuError, match=r"cannot resume: the inputs changed.*day\.nc modified"):
        ing.ingest(cfg)
    src.unlink()
    with pytest.raises(WxemuError, match=r"cannot resume: the inputs changed.*day\.nc missing"):
        ing.ingest(cfg)


def test_resume_after_the_checksums_are_known_compares_them(tmp_path, uk_nc) -> None:
    """Once hashed, the plan holds the checksums: a file rewritten with the same size and modification time
    but other values is still refused."""
    src, cfg = _interrupted_ingest(tmp_path, uk_nc, hashed=True)
    assert sp.read_resume_plan(cfg.out)["sources"][0]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    before = src.stat()
    with xr.open_dataset(uk_nc["01"]) as ds:
        values = ds.load()
    values["t2m"] += 1.0
    values.to_netcdf(src)
    assert src.stat().st_size == before.st_size
    os.utime(src, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(WxemuError, match=r"cannot resume: the inputs changed.*day\.nc checksum"):
        ing.ingest(cfg)


def test_source_rewritten_while_ingested_is_refused(tmp_path, uk_nc) -> None:
    """A file whose size or modification time changes during the ingest (rewritten while read: the store could
    mix its versions) fails naming it, and the store this run created is removed."""
    src = tmp_path / "day.nc"
    shutil.copy(uk_nc["01"], src)
    out = tmp_path / "uk.zarr"

    def touch(n: int) -> None:
        if n == 1:
            os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
            release.set()

    release, _, hooks = _held_checksums(after_block=touch)
    with pytest.raises(InputDataError, match=r"day\.nc: changed while it was being ingested"):
        ing.ingest(make_cfg([src], out, block_mb=0.08), threads=1, hooks=hooks)
    assert not out.exists()


def test_append_writes_only_new_chunks(tmp_path, uk_nc, uk_store) -> None:
    out = tmp_path / "uk.zarr"
    ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], out))
    chunk = out / "2m_temperature" / "c" / "47" / "0" / "0"
    before = (chunk.read_bytes(), chunk.stat().st_mtime_ns)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        code = wxemu(["ingest", uk_nc["03"], "--out", str(out), "--append", "--quiet"])
    assert code == 0
    assert not [str(w.message) for w in caught if "zarr" in w.filename], "zarr warned the user"
    assert (chunk.read_bytes(), chunk.stat().st_mtime_ns) == before
    a = store.open_store(str(out)).load()
    xr.testing.assert_identical(a.drop_attrs(), store.open_store(uk_store).load().drop_attrs())
    # stats recomputed over the whole (default) period: same as an ingest of days 1-3 at once
    xr.testing.assert_allclose(store.open_stats(str(out)), store.open_stats(uk_store), rtol=1e-12)
    xr.testing.assert_allclose(
        store.open_climatology(str(out)).load(), store.open_climatology(uk_store).load(), rtol=1e-6
    )
    attrs = store.root_attrs(str(out))
    assert [s["path"] for s in attrs["wxemu_sources"]] == [uk_nc["01"], uk_nc["02"], uk_nc["03"]]
    assert attrs["wxemu_recipe"]["appended"][0]["sources"] == [uk_nc["03"]]
    # overlapping, non-contiguous and mismatched appends are refused and leave the store complete
    with pytest.raises(InputDataError, match="overlap"):
        ing.ingest(make_cfg([uk_nc["03"]], out, append=True))
    with pytest.raises(InputDataError, match="does not follow"):
        ing.ingest(make_cfg([uk_nc["04"]], out, append=True, start="2019-03-04T06"))
    with pytest.raises(InputDataError, match="latitude axis differs"):
        ing.ingest(make_cfg([uk_nc["04"]], out, append=True, grid=0.5))
    assert store.is_complete(str(out)) and store.open_store(str(out)).sizes["time"] == 72


def test_bad_source_fails_without_waiting_for_the_checksums(tmp_path, uk_nc) -> None:
    """A source that fails validation fails the ingest at once, while the hashing is still on its first file (a
    wait would have been hours for a large archive): the hashing of the rest is stopped, and nothing is written."""
    gate, hashed, hashers = threading.Event(), [], set()

    def slow(path, *args):
        hashed.append(path)
        hashers.add(threading.current_thread())
        assert gate.wait(30), "the ingest waited for the checksums"
        return ing.file_fingerprint(path, *args)

    paths = [tmp_path / f"d{i}.nc" for i in range(5)]
    for p in paths:
        shutil.copy(uk_nc["01"], p)
    bad = tmp_path / "d2.nc"
    bad.write_bytes(b"not a netcdf file")
    out = tmp_path / "uk.zarr"
    with pytest.raises(InputDataError, match=r"d2\.nc: cannot read NetCDF"):
        ing.ingest(make_cfg(paths, out), threads=2, hooks=ing.IngestHooks(hash_file=slow))
    assert not out.exists()
    gate.set()
    for t in hashers:  # a hashing thread ends once its pool is shut down; one that went on would hash the next file
        t.join(10)
    assert hashed == [str(paths[0])]  # stopped after the file it was hashing


def test_append_of_a_source_rewritten_meanwhile_is_rolled_back(tmp_path, uk_nc) -> None:
    """An append whose new file changes while it is read (hashed beside the writes) fails naming the file and
    leaves the store as it was: its old extent, complete."""
    out = tmp_path / "uk.zarr"
    ing.ingest(make_cfg([uk_nc["01"]], out))
    src = tmp_path / "day2.nc"
    shutil.copy(uk_nc["02"], src)

    def touch(n: int) -> None:
        os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
        release.set()

    release, _, hooks = _held_checksums(after_block=touch)
    with pytest.raises(InputDataError, match=r"day2\.nc: changed while it was being ingested"):
        ing.ingest(make_cfg([src], out, append=True, block_mb=0.08), hooks=hooks)
    assert store.is_complete(str(out)) and store.open_store(str(out)).sizes["time"] == 24
    assert [s["path"] for s in store.root_attrs(str(out))["wxemu_sources"]] == [uk_nc["01"]]


def test_interrupted_append_resumes(tmp_path, uk_nc, uk_store, monkeypatch) -> None:
    out = tmp_path / "uk.zarr"
    ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], out))
    argv = ["ingest", uk_nc["03"], "--out", str(out), "--append", "--block-mb", "0.08", "--threads", "1", "--quiet"]
    monkeypatch.setenv(ing.CRASH_ENV, "1")
    with pytest.raises(ing.SimulatedCrash):
        wxemu(argv)
    monkeypatch.delenv(ing.CRASH_ENV)
    with pytest.raises(IncompleteStoreError):
        store.open_store(str(out))
    with pytest.raises(WxemuError, match="--append into this store was interrupted"):
        ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], out))
    assert wxemu(argv) == 0
    xr.testing.assert_identical(
        store.open_store(str(out)).load().drop_attrs(), store.open_store(uk_store).load().drop_attrs()
    )


def test_checksums_on_threads_match_one_thread_in_order(uk_nc) -> None:
    paths = [uk_nc[k] for k in ("01", "02", "03", "04")]
    done = []
    one = fingerprint_sources(paths, threads=1)
    three = fingerprint_sources(paths, threads=3, on_done=lambda: done.append(1))
    assert three == one and [s["path"] for s in one] == paths and len(done) == 4
    assert one[0]["sha256"] == hashlib.sha256(Path(paths[0]).read_bytes()).hexdigest()


def test_checksums_on_threads_stop_at_the_first_failure(tmp_path, uk_nc) -> None:
    """A missing file fails the hashing at once; the files no thread has started are not hashed."""
    import time

    hashed = []

    def slow(path, *args):
        if Path(path).exists():
            hashed.append(path)
            time.sleep(0.05)
        return ing.file_fingerprint(path, *args)

    paths = [str(tmp_path / "gone.nc")] + [uk_nc["01"]] * 20
    with pytest.raises(InputDataError, match=r"gone\.nc: no such file"):
        fingerprint_sources(paths, threads=3, hash_file=slow)
    assert len(hashed) <= 3
