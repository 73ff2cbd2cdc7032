"""`forecast`: baselines and emulator rollouts on the real UK sample, ensembles, resume, refusals, clear errors."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import _synthetic
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from data_catalog.errors import WxemuError
from pipeline import ForecastConfig, forecast
from pipeline.forecasters import ModelForecaster
from pipeline.forecasting import NonFiniteForecastError
from pipeline.train_config import TrainConfig
from workflows.cli import main


@pytest.fixture(scope="module")
def uk_store() -> str:
    return str(_synthetic.cached_uk_store())


@pytest.fixture(scope="module")
def checkpoint(uk_store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny graph emulator with a complete header built as `wxemu train` builds it."""
    from models.base import build_model
    from pipeline.checkpoint import save_checkpoint
    from pipeline.datamodule import WindowDataModule
    from pipeline.training import build_header

    cfg = TrainConfig().override({"data": {"step_hours": [1, 3]}}).to_dict()
    d = cfg["data"]
    dm = WindowDataModule(
        uk_store, train=d["train"], val=d["val"], test=d["test"], step_hours=d["step_hours"], diff_stats_samples=16
    )
    dm.setup()
    torch.manual_seed(0)
    model = build_model(
        "graph",
        latitude=dm.layout.latitude,
        longitude=dm.layout.longitude,
        n_state=1,
        n_forcing=5,
        config={"latent": 8, "processor_layers": 1},
    )
    path = tmp_path_factory.mktemp("ckpt") / "model.safetensors"
    return save_checkpoint(path, model, build_header(dm, model, cfg, uk_store))


