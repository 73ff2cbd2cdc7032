"""`wxemu study`: the worked studies run end to end on real files and their scores equal numpy's."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import _synthetic
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data_catalog.errors import ConfigError
from workflows.cli import main as wxemu
from workflows.study import StudyConfig, run_study

STUDIES = Path(__file__).resolve().parents[1] / "workflows" / "studies"


def _band_weights(lat: np.ndarray) -> np.ndarray:
    """sin(upper) - sin(lower) of each latitude row's band (edges halfway between rows, clipped to +-90)."""
    mid = 0.5 * (lat[1:] + lat[:-1])
    edges = np.clip(np.concatenate([[lat[0] - (mid[0] - lat[0])], mid, [lat[-1] + (lat[-1] - mid[-1])]]), -90, 90)
    return np.abs(np.diff(np.sin(np.deg2rad(edges))))


def _mean(field: np.ndarray, w_lat: np.ndarray) -> float:
    w = w_lat[:, None] * np.ones(field.shape[-1])
    return float((field * w).sum() / w.sum())


def test_glosea4_perfect_model_study_scores_equal_numpy(tmp_path):
    pytest.importorskip("iris")
    cfg = dataclasses.replace(StudyConfig.from_yaml(STUDIES / "glosea4-2011.yaml"), out=str(tmp_path / "g4"))
    result = run_study(cfg)
    truth = xr.open_zarr(result.truth).load()
    fc = xr.open_zarr(result.forecasts["glosea4"]).load()
    assert fc["number"].values.tolist() == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13]  # member 0 is the truth
    assert truth.sizes["time"] == 6 and "perfect model" in truth.attrs["wxemu_truth_note"]
    scores = xr.open_zarr(result.scores).load()
    w_lat = _band_weights(fc["latitude"].values)
    for k, lead in enumerate(fc["prediction_timedelta"].values):
        valid = fc["time"].values[0] + lead
        y = truth["skin_temperature"].sel(time=valid).values.astype("f8")
        x = fc["skin_temperature"].isel(time=0, prediction_timedelta=k).values.astype("f8")  # (member, lat, lon)
        rmse = np.sqrt(_mean((x.mean(axis=0) - y) ** 2, w_lat))
        m = x.shape[0]
        crps = np.abs(x - y).mean(axis=0) - np.abs(x[:, None] - x[None, :]).sum(axis=(0, 1)) / (2 * m * (m - 1))
        got = scores["skin_temperature"].sel(forecast="glosea4", region="global", prediction_timedelta=lead)
        np.testing.assert_allclose(float(got.sel(metric="ens_mean_rmse")), rmse, rtol=1e-5)
        np.testing.assert_allclose(float(got.sel(metric="crps")), _mean(crps, w_lat), rtol=1e-5)
    card = xr.open_dataset(result.scorecards["glosea4"])
    assert card.attrs["reference"] == "glosea4-latest" and "p_value" in card["quantity"].values
    assert Path(result.out, "study.json").exists()
    assert result.site is None or Path(result.site, "index.html").exists()  # the site, where the dashboard is


def test_study_cuts_truth_and_forecasts_to_its_ingest_region(tmp_path):
    pytest.importorskip("iris")
    cfg = StudyConfig.from_yaml(STUDIES / "glosea4-2011.yaml")
    cfg = dataclasses.replace(cfg, out=str(tmp_path / "g4"), ingest_region="europe", regions=("global",))
    result = run_study(cfg)
    truth = xr.open_zarr(result.truth).load()
    fc = xr.open_zarr(result.forecasts["glosea4"]).load()
    for ds in (truth, fc):  # 35..75N, 12.5W..42.5E on the model's grid, one contiguous box across 0E
        lat, lon = ds["latitude"].values, ds["longitude"].values
        assert 35 <= lat.min() and lat.max() <= 75 and lon[0] < 360 < lon[-1] and (np.diff(lon) > 0).all()
        assert ((lon - 360 <= 42.5) & (lon >= 347.5)).all()
    np.testing.assert_array_equal(truth["longitude"].values, fc["longitude"].values)
    lead = fc["prediction_timedelta"].values[0]
    y = truth["skin_temperature"].sel(time=fc["time"].values[0] + lead).values.astype("f8")
    x = fc["skin_temperature"].isel(time=0, prediction_timedelta=0).values.astype("f8").mean(axis=0)
    got = xr.open_zarr(result.scores)["skin_temperature"].sel(
        forecast="glosea4", region="global", prediction_timedelta=lead, metric="ens_mean_rmse"
    )
    np.testing.assert_allclose(float(got), np.sqrt(_mean((x - y) ** 2, _band_weights(fc["latitude"].values))), 1e-5)
    with pytest.raises(ConfigError, match="ingest_region"):
        dataclasses.replace(cfg, ingest_region="extra-tropics")


