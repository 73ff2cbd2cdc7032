"""pipeline.checkpoint: self-contained safetensors checkpoints that never unpickle."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from models.base import build_model
from pipeline.checkpoint import CheckpointError, load_checkpoint, read_header, save_checkpoint, stats_from_header
from pipeline.normalization import ChannelStats

LAT = np.linspace(-80.0, 80.0, 8)
LON = np.arange(12) * 30.0
TINY = {"latent": 8, "processor_layers": 1}


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model("graph", latitude=LAT, longitude=LON, n_state=2, n_forcing=5, config=TINY)


def _header(model: torch.nn.Module) -> dict:
    stats = ChannelStats(
        names=["a", "b/850"],
        mean=np.array([1.0, 2.0]),
        std=np.array([3.0, 4.0]),
        diff_mean={1: np.zeros(2)},
        diff_std={1: np.ones(2)},
    )
    return {
        "model_kind": "graph",
        "model_config": model.config_dict(),
        "history": 1,
        "n_forcing": 5,
        "channel_names": ["a", "b/850"],
        "stats": stats.to_dict(),
        "grid": {"latitude": LAT, "longitude": LON},
        "time_step_hours": 1.0,
        "step_hours": [1.0],
        "forcing_spec": {"static": []},
    }


def test_roundtrip_same_outputs(tmp_path: Path) -> None:
    model = _model()
    path = save_checkpoint(tmp_path / "run" / "model.safetensors", model, _header(model))
    assert path.exists() and (tmp_path / "run" / "model.json").exists()
    assert json.loads((tmp_path / "run" / "model.json").read_text())["channel_names"] == ["a", "b/850"]
    loaded, header = load_checkpoint(tmp_path / "run")  # a run directory works too
    assert header["format"] == "wxemu-checkpoint/1" and header["grid"]["latitude"] == LAT.tolist()
    assert stats_from_header(header).std.tolist() == [3.0, 4.0]
    x, f, lead = torch.randn(2, 2, 8, 12), torch.randn(2, 5, 8, 12), torch.ones(2)
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, f, lead), model(x, f, lead))


class _Evil:
    def __reduce__(self):  # runs at unpickling time
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Evil.marker),))


def test_pickle_is_refused_and_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _Evil.marker = str(marker)
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(pickle.dumps({"weights": _Evil()}))
    with pytest.raises(CheckpointError, match="not a safetensors checkpoint"):
        load_checkpoint(bad)
    torch.save({"weights": _Evil()}, tmp_path / "torch.safetensors")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(tmp_path / "torch.safetensors")
    assert not marker.exists()


def test_missing_header_and_wrong_weights(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="without a wxemu header"):
        read_header(tmp_path / "plain.safetensors")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "absent.safetensors")
    model = _model()
    header = _header(model)
    header["model_config"] = {**header["model_config"], "latent": 16}
    save_checkpoint(tmp_path / "m.safetensors", model, header)
    with pytest.raises(CheckpointError, match="do not match"):
        load_checkpoint(tmp_path / "m.safetensors")
