"""`wxemu ingest` on the real sample data: values, stats, climatology, resume, append, clusters, bad input.

Most tests read a NetCDF cut of the real ERA5 UK GRIB (written once per session to a temp dir: cfgrib takes
seconds to index a GRIB file); the GRIB itself, the ERA5 ensemble GRIB and the ERA-Interim NetCDF are ingested
directly where the format matters.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data_catalog import ingestion as ing
from data_catalog import store
from data_catalog import store_protocol as sp
from data_catalog.errors import ConfigError, IncompleteStoreError, InputDataError, WxemuError
from data_catalog.forecast_ingest import ingest_forecast
from data_catalog.ingestion.blocks import narrow_to_block, plan_blocks, source_bounds, steps_per_block
from data_catalog.ingestion.checksums import fingerprint_sources
from data_catalog.ingestion.config import RunOptions, config_from_json
from data_catalog.ingestion.executor import dask_client
from data_catalog.ingestion.partials import climatology_bins_bytes
from data_catalog.ingestion.sources import open_sources
from data_catalog.samples import sample_path
from workflows.cli import main as wxemu

UK_GRIB = Path(sample_path("era5-2mt-2019-03-uk.grib"))
DATA = UK_GRIB.parent
ROOT = Path(__file__).resolve().parents[1]  # the repository (what the wxemu processes import)


def _raw_uk() -> xr.Dataset:
    return xr.open_dataset(UK_GRIB, engine="cfgrib", backend_kwargs={"indexpath": ""})


@pytest.fixture(scope="session")
def uk_raw() -> xr.Dataset:
    """The raw UK GRIB (as the file has it: latitude descending, longitude -10..2), first 4 days, in memory."""
    return _raw_uk().isel(time=slice(0, 96)).load()


@pytest.fixture(scope="session")
def uk_nc(tmp_path_factory, uk_raw) -> dict[str, str]:
    """Daily NetCDF files cut from the real UK GRIB (2019-03-01 .. 03-04), as a user's daily files would be."""
    d = tmp_path_factory.mktemp("uknc")
    out = {}
    for day in range(1, 5):
        part = uk_raw[["t2m"]].sel(time=f"2019-03-0{day}")
        part = part.drop_vars([c for c in part.coords if c not in part.dims])
        path = d / f"uk-2019030{day}.nc"
        part.to_netcdf(path)
        out[f"0{day}"] = str(path)
    return out


def _cfg(sources, out, **kw) -> ing.IngestConfig:
    return ing.IngestConfig(sources=tuple(map(str, sources)), out=str(out), **kw)


@pytest.fixture(scope="session")
def uk_store(tmp_path_factory, uk_nc) -> str:
    """Days 1-3 ingested uninterrupted, 6 blocks of 12 hours (the reference for resume/cluster/append)."""
    out = tmp_path_factory.mktemp("ref") / "uk.zarr"
    ing.ingest(_cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], out, block_mb=0.08))
    return str(out)


def test_grib_ingest_values_stats_climatology_provenance(tmp_path, uk_raw) -> None:
    out = tmp_path / "uk.zarr"
    # by catalog entry name (the entry points at the sample GRIB)
    code = wxemu(["ingest", "era5-t2m-uk-2019-03", "--out", str(out), "--end", "2019-03-02T23", "--quiet"])
    assert code == 0
    ds = store.open_store(str(out))
    assert ds.sizes == {"time": 48, "latitude": 33, "longitude": 49}
    assert ds["2m_temperature"].dtype == np.float32 and ds["2m_temperature"].chunks[0] == (1,) * 48
    np.testing.assert_allclose(ds["longitude"].values, np.arange(350, 362.01, 0.25))
    assert (np.diff(ds["latitude"].values) > 0).all()
    raw = uk_raw["t2m"].isel(time=slice(0, 48))
    for t, lat, lon in [(0, 58.0, -10.0), (13, 50.0, 2.0), (47, 54.5, -3.25), (30, 51.75, 0.0)]:
        want = float(raw.isel(time=t).sel(latitude=lat, longitude=lon))
        got = float(ds["2m_temperature"].isel(time=t).sel(latitude=lat, longitude=lon + 360.0))
        assert got == pytest.approx(want, abs=1e-4)
    # statistics against numpy on the raw values (unweighted, diffs over consecutive hours)
    x = raw.values.astype("f8")
    d = np.diff(x, axis=0)
    stats = store.open_stats(str(out))
    np.testing.assert_allclose(stats["2m_temperature"].values, [x.mean(), x.std(), d.mean(), d.std()], rtol=2e-6)
    # climatology at a point by hand: day 60 (1 March) 06 UTC, window +-30 days holds 1 and 2 March 06 UTC
    clim = store.open_climatology(str(out))
    point = raw.sel(latitude=54.5, longitude=-3.25)
    want = point.isel(time=[6, 30]).values.mean()
    got = clim["2m_temperature"].sel(dayofyear=60, hour=6, latitude=54.5, longitude=356.75).values
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    assert np.isnan(clim["2m_temperature"].sel(dayofyear=200, hour=6).values).all()
    assert list(clim["hour"].values) == list(range(24))
    attrs = store.root_attrs(str(out))
    assert attrs["wxemu_complete"] is True
    assert attrs["wxemu_sources"] == [
        {
            "path": str(UK_GRIB),
            "sha256": hashlib.sha256(UK_GRIB.read_bytes()).hexdigest(),
            "bytes": UK_GRIB.stat().st_size,
        }
    ]
    assert attrs["wxemu_recipe"]["end"] == "2019-03-02T23"
    assert attrs["wxemu_recipe"]["command"].startswith("wxemu ingest ")
    assert attrs["wxemu_stats_period"] == ["2019-03-01T00:00:00", "2019-03-02T23:00:00"]
    assert not (out / "wxemu_progress").exists()
    # re-running the same command on a complete store is a no-op
    assert wxemu(["ingest", "era5-t2m-uk-2019-03", "--out", str(out), "--end", "2019-03-02T23", "--quiet"]) == 0