def test_persistence_and_climatology(uk_store: str, tmp_path: Path) -> None:
    out = tmp_path / "persist.zarr"
    assert (
        main(
            [
                "forecast",
                "--checkpoint",
                "persistence",
                "--store",
                uk_store,
                "--init",
                "2019-03-25T00/2019-03-25T12/6h",
                "--lead",
                "6h",
                "--out",
                str(out),
                "--batch-size",
                "2",
            ]
        )
        == 0
    )
    fcst = xr.open_zarr(out)
    truth = xr.open_zarr(uk_store)["2m_temperature"]
    assert fcst["2m_temperature"].dims == ("time", "prediction_timedelta", "latitude", "longitude")
    assert fcst.sizes == {"time": 3, "prediction_timedelta": 6, "latitude": 33, "longitude": 49}
    assert (fcst.prediction_timedelta.values / np.timedelta64(1, "h")).tolist() == [1, 2, 3, 4, 5, 6]
    assert fcst.attrs["wxemu_complete"] is True and fcst.attrs["wxemu_model"] == "persistence"
    assert fcst.attrs["wxemu_inits_done"] == [0, 1, 2]
    for i, t in enumerate(fcst.time.values):
        for j in range(6):
            np.testing.assert_array_equal(fcst["2m_temperature"].values[i, j], truth.sel(time=t).values)

    out = tmp_path / "clim.zarr"
    assert (
        main(
            [
                "forecast",
                "--checkpoint",
                "climatology",
                "--store",
                uk_store,
                "--init",
                "2019-03-26T18",
                "--lead",
                "12h",
                "--step",
                "6h",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    fcst = xr.open_zarr(out)
    clim = xr.open_zarr(uk_store, group="climatology")["2m_temperature"]
    for j, lead in enumerate(fcst.prediction_timedelta.values):
        valid = pd.Timestamp(fcst.time.values[0]) + pd.Timedelta(lead)
        want = clim.sel(dayofyear=valid.dayofyear, hour=valid.hour).values
        np.testing.assert_allclose(fcst["2m_temperature"].values[0, j], want, rtol=1e-6)
    assert fcst.attrs["wxemu_model"] == "climatology"


def test_model_ensemble_forecast(uk_store: str, checkpoint: Path, tmp_path: Path) -> None:
    det, ens = tmp_path / "det.zarr", tmp_path / "ens.zarr"
    common = [
        "forecast",
        "--checkpoint",
        str(checkpoint),
        "--store",
        uk_store,
        "--init",
        "2019-03-25T00/2019-03-25T06/6h",
        "--lead",
        "7h",
    ]
    assert main(common + ["--out", str(det)]) == 0
    assert main(common + ["--out", str(ens), "--members", "3", "--perturbation-scale", "1.0"]) == 0
    d, e = xr.open_zarr(det), xr.open_zarr(ens)
    assert e["2m_temperature"].dims == ("time", "prediction_timedelta", "number", "latitude", "longitude")
    assert e.sizes["number"] == 3 and d.sizes["prediction_timedelta"] == 7
    assert d.attrs["wxemu_model"] == "graph" and len(d.attrs["wxemu_checkpoint_sha256"]) == 64
    dv, ev = d["2m_temperature"].values, e["2m_temperature"].values
    assert np.isfinite(dv).all()
    np.testing.assert_allclose(ev[:, :, 0], dv, rtol=1e-5, atol=1e-3)  # member 0 unperturbed
    assert np.abs(ev[:, :, 1] - dv).mean() > 0.05 and np.abs(ev[:, :, 2] - ev[:, :, 1]).mean() > 0.05
    # plausible physical values (an untrained residual model stays close to the initial state)
    assert 250 < float(dv.mean()) < 300


def test_stopped_run_resumes_and_nonfinite_values_are_refused(tmp_path: Path) -> None:
    """A NaN in the analysis at the 4th initial time stops the persistence forecast at its second batch (naming the
    init and lead; nothing of that batch written; the store incomplete); the same request with allow_nonfinite
    resumes: only the unfinished initial times are computed. The output is an fsspec URL (in memory), not a path."""
    ds = _synthetic.synthetic_dataset(n_time=24)
    ds["2m_temperature"][3, 2, 5] = np.nan
    store = str(_synthetic.write_canonical_store(ds, tmp_path / "s.zarr"))
    out = f"memory://{tmp_path.name}/p.zarr"
    config = ForecastConfig(
        checkpoint="persistence", store=store, init="2020-01-01T00/2020-01-01T05/1h", lead="2h", out=out
    )
    with pytest.raises(
        NonFiniteForecastError, match=r"initial time 2020-01-01 03:00:00 has non-finite values from lead \+1 h"
    ):
        forecast(config, batch_size=2)
    partial = xr.open_zarr(out)
    assert partial.attrs["wxemu_complete"] is False and partial.attrs["wxemu_inits_done"] == [0, 1]
    assert np.isnan(partial["2m_temperature"].values[2:]).all()  # the refused batch was not written
    result = forecast(dataclasses.replace(config, allow_nonfinite=True), batch_size=2)
    assert result.n_written == 4 and result.n_inits == 6 and result.path == out  # only the unfinished inits
    done = xr.open_zarr(out)
    assert done.attrs["wxemu_complete"] is True
    truth = xr.open_zarr(store)["2m_temperature"].sel(time=done.time.values).values
    np.testing.assert_array_equal(done["2m_temperature"].values[:, 1], truth)
    assert forecast(config).n_written == 0  # complete: nothing to do


def test_a_second_writer_is_refused_at_once(uk_store: str, tmp_path: Path) -> None:
    from data_catalog.store_protocol import StoreLockedError, writer_lock

    out = str(tmp_path / "locked.zarr")
    config = ForecastConfig(checkpoint="persistence", store=uk_store, init="2019-03-25T00", lead="1h", out=out)
    with writer_lock(out, stage="forecast"):  # another writer of the same store, still running
        with pytest.raises(StoreLockedError, match="stage forecast|forecast"):
            forecast(config)
    assert not Path(out).exists()
    assert forecast(config).n_written == 1


def test_nan_weights_are_refused_naming_init_and_lead(uk_store: str, checkpoint: Path, tmp_path: Path, capsys) -> None:
    from pipeline.checkpoint import load_checkpoint, save_checkpoint

    model, header = load_checkpoint(checkpoint)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    header = {k: v for k, v in header.items() if k != "format"}
    nan_ckpt = save_checkpoint(tmp_path / "nan" / "model.safetensors", model, header)
    out = tmp_path / "nan.zarr"
    args = ["forecast", "--checkpoint", str(nan_ckpt), "--store", uk_store, "--init", "2019-03-25T00/2019-03-25T02/1h"]
    assert main(args + ["--lead", "2h", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "initial time 2019-03-25 00:00:00 has non-finite values from lead +1 h" in err and "Traceback" not in err
    assert xr.open_zarr(out).attrs["wxemu_complete"] is False
    assert main(args + ["--lead", "2h", "--out", str(out), "--allow-nonfinite"]) == 0
    assert xr.open_zarr(out).attrs["wxemu_complete"] is True


def test_forecast_names_the_model_it_loaded(uk_store: str, checkpoint: Path, tmp_path: Path, capsys) -> None:
    from pipeline.checkpoint import sha256_file

    argv = ["forecast", "--checkpoint", str(checkpoint.parent), "--store", uk_store, "--init", "2019-03-25T00"]
    assert main(argv + ["--lead", "1h", "--out", str(tmp_path / "m.zarr")]) == 0
    printed = capsys.readouterr().out
    assert f"loaded the graph model {checkpoint.resolve()} (sha256 {sha256_file(checkpoint)[:12]}" in printed
    result = forecast(
        ForecastConfig(
            checkpoint=str(checkpoint), store=uk_store, init="2019-03-25T00", lead="1h", out=str(tmp_path / "n.zarr")
        )
    )
    assert result.model == "graph" and result.checkpoint == str(checkpoint.resolve())
    assert result.checkpoint_sha256 == sha256_file(checkpoint) and result.n_leads == 1


def test_clear_errors(uk_store: str, checkpoint: Path, tmp_path: Path, capsys) -> None:
    def run(**changes: str) -> None:
        fields = {"checkpoint": "persistence", "store": uk_store, "init": "2019-03-25T00", "lead": "6h"}
        forecast(ForecastConfig(**{**fields, "out": str(tmp_path / "x.zarr"), **changes}), batch_size=2)

    with pytest.raises(WxemuError, match="not in the store"):
        run(init="2019-04-02T00")
    with pytest.raises(WxemuError, match="not a multiple"):
        run(lead="7h", step="3h")
    with pytest.raises(WxemuError, match="cannot parse"):
        run(lead="soon")
    with pytest.raises(WxemuError, match="init: empty; expected START or START/END/EVERY"):
        run(init="")
    with pytest.raises(WxemuError, match="init 'A/B/abc': START 'A' is not a date"):
        run(init="A/B/abc")
    with pytest.raises(WxemuError, match="EVERY 'abc' is not a positive duration"):
        run(init="2019-03-25T00/2019-03-26T00/abc")
    with pytest.raises(WxemuError, match="not a safetensors"):
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"\x80\x04junk")
        run(checkpoint=str(bad))
    with pytest.raises(WxemuError, match="cannot be reached|not a multiple"):
        run(checkpoint=str(checkpoint), lead="90min", step="90min")
    for init in ("", "A/B/abc"):
        rc = main(["forecast", "--checkpoint", "persistence", "--store", uk_store, "--init", init, "--out", "x.zarr"])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("wxemu forecast: error: init") and "Traceback" not in err
    not_a_forecast = tmp_path / "notes"
    not_a_forecast.mkdir()
    (not_a_forecast / "a.txt").write_text("x")
    with pytest.raises(WxemuError, match="exists and is not a forecast store"):
        run(out=str(not_a_forecast))
    with pytest.raises(WxemuError, match="wxemu forecast did not write"):
        run(out=uk_store)  # never overwrites the analysis
    assert not (tmp_path / "x.zarr").exists()


def test_init_without_history_is_refused(uk_store: str, tmp_path: Path) -> None:
    """A history-2 emulator cannot start at the store's first time: it needs the hour before."""
    from models.base import build_model
    from pipeline.checkpoint import save_checkpoint
    from pipeline.datamodule import WindowDataModule
    from pipeline.training import build_header

    cfg = TrainConfig().override({"data": {"step_hours": [1], "history": 2}}).to_dict()
    d = cfg["data"]
    dm = WindowDataModule(uk_store, train=d["train"], val=d["val"], test=d["test"], step_hours=[1], history=2)
    dm.setup()
    model = build_model(
        "graph",
        latitude=dm.layout.latitude,
        longitude=dm.layout.longitude,
        n_state=1,
        n_forcing=5,
        history=2,
        config={"latent": 8, "processor_layers": 1},
    )
    ckpt = save_checkpoint(tmp_path / "h2.safetensors", model, build_header(dm, model, cfg, uk_store))
    args = ["forecast", "--checkpoint", str(ckpt), "--store", uk_store, "--lead", "2h"]
    with pytest.raises(WxemuError, match="needs 1 earlier time steps of history"):
        forecast(
            ForecastConfig(
                checkpoint=str(ckpt), store=uk_store, init="2019-03-01T00", lead="2h", out=str(tmp_path / "h.zarr")
            )
        )
    assert main(args + ["--init", "2019-03-01T01", "--out", str(tmp_path / "ok.zarr")]) == 0
    assert xr.open_zarr(tmp_path / "ok.zarr").attrs["wxemu_complete"] is True


def test_lagged_paths_are_chosen_on_validation_and_start_from_earlier_analyses(
    uk_store: str, checkpoint: Path, tmp_path: Path, capsys
) -> None:
    """A lagged lead is one trained step from an earlier analysis (equal to that forecast), the choice per lead is
    the lowest validation RMSE among the candidates recorded in the store, and bad requests are refused."""
    import json

    from pipeline.rollout import choose_lags
    from pipeline.store_reader import read_layout

    layout = read_layout(uk_store)
    f = ModelForecaster(str(checkpoint), layout, [1.0, 2.0, 3.0], 1, 0.5, "cpu", 0)
    i = layout.time_index("2019-03-25T06")
    lagged = f([i], lags={1.0: 2.0, 2.0: 1.0})
    direct = f([i - 1, i - 2])  # greedy from one and two hours earlier: +3 h is one 3 h step
    np.testing.assert_allclose(lagged[0, 1], direct[0, 2], rtol=1e-6)
    np.testing.assert_allclose(lagged[0, 0], direct[1, 2], rtol=1e-6)
    np.testing.assert_allclose(lagged[0, 2], f([i])[0, 2], rtol=1e-6)  # +3 h: no lag candidate, greedy

    out = tmp_path / "lagged.zarr"
    assert (
        main(
            [
                "forecast",
                "--checkpoint",
                str(checkpoint),
                "--store",
                uk_store,
                "--init",
                "2019-03-25T00/2019-03-25T06/3h",
                "--lead",
                "3h",
                "--out",
                str(out),
                "--lagged-paths",
                "2019-03-22T00/2019-03-22T11",
            ]
        )
        == 0
    )
    paths = xr.open_zarr(out).attrs["wxemu_lead_paths"]
    scores = {float(k): {float(a): b for a, b in v.items()} for k, v in paths["rmse_normalised"].items()}
    assert set(scores) == {1.0, 2.0, 3.0} and set(scores[1.0]) == {0.0, 2.0} and set(scores[2.0]) == {0.0, 1.0}
    assert set(scores[3.0]) == {0.0}
    assert {float(k): v for k, v in paths["lagged"].items()} == choose_lags(scores)
    assert json.loads(json.dumps(paths)) == paths

    assert (
        main(
            [
                "forecast",
                "--checkpoint",
                str(checkpoint),
                "--store",
                uk_store,
                "--init",
                "2019-03-25T00",
                "--lead",
                "3h",
                "--out",
                str(tmp_path / "x.zarr"),
                "--lagged-paths",
                "2019-03-01T00/2019-03-01T05",
            ]
        )
        == 2
    )
    assert "needs analyses from 2 h before the first validation initial time" in capsys.readouterr().err
    assert (
        main(
            [
                "forecast",
                "--checkpoint",
                str(checkpoint),
                "--store",
                uk_store,
                "--init",
                "2019-03-25T00",
                "--lead",
                "3h",
                "--out",
                str(tmp_path / "y.zarr"),
                "--members",
                "2",
                "--lagged-paths",
                "2019-03-22T00/2019-03-22T05",
            ]
        )
        == 2
    )
    assert "not available for ensembles" in capsys.readouterr().err
    assert (
        main(
            [
                "forecast",
                "--checkpoint",
                str(checkpoint),
                "--store",
                uk_store,
                "--init",
                "2019-03-25T00",
                "--lead",
                "3h",
                "--out",
                str(tmp_path / "z.zarr"),
                "--lagged-paths",
                "2019-03-23/2019-03-22",
            ]
        )
        == 2
    )
    assert "lagged_paths '2019-03-23/2019-03-22/1h': END is before START" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("x.zarr", "y.zarr", "z.zarr"))
