"""A training run directory: what run it holds, and whether a new ``train`` call resumes, starts or is refused.

A run directory holds ``config.yaml`` (the resolved ``TrainConfig``, readable by ``TrainConfig.from_yaml``),
``run.json`` (the store trained on), ``checkpoints/last.ckpt`` (Lightning), ``csv/metrics.csv``,
``tensorboard/`` and, once training finished, ``model.safetensors`` + ``model.json``. Two calls train *the same
run* when their configs agree on everything but ``IDENTITY_EXEMPT`` (how long and how it runs) and their stores
are the same; a different run is refused, never mixed into the folder.
"""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml

from data_catalog.errors import WxemuError
from pipeline.checkpoint import check_lightning_checkpoint, read_header

CONFIG_FILE = "config.yaml"
RUN_FILE = "run.json"
LAST_CKPT = Path("checkpoints") / "last.ckpt"
METRICS_FILE = Path("csv") / "metrics.csv"
MODEL_FILES = ("model.safetensors", "model.json")
IDENTITY_EXEMPT = (("trainer", "max_steps"), ("data", "num_workers"), ("data", "prefetch_factor"))


class RunDirError(WxemuError):
    """``--out`` holds something other than this training run."""


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What ``train`` does in ``run_dir``: ``resume_from`` (a Lightning checkpoint or None: from step 0),
    ``resume_step`` (its global step), ``finished`` (the run already reached its max_steps: nothing to do)."""

    run_dir: Path
    resume_from: Path | None = None
    resume_step: int = 0
    finished: bool = False


def _identity(config: dict[str, Any]) -> dict[str, Any]:
    ident = json.loads(json.dumps(config))
    for section, key in IDENTITY_EXEMPT:
        ident.get(section, {}).pop(key, None)
    return ident


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in sorted(set(old) | set(new), key=str):
            out += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return out
    return [] if old == new else [prefix.rstrip(".")]


def plan_run(run_dir: str | Path, config: dict[str, Any], store: str, resume: str | Path | None) -> RunPlan:
    """Decide how to train ``config`` on ``store`` into ``run_dir``.

    Empty or missing folder: from step 0. The same run (``config.yaml`` and ``run.json`` agree): resume from
    ``resume`` if given, else from ``checkpoints/last.ckpt`` when there is one; ``finished`` when that
    checkpoint reached ``trainer.max_steps`` and the model was exported. Anything else: RunDirError saying what
    is there and what to type.
    """
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir}: exists and is not a directory; choose another --out")
    entries = sorted(p.name for p in run_dir.iterdir()) if run_dir.is_dir() else []
    explicit = Path(resume) if resume else None
    if explicit is not None:
        check_lightning_checkpoint(explicit)
    if not entries:
        if explicit is not None:
            step = int(check_lightning_checkpoint(explicit)["global_step"])
            return RunPlan(run_dir, explicit, step)
        return RunPlan(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    try:
        old = yaml.safe_load(cfg_path.read_text()) if cfg_path.is_file() else None
    except (OSError, yaml.YAMLError):
        old = None
    if not isinstance(old, dict):
        raise RunDirError(
            f"{run_dir}: is not empty and holds no wxemu training run (no readable {CONFIG_FILE}: "
            f"{', '.join(entries[:5])}{' ...' if len(entries) > 5 else ''}); choose a new or empty --out"
        )
    diffs = _differences(_identity(old), _identity(config))
    old_store = _recorded_store(run_dir)
    if old_store is not None and old_store != str(store):
        diffs.append(f"store ({old_store})")
    if diffs:
        kind = (old.get("model") or {}).get("kind", "?") if isinstance(old.get("model"), dict) else "?"
        raise RunDirError(
            f"{run_dir}: holds another training run (a {kind} model; its config differs in "
            f"{', '.join(diffs[:6])}{' ...' if len(diffs) > 6 else ''}); choose another --out, or delete "
            f"{run_dir} to replace that run"
        )
    if explicit is not None:
        return RunPlan(run_dir, explicit, int(check_lightning_checkpoint(explicit)["global_step"]))
    last = run_dir / LAST_CKPT
    if not last.is_file():
        return RunPlan(run_dir)  # killed before its first checkpoint: start again
    step = int(check_lightning_checkpoint(last)["global_step"])
    max_steps = int(config["trainer"]["max_steps"])
    model = run_dir / MODEL_FILES[0]
    if step >= max_steps and model.is_file() and int(read_header(model).get("global_step", -1)) >= max_steps:
        return RunPlan(run_dir, None, step, finished=True)
    return RunPlan(run_dir, last, step)


def _recorded_store(run_dir: Path) -> str | None:
    try:
        record = json.loads((run_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return str(record["store"]) if isinstance(record, dict) and "store" in record else None


def record_run(run_dir: str | Path, config: dict[str, Any], store: str) -> None:
    """Write ``config.yaml`` and ``run.json`` (rank 0 only)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(yaml.safe_dump(config, sort_keys=False))
    (run_dir / RUN_FILE).write_text(json.dumps({"store": str(store)}, indent=1) + "\n")


def remove_model(run_dir: str | Path) -> None:
    """Delete an exported model before training changes it, so no stale model outlives a killed run."""
    for name in MODEL_FILES:
        (Path(run_dir) / name).unlink(missing_ok=True)


def kept_metrics(run_dir: str | Path, up_to_step: int) -> tuple[list[str], list[dict[str, str]]]:
    """(header, rows) of ``csv/metrics.csv`` logged at steps <= ``up_to_step`` (the rows a resumed run keeps)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return [], []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        rows = [r for r in reader if not r.get("step") or int(float(r["step"])) <= up_to_step]
        return list(reader.fieldnames or []), rows


def restore_metrics(run_dir: str | Path, header: list[str], rows: list[dict[str, str]]) -> None:
    """Write ``rows`` back to ``csv/metrics.csv`` (after the logger cleared it)."""
    path = Path(run_dir) / METRICS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header)
        writer.writeheader()
        writer.writerows(rows)
