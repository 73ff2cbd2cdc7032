"""`wxemu verify` as a WeatherBench2 user runs it, on small synthetic stores in WB2 layout
(pipeline.verification.testing): longitude-first stores score (and read) like latitude-first ones, blocks on a
2-worker LocalCluster score like one process, the WB2 results export, a missing climatology, markup in names,
NaN scores, an incomplete forecast store, config validation and a second writer to the same scores.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from data_catalog.errors import WxemuError
from pipeline.verification import VerifyConfig, verify


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from pipeline.verification.testing import synthetic_stores

    root = tmp_path_factory.mktemp("synthetic")
    return {
        "lat_first": synthetic_stores(root / "lat_first", n_init=6, time_chunk=4),
        "lon_first": synthetic_stores(root / "lon_first", n_init=6, time_chunk=4, lon_first=True),
    }


def test_longitude_first_stores_give_the_same_scores(synthetic):
    """WeatherBench2's published layout (longitude before latitude) and latitude-first stores: equal numbers."""
    a, b = synthetic["lat_first"], synthetic["lon_first"]
    assert xr.open_zarr(b["forecast"])["temperature"].dims[-2:] == ("longitude", "latitude")
    cfg = {"regions": ["global", "tropics", "europe"], "metrics": ["wb2"], "block_mb": 0.05}
    ra = verify(VerifyConfig(forecasts=[a["forecast"]], truth=a["truth"], **cfg))
    rb = verify(VerifyConfig(forecasts=[b["forecast"]], truth=b["truth"], **cfg))
    assert len(ra.blocks[("synthetic", "temperature")]) > 1
    xr.testing.assert_equal(ra.scores, rb.scores)
    xr.testing.assert_equal(ra.spectra, rb.spectra)
    assert list(ra.scores.metric.values) == ["mse", "rmse", "acc", "bias", "mae", "rmse_sqrt_before_time_avg"]
    # rmse_sqrt_before_time_avg: mean over inits of the per-init RMSE (<= rmse, Jensen)
    t = ra.scores["2m_temperature"].sel(forecast="synthetic", region="global")
    pi = ra.per_init["2m_temperature"].sel(forecast="synthetic", region="global")
    np.testing.assert_allclose(
        t.sel(metric="rmse_sqrt_before_time_avg"), np.sqrt(pi.sel(metric="mse")).mean("time"), rtol=1e-6
    )
    assert (t.sel(metric="rmse_sqrt_before_time_avg") <= t.sel(metric="rmse") + 1e-6).all()


def test_distributed_blocks_give_the_same_scores(synthetic):
    """Blocks of inits as tasks on a real 2-worker LocalCluster: the scores of one process, exactly."""
    p = synthetic["lat_first"]
    cfg = VerifyConfig(forecasts=[p["forecast"]], truth=p["truth"], regions=["global", "arctic"], block_mb=0.05)
    one = verify(cfg)
    two = verify(cfg, workers=2)
    assert len(two.blocks[("synthetic", "temperature")]) >= 2
    xr.testing.assert_equal(one.scores.drop_attrs(), two.scores.drop_attrs())
    xr.testing.assert_equal(one.per_init, two.per_init)
    xr.testing.assert_allclose(one.spectra, two.spectra, rtol=1e-12)


def test_wb2_export_has_weatherbench2s_results_layout(synthetic, tmp_path):
    p = synthetic["lat_first"]
    out = tmp_path / "wb2"
    res = verify(
        VerifyConfig(
            forecasts=[p["forecast"]],
            truth=p["truth"],
            out=str(out),
            out_format="wb2",
            regions=["global", "northern_hemisphere", "europe"],
            metrics=["rmse", "acc", "bias", "mae", "rmse_sqrt_before_time_avg"],
        )
    )
    assert sorted(f.name for f in out.iterdir()) == ["synthetic_deterministic.nc"]
    with open(out / "synthetic_deterministic.nc", "rb") as f:  # as weatherbench2.visualization.open_nc reads it
        ds = xr.open_dataset(f).load()
    assert ds["temperature"].dims == ("metric", "region", "lead_time", "level")
    assert ds["2m_temperature"].dims == ("metric", "region", "lead_time")
    assert ds["lead_time"].dtype.kind == "m" and ds["temperature"].dtype == np.float64
    assert list(ds.region.values) == ["global", "northern-hemisphere", "europe"]
    assert list(ds.metric.values) == ["mse", "rmse", "mae", "bias", "acc", "rmse_sqrt_before_time_avg"]
    sc = res.scores["temperature"].sel(forecast="synthetic").rename(prediction_timedelta="lead_time")
    np.testing.assert_allclose(ds["temperature"].sel(metric="rmse"), sc.sel(metric="rmse"))
    np.testing.assert_allclose(ds["temperature"].sel(metric="mse"), sc.sel(metric="rmse") ** 2)
    np.testing.assert_allclose(ds["temperature"].sel(metric="acc"), sc.sel(metric="acc"))


