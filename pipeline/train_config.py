"""Typed training configuration (``TrainConfig``; ``wxemu train --config FILE.yaml``), validated on construction.

Frozen dataclasses, one per YAML section; every key is optional and the defaults train on the bundled UK sample
(ERA5 2 m temperature, March 2019, hourly) in a few minutes on 2 CPU cores. Unknown keys and bad values raise
:class:`~data_catalog.errors.ConfigError` naming the file (``from_yaml``) and the key (``section.key``).
``to_dict()`` is the plain, JSON-able form recorded in ``RUN_DIR/config.yaml`` and in the checkpoint header.

Example YAML (every key optional)::

    model: {kind: graph, config: {}}   # passed to models.build_model(kind, config=...)
    data:
      train: ["2019-03-01", "2019-03-21T23"]
      val: ["2019-03-22", "2019-03-24T23"]
      test: ["2019-03-25", "2019-03-31T23"]
      history: 1
      step_hours: [1, 3, 6]
      batch_size: 4
      num_workers: 1
    rollout: {max_steps: 2, ramp_fraction: 0.5}
    optim: {lr: 1.0e-3, weight_decay: 0.01, warmup_steps: 20, grad_clip: 1.0}
    loss: {variable_weights: {2m_temperature: 1.0}, level_weights: {"850": 1.0}}
    trainer: {max_steps: 60, precision: auto, ema_decay: null, val_every_n_steps: 30, limit_val_batches: 8}
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from data_catalog.errors import ConfigError
from models.registry import model_kinds

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true")


# ------------------------------------------------------------------------------------------------ value checks
def _int(value: Any, key: str, *, lo: int | None = None) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}: expected an integer, got {value!r}")
    if lo is not None and value < lo:
        raise ConfigError(f"{key}: must be >= {lo}, got {value}")
    return value


def _float(value: Any, key: str, *, gt: float | None = None, ge: float | None = None, le: float | None = None) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    value = float(value)
    if (gt is not None and value <= gt) or (ge is not None and value < ge) or (le is not None and value > le):
        bounds = " and ".join(
            f"{op} {b:g}" for op, b in ((">", gt), (">=", ge), ("<=", le)) if b is not None
        )  # e.g. "> 0 and <= 1"
        raise ConfigError(f"{key}: must be {bounds}, got {value:g}")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}: expected a mapping, got {value!r}")
    return {str(k): v for k, v in value.items()}


def _date_range(value: Any, key: str) -> tuple[str, str]:
    """A pair [START, END] of dates (ISO strings), START <= END."""
    if isinstance(value, str) or not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError(f"{key}: expected [START, END], got {value!r}")
    out = []
    for v in value:
        text = v.isoformat() if isinstance(v, (_dt.date, _dt.datetime)) else v
        if not isinstance(text, str):
            raise ConfigError(f"{key}: {v!r} is not a date (use e.g. 2019-03-01T00)")
        try:
            stamp = pd.Timestamp(text)
        except (ValueError, TypeError, OverflowError):
            stamp = pd.NaT
        if stamp is pd.NaT:
            raise ConfigError(f"{key}: {text!r} is not a date (use e.g. 2019-03-01T00)")
        out.append(text)
    if pd.Timestamp(out[0]) > pd.Timestamp(out[1]):
        raise ConfigError(f"{key}: END {out[1]} is before START {out[0]}")
    return out[0], out[1]


def _set(obj: Any, name: str, value: Any) -> None:
    object.__setattr__(obj, name, value)


# ------------------------------------------------------------------------------------------------ sections
@dataclasses.dataclass(frozen=True)
class ModelSection:
    """The model: ``kind`` (a registered kind, set by ``--model``) and the config passed to ``build_model``."""

    kind: str = "graph"
    config: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in model_kinds():
            raise ConfigError(f"model.kind: {self.kind!r} is not a model kind (choose {', '.join(model_kinds())})")
        _set(self, "config", _mapping(self.config, "model.config"))


@dataclasses.dataclass(frozen=True)
class DataSection:
    """Date ranges (inclusive, ISO strings) and sampling. Windows lie entirely inside their split's range."""

    train: tuple[str, str] = ("2019-03-01T00", "2019-03-21T23")
    val: tuple[str, str] = ("2019-03-22T00", "2019-03-24T23")
    test: tuple[str, str] = ("2019-03-25T00", "2019-03-31T23")
    history: int = 1  # input time steps t-(history-1)*dt .. t
    step_hours: tuple[float, ...] = (1.0, 3.0, 6.0)  # step sizes trained (hours); multiples of the store's step
    batch_size: int = 4
    num_workers: int = 1
    prefetch_factor: int = 2
    contiguous_batches: bool = True  # batches of consecutive windows read as one time block (fast; less shuffled)
    # give the model the store's climatology of each state channel at the target time (computed on the store's
    # stats period: keep that inside the training range)
    climatology_forcing: bool = True
    # give the model each state channel's change over the same hour yesterday (the analyses 24 h and 24 h + one
    # store step before the target time; from the forecast itself beyond +24 h)
    yesterday_change: bool = False
    diff_stats_samples: int = 128  # training times used to estimate dt-hour diff stats
    storage_options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for split in ("train", "val", "test"):
            _set(self, split, _date_range(getattr(self, split), f"data.{split}"))
        _set(self, "history", _int(self.history, "data.history", lo=1))
        steps = self.step_hours
        if isinstance(steps, (str, int, float)) or not steps:
            raise ConfigError("data.step_hours: must be a non-empty list of positive hours")
        steps = [_float(s, "data.step_hours", gt=0) for s in steps]
        _set(self, "step_hours", tuple(sorted(set(steps))))
        _set(self, "batch_size", _int(self.batch_size, "data.batch_size", lo=1))
        _set(self, "num_workers", _int(self.num_workers, "data.num_workers", lo=0))
        _set(self, "prefetch_factor", _int(self.prefetch_factor, "data.prefetch_factor", lo=1))
        _set(self, "contiguous_batches", _bool(self.contiguous_batches, "data.contiguous_batches"))
        _set(self, "climatology_forcing", _bool(self.climatology_forcing, "data.climatology_forcing"))
        _set(self, "yesterday_change", _bool(self.yesterday_change, "data.yesterday_change"))
        _set(self, "diff_stats_samples", _int(self.diff_stats_samples, "data.diff_stats_samples", lo=2))
        _set(self, "storage_options", _mapping(self.storage_options, "data.storage_options"))


