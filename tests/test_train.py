"""`train` end to end on a tiny synthetic store: outputs, config errors, seeded reproducibility, resume, run folders."""

from __future__ import annotations

import csv
import pickle
from pathlib import Path

import _synthetic
import pytest
import torch
import yaml

from data_catalog.errors import ConfigError, WxemuError
from pipeline import TrainConfig, train
from pipeline.checkpoint import CheckpointError, load_checkpoint
from workflows.cli import main

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


def tiny(**changes: dict) -> TrainConfig:
    return TrainConfig.from_dict(TINY_CONFIG).override(changes)


def write_config(path: Path, **changes: dict) -> Path:
    path.write_text(yaml.safe_dump(tiny(**changes).to_dict()))
    return path


def metrics(run: Path) -> list[dict[str, str]]:
    with open(run / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def losses(run: Path) -> dict[int, float]:
    return {int(r["step"]): float(r["train/loss"]) for r in metrics(run) if r.get("train/loss")}


def test_train_writes_model_logs_and_metrics(store: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    result = train(tiny(trainer={"seed": 1}), store=store, out=run, accelerator="cpu", progress=True)
    assert "trainable parameters" in capsys.readouterr().out
    assert result.checkpoint == str(run / "model.safetensors") and result.steps == 4 and result.run_dir == str(run)
    for name in ("model.safetensors", "model.json", "config.yaml", "run.json", "checkpoints/last.ckpt"):
        assert (run / name).exists(), name
    assert TrainConfig.from_yaml(run / "config.yaml") == tiny(trainer={"seed": 1})  # the record reads back
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    rows = metrics(run)
    val = [r for r in rows if r.get("val/rmse/2m_temperature")]
    assert len(val) == 2 and float(val[-1]["val/rmse/2m_temperature"]) > 0
    assert "val/rmse/temperature/850/lead_2h" in rows[0]
    _, header = load_checkpoint(result.checkpoint)
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
    cfg = tiny(trainer={"max_steps": 3, "val_every_n_steps": 100, "log_every_n_steps": 1, "seed": 7})
    for name in ("a", "b"):
        train(cfg, store=store, out=tmp_path / name, accelerator="cpu")
    la, lb = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert len(la) == 3 and la == lb


def test_resume_continues_step_optimizer_and_schedule(store: str, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(tiny(trainer={"max_steps": 2}), store=store, out=run, accelerator="cpu").steps == 2
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["global_step"] == 2
    result = train(tiny(), store=store, out=run, accelerator="cpu", resume=run / "checkpoints" / "last.ckpt")
    assert result.steps == 4 and result.resumed_from_step == 2
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    opt_state = next(iter(last["optimizer_states"][0]["state"].values()))
    assert float(opt_state["step"]) == 4  # Adam moments carried over, not restarted
    assert last["lr_schedulers"][0]["last_epoch"] == 4


def test_killed_run_rerun_with_the_same_command_resumes_and_keeps_its_metrics(store: str, tmp_path: Path) -> None:
    """A run killed after its step-2 checkpoint (what the folder holds then: config, logs, checkpoints/last.ckpt,
    no model) re-run with the same command continues from step 2, keeps the metrics of steps 0-1, and overwrites
    last.ckpt (no last-v1.ckpt)."""
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "c.yaml")
    command = ["train", "--store", store, "--out", str(run), "--config", str(cfg), "--accelerator", "cpu"]
    train(tiny(trainer={"max_steps": 2}), store=store, out=run, accelerator="cpu")
    for name in ("model.safetensors", "model.json"):  # killed before the end: no exported model
        (run / name).unlink()
    before = losses(run)
    assert sorted(before) == [0, 1]
    assert main(command) == 0
    after = losses(run)
    assert sorted(after) == [0, 1, 2, 3] and all(after[s] == before[s] for s in before)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and float(next(iter(last["optimizer_states"][0]["state"].values()))["step"]) == 4
    _, header = load_checkpoint(run)
    assert header["global_step"] == 4
    # the same command once more: the run is complete, nothing is trained again
    result = train(tiny(), store=store, out=run, accelerator="cpu")
    assert result.already_trained and result.steps == 4 and losses(run) == after


def test_out_holding_another_run_is_refused(store: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    train(tiny(trainer={"max_steps": 2}), store=store, out=run, accelerator="cpu")
    stamp = (run / "model.safetensors").stat().st_mtime_ns
    other = write_config(tmp_path / "t.yaml", model={"kind": "transformer", "config": {"dim": 16, "heads": 2}})
    rc = main(["train", "--store", store, "--out", str(run), "--config", str(other), "--accelerator", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "holds another training run (a graph model" in err and "model.kind" in err
    assert "Traceback" not in err and f"delete {run}" in err
    assert (run / "model.safetensors").stat().st_mtime_ns == stamp  # the old run is untouched
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["kind"] == "graph"
    stranger = tmp_path / "notes"
    stranger.mkdir()
    (stranger / "todo.txt").write_text("x")
    with pytest.raises(WxemuError, match="holds no wxemu training run"):
        train(tiny(), store=store, out=stranger, accelerator="cpu")


def test_config_errors_name_file_and_key(tmp_path: Path, store: str, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("data:\n  batch_sise: 4\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*unknown key 'data\.batch_sise'"):
        TrainConfig.from_yaml(bad)
    rc = main(["train", "--store", store, "--out", str(tmp_path / "r"), "--config", str(bad)])
    assert rc == 2 and "unknown key 'data.batch_sise'" in capsys.readouterr().err
    bad.write_text("trainer:\n  max_steps: -3\n")
    with pytest.raises(ConfigError, match="trainer.max_steps"):
        TrainConfig.from_yaml(bad)
    bad.write_text("data:\n  train: ['2019-13-01', '2019-03-21']\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*data\.train: '2019-13-01' is not a date"):
        TrainConfig.from_yaml(bad)
    bad.write_text(yaml.safe_dump({**TINY_CONFIG, "loss": {"variable_weights": {"geopotential": 2.0}}}))
    rc = main(["train", "--store", store, "--out", str(tmp_path / "r"), "--config", str(bad)])
    assert rc == 2 and "loss.variable_weights names variable(s) ['geopotential']" in capsys.readouterr().err
    assert not (tmp_path / "r" / "config.yaml").exists()  # a refused run leaves no record that blocks the fix
    defaults = TrainConfig()
    assert defaults.data.test == ("2019-03-25T00", "2019-03-31T23") and defaults.trainer.precision == "auto"


def test_dates_outside_the_store_are_named(store: str, tmp_path: Path) -> None:
    cfg = tiny(data={"train": ["2019-03-01T00", "2019-03-21T23"]})
    with pytest.raises(WxemuError, match=r"train range 2019-03-01T00 \.\. 2019-03-21T23 lies outside the store"):
        train(cfg, store=store, out=tmp_path / "r", accelerator="cpu")


class _Evil:
    marker = ""

    def __reduce__(self):  # runs at unpickling time
        return (Path.touch, (Path(_Evil.marker),))


def test_garbage_or_malicious_resume_checkpoint_is_refused(
    store: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _Evil.marker = str(tmp_path / "pwned")
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "global_step": 1, "x": _Evil()}, evil)
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(pickle.dumps("x")[:3] + b"\x00garbage")
    for bad in (evil, garbage):
        with pytest.raises(CheckpointError, match="not a training checkpoint that wxemu can read safely") as exc:
            train(tiny(), store=store, out=tmp_path / "r", accelerator="cpu", resume=bad)
        assert "weights_only" not in str(exc.value)
        rc = main(["train", "--store", store, "--out", str(tmp_path / "r"), "--resume", str(bad)])
        err = capsys.readouterr().err
        assert rc == 2 and "Traceback" not in err and "weights_only" not in err
    assert not (tmp_path / "pwned").exists()
    # a real checkpoint of another model is refused before training
    other = tmp_path / "other"
    train(tiny(trainer={"max_steps": 2}), store=store, out=other, accelerator="cpu")
    wider = tiny(model={"config": {"latent": 16, "processor_layers": 1}})
    with pytest.raises(CheckpointError, match="holds the weights of another model"):
        train(wider, store=store, out=tmp_path / "w", accelerator="cpu", resume=other / "checkpoints" / "last.ckpt")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_interrupted_command_says_how_to_resume_and_resumes(store: str, tmp_path: Path) -> None:
    """Ctrl+C (SIGINT) during `wxemu train` ends with what to type; typing it resumes from the last checkpoint."""
    import os
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")]))
    cfg = write_config(tmp_path / "c.yaml", trainer={"max_steps": 24, "val_every_n_steps": 4, "log_every_n_steps": 1})
    run = tmp_path / "run"
    command = [sys.executable, "-m", "workflows.cli", "train", "--store", store, "--out", str(run)]
    command += ["--config", str(cfg), "--accelerator", "cpu", "--quiet"]
    proc = subprocess.Popen(command, cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (run / "checkpoints" / "last.ckpt").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-2000:]
    assert "training interrupted at step" in err and "re-run the same command to resume from" in err
    assert not (run / "model.safetensors").exists()
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 4 <= stopped < 24
    done = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["last.ckpt"]
    assert sorted(losses(run)) == list(range(24))  # the first part's metrics kept, each step once
    assert load_checkpoint(run)[1]["global_step"] == 24