@pytest.mark.parametrize("markers", ["with sums", "without sums"])
def test_resume_after_crash_is_identical(tmp_path, uk_nc, uk_store, markers) -> None:
    """The done-markers keep each block's moment sums: a resume reads two steps of each done block, not the
    block, and makes the climatology from the store. Markers without sums (an older wxemu's) are read back."""
    out = tmp_path / "uk.zarr"
    cfg = _cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], out, block_mb=0.08)

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


def _two_pass_reference(
    path: str, *, stats_start: str | None = None, stats_end: str | None = None, hour_step: int = 1, window: int = 61
):
    """The former second pass over the written store, kept as the reference for the one-pass accumulation:
    statistics streamed block by block (``StatsAccumulator``), climatology from dense 366 x hours bins
    (``doy_hour_sums``) smoothed by ``smooth_circular``. Returns (stats dataset, hours, {name: climatology})."""
    from data_catalog.climatology import doy_hour_sums, smooth_circular
    from data_catalog.stats import StatsAccumulator, stats_dataset

    period = store.open_store(path).sel(time=slice(stats_start, stats_end))
    names = store.time_variables(period)
    acc = StatsAccumulator()
    for a in range(0, period.sizes["time"], 10):
        block = period[names].isel(time=slice(a, a + 10)).load()
        for n in names:
            acc.add(n, block[n].values, block["time"].values, has_level="level" in block[n].dims)
    t = period["time"].to_index()
    keep = np.asarray(t.hour % hour_step == 0)
    hours = np.unique(t.hour[keep])
    clim = {}
    for n in names:
        s, c = doy_hour_sums(
            period[n].values[keep], np.asarray(t.day_of_year[keep]), np.searchsorted(hours, t.hour[keep]), len(hours)
        )
        clim[n] = smooth_circular(s, c, window)
    return stats_dataset(period, {n: acc.result(n) for n in names}), hours, clim


def _assert_matches_reference(path: str, **kw) -> None:
    ref_stats, hours, ref_clim = _two_pass_reference(path, **kw)
    xr.testing.assert_allclose(store.open_stats(path), ref_stats, rtol=1e-9)
    clim = store.open_climatology(path)
    assert list(clim["hour"].values) == list(hours)
    for n, want in ref_clim.items():  # float32 storage of float64 means: equal to float32 round-off, same NaNs
        np.testing.assert_allclose(clim[n].values, want, rtol=1e-6)


@pytest.mark.parametrize("how", ["memory", "store"])
def test_one_pass_stats_and_climatology_equal_the_two_pass_reference(tmp_path, uk_nc, how) -> None:
    """Statistics and climatology accumulated while writing (6 blocks of 12 h on 2 threads, a stats period
    that cuts blocks in the middle, 2-hourly climatology), or the climatology made from the store afterwards,
    equal a second pass over the written store."""
    out = tmp_path / "uk.zarr"
    period = {"stats_start": "2019-03-01T05", "stats_end": "2019-03-03T17"}
    result = ing.ingest(
        _cfg(
            [uk_nc["01"], uk_nc["02"], uk_nc["03"]],
            out,
            block_mb=0.08,
            climatology_hour_step=2,
            climatology_pass=how,
            **period,
        )
    )
    assert result.blocks_written == 6 and "stats" in result.timings and "climatology" in result.timings
    _assert_matches_reference(str(out), hour_step=2, **period)
    assert store.root_attrs(str(out))["wxemu_stats_period"] == ["2019-03-01T05:00:00", "2019-03-03T17:00:00"]


@pytest.mark.parametrize("how", ["memory", "store"])
def test_one_pass_with_nan_values_equals_reference(tmp_path, uk_raw, how) -> None:
    """--allow-nan: the NaN is skipped by the statistics and counted per point by the climatology."""
    out = tmp_path / "nan.zarr"
    ing.ingest(_cfg([_bad_netcdf(tmp_path, uk_raw, "nan")], out, allow_nan=True, block_mb=0.01, climatology_pass=how))
    assert np.isnan(store.open_store(str(out))["2m_temperature"].values).sum() == 1
    _assert_matches_reference(str(out))


def test_empty_stats_period_writes_nothing(tmp_path, uk_nc) -> None:
    out = tmp_path / "uk.zarr"
    with pytest.raises(InputDataError, match="no times in the stats period"):
        ing.ingest(_cfg([uk_nc["01"]], out, stats_start="2020-01-01"))
    assert not out.exists()


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
    ing.ingest(_cfg(paths, out, block_mb=0.08), threads=1, hooks=hooks)
    assert [set(s) for s in planned[0]] == [{"path", "bytes", "mtime_ns"}] * 3
    assert planned[0][0]["bytes"] == Path(paths[0]).stat().st_size
    assert store.root_attrs(str(out))["wxemu_sources"] == store.root_attrs(uk_store)["wxemu_sources"]
    assert sp.read_resume_plan(str(out)) is None  # complete: the progress records are gone


