"""`wxemu ingest` on the real sample data: values, statistics and climatology (accumulated in one pass, checked
against a second pass over the store), appends that keep or redo them, regridding, the ERA5 ensemble and
ERA-Interim formats, block planning and clusters.

Most tests read a NetCDF cut of the real ERA5 UK GRIB (written once per session to a temp dir by conftest.py:
cfgrib takes seconds to index a GRIB file); the GRIB itself, the ERA5 ensemble GRIB and the ERA-Interim NetCDF
are ingested directly where the format matters. Resume and checksums: test_ingest_resume.py; bad input:
test_ingest_bad_input.py; concurrent writers, locks, re-run commands and config: test_ingest_writers.py.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _ingest import DATA, UK_GRIB, bad_netcdf, make_cfg

from data_catalog import ingestion as ing
from data_catalog import store
from data_catalog.errors import InputDataError, WxemuError
from data_catalog.ingestion.blocks import narrow_to_block, plan_blocks, source_bounds, steps_per_block
from data_catalog.ingestion.config import RunOptions, config_from_json
from data_catalog.ingestion.executor import dask_client
from data_catalog.ingestion.partials import climatology_bins_bytes
from data_catalog.ingestion.sources import open_sources
from workflows.cli import main as wxemu


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
        make_cfg(
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
    ing.ingest(
        make_cfg([bad_netcdf(tmp_path, uk_raw, "nan")], out, allow_nan=True, block_mb=0.01, climatology_pass=how)
    )
    assert np.isnan(store.open_store(str(out))["2m_temperature"].values).sum() == 1
    _assert_matches_reference(str(out))


def test_local_cluster_matches_default_path(tmp_path, uk_nc, uk_store, monkeypatch) -> None:
    out = tmp_path / "uk.zarr"
    cfg = make_cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], out, block_mb=0.08)
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


def test_append_with_bounded_stats_period(tmp_path, uk_nc) -> None:
    """A stats period that ends before the appended times keeps the stats and climatology as they are (not
    rewritten); one that reaches into them is recomputed (existing part read back once) and equals the reference."""
    kept, grown = tmp_path / "kept.zarr", tmp_path / "grown.zarr"
    ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], kept, stats_end="2019-03-01T23"))
    chunks = [
        min(p for p in (kept / group / "2m_temperature" / "c").rglob("*") if p.is_file())
        for group in ("stats", "climatology")
    ]
    before = (store.open_stats(str(kept)), [c.stat().st_mtime_ns for c in chunks])
    ing.ingest(make_cfg([uk_nc["03"]], kept, append=True))
    assert store.open_store(str(kept)).sizes["time"] == 72
    xr.testing.assert_identical(store.open_stats(str(kept)), before[0])
    assert [c.stat().st_mtime_ns for c in chunks] == before[1]  # neither group rewritten
    assert store.root_attrs(str(kept))["wxemu_stats_period"] == ["2019-03-01T00:00:00", "2019-03-01T23:00:00"]

    ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], grown, stats_start="2019-03-01T07", stats_end="2019-03-03T11"))
    ing.ingest(make_cfg([uk_nc["03"]], grown, append=True, block_mb=0.08))
    assert store.root_attrs(str(grown))["wxemu_stats_period"] == ["2019-03-01T07:00:00", "2019-03-03T11:00:00"]
    _assert_matches_reference(str(grown), stats_start="2019-03-01T07", stats_end="2019-03-03T11")


def test_regrid_half_degree_conserves(tmp_path, uk_nc, uk_store) -> None:
    out = tmp_path / "uk05.zarr"
    ing.ingest(make_cfg([uk_nc["01"]], out, grid=0.5, climatology_hour_step=6))
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
        ing.ingest(make_cfg([path], out))
    assert not out.exists()
    ing.ingest(make_cfg([path], out, member=3))
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
        ing.ingest(make_cfg([path], out))
    assert not out.exists()
    ing.ingest(
        make_cfg(
            [path], out, time_from=(("month", "2000-{month:02d}-01"),), end="2000-01-01", variables=("geopotential",)
        )
    )
    ds = store.open_store(str(out))
    assert ds.sizes == {"time": 1, "level": 3, "latitude": 241, "longitude": 480}
    assert ds["longitude"].values[0] == 0.0 and ds["latitude"].values[0] == -90.0
    with xr.open_dataset(path) as raw:
        want = float(raw["z"].isel(month=0).sel(level=500, latitude=51.0, longitude=-0.75))
    got = float(ds["geopotential"].isel(time=0).sel(level=500, latitude=51.0, longitude=359.25))
    assert got == pytest.approx(want, rel=1e-6)


def test_climatology_bins_that_would_not_fit_in_memory_are_made_from_the_store(tmp_path, uk_nc) -> None:
    """The one-pass climatology keeps its (day of year, hour) bins in memory. When they would take more than half
    the available memory, "auto" makes the climatology from the store after the data are written (same numbers,
    bit for bit); an explicit --climatology-pass memory is refused before anything is written."""
    field = 33 * 49 * 4  # one float32 UK field
    times = pd.date_range("2019-03-01", periods=48, freq="h").values
    cfg = make_cfg([uk_nc["01"]], tmp_path / "x.zarr")
    assert climatology_bins_bytes(cfg, times, field, "x") == 48 * field  # every bin seen once: float32
    two_years = np.concatenate([times, (pd.DatetimeIndex(times) + pd.DateOffset(years=1)).values])
    assert climatology_bins_bytes(cfg, two_years, field, "x") == 2 * 48 * field  # summed in float64
    six_hourly = ing.IngestConfig(sources=("x",), out="y", climatology_hour_step=6)
    assert climatology_bins_bytes(six_hourly, times, field, "x") == 8 * field

    reference = tmp_path / "reference.zarr"
    ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], reference, climatology_pass="memory"))
    out = tmp_path / "uk.zarr"
    ing.ingest(make_cfg([uk_nc["01"]], out))
    store.set_attrs(str(out), {ing.KEPT_SUMS_ATTR: None})  # as written before the sums were kept: redone on append
    before = store.open_store(str(out)).load()
    small = ing.IngestHooks(available_memory=lambda: 80 * field)  # half: room for 40 of the 48 bins
    with pytest.raises(
        WxemuError,
        match=r"uk\.zarr: --climatology-pass memory would keep 0\.0 GB .* "
        r"--climatology-pass store",
    ):
        ing.ingest(make_cfg([uk_nc["02"]], out, append=True, climatology_pass="memory"), hooks=small)
    assert store.is_complete(str(out))
    xr.testing.assert_identical(store.open_store(str(out)).load(), before)
    fresh = tmp_path / "fresh.zarr"
    with pytest.raises(WxemuError, match=r"fresh\.zarr: --climatology-pass memory would keep"):
        ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], fresh, climatology_pass="memory"), hooks=small)
    assert not fresh.exists()

    made = [
        ing.ingest(make_cfg([uk_nc["02"]], out, append=True), hooks=small).climatology,  # auto: 48 bins do not fit
        ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], fresh), hooks=small).climatology,
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
    ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"]], out))
    kept = store.root_attrs(str(out))[ing.KEPT_SUMS_ATTR]
    assert (kept["start"], kept["end"]) == ("2019-03-01T00:00:00", "2019-03-02T23:00:00")
    assert kept["variables"]["2m_temperature"]["n"] == 48 * 33 * 49
    result = ing.ingest(make_cfg([uk_nc["03"]], out, append=True))
    assert result.read_back == [(0, 1), (47, 48)]  # the old part's first and last steps, nothing else
    assert result.climatology == "store"
    assert result.climatology_days == list(range(32, 93))  # within 30 days of 2019-03-03 (day of year 62)
    xr.testing.assert_allclose(store.open_stats(str(out)), store.open_stats(uk_store), rtol=1e-12)
    xr.testing.assert_identical(store.open_climatology(str(out)).load(), store.open_climatology(uk_store).load())
    assert store.root_attrs(str(out))[ing.KEPT_SUMS_ATTR]["end"] == "2019-03-03T23:00:00"


def test_cluster_blocks_name_only_their_files(uk_nc) -> None:
    """On a cluster each block's task names only the files whose times meet it (a worker opens those, not every
    source), and the narrowed sources give the same values."""
    cfg = make_cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], "unused.zarr", block_mb=0.08)
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
        make_cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], out, block_mb=0.08, climatology_pass="store"), progress=True
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


def test_local_cluster_workers_keep_the_default_malloc_trim() -> None:
    """dask's nanny gives its workers MALLOC_TRIM_THRESHOLD_=65536 (a climatology task 1.8x slower, measured); the
    LocalCluster the ingest starts (real worker processes) does not."""
    import os

    with dask_client(RunOptions(workers=1)) as client:
        env = client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(env.values()) == [None]
