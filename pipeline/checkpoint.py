"""Self-contained, pickle-free model checkpoints: ``model.safetensors`` (weights) + ``model.json`` (header).

The header (JSON, also embedded in the safetensors metadata under ``wxemu_header``) holds everything needed to
rebuild and use the model without the training store: model kind and ``config_dict()``, channel names, channel
statistics (mean/std and diff_mean/diff_std per trained step size), grid latitude/longitude, the store's time
step, history, trained step sizes, forcing spec, training config, store provenance and the wxemu version/git
commit. Loading never unpickles: weights go through ``safetensors`` only, and a file that is not a safetensors
file is refused with :class:`CheckpointError`.

A Lightning callback (:class:`ExportModelCallback`) writes ``RUN_DIR/model.safetensors`` + ``model.json`` at
the end of training (EMA weights when enabled). Lightning ``.ckpt`` files are kept only for ``--resume``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_model

from data_catalog.errors import WxemuError
from pipeline.normalization import ChannelStats

FORMAT = "wxemu-checkpoint/1"
HEADER_KEY = "wxemu_header"


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
    header = json.loads(meta[HEADER_KEY])
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unsupported checkpoint format {header.get('format')!r}")
    return header


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu") -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the model from the header (``models.build_model``) and load the weights (strict), no pickle."""
    from models.base import build_model

    path = weights_path(path)
    header = read_header(path)
    grid = header["grid"]
    model = build_model(
        header["model_kind"],
        latitude=np.asarray(grid["latitude"]),
        longitude=np.asarray(grid["longitude"]),
        n_state=len(header["channel_names"]),
        n_forcing=int(header["n_forcing"]),
        history=int(header["history"]),
        config=header["model_config"],
    )
    try:
        load_model(model, str(path), strict=True, device=str(device))
    except (RuntimeError, SafetensorError) as exc:
        raise CheckpointError(
            f"{path}: weights do not match the {header['model_kind']} model of the header: {exc}"
        ) from exc
    model.eval()
    return model.to(device), header


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


def wxemu_version() -> str:
    try:
        from importlib.metadata import version

        return version("wxemu")
    except ImportError:
        return "unknown"


class ExportModelCallback(pl.Callback):
    """At the end of ``fit`` (rank 0), export the eval weights (EMA if on) to ``run_dir/model.safetensors``."""

    def __init__(self, run_dir: str | Path, header: dict[str, Any]) -> None:
        self.run_dir = Path(run_dir)
        self.header = header

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.is_global_zero:
            model = getattr(pl_module, "eval_model", pl_module)
            header = {
                **self.header,
                "global_step": int(trainer.global_step),
                "weights": "ema" if getattr(pl_module, "ema", None) is not None else "last",
            }
            was = next(model.parameters()).device
            save_checkpoint(self.run_dir / "model.safetensors", model, header)
            model.to(was)