def _interrupted_ingest(tmp_path, uk_nc, *, hashed: bool) -> tuple[Path, ing.IngestConfig]:
    """Day 1 copied to day.nc, its ingest killed after a block: with the checksums known by then (the plan is
    rewritten with them after the next block) or not yet (the hashing held until the crash)."""
    src = tmp_path / "day.nc"
    shutil.copy(uk_nc["01"], src)
    cfg = _cfg([src], tmp_path / "uk.zarr", block_mb=0.08)

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
        ing.ingest(_cfg([src], out, block_mb=0.08), threads=1, hooks=hooks)
    assert not out.exists()


def test_local_cluster_matches_default_path(tmp_path, uk_nc, uk_store, monkeypatch) -> None:
    out = tmp_path / "uk.zarr"
    cfg = _cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], out, block_mb=0.08)
    import distributed

    mapped, client_map = [], distributed.Client.map
    monkeypatch.setattr(
        distributed.Client, "map", lambda self, fn, *a, **k: mapped.append(fn.__name__) or client_map(self, fn, *a, **k)
    )
    submitted, client_submit = set(), distributed.Client.submit
    monkeypatch.setattr(
        distributed.Client,
        "submit",
        lambda self, fn, *a, **k: submitted.add(fn.__name__) or client_submit(self, fn, *a, **k),
    )
    result = ing.ingest(cfg, workers=1, cluster_processes=False)
    assert result.blocks_written == 6
    xr.testing.assert_identical(
        store.open_store(str(out)).load().drop_attrs(), store.open_store(uk_store).load().drop_attrs()
    )
    # the tasks return their moment sums to the client, which combines them as the default path does; the
    # climatology is made from the store by tasks on the cluster (no bins shipped back), with the same numbers
    assert result.climatology == "store" and submitted == {"write_block_on_worker", "run_task"}
    # the checksums were computed by the cluster's tasks: the same provenance as the default path
    assert mapped == ["file_fingerprint"]
    assert store.root_attrs(str(out))["wxemu_sources"] == store.root_attrs(uk_store)["wxemu_sources"]
    xr.testing.assert_identical(store.open_stats(str(out)), store.open_stats(uk_store))
    xr.testing.assert_identical(store.open_climatology(str(out)).load(), store.open_climatology(uk_store).load())


def test_append_writes_only_new_chunks(tmp_path, uk_nc, uk_store) -> None:
    out = tmp_path / "uk.zarr"
    ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], out))
    chunk = out / "2m_temperature" / "c" / "47" / "0" / "0"
    before = (chunk.read_bytes(), chunk.stat().st_mtime_ns)
    code = wxemu(["ingest", uk_nc["03"], "--out", str(out), "--append", "--quiet"])
    assert code == 0
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
        ing.ingest(_cfg([uk_nc["03"]], out, append=True))
    with pytest.raises(InputDataError, match="does not follow"):
        ing.ingest(_cfg([uk_nc["04"]], out, append=True, start="2019-03-04T06"))
    with pytest.raises(InputDataError, match="latitude axis differs"):
        ing.ingest(_cfg([uk_nc["04"]], out, append=True, grid=0.5))
    assert store.is_complete(str(out)) and store.open_store(str(out)).sizes["time"] == 72


def test_bad_source_fails_without_waiting_for_the_checksums(tmp_path, uk_nc) -> None:
    """A source that fails validation fails the ingest at once, while the hashing is still on its first file (a
    wait would have been hours for a large archive): the hashing of the rest is stopped, and nothing is written."""
    gate, hashed = threading.Event(), []

    def slow(path, *args):
        hashed.append(path)
        assert gate.wait(30), "the ingest waited for the checksums"
        return ing.file_fingerprint(path, *args)

    paths = [tmp_path / f"d{i}.nc" for i in range(5)]
    for p in paths:
        shutil.copy(uk_nc["01"], p)
    bad = tmp_path / "d2.nc"
    bad.write_bytes(b"not a netcdf file")
    out = tmp_path / "uk.zarr"
    with pytest.raises(InputDataError, match=r"d2\.nc: cannot read NetCDF"):
        ing.ingest(_cfg(paths, out), threads=2, hooks=ing.IngestHooks(hash_file=slow))
    assert not out.exists()
    gate.set()
    for t in threading.enumerate():
        if t is not threading.current_thread() and t.name.startswith("ThreadPoolExecutor"):
            t.join(10)
    assert hashed == [str(paths[0])]  # stopped after the file it was hashing


def test_append_of_a_source_rewritten_meanwhile_is_rolled_back(tmp_path, uk_nc) -> None:
    """An append whose new file changes while it is read (hashed beside the writes) fails naming the file and
    leaves the store as it was: its old extent, complete."""
    out = tmp_path / "uk.zarr"
    ing.ingest(_cfg([uk_nc["01"]], out))
    src = tmp_path / "day2.nc"
    shutil.copy(uk_nc["02"], src)

    def touch(n: int) -> None:
        os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
        release.set()

    release, _, hooks = _held_checksums(after_block=touch)
    with pytest.raises(InputDataError, match=r"day2\.nc: changed while it was being ingested"):
        ing.ingest(_cfg([src], out, append=True, block_mb=0.08), hooks=hooks)
    assert store.is_complete(str(out)) and store.open_store(str(out)).sizes["time"] == 24
    assert [s["path"] for s in store.root_attrs(str(out))["wxemu_sources"]] == [uk_nc["01"]]


