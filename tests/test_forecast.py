"""`wxemu forecast`: baselines and emulator rollouts on the real UK sample, ensembles, resume, clear errors."""

from __future__ import annotations

from pathlib import Path

import _synthetic
import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from data_catalog.errors import WxemuError
from pipeline import forecast as fc
from pipeline.cli import main


@pytest.fixture(scope="module")
def uk_store() -> str:
    return str(_synthetic.cached_uk_store())


@pytest.fixture(scope="module")
def checkpoint(uk_store: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained tiny graph emulator with a complete header built as `wxemu train` builds it."""
    from models.base import build_model
    from pipeline.checkpoint import save_checkpoint
    from pipeline.datamodule import WindowDataModule
    from pipeline.train import build_header
    from pipeline.train_config import load_train_config

    cfg = load_train_config(None, {"data": {"step_hours": [1, 3]}}).model_dump(mode="json")
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


def test_killed_run_resumes(uk_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "p.zarr"
    args = [
        "forecast",
        "--checkpoint",
        "persistence",
        "--store",
        uk_store,
        "--init",
        "2019-03-27T00/2019-03-27T05/1h",
        "--lead",
        "2h",
        "--out",
        str(out),
        "--batch-size",
        "2",
    ]
    calls: list[list[int]] = []
    real_call = fc.PersistenceForecaster.__call__

    def dying(self, init_idx):
        calls.append(list(init_idx))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the second batch
        return real_call(self, init_idx)

    monkeypatch.setattr(fc.PersistenceForecaster, "__call__", dying)
    assert main(args) == 130
    partial = xr.open_zarr(out)
    assert partial.attrs["wxemu_complete"] is False and partial.attrs["wxemu_inits_done"] == [0, 1]
    monkeypatch.setattr(
        fc.PersistenceForecaster, "__call__", lambda self, idx: calls.append(list(idx)) or real_call(self, idx)
    )
    calls.clear()
    assert main(args) == 0
    assert calls == [[24 * 26 + 2, 24 * 26 + 3], [24 * 26 + 4, 24 * 26 + 5]]  # only the unfinished inits
    done = xr.open_zarr(out)
    assert done.attrs["wxemu_complete"] is True
    truth = xr.open_zarr(uk_store)["2m_temperature"].sel(time=done.time.values).values
    np.testing.assert_array_equal(done["2m_temperature"].values[:, 1], truth)


def test_clear_errors(uk_store: str, checkpoint: Path, tmp_path: Path) -> None:
    def run(*extra: str) -> None:
        args = fc.argparse.Namespace(
            checkpoint="persistence",
            store=uk_store,
            init="2019-03-25T00",
            lead="6h",
            step=None,
            out=str(tmp_path / "x.zarr"),
            members=1,
            perturbation_scale=0.5,
            batch_size=2,
            device="cpu",
            seed=0,
        )
        for item in extra:
            key, value = item.split("=")
            setattr(args, key, type(getattr(args, key))(value) if getattr(args, key) is not None else value)
        fc.run(args)

    with pytest.raises(WxemuError, match="not in the store"):
        run("init=2019-04-02T00")
    with pytest.raises(WxemuError, match="not a multiple"):
        run("lead=7h", "step=3h")
    with pytest.raises(WxemuError, match="cannot parse"):
        run("lead=soon")
    with pytest.raises(WxemuError, match="not a safetensors"):
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(b"\x80\x04junk")
        run(f"checkpoint={bad}")
    with pytest.raises(WxemuError, match="cannot be reached|not a multiple"):
        run(f"checkpoint={checkpoint}", "lead=90min", "step=90min")


def test_init_without_history_is_refused(uk_store: str, tmp_path: Path) -> None:
    """A history-2 emulator cannot start at the store's first time: it needs the hour before."""
    from models.base import build_model
    from pipeline.checkpoint import save_checkpoint
    from pipeline.datamodule import WindowDataModule
    from pipeline.train import build_header
    from pipeline.train_config import load_train_config

    cfg = load_train_config(None, {"data": {"step_hours": [1], "history": 2}}).model_dump(mode="json")
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
        fc.run(
            fc.argparse.Namespace(
                checkpoint=str(ckpt),
                store=uk_store,
                init="2019-03-01T00",
                lead="2h",
                step=None,
                out=str(tmp_path / "h.zarr"),
                members=1,
                perturbation_scale=0.5,
                batch_size=2,
                device="cpu",
                seed=0,
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

    from pipeline.datamodule import read_layout
    from pipeline.rollout import choose_lags

    layout = read_layout(uk_store)
    f = fc.ModelForecaster(str(checkpoint), layout, [1.0, 2.0, 3.0], 1, 0.5, "cpu", 0)
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
    assert "--lagged-paths '2019-03-23/2019-03-22/1h': END is before START" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in ("x.zarr", "y.zarr", "z.zarr"))