@dataclasses.dataclass(frozen=True)
class RolloutSection:
    """Multi-step loss: the number of autoregressive steps rises 1 -> ``max_steps`` over ``ramp_fraction``."""

    max_steps: int = 2
    ramp_fraction: float = 0.5

    def __post_init__(self) -> None:
        _set(self, "max_steps", _int(self.max_steps, "rollout.max_steps", lo=1))
        _set(self, "ramp_fraction", _float(self.ramp_fraction, "rollout.ramp_fraction", ge=0, le=1))


@dataclasses.dataclass(frozen=True)
class OptimSection:
    """AdamW with linear warm-up and cosine decay (to ``min_lr_factor`` x lr), gradient-norm clipping."""

    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = 20
    min_lr_factor: float = 0.05
    grad_clip: float | None = 1.0

    def __post_init__(self) -> None:
        _set(self, "lr", _float(self.lr, "optim.lr", gt=0))
        _set(self, "weight_decay", _float(self.weight_decay, "optim.weight_decay", ge=0))
        if isinstance(self.betas, str) or not isinstance(self.betas, (list, tuple)) or len(self.betas) != 2:
            raise ConfigError(f"optim.betas: expected two numbers, got {self.betas!r}")
        _set(self, "betas", tuple(_float(b, "optim.betas") for b in self.betas))
        _set(self, "warmup_steps", _int(self.warmup_steps, "optim.warmup_steps", lo=0))
        _set(self, "min_lr_factor", _float(self.min_lr_factor, "optim.min_lr_factor", ge=0, le=1))
        if self.grad_clip is not None:
            _set(self, "grad_clip", _float(self.grad_clip, "optim.grad_clip", gt=0))