def test_append_with_bounded_stats_period(tmp_path, uk_nc) -> None:
    """A stats period that ends before the appended times keeps the stats and climatology as they are (not
    rewritten); one that reaches into them is recomputed (existing part read back once) and equals the reference."""
    kept, grown = tmp_path / "kept.zarr", tmp_path / "grown.zarr"
    ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], kept, stats_end="2019-03-01T23"))
    chunks = [
        min(p for p in (kept / group / "2m_temperature" / "c").rglob("*") if p.is_file())
        for group in ("stats", "climatology")
    ]
    before = (store.open_stats(str(kept)), [c.stat().st_mtime_ns for c in chunks])
    ing.ingest(_cfg([uk_nc["03"]], kept, append=True))
    assert store.open_store(str(kept)).sizes["time"] == 72
    xr.testing.assert_identical(store.open_stats(str(kept)), before[0])
    assert [c.stat().st_mtime_ns for c in chunks] == before[1]  # neither group rewritten
    assert store.root_attrs(str(kept))["wxemu_stats_period"] == ["2019-03-01T00:00:00", "2019-03-01T23:00:00"]

    ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], grown, stats_start="2019-03-01T07", stats_end="2019-03-03T11"))
    ing.ingest(_cfg([uk_nc["03"]], grown, append=True, block_mb=0.08))
    assert store.root_attrs(str(grown))["wxemu_stats_period"] == ["2019-03-01T07:00:00", "2019-03-03T11:00:00"]
    _assert_matches_reference(str(grown), stats_start="2019-03-01T07", stats_end="2019-03-03T11")


def test_regrid_half_degree_conserves(tmp_path, uk_nc, uk_store) -> None:
    out = tmp_path / "uk05.zarr"
    ing.ingest(_cfg([uk_nc["01"]], out, grid=0.5, climatology_hour_step=6))
    ds = store.open_store(str(out))
    assert list(store.open_climatology(str(out))["hour"].values) == [0, 6, 12, 18]
    assert ds.sizes == {"time": 24, "latitude": 17, "longitude": 25}
    np.testing.assert_allclose(ds["latitude"], np.arange(50, 58.01, 0.5))
    src = store.open_store(uk_store).isel(time=slice(0, 24))["2m_temperature"].values.astype("f8")

    def area_mean(x, lat, res, lat_edges):
        w = np.diff(np.sin(np.deg2rad(lat_edges)))[:, None]
        return (x * w).sum(axis=(-2, -1)) / (w.sum() * x.shape[-1])

    src_edges = np.r_[49.875, np.arange(50.125, 58, 0.25), 58.125]
    dst_edges = np.r_[49.875, np.arange(50.25, 58, 0.5), 58.125]
    # every 0.5 deg column holds 0.5 deg of longitude except the two clipped edge columns (0.375): weight them
    wlon_dst = np.full(25, 0.5)
    wlon_dst[[0, -1]] = 0.375
    dst = ds["2m_temperature"].values.astype("f8")
    wlat_dst = np.diff(np.sin(np.deg2rad(dst_edges)))
    dst_mean = np.einsum("tij,i,j->t", dst, wlat_dst, wlon_dst) / (wlat_dst.sum() * wlon_dst.sum())
    wlat_src = np.diff(np.sin(np.deg2rad(src_edges)))
    src_mean = np.einsum("tij,i->t", src, wlat_src) / (wlat_src.sum() * src.shape[-1])
    np.testing.assert_allclose(dst_mean, src_mean, rtol=1e-6)  # float32 storage round-off


def test_ensemble_grib_member_and_refusal(tmp_path) -> None:
    path = DATA / "era5-levels-members.grib"
    out = tmp_path / "ens.zarr"
    with pytest.raises(InputDataError, match="member"):
        ing.ingest(_cfg([path], out))
    assert not out.exists()
    ing.ingest(_cfg([path], out, member=3))
    ds = store.open_store(str(out))
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert store.channel_names(ds) == ["geopotential/500", "geopotential/850", "temperature/500", "temperature/850"]
    raw = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    want = raw["t"].sel(number=3, isobaricInhPa=850).isel(time=2).sel(latitude=-30.0, longitude=60.0)
    got = ds["temperature"].sel(level=850).isel(time=2).sel(latitude=-30.0, longitude=60.0)
    assert float(got) == pytest.approx(float(want), abs=1e-3)
    assert ds.sizes["time"] == 4


def test_eraint_month_axis_needs_explicit_dates(tmp_path) -> None:
    path = DATA / "eraint_uvz.nc"
    out = tmp_path / "eraint.zarr"
    with pytest.raises(InputDataError, match="month"):
        ing.ingest(_cfg([path], out))
    assert not out.exists()
    ing.ingest(
        _cfg([path], out, time_from=(("month", "2000-{month:02d}-01"),), end="2000-01-01", variables=("geopotential",))
    )
    ds = store.open_store(str(out))
    assert ds.sizes == {"time": 1, "level": 3, "latitude": 241, "longitude": 480}
    assert ds["longitude"].values[0] == 0.0 and ds["latitude"].values[0] == -90.0
    with xr.open_dataset(path) as raw:
        want = float(raw["z"].isel(month=0).sel(level=500, latitude=51.0, longitude=-0.75))
    got = float(ds["geopotential"].isel(time=0).sel(level=500, latitude=51.0, longitude=359.25))
    assert got == pytest.approx(want, rel=1e-6)


