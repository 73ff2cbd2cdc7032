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


def _write_raw(path: Path, tensors: dict, header_text: str) -> Path:
    """A safetensors file with an arbitrary (untrusted) wxemu header text."""
    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"wxemu_header": header_text})
    return path


def _valid(tmp_path: Path) -> tuple[dict, dict]:
    model = _model()
    save_checkpoint(tmp_path / "ok.safetensors", model, _header(model))
    return {k: v.contiguous() for k, v in model.state_dict().items()}, read_header(tmp_path / "ok.safetensors")


def test_headers_that_are_not_json_or_lack_keys_are_clear_errors(tmp_path: Path) -> None:
    tensors, header = _valid(tmp_path)
    with pytest.raises(CheckpointError, match="header is not valid JSON"):
        load_checkpoint(_write_raw(tmp_path / "a.safetensors", tensors, "{not json"))
    no_grid = {k: v for k, v in header.items() if k != "grid"}
    with pytest.raises(CheckpointError, match="lacks 'grid'"):
        load_checkpoint(_write_raw(tmp_path / "b.safetensors", tensors, json.dumps(no_grid)))
    with pytest.raises(CheckpointError, match="lacks a list of latitude"):
        load_checkpoint(_write_raw(tmp_path / "c.safetensors", tensors, json.dumps({**header, "grid": {}})))
    with pytest.raises(CheckpointError, match="model_kind 'linear2' is not a model kind"):
        load_checkpoint(
            _write_raw(tmp_path / "d.safetensors", tensors, json.dumps({**header, "model_kind": "linear2"}))
        )


def test_a_header_asking_for_an_enormous_model_is_refused_before_allocating(tmp_path: Path) -> None:
    tensors, header = _valid(tmp_path)
    huge = {**header, "model_config": {**header["model_config"], "latent": 1 << 20, "processor_layers": 64}}
    with pytest.raises(CheckpointError, match="weights do not match the graph model of the header"):
        load_checkpoint(_write_raw(tmp_path / "huge.safetensors", tensors, json.dumps(huge)))
    wide = {**header, "grid": {"latitude": list(range(-60, 60)) * 100, "longitude": header["grid"]["longitude"]}}
    with pytest.raises(CheckpointError, match=r"grid.latitude \(count\) = 12000 is out of bounds"):
        load_checkpoint(_write_raw(tmp_path / "wide.safetensors", tensors, json.dumps(wide)))
    with pytest.raises(CheckpointError, match="history = 100000 is out of bounds"):
        load_checkpoint(_write_raw(tmp_path / "h.safetensors", tensors, json.dumps({**header, "history": 100000})))


def test_paths_in_a_header_are_not_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WXEMU_GRAPH_CACHE_DIR", raising=False)  # the machine's own setting: none
    tensors, header = _valid(tmp_path)
    target = tmp_path / "planted"
    planted = {**header, "model_config": {**header["model_config"], "graph_cache_dir": str(target)}}
    loaded, got = load_checkpoint(_write_raw(tmp_path / "p.safetensors", tensors, json.dumps(planted)))
    assert not target.exists() and loaded.config_dict()["graph_cache_dir"] is None
    # nor are they written: a checkpoint saved from a model with a cache directory does not carry it
    model = build_model(
        "graph", latitude=LAT, longitude=LON, n_state=2, n_forcing=5, config={**TINY, "graph_cache_dir": str(target)}
    )
    save_checkpoint(tmp_path / "q.safetensors", model, _header(model))
    assert "graph_cache_dir" not in read_header(tmp_path / "q.safetensors")["model_config"]