def test_uk_era5_study_baselines_with_significance_equal_numpy(tmp_path):
    cfg = dataclasses.replace(StudyConfig.from_yaml(STUDIES / "uk-era5-2019-03.yaml"), out=str(tmp_path / "uk"))
    result = run_study(cfg)
    truth = xr.open_zarr(result.truth)["2m_temperature"].load()
    fc = xr.open_zarr(result.forecasts["persistence"])
    inits = fc["time"].values
    assert len(inits) == 51
    w_lat = _band_weights(truth["latitude"].values)
    lead = np.timedelta64(24, "h")
    mse = [
        _mean((truth.sel(time=t).values.astype("f8") - truth.sel(time=t + lead).values.astype("f8")) ** 2, w_lat)
        for t in inits
    ]
    scores = xr.open_zarr(result.scores).load()
    got = scores["2m_temperature"].sel(metric="rmse", forecast="persistence", region="global")
    np.testing.assert_allclose(float(got.sel(prediction_timedelta=lead)), np.sqrt(np.mean(mse)), rtol=1e-5)
    card = xr.open_dataset(result.scorecards["persistence"])
    p = card["2m_temperature"].sel(quantity="p_value", region="global").values
    assert np.isfinite(p).all() and (p < 0.05).any()  # 51 inits: some differences are significant
    text = Path(result.scorecards["persistence"]).with_suffix(".txt").read_text()
    assert "persistence vs climatology" in text and "p < 0.05" in text


def test_study_cli_and_bad_study_files(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("truth: sample:era5-2mt-2019-03-uk.grib\nbaselines: [persistence]\nforecast_typo: 1\n")
    assert wxemu(["study", str(bad)]) == 2
    assert "unknown option(s) ['forecast_typo']" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="inits: emulators and baselines need initial times"):
        StudyConfig(truth="x.grib", baselines=("persistence",))
    with pytest.raises(ConfigError, match="baselines: \\['analogues'\\] unknown"):
        StudyConfig(truth="x.grib", baselines=("analogues",), inits="2019-03-05")
    with pytest.raises(ConfigError, match="truth: name the analysis"):
        StudyConfig(forecasts={"a": "x.grib"})
    study = tmp_path / "s.yaml"
    study.write_text(
        "truth: sample:era5-2mt-2019-03-uk.grib\ninits: 2019-03-20T00/2019-03-21T00/12h\nlead: 6h\n"
        "baselines: [persistence]\nreference: ukmo\n"
    )
    assert wxemu(["study", str(study), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "reference: 'ukmo' is not one of the forecasts ['persistence']" in err
    assert not (tmp_path / "out" / "scores.zarr").exists()
    assert pd.Timestamp("2019-03-20") in pd.DatetimeIndex(xr.open_zarr(tmp_path / "out" / "truth.zarr")["time"].values)


def test_study_scores_an_emulator_checkpoint_with_the_baselines(tmp_path):
    """An (untrained, tiny) emulator checkpoint built as `wxemu train` builds it, on the real UK store used in place
    as the truth: the study runs it, names it by its model kind and scores it with the baseline."""
    import torch

    from models.base import build_model
    from pipeline.checkpoint import save_checkpoint
    from pipeline.datamodule import WindowDataModule
    from pipeline.train_config import TrainConfig
    from pipeline.training import build_header

    store = str(_synthetic.cached_uk_store())
    cfg = TrainConfig().override({"data": {"step_hours": [1, 6]}}).to_dict()
    d = cfg["data"]
    dm = WindowDataModule(
        store, train=d["train"], val=d["val"], test=d["test"], step_hours=[1, 6], diff_stats_samples=8
    )
    dm.setup()
    torch.manual_seed(0)
    lat, lon = dm.layout.latitude, dm.layout.longitude
    model = build_model("graph", latitude=lat, longitude=lon, n_state=1, n_forcing=5, config={"latent": 8})
    ckpt = save_checkpoint(tmp_path / "model.safetensors", model, build_header(dm, model, cfg, store))
    study = StudyConfig(
        truth=store,
        inits="2019-03-25T00/2019-03-27T00/12h",
        lead="12h",
        step="6h",
        emulators=(str(ckpt),),
        baselines=("persistence",),
        reference="persistence",
        metrics=("rmse",),
        out=str(tmp_path / "study"),
    )
    result = run_study(study)
    assert result.truth == store and set(result.forecasts) == {"persistence", "graph"}
    scores = xr.open_zarr(result.scores).load()
    rmse = scores["2m_temperature"].sel(metric="rmse", forecast="graph", region="global").values
    assert np.isfinite(rmse).all() and (rmse > 0).all()
    assert Path(result.scorecards["graph"]).exists()


def test_study_reads_remote_pp_forecasts_and_truth_over_http(tmp_path, http_server, monkeypatch):
    """The same perfect-model study with the truth and the forecast files fetched over HTTP (fsspec)."""
    pytest.importorskip("iris")
    from data_catalog.um import iris_sample_dir

    monkeypatch.setenv("WXEMU_CACHE_DIR", str(tmp_path / "cache"))
    base = http_server(str(Path(iris_sample_dir()) / "GloSea4"))
    study = StudyConfig(
        truth=base + "ensemble_000.pp",
        truth_member=0,
        forecasts={"glosea4-latest": [base + f"ensemble_01{k}.pp" for k in range(4)]},
        metrics=("ens_mean_rmse",),
        out=str(tmp_path / "remote"),
    )
    result = run_study(study)
    fc = xr.open_zarr(result.forecasts["glosea4-latest"])
    assert fc["number"].values.tolist() == [10, 11, 12, 13]
    assert [s["path"] for s in fc.attrs["wxemu_sources"]][0].startswith("http://127.0.0.1")
    scores = xr.open_zarr(result.scores)
    assert np.isfinite(scores["skin_temperature"].sel(metric="ens_mean_rmse").values).all()