# ----------------------------------------------------------------------------------------------- bad input
def _bad_netcdf(tmp_path: Path, uk_raw: xr.Dataset, kind: str) -> Path:
    ds = uk_raw[["t2m"]].isel(time=slice(0, 6)).load()
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims])
    if kind == "nan":
        ds["t2m"][2, 5, 7] = np.nan
    elif kind == "units":
        ds["t2m"].attrs["units"] = "furlongs"
    elif kind == "gap":
        ds = ds.isel(time=[0, 1, 2, 4, 5])
    elif kind == "irregular":
        lat = ds["latitude"].values.copy()
        lat[3] += 0.1
        ds = ds.assign_coords(latitude=lat)
    path = tmp_path / f"bad-{kind}.nc"
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("nan", r"NaN"),
        ("units", r"units 'furlongs'"),
        ("gap", r"missing times"),
        ("irregular", r"latitude grid is not regular"),
    ],
)
def test_bad_input_names_file_and_leaves_no_store(tmp_path, uk_raw, capsys, kind, message) -> None:
    path = _bad_netcdf(tmp_path, uk_raw, kind)
    out = tmp_path / "bad.zarr"
    assert wxemu(["ingest", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and pytest.importorskip("re").search(message, err), err
    assert not out.exists()


def test_corrupt_grib_and_missing_variable(tmp_path, capsys, uk_nc) -> None:
    out = tmp_path / "bad.zarr"
    corrupt = DATA / "era5-levels-corrupted.grib"
    assert wxemu(["ingest", str(corrupt), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "era5-levels-corrupted.grib" in err and "corrupt" in err.lower()
    assert wxemu(["ingest", uk_nc["01"], "--out", str(out), "--variables", "temperature", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert uk_nc["01"] in err and "temperature" in err and "not found" in err
    assert not out.exists()


def test_duplicated_times_across_files(tmp_path, uk_nc) -> None:
    copy = tmp_path / "copy-of-day1.nc"
    shutil.copy(uk_nc["01"], copy)
    with pytest.raises(
        InputDataError,
        match=r"copy-of-day1\.nc.*uk-20190301\.nc.*duplicated time|"
        r"uk-20190301\.nc.*copy-of-day1\.nc.*duplicated time",
    ):
        ing.ingest(_cfg([uk_nc["01"], copy], tmp_path / "dup.zarr"))
    assert not (tmp_path / "dup.zarr").exists()


def test_existing_store_needs_overwrite(tmp_path, uk_nc) -> None:
    out = tmp_path / "s.zarr"
    ing.ingest(_cfg([uk_nc["01"]], out))
    with pytest.raises(WxemuError, match="complete store exists.*--overwrite"):
        ing.ingest(_cfg([uk_nc["02"]], out))
    ing.ingest(_cfg([uk_nc["02"]], out, overwrite=True))
    assert pd.Timestamp(store.open_store(str(out))["time"].values[0]) == pd.Timestamp("2019-03-02")


def test_interrupted_append_resumes(tmp_path, uk_nc, uk_store, monkeypatch) -> None:
    out = tmp_path / "uk.zarr"
    ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], out))
    argv = ["ingest", uk_nc["03"], "--out", str(out), "--append", "--block-mb", "0.08", "--threads", "1", "--quiet"]
    monkeypatch.setenv(ing.CRASH_ENV, "1")
    with pytest.raises(ing.SimulatedCrash):
        wxemu(argv)
    monkeypatch.delenv(ing.CRASH_ENV)
    with pytest.raises(IncompleteStoreError):
        store.open_store(str(out))
    with pytest.raises(WxemuError, match="--append into this store was interrupted"):
        ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], out))
    assert wxemu(argv) == 0
    xr.testing.assert_identical(
        store.open_store(str(out)).load().drop_attrs(), store.open_store(uk_store).load().drop_attrs()
    )


def test_ingest_into_fsspec_memory_store(uk_nc) -> None:
    url = "memory://wxemu-ingest-test/uk.zarr"
    try:
        ing.ingest(_cfg([uk_nc["01"]], url))
        ds = store.open_store(url)
        assert ds.sizes["time"] == 24 and store.is_complete(url)
        assert store.open_stats(url)["2m_temperature"].sel(stat="std") > 0
    finally:
        store.remove_store(url)


def test_climatology_bins_that_would_not_fit_in_memory_are_made_from_the_store(tmp_path, uk_nc) -> None:
    """The one-pass climatology keeps its (day of year, hour) bins in memory. When they would take more than half
    the available memory, "auto" makes the climatology from the store after the data are written (same numbers,
    bit for bit); an explicit --climatology-pass memory is refused before anything is written."""
    field = 33 * 49 * 4  # one float32 UK field
    times = pd.date_range("2019-03-01", periods=48, freq="h").values
    cfg = _cfg([uk_nc["01"]], tmp_path / "x.zarr")
    assert climatology_bins_bytes(cfg, times, field, "x") == 48 * field  # every bin seen once: float32
    two_years = np.concatenate([times, (pd.DatetimeIndex(times) + pd.DateOffset(years=1)).values])
    assert climatology_bins_bytes(cfg, two_years, field, "x") == 2 * 48 * field  # summed in float64
    six_hourly = ing.IngestConfig(sources=("x",), out="y", climatology_hour_step=6)
    assert climatology_bins_bytes(six_hourly, times, field, "x") == 8 * field

    reference = tmp_path / "reference.zarr"
    ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], reference, climatology_pass="memory"))
    out = tmp_path / "uk.zarr"
    ing.ingest(_cfg([uk_nc["01"]], out))
    store.set_attrs(str(out), {ing.KEPT_SUMS_ATTR: None})  # as written before the sums were kept: redone on append
    before = store.open_store(str(out)).load()
    small = ing.IngestHooks(available_memory=lambda: 80 * field)  # half: room for 40 of the 48 bins
    with pytest.raises(
        WxemuError,
        match=r"uk\.zarr: --climatology-pass memory would keep 0\.0 GB .* "
        r"--climatology-pass store",
    ):
        ing.ingest(_cfg([uk_nc["02"]], out, append=True, climatology_pass="memory"), hooks=small)
    assert store.is_complete(str(out))
    xr.testing.assert_identical(store.open_store(str(out)).load(), before)
    fresh = tmp_path / "fresh.zarr"
    with pytest.raises(WxemuError, match=r"fresh\.zarr: --climatology-pass memory would keep"):
        ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], fresh, climatology_pass="memory"), hooks=small)
    assert not fresh.exists()

    made = [
        ing.ingest(_cfg([uk_nc["02"]], out, append=True), hooks=small).climatology,  # auto: 48 bins do not fit
        ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], fresh), hooks=small).climatology,
    ]
    assert made == ["store", "store"]
    for path in (out, fresh):
        xr.testing.assert_identical(
            store.open_climatology(str(path)).load(), store.open_climatology(str(reference)).load()
        )
        xr.testing.assert_identical(store.open_stats(str(path)), store.open_stats(str(reference)))


