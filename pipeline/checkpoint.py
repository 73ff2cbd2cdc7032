"""Self-contained, pickle-free model checkpoints: ``model.safetensors`` (weights) + ``model.json`` (header).

The header (JSON, also embedded in the safetensors metadata under ``wxemu_header``) holds everything needed to
rebuild and use the model without the training store: model kind and ``config_dict()``, channel names, channel
statistics (mean/std and diff_mean/diff_std per trained step size), grid latitude/longitude, the store's time
step, history, trained step sizes, forcing spec, training config, store provenance and the wxemu version/git
commit. Loading never unpickles: weights go through ``safetensors`` only, and a file that is not a safetensors
file is refused with :class:`CheckpointError`.

``pipeline.training`` writes ``RUN_DIR/model.safetensors`` + ``model.json`` at the end of training (EMA weights when
enabled). Lightning ``.ckpt`` files are kept only for resuming (:func:`check_lightning_checkpoint` reads them
without unpickling code).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from data_catalog.errors import WxemuError
from data_catalog.store import root_attrs
from data_catalog.version import wxemu_version
from models.base import build_model
from models.forcings import forcing_names
from models.registry import model_kinds
from pipeline.normalization import ChannelStats

FORMAT = "wxemu-checkpoint/1"
HEADER_KEY = "wxemu_header"
# Bounds on what a header may ask for (a header is untrusted input): grid points per axis and in all, channels,
# history steps, trained step sizes.
MAX_GRID_AXIS = 10_000
MAX_GRID_POINTS = 4_200_000
MAX_CHANNELS = 10_000
MAX_HISTORY = 64
MAX_STEPS = 64
# model_config keys that name places on the machine that wrote the checkpoint: never honoured from a header
# (nor written into one); the machine that loads a model uses its own settings (e.g. $WXEMU_GRAPH_CACHE_DIR).
PATH_KEY_SUFFIXES = ("_dir", "_path", "_file")


class CheckpointError(WxemuError):
    """A checkpoint is missing, not a safetensors file, or does not match its header."""


def weights_path(path: str | Path) -> Path:
    """``path`` itself, or ``path/model.safetensors`` when ``path`` is a run directory."""
    p = Path(path)
    return p / "model.safetensors" if p.is_dir() else p


def header_path(path: str | Path) -> Path:
    return weights_path(path).with_suffix(".json")


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, (np.datetime64, Path)):
        return str(obj)
    return obj


def save_checkpoint(path: str | Path, model: torch.nn.Module, header: dict[str, Any]) -> Path:
    """Write ``model``'s weights to ``path`` (.safetensors) and ``header`` to the sibling ``.json``.

    ``header`` must be JSON-able after conversion of numpy arrays/dataclasses; ``format`` is added. Returns the
    weights path.
    """
    path = weights_path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {**header, "model_config": without_paths(header.get("model_config", {}))}
    head = _jsonable({"format": FORMAT, **header})
    text = json.dumps(head, indent=1, sort_keys=False)
    model_cpu = model.to("cpu") if any(p.device.type != "cpu" for p in model.parameters()) else model
    save_model(model_cpu, str(path), metadata={HEADER_KEY: json.dumps(head)})
    path.with_suffix(".json").write_text(text + "\n")
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """The header of a checkpoint, from the safetensors metadata (the ``.json`` is a readable copy)."""
    path = weights_path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors checkpoint ({exc}); wxemu never unpickles weights") from exc
    if HEADER_KEY not in meta:
        raise CheckpointError(f"{path}: safetensors file without a wxemu header (not written by wxemu train)")
    try:
        header = json.loads(meta[HEADER_KEY])
    except ValueError as exc:
        raise CheckpointError(f"{path}: the wxemu header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: the wxemu header is not a JSON object")
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {str(header.get('format'))!r}")
    check_header(header, path)
    return header


def without_paths(model_config: dict[str, Any]) -> dict[str, Any]:
    """``model_config`` without the keys that name paths on a machine (see ``PATH_KEY_SUFFIXES``)."""
    return {k: v for k, v in dict(model_config).items() if not str(k).endswith(PATH_KEY_SUFFIXES)}


def _require(header: dict[str, Any], path: Path, key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = header.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, kind):
        raise CheckpointError(f"{path}: the wxemu header lacks {key!r} ({what}); not a checkpoint of wxemu train")
    return value


def _count(value: Any, path: Path, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise CheckpointError(f"{path}: header {key} = {value!r} is out of bounds ({lo}..{hi})")
    return value


def check_header(header: dict[str, Any], path: str | Path) -> None:
    """CheckpointError naming the key unless ``header`` has the schema and bounded sizes of a wxemu header."""
    path = Path(path)
    kind = _require(header, path, "model_kind", str, "the model kind")
    if kind not in model_kinds():
        raise CheckpointError(
            f"{path}: header model_kind {kind!r} is not a model kind of this wxemu ({', '.join(model_kinds())})"
        )
    _require(header, path, "model_config", dict, "the model config")
    names = _require(header, path, "channel_names", list, "the channel names")
    _count(len(names), path, "channel_names (count)", 1, MAX_CHANNELS)
    if not all(isinstance(n, str) for n in names):
        raise CheckpointError(f"{path}: header channel_names must be strings")
    grid = _require(header, path, "grid", dict, "the grid latitude/longitude")
    sizes = []
    for axis in ("latitude", "longitude"):
        values = grid.get(axis)
        if not isinstance(values, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
        ):
            raise CheckpointError(f"{path}: the wxemu header's grid lacks a list of {axis} values")
        sizes.append(_count(len(values), path, f"grid.{axis} (count)", 2, MAX_GRID_AXIS))
    _count(sizes[0] * sizes[1], path, "grid (points)", 4, MAX_GRID_POINTS)
    _count(header.get("n_forcing"), path, "n_forcing", 0, MAX_CHANNELS)
    _count(header.get("history"), path, "history", 1, MAX_HISTORY)
    steps = _require(header, path, "step_hours", list, "the trained step sizes")
    _count(len(steps), path, "step_hours (count)", 1, MAX_STEPS)
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 < s < 1e6 for s in steps):
        raise CheckpointError(f"{path}: header step_hours must be positive hours")
    _require(header, path, "stats", dict, "the channel statistics")
    _require(header, path, "forcing_spec", dict, "the forcing spec")


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from the header (``models.build_model``) and load the weights (strict), no pickle.

    The header is validated (:func:`check_header`), path-valued model config keys are ignored, and the model the
    header describes is first built on the ``meta`` device (no memory) and compared, parameter by parameter, with
    the tensors in the file, so a header cannot make wxemu allocate a model its weights do not hold.
    """
    path = weights_path(path)
    header = read_header(path)
    grid = header["grid"]
    kwargs: dict[str, Any] = {
        "latitude": np.asarray(grid["latitude"], dtype=np.float64),
        "longitude": np.asarray(grid["longitude"], dtype=np.float64),
        "n_state": len(header["channel_names"]),
        "n_forcing": int(header["n_forcing"]),
        "history": int(header["history"]),
        "config": without_paths(header["model_config"]),
    }
    with safe_open(str(path), framework="pt") as f:
        shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    try:
        with torch.device("meta"):
            shell = build_model(header["model_kind"], **kwargs)
    except WxemuError as exc:
        raise CheckpointError(f"{path}: the header describes no valid model: {exc}") from None
    want = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    del shell
    if want != shapes:
        diff = sorted(set(want) ^ set(shapes)) or sorted(k for k in want if want[k] != shapes[k])
        key = diff[0]
        raise CheckpointError(
            f"{path}: weights do not match the {header['model_kind']} model of the header (e.g. {key!r}: "
            f"header {want.get(key, 'absent')}, file {shapes.get(key, 'absent')})"
        )
    model = build_model(header["model_kind"], **kwargs)
    try:
        load_model(model, str(path), strict=True, device=str(device))
    except (RuntimeError, SafetensorError) as exc:
        raise CheckpointError(
            f"{path}: weights do not match the {header['model_kind']} model of the header: {exc}"
        ) from exc
    model.eval()
    return model.to(device), header


