"""`wxemu train` end to end on a tiny synthetic store: outputs, config errors, seeded reproducibility, resume."""

from __future__ import annotations

import csv
from pathlib import Path

import _synthetic
import pytest
import torch
import yaml

from pipeline.cli import main
from pipeline.train_config import load_train_config

TINY_CONFIG = {
    "model": {"config": {"latent": 8, "processor_layers": 1}},
    "data": {
        "train": ["2020-01-01T00", "2020-01-02T05"],
        "val": ["2020-01-02T06", "2020-01-02T23"],
        "test": ["2020-01-02T06", "2020-01-02T23"],
        "step_hours": [1, 3],
        "batch_size": 4,
        "num_workers": 0,
    },
    "rollout": {"max_steps": 2, "ramp_fraction": 0.5},
    "optim": {"warmup_steps": 2},
    "trainer": {"max_steps": 4, "val_every_n_steps": 2, "log_every_n_steps": 1},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("train") / "s.zarr"
    return str(_synthetic.write_canonical_store(_synthetic.synthetic_dataset(n_time=48), path))


def write_config(path: Path, **changes: dict) -> Path:
    cfg = {k: dict(v) for k, v in TINY_CONFIG.items()}
    for section, values in changes.items():
        cfg[section].update(values)
    path.write_text(yaml.safe_dump(cfg))
    return path


def losses(run: Path) -> dict[int, float]:
    with open(run / "csv" / "metrics.csv") as f:
        return {int(r["step"]): float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")}


def test_train_writes_model_logs_and_metrics(store: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from pipeline.checkpoint import load_checkpoint

    run = tmp_path / "run"
    rc = main(
        [
            "train",
            "--model",
            "graph",
            "--store",
            store,
            "--out",
            str(run),
            "--config",
            str(write_config(tmp_path / "c.yaml")),
            "--accelerator",
            "cpu",
            "--seed",
            "1",
        ]
    )
    assert rc == 0
    assert "trainable parameters" in capsys.readouterr().out
    for name in ("model.safetensors", "model.json", "config.yaml", "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    val = [r for r in rows if r.get("val/rmse/2m_temperature")]
    assert len(val) == 2 and float(val[-1]["val/rmse/2m_temperature"]) > 0
    assert "val/rmse/temperature/850/lead_2h" in rows[0]
    _, header = load_checkpoint(run / "model.safetensors")
    assert header["global_step"] == 4 and header["step_hours"] == [1.0, 3.0]
    assert header["channel_names"] == ["2m_temperature", "temperature/500", "temperature/850"]
    assert header["forcing_spec"]["static"] == ["land_sea_mask"] and header["n_forcing"] == 9
    assert header["forcing_spec"]["climatology"] == header["channel_names"]  # climatology_forcing defaults on
    assert set(header["stats"]["diff_std"]) == {"1", "3"}
    assert header["train_config"]["trainer"]["seed"] == 1 and header["store"]["path"] == store
    # the Lightning checkpoint loads without unpickling arbitrary objects
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 4


def test_same_seed_same_losses(store: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", trainer={"max_steps": 3, "val_every_n_steps": 100, "log_every_n_steps": 1})
    for name in ("a", "b"):
        assert (
            main(
                [
                    "train",
                    "--store",
                    store,
                    "--out",
                    str(tmp_path / name),
                    "--config",
                    str(cfg),
                    "--accelerator",
                    "cpu",
                    "--seed",
                    "7",
                ]
            )
            == 0
        )
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(la) == 3 and la == lb


def test_resume_continues_step_optimizer_and_schedule(store: str, tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "c.yaml", trainer={"max_steps": 4, "val_every_n_steps": 2, "log_every_n_steps": 1})
    run = tmp_path / "run"
    base = ["train", "--store", store, "--out", str(run), "--config", str(cfg), "--accelerator", "cpu"]
    assert main(base + ["--max-steps", "2"]) == 0
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 2
    assert main(base + ["--max-steps", "4", "--resume", str(run / "checkpoints" / "last.ckpt")]) == 0
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    opt_state = next(iter(last["optimizer_states"][0]["state"].values()))
    assert float(opt_state["step"]) == 4  # Adam moments carried over, not restarted
    assert last["lr_schedulers"][0]["last_epoch"] == 4


def test_config_errors_name_file_and_key(tmp_path: Path, store: str, capsys: pytest.CaptureFixture) -> None:
    from data_catalog.errors import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  batch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown key 'data\.batch_sise'"):
        load_train_config(bad)
    rc = main(["train", "--store", store, "--out", str(tmp_path / "r"), "--config", str(bad)])
    assert rc == 2 and "unknown key 'data.batch_sise'" in capsys.readouterr().err
    bad.write_text("trainer:\n  max_steps: -3\n")
    with pytest.raises(ConfigError, match="trainer.max_steps"):
        load_train_config(bad)
    bad.write_text(yaml.safe_dump({**TINY_CONFIG, "loss": {"variable_weights": {"geopotential": 2.0}}}))
    rc = main(["train", "--store", store, "--out", str(tmp_path / "r"), "--config", str(bad)])
    assert rc == 2 and "loss.variable_weights names variable(s) ['geopotential']" in capsys.readouterr().err
    defaults = load_train_config()
    assert defaults.data.test == ("2019-03-25T00", "2019-03-31T23") and defaults.trainer.precision == "auto"