def test_append_adds_to_the_kept_sums_without_reading_the_old_data(tmp_path, uk_nc, uk_store) -> None:
    """An ingest keeps its stats period's moment sums; an append adds the new blocks' sums to them (reading
    only the old part's first and last steps) and redoes the climatology, from the store, only for the days whose
    window holds a new day. Same statistics (to float64 round-off) and climatology (bit for bit) as one ingest."""
    out = tmp_path / "uk.zarr"
    ing.ingest(_cfg([uk_nc["01"], uk_nc["02"]], out))
    kept = store.root_attrs(str(out))[ing.KEPT_SUMS_ATTR]
    assert (kept["start"], kept["end"]) == ("2019-03-01T00:00:00", "2019-03-02T23:00:00")
    assert kept["variables"]["2m_temperature"]["n"] == 48 * 33 * 49
    result = ing.ingest(_cfg([uk_nc["03"]], out, append=True))
    assert result.read_back == [(0, 1), (47, 48)]  # the old part's first and last steps, nothing else
    assert result.climatology == "store"
    assert result.climatology_days == list(range(32, 93))  # within 30 days of 2019-03-03 (day of year 62)
    xr.testing.assert_allclose(store.open_stats(str(out)), store.open_stats(uk_store), rtol=1e-12)
    xr.testing.assert_identical(store.open_climatology(str(out)).load(), store.open_climatology(uk_store).load())
    assert store.root_attrs(str(out))[ing.KEPT_SUMS_ATTR]["end"] == "2019-03-03T23:00:00"


def test_cluster_blocks_name_only_their_files(uk_nc) -> None:
    """On a cluster each block's task names only the files whose times meet it (a worker opens those, not every
    source), and the narrowed sources give the same values."""
    cfg = _cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], "unused.zarr", block_mb=0.08)
    opened = open_sources(cfg)
    ds = opened.ds
    blocks = plan_blocks(0, 72, 1, steps_per_block(ds, cfg.block_mb, 1), source_bounds(ds, 0))
    assert blocks == [(0, 12), (12, 24), (24, 36), (36, 48), (48, 60), (60, 72)]
    for a, b in blocks:
        job, first_time = narrow_to_block(opened, a, b)
        assert config_from_json(job).sources == (uk_nc[f"0{a // 24 + 1}"],)
        assert first_time == ds["time"].values[a]
    # the narrowed config gives the same values as the full one
    job, first_time = narrow_to_block(opened, 36, 48)
    narrowed = open_sources(config_from_json(job)).ds
    start = int(np.searchsorted(narrowed["time"].values, first_time))
    np.testing.assert_array_equal(
        narrowed["2m_temperature"].values[start : start + 12], ds["2m_temperature"].values[36:48]
    )
    # a block across a file boundary names both files
    job, _ = narrow_to_block(opened, 20, 30)
    assert config_from_json(job).sources == (uk_nc["01"], uk_nc["02"])


def test_progress_covers_checksums_opening_and_blocks(tmp_path, uk_nc, capsys) -> None:
    """Long work shows progress: the checksums and the opening of the sources (minutes for a large archive, before
    anything is written) as well as the blocks and the climatology tasks."""
    out = tmp_path / "uk.zarr"
    ing.ingest(
        _cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], out, block_mb=0.08, climatology_pass="store"), progress=True
    )
    err = capsys.readouterr().err
    lines = {line.split()[0]: line for line in err.splitlines() if line.strip()}
    assert "3/3 files" in lines["checksums"] and "3/3 files" in lines["open"], err
    assert "6/6 blocks" in lines["write"] and "2/2 tasks" in lines["climatology"], err