def check_lightning_checkpoint(path: str | Path) -> dict[str, Any]:
    """The contents of a Lightning ``.ckpt`` (``RUN_DIR/checkpoints/last.ckpt``) read without unpickling code
    (``torch.load(weights_only=True)``); CheckpointError when it is missing, unreadable or not a training state."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint to resume from")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the same to the user; torch's text is not shown
        raise CheckpointError(
            f"{path}: not a training checkpoint that wxemu can read safely ({type(exc).__name__}); give --resume "
            "the RUN_DIR/checkpoints/last.ckpt that wxemu train wrote"
        ) from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict) or "global_step" not in ckpt:
        raise CheckpointError(f"{path}: not a Lightning training checkpoint (no state_dict/global_step)")
    return ckpt


def stats_from_header(header: dict[str, Any]) -> ChannelStats:
    return ChannelStats.from_dict(header["stats"])


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit() -> str | None:
    """The repository's HEAD commit when wxemu runs from a git checkout, else None."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def build_header(dm: Any, model: Any, config: dict[str, Any], store: str) -> dict[str, Any]:
    """The checkpoint header (pipeline.checkpoint) for a model trained on ``dm``'s store."""
    attrs = root_attrs(store, storage_options=dm.storage_options or None)
    layout = dm.layout
    return {
        "model_kind": config["model"]["kind"],
        "model_config": model.config_dict(),
        "history": dm.history,
        "n_forcing": len(forcing_names(dm.forcing_spec)),
        "channel_names": list(layout.channel_names),
        "stats": dm.stats.to_dict(),
        "grid": {"latitude": layout.latitude.tolist(), "longitude": layout.longitude.tolist()},
        "time_step_hours": layout.step_hours,
        "step_hours": list(dm.step_hours),
        "forcing_spec": dm.forcing_spec.to_dict(),
        "forcing_names": list(forcing_names(dm.forcing_spec)),
        "static_fields": sorted(layout.static),
        "train_config": config,
        "store": {
            "path": str(store),
            "wxemu_version": attrs.get("wxemu_version"),
            "wxemu_sources": attrs.get("wxemu_sources"),
            "wxemu_stats_period": attrs.get("wxemu_stats_period"),
        },
        "wxemu_version": wxemu_version(),
        "git_commit": git_commit(),
    }