@dataclasses.dataclass(frozen=True)
class LossSection:
    """Per-variable and per-level weights of the area-weighted MSE (missing -> 1)."""

    variable_weights: dict[str, float] = dataclasses.field(default_factory=dict)
    level_weights: dict[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("variable_weights", "level_weights"):
            key = f"loss.{name}"
            weights = _mapping(getattr(self, name), key)
            _set(self, name, {k: _float(w, f"{key}.{k}") for k, w in weights.items()})


@dataclasses.dataclass(frozen=True)
class TrainerSection:
    """Lightning trainer settings."""

    max_steps: int = 60
    precision: str = "auto"
    ema_decay: float | None = None
    val_every_n_steps: int = 30
    log_every_n_steps: int = 10
    limit_val_batches: int | float = 8
    seed: int = 0
    deterministic: bool = False
    # write each rank's window indices and final weights to RUN_DIR/ranks/ (distributed tests)
    debug_ranks: bool = False

    def __post_init__(self) -> None:
        _set(self, "max_steps", _int(self.max_steps, "trainer.max_steps", lo=1))
        if self.precision not in PRECISIONS:
            raise ConfigError(f"trainer.precision: {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.ema_decay is not None:
            decay = _float(self.ema_decay, "trainer.ema_decay", gt=0)
            if decay >= 1:
                raise ConfigError(f"trainer.ema_decay: must be < 1, got {decay:g}")
            _set(self, "ema_decay", decay)
        _set(self, "val_every_n_steps", _int(self.val_every_n_steps, "trainer.val_every_n_steps", lo=1))
        _set(self, "log_every_n_steps", _int(self.log_every_n_steps, "trainer.log_every_n_steps", lo=1))
        limit = self.limit_val_batches
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
            raise ConfigError(f"trainer.limit_val_batches: expected a positive number, got {limit!r}")
        _set(self, "seed", _int(self.seed, "trainer.seed"))
        _set(self, "deterministic", _bool(self.deterministic, "trainer.deterministic"))
        _set(self, "debug_ranks", _bool(self.debug_ranks, "trainer.debug_ranks"))


SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "data": DataSection,
    "rollout": RolloutSection,
    "optim": OptimSection,
    "loss": LossSection,
    "trainer": TrainerSection,
}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------------------------------------ config
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (how the run executes is ``pipeline.training.train``'s keywords)."""

    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    data: DataSection = dataclasses.field(default_factory=DataSection)
    rollout: RolloutSection = dataclasses.field(default_factory=RolloutSection)
    optim: OptimSection = dataclasses.field(default_factory=OptimSection)
    loss: LossSection = dataclasses.field(default_factory=LossSection)
    trainer: TrainerSection = dataclasses.field(default_factory=TrainerSection)

    def __post_init__(self) -> None:
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name}: expected a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.data.history > 1 and len(self.data.step_hours) > 1:
            raise ConfigError("data.history: history > 1 needs a single step size (data.step_hours with one value)")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, *, where: str = "training config") -> TrainConfig:
        """Build from nested plain values (a parsed YAML file); ConfigError names ``where`` and the key."""
        raw = dict(raw or {})
        try:
            unknown = sorted(set(raw) - set(SECTIONS))
            if unknown:
                raise ConfigError(f"unknown key {unknown[0]!r} (sections: {', '.join(SECTIONS)})")
            sections = {}
            for name, section_cls in SECTIONS.items():
                values = raw.get(name) or {}
                if not isinstance(values, Mapping):
                    raise ConfigError(f"section {name!r} must be a mapping")
                known = {f.name for f in dataclasses.fields(section_cls)}
                extra = sorted(set(map(str, values)) - known)
                if extra:
                    raise ConfigError(f"unknown key '{name}.{extra[0]}' (valid: {', '.join(sorted(known))})")
                sections[name] = section_cls(**{str(k): v for k, v in values.items()})
            return cls(**sections)
        except ConfigError as exc:
            raise ConfigError(f"{where}: invalid training config: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        """Read and validate a YAML training config; ConfigError names the file and the key."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the training config: {exc.strerror}") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the training config must be a mapping, got {type(loaded).__name__}")
        return cls.from_dict(loaded, where=str(path))

    def to_dict(self) -> dict[str, Any]:
        """Nested plain (JSON/YAML-able) values: what ``from_dict`` reads back."""
        return {name: _plain(dataclasses.asdict(getattr(self, name))) for name in SECTIONS}

    def override(self, changes: Mapping[str, Mapping[str, Any]], *, where: str = "overrides") -> TrainConfig:
        """A copy with ``{section: {key: value}}`` replaced (e.g. ``{"trainer": {"max_steps": 10}}``)."""
        raw = self.to_dict()
        for section, values in changes.items():
            if section not in raw:
                raise ConfigError(f"{where}: unknown section {section!r}")
            raw[section].update(values)
        return TrainConfig.from_dict(raw, where=where)


def default_config_path(kind: str) -> Path:
    """The packaged config of model ``kind`` (``pipeline/configs/demo_KIND.yaml``): what ``wxemu train --model
    KIND`` trains without ``--config``, and what the demo trains."""
    return Path(__file__).resolve().parent / "configs" / f"demo_{kind}.yaml"