def test_plan_blocks_group_whole_source_chunks() -> None:
    """Blocks hold whole source chunks (each read by one block) up to the block size, cut on chunk multiples."""
    files = [24 * i for i in range(1, 31)]  # 31 daily files of 24 hourly steps
    blocks = plan_blocks(0, 744, 1, 150, files)
    assert blocks[0] == (0, 144) and all(b - a <= 150 for a, b in blocks)  # six files a block
    assert all(a % 24 == 0 for a, _ in blocks) and blocks[-1][1] == 744 and len(blocks) == 6
    assert plan_blocks(0, 72, 1, 12, [24, 48]) == [(0, 12), (12, 24), (24, 36), (36, 48), (48, 60), (60, 72)]
    assert plan_blocks(0, 100, 1, 30, None) == [(0, 30), (30, 60), (60, 90), (90, 100)]
    # a long source chunk (a monthly file of 744 steps) is cut every block size
    assert plan_blocks(0, 1416, 1, 300, [744]) == [
        (0, 300),
        (300, 600),
        (600, 744),
        (744, 1044),
        (1044, 1344),
        (1344, 1416),
    ]
    # chunk_time 6: source bounds round down to chunk boundaries; blocks are whole chunks
    blocks = plan_blocks(0, 96, 6, 40, [25, 49, 73])
    assert blocks == [(0, 24), (24, 48), (48, 72), (72, 96)]  # 36-step blocks cannot hold two 24-step chunks
    assert plan_blocks(3, 100, 6, 40, None) == [(3, 36), (36, 72), (72, 100)]  # mid-chunk start: then on the grid
    # an append's blocks start at the old end
    assert plan_blocks(744, 792, 1, 150, [768]) == [(744, 792)]


def test_climatology_pass_option_is_validated() -> None:
    from data_catalog.errors import ConfigError

    with pytest.raises(ConfigError, match="--climatology-pass must be one of auto, memory, store, got 'disk'"):
        ing.IngestConfig(sources=("x",), out="y.zarr", climatology_pass="disk")


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


def test_local_cluster_workers_keep_the_default_malloc_trim() -> None:
    """dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_=65536 (a climatology task 1.8x slower, measured); the
    LocalCluster the ingest starts (real worker processes) does not."""
    import os

    with dask_client(RunOptions(workers=1)) as client:
        env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(env.values()) == [None]


# ----------------------------------------------------------------------------------------------- writers, re-runs
_WXEMU_PROCESS = """
import sys
try:
    from workflows.cli import main
except ImportError:
    from workflows.cli import main
print("ready", flush=True)
sys.stdin.readline()
sys.exit(main(sys.argv[1:]))
"""


def _wxemu_processes(argvs: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Run ``wxemu ARGV`` in one real process each, started together: every process imports wxemu first and
    reports ready; then all are released at the same instant (one line on their stdin)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WXEMU_PROCESS, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for argv in argvs
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    out = []
    for p, argv in zip(procs, argvs):
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(argv, p.returncode, stdout, stderr))
    return out


def test_two_concurrent_ingests_into_one_store(tmp_path) -> None:
    """Two `wxemu ingest` processes to the same --out at once: exactly one writes the store (complete, right times
    and values); the other fails at once with the lock error naming the owner, exit code 2, no traceback."""
    out = tmp_path / "uk.zarr"
    argv = ["ingest", str(UK_GRIB), "--out", str(out), "--end", "2019-03-07T23", "--block-mb", "0.02", "--quiet"]
    runs = _wxemu_processes([argv, argv])
    assert sorted(r.returncode for r in runs) == [0, 2], [r.stderr for r in runs]
    won, lost = sorted(runs, key=lambda r: r.returncode)
    assert "written: 168 times" in won.stdout
    assert "wxemu ingest: error:" in lost.stderr and "Traceback" not in lost.stderr, lost.stderr
    assert re.search(r"another writer holds the store: wxemu ingest on host \S+ \(PID \d+\) since ", lost.stderr)
    assert f"delete the lock {out}.lock" in lost.stderr
    assert not Path(f"{out}.lock").exists()  # released by the winner
    ds = store.open_store(str(out)).load()  # complete (readers accept it)
    raw = _raw_uk()["t2m"].isel(time=slice(0, 168)).sortby("latitude")
    np.testing.assert_array_equal(ds["time"].values, raw["time"].values)
    np.testing.assert_allclose(ds["2m_temperature"].values, raw.values, atol=1e-4)


def test_stale_lock_of_a_killed_ingest_is_taken_over(tmp_path, uk_nc, capsys, caplog) -> None:
    """A lock left by a killed ingest (same host, its PID gone) is taken over with a message; a live one is not."""
    out = tmp_path / "uk.zarr"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"host": socket.gethostname(), "pid": dead.pid, "stage": "ingest", "started": "2026-01-01T00:00:00"}
    Path(f"{out}.lock").write_text(json.dumps(record))
    with caplog.at_level("WARNING", logger="wxemu"):
        assert wxemu(["ingest", uk_nc["01"], "--out", str(out), "--quiet"]) == 0
    assert f"taking over the stale lock of wxemu ingest on host {socket.gethostname()} (PID {dead.pid})" in caplog.text
    assert store.is_complete(str(out)) and not Path(f"{out}.lock").exists()
    with sp.writer_lock(str(out), stage="forecast"):  # held by this (live) process: an ingest is refused at once
        assert wxemu(["ingest", uk_nc["01"], "--out", str(out), "--overwrite", "--quiet"]) == 2
    assert f"wxemu forecast on host {socket.gethostname()} (PID {os.getpid()})" in capsys.readouterr().err
    assert store.is_complete(str(out))


def test_ingest_into_a_locked_fsspec_store_is_refused(uk_nc) -> None:
    url = f"memory://wxemu-ingest-lock-{os.getpid()}/uk.zarr"
    try:
        with sp.writer_lock(url, stage="ingest"):
            with pytest.raises(sp.StoreLockedError, match=r"memory://.*uk\.zarr: another writer holds the store"):
                ing.ingest(_cfg([uk_nc["01"]], url))
            assert not store.store_exists(url)
        ing.ingest(_cfg([uk_nc["01"]], url))
        assert store.is_complete(url)
    finally:
        store.remove_store(url)