def test_missing_climatology_is_named_and_the_default_says_what_it_left_out(synthetic, tmp_path):
    p = synthetic["lat_first"]
    bare = xr.open_zarr(p["truth"])  # the root only: no climatology group
    bare.to_zarr(tmp_path / "bare.zarr", zarr_format=3)
    with pytest.raises(WxemuError, match=r"acc need a climatology.*bare.zarr.*pass --climatology STORE"):
        verify(VerifyConfig(forecasts=[p["forecast"]], truth=str(tmp_path / "bare.zarr"), metrics=["rmse", "acc"]))
    res = verify(VerifyConfig(forecasts=[p["forecast"]], truth=str(tmp_path / "bare.zarr")))
    assert list(res.scores.metric.values) == ["rmse", "mae", "bias"]
    assert len(res.notes) == 1 and "left out acc: no climatology" in res.notes[0]
    # ... and passing one brings ACC back
    res = verify(VerifyConfig(forecasts=[p["forecast"]], truth=str(tmp_path / "bare.zarr"), climatology=p["truth"]))
    assert "acc" in res.scores.metric.values and not res.notes


def test_cli_summary_plain_names_and_markup_in_attributes(synthetic, tmp_path, capsys):
    """The summary prints plain names; a model name with rich markup (``[/]``) is printed as text, no crash."""
    from workflows.cli import main

    p = synthetic["lat_first"]
    odd = xr.open_zarr(p["forecast"]).load()
    odd.attrs["wxemu_model"] = "[/]odd[bold]"
    odd.to_zarr(tmp_path / "odd.zarr", zarr_format=3)
    argv = ["verify", "--forecast", p["forecast"], str(tmp_path / "odd.zarr"), "--truth", p["truth"]]
    argv += ["--out", str(tmp_path / "s.zarr"), "--reference", "synthetic", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "metrics rmse, mae, bias, acc x forecasts synthetic, [/]odd[bold] x regions global" in out
    assert "np.str_" not in out and "[/]odd[bold] vs synthetic" in out


def test_nan_scores_are_refused_unless_allowed(synthetic, tmp_path):
    p = synthetic["lat_first"]
    fc = xr.open_zarr(p["forecast"]).load()
    holes = fc.copy(deep=True)
    holes["2m_temperature"][2, 1, 3, 4] = np.nan  # init 3, lead 24 h: one NaN point
    holes.to_zarr(tmp_path / "holes.zarr", zarr_format=3)
    cfg = {"truth": p["truth"], "out": str(tmp_path / "s.zarr")}
    with pytest.raises(
        WxemuError,
        match=r"forecast synthetic \(.*holes.zarr\): variable '2m_temperature' would get NaN/Inf scores from lead "
        r"\+24 h on \(first at initial time 2020-01-02 00:00:00, 1 of 18 .*--allow-nan",
    ):
        verify(VerifyConfig(forecasts=[str(tmp_path / "holes.zarr")], **cfg))
    assert not (tmp_path / "s.zarr").exists()
    res = verify(VerifyConfig(forecasts=[str(tmp_path / "holes.zarr")], allow_nan=True, **cfg))
    assert (tmp_path / "s.zarr").exists() and np.isfinite(res.scores["temperature"]).all()
    # a model with NaN weights: an all-NaN forecast
    nan = fc.copy(deep=True)
    nan["temperature"][:] = np.nan
    nan.to_zarr(tmp_path / "nan.zarr", zarr_format=3)
    with pytest.raises(
        WxemuError, match=r"variable 'temperature' is NaN everywhere at lead \+12 h for all 6 initial times"
    ):
        verify(VerifyConfig(forecasts=[str(tmp_path / "nan.zarr")], truth=p["truth"]))


def test_incomplete_forecast_store_says_rerun_wxemu_forecast(synthetic, tmp_path):
    p = synthetic["lat_first"]
    fc = xr.open_zarr(p["forecast"]).load()
    fc.attrs.update(wxemu_complete=False, wxemu_model="graph")  # a `wxemu forecast` killed midway
    fc.to_zarr(tmp_path / "fc.zarr", zarr_format=3)
    with pytest.raises(
        WxemuError,
        match=r"fc.zarr: store is incomplete \(forecast store.*re-run the same forecast command \(`wxemu forecast",
    ) as e:
        verify(VerifyConfig(forecasts=[str(tmp_path / "fc.zarr")], truth=p["truth"]))
    assert "ingest" not in str(e.value)


def test_config_validates_fields_and_reads_flat_yaml(tmp_path):
    from data_catalog.errors import ConfigError

    with pytest.raises(ConfigError, match=r"VerifyConfig.forecasts: no forecast store given"):
        VerifyConfig(truth="t.zarr")
    with pytest.raises(ConfigError, match=r"VerifyConfig.block_mb: --block-mb must be positive, got -1"):
        VerifyConfig(forecasts=["f.zarr"], truth="t.zarr", block_mb=-1)
    with pytest.raises(ConfigError, match=r"VerifyConfig.leads: --leads: cannot read 'soon'"):
        VerifyConfig(forecasts=["f.zarr"], truth="t.zarr", leads=["24h", "soon"])
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['regoins'\]"):
        VerifyConfig.from_dict({"forecasts": ["f.zarr"], "truth": "t.zarr", "regoins": ["uk"]})
    (tmp_path / "v.yaml").write_text("forecasts: [a.zarr, b.zarr]\ntruth: t.zarr\nregions: [europe]\nblock_mb: 16\n")
    cfg = VerifyConfig.from_yaml(tmp_path / "v.yaml")
    assert cfg.forecasts == ("a.zarr", "b.zarr") and cfg.regions == ("europe",) and cfg.block_mb == 16


def test_longitude_first_blocks_read_as_fast_as_latitude_first(tmp_path):
    """A block of a longitude-first store is read as stored and transposed in memory: about the cost of a
    latitude-first read (a lazily transposed read gathers the chunk point by point: ~30x slower here)."""
    import time

    from pipeline.verification.inputs import open_dataset
    from pipeline.verification.reader import load_forecast_block
    from pipeline.verification.testing import synthetic_stores

    def best_read(lon_first: bool) -> tuple[float, np.ndarray]:
        kw = {"n_init": 4, "n_lead": 4, "nlat": 61, "nlon": 120, "levels": range(100, 1100, 100), "time_chunk": 4}
        p = synthetic_stores(tmp_path / str(lon_first), lon_first=lon_first, **kw)
        fc, truth = open_dataset(p["forecast"], "forecast"), open_dataset(p["truth"], "truth")
        da = fc["temperature"]
        times = []
        for _ in range(5):
            t = time.perf_counter()
            block = load_forecast_block(da, p["forecast"], da.prediction_timedelta.values, 0, 4, truth, False)
            times.append(time.perf_counter() - t)
        return min(times), block

    t_lat, lat_block = best_read(False)
    t_lon, lon_block = best_read(True)
    np.testing.assert_array_equal(lat_block, lon_block)
    assert lat_block.shape == (4, 4, 10, 61 * 120)
    assert t_lon < 5 * t_lat + 0.01, (t_lon, t_lat)


def test_a_second_writer_to_the_same_scores_fails_at_once(synthetic, tmp_path):
    from data_catalog.store_protocol import StoreLockedError, writer_lock

    p = synthetic["lat_first"]
    out = tmp_path / "s.zarr"
    with writer_lock(str(out), stage="verify"):  # another verify (or any writer) holds --out
        with pytest.raises(StoreLockedError, match=r"s.zarr: another writer holds the store: .*verify"):
            verify(VerifyConfig(forecasts=[p["forecast"]], truth=p["truth"], out=str(out)))
    assert not out.exists()
    res = verify(VerifyConfig(forecasts=[p["forecast"]], truth=p["truth"], out=str(out)))  # the lock is gone
    assert res.path == str(out) and out.exists() and not (tmp_path / "s.zarr.lock").exists()
    assert sorted(x.name for x in tmp_path.iterdir()) == ["s.zarr"]