@pytest.mark.parametrize("grid", ["nan", "inf", "-inf", "0"])
def test_non_finite_grid_is_a_clear_error(tmp_path, uk_nc, capsys, grid) -> None:
    out = tmp_path / "uk.zarr"
    assert wxemu(["ingest", uk_nc["01"], "--out", str(out), f"--grid={grid}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--grid must be a positive resolution in degrees" in err and "Traceback" not in err
    assert not out.exists()


def test_suggested_rerun_command_of_an_interrupted_ingest_is_complete(tmp_path, uk_nc, monkeypatch, capsys) -> None:
    """The command a reader suggests for an interrupted ingest carries every option the resume depends on (the
    block size: the resume checks the planned blocks) and, typed as given, completes the store."""
    out = tmp_path / "uk.zarr"
    argv = ["ingest", uk_nc["01"], uk_nc["02"], "--out", str(out), "--block-mb", "0.08", "--threads", "1"]
    monkeypatch.setenv(ing.CRASH_ENV, "2")
    with pytest.raises(ing.SimulatedCrash):
        wxemu([*argv, "--quiet"])
    monkeypatch.delenv(ing.CRASH_ENV)
    with pytest.raises(IncompleteStoreError) as err:
        store.open_store(str(out))
    suggested = re.search(r"re-run the same ingest command \('(wxemu ingest [^']*)'\)", str(err.value)).group(1)
    typed = shlex.split(suggested)
    assert typed[:2] == ["wxemu", "ingest"] and "--block-mb" in typed
    capsys.readouterr()
    assert wxemu([*typed[1:], "--quiet"]) == 0
    written, skipped = map(
        int, re.search(r"resumed: 48 times, (\d) blocks written, (\d) already", capsys.readouterr().out).groups()
    )
    assert written + skipped == 4 and skipped >= 2
    assert store.is_complete(str(out))


def test_region_mb_is_a_hidden_deprecated_alias(tmp_path, uk_nc, capsys) -> None:
    out = tmp_path / "uk.zarr"
    assert wxemu(["ingest", uk_nc["01"], "--out", str(out), "--region-mb", "0.08", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "--region-mb is deprecated; use --block-mb" in captured.err
    assert "written: 24 times, 2 blocks written" in captured.out
    assert "--block-mb 0.08" in store.root_attrs(str(out))["wxemu_recipe"]["command"]
    with pytest.raises(SystemExit):
        wxemu(["ingest", "--help"])
    help_text = capsys.readouterr().out
    assert "--block-mb" in help_text and "--region-mb" not in help_text


def test_forecast_ingest_takes_the_writer_lock(tmp_path, sample) -> None:
    """`wxemu ingest --forecast` honours the same lock: a second writer fails at once and writes nothing."""
    out = str(tmp_path / "fc.zarr")
    with sp.writer_lock(out, stage="ingest"):
        with pytest.raises(sp.StoreLockedError, match=r"fc\.zarr: another writer holds the store: wxemu ingest"):
            ingest_forecast([sample("t_analysis_and_fc_0.grib")], out, allow_implausible=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    ingest_forecast([sample("t_analysis_and_fc_0.grib")], out, allow_implausible=True)
    attrs = sp.root_attrs(out)
    assert sp.is_complete(out) and attrs["wxemu_command"].startswith("wxemu ingest --forecast")
    assert attrs["wxemu_created"] and attrs["wxemu_sources"][0]["path"].endswith("t_analysis_and_fc_0.grib")


def test_config_from_yaml(tmp_path, uk_nc) -> None:
    path = tmp_path / "ingest.yaml"
    path.write_text(f"sources: [{uk_nc['01']}]\nout: {tmp_path / 'uk.zarr'}\nblock_mb: 0.08\nunits: {{t2m: K}}\n")
    cfg = ing.IngestConfig.from_yaml(str(path))
    assert cfg.sources == (uk_nc["01"],) and cfg.block_mb == 0.08 and cfg.units == (("t2m", "K"),)
    assert ing.ingest(cfg).blocks_written == 2
    with pytest.raises(ConfigError, match="unknown field.*region_mb"):
        ing.IngestConfig.from_dict({"sources": ["x"], "out": "y", "region_mb": 1})
    with pytest.raises(ConfigError, match="--grid must be a positive resolution"):
        ing.IngestConfig.from_dict({"sources": ["x"], "out": "y", "grid": float("nan")})


def test_interrupted_append_resumed_with_another_block_size_is_refused(tmp_path, uk_nc, monkeypatch) -> None:
    """The done-markers number the planned blocks: resuming an append with another --block-mb would skip blocks
    never written (and mark the store complete with a hole); it is refused, naming the command to re-run."""
    out = tmp_path / "uk.zarr"
    ing.ingest(_cfg([uk_nc["01"]], out))
    monkeypatch.setenv(ing.CRASH_ENV, "1")
    with pytest.raises(ing.SimulatedCrash):
        ing.ingest(_cfg([uk_nc["02"]], out, append=True, block_mb=0.08), threads=1)
    monkeypatch.delenv(ing.CRASH_ENV)
    with pytest.raises(IncompleteStoreError, match=r"re-run the same ingest command \('wxemu ingest .*--append'\)"):
        store.open_store(str(out))
    with pytest.raises(WxemuError, match="planned blocks differ"):
        ing.ingest(_cfg([uk_nc["02"]], out, append=True))
    ing.ingest(_cfg([uk_nc["02"]], out, append=True, block_mb=0.08))
    ds = store.open_store(str(out))
    assert ds.sizes["time"] == 48 and not np.isnan(ds["2m_temperature"].values).any()
