"""Typed training configuration (``wxemu train --config FILE.yaml``), validated at load.

Every section is a pydantic model that forbids unknown keys; :func:`load_train_config` turns any validation
failure into a :class:`~data_catalog.errors.ConfigError` naming the file and the offending key. The defaults
train on the bundled UK sample (ERA5 2 m temperature, March 2019, hourly) in a few minutes on 2 CPU cores.

Example YAML (every key optional)::

    model: {config: {}}          # passed to models.build_model(kind, config=...)
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

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_catalog.errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSection(_Strict):
    """The model: ``kind`` (set by ``--model``) and the config dict passed through to ``build_model``."""

    kind: Literal["graph", "transformer", "linear"] = "graph"  # skill branch: + linear (pipeline/linear_fit.py)
    config: dict[str, Any] = Field(default_factory=dict)


class DataSection(_Strict):
    """Date ranges (inclusive, ISO strings) and sampling. Windows lie entirely inside their split's range."""

    train: tuple[str, str] = ("2019-03-01T00", "2019-03-21T23")
    val: tuple[str, str] = ("2019-03-22T00", "2019-03-24T23")
    test: tuple[str, str] = ("2019-03-25T00", "2019-03-31T23")
    history: int = Field(1, ge=1, description="input time steps t-(history-1)*dt .. t")
    step_hours: list[float] = Field(
        default_factory=lambda: [1.0, 3.0, 6.0], description="step sizes trained (hours); multiples of the store's step"
    )
    batch_size: int = Field(4, ge=1)
    num_workers: int = Field(1, ge=0)
    prefetch_factor: int = Field(2, ge=1)
    contiguous_batches: bool = Field(
        True, description="batches of consecutive windows read as one time block (fast; less shuffled)"
    )
    climatology_forcing: bool = Field(
        True,
        description="give the model the store's climatology of each state channel at the target time "
        "(computed on the store's stats period: keep that inside the training range)",
    )
    diff_stats_samples: int = Field(128, ge=2, description="training times used to estimate dt-hour diff stats")
    storage_options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("step_hours")
    @classmethod
    def _positive_steps(cls, v: list[float]) -> list[float]:
        if not v or any(s <= 0 for s in v):
            raise ValueError("step_hours must be a non-empty list of positive hours")
        return sorted({float(s) for s in v})


class RolloutSection(_Strict):
    """Multi-step loss: the number of autoregressive steps rises 1 -> ``max_steps`` over ``ramp_fraction``."""

    max_steps: int = Field(2, ge=1)
    ramp_fraction: float = Field(0.5, ge=0.0, le=1.0)


class OptimSection(_Strict):
    """AdamW with linear warm-up and cosine decay (to ``min_lr_factor`` x lr), gradient-norm clipping."""

    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    betas: tuple[float, float] = (0.9, 0.95)
    warmup_steps: int = Field(20, ge=0)
    min_lr_factor: float = Field(0.05, ge=0, le=1)
    grad_clip: float | None = Field(1.0, gt=0)


class LossSection(_Strict):
    """Per-variable and per-level weights of the area-weighted MSE (missing -> 1)."""

    variable_weights: dict[str, float] = Field(default_factory=dict)
    level_weights: dict[str, float] = Field(default_factory=dict)

    @field_validator("level_weights", mode="before")
    @classmethod
    def _level_keys_as_str(cls, v: Any) -> Any:
        return {str(k): w for k, w in v.items()} if isinstance(v, dict) else v


class TrainerSection(_Strict):
    """Lightning trainer settings."""

    max_steps: int = Field(60, ge=1)
    precision: Literal["auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "auto"
    ema_decay: float | None = Field(None, gt=0, lt=1)
    val_every_n_steps: int = Field(30, ge=1)
    log_every_n_steps: int = Field(10, ge=1)
    limit_val_batches: int | float = 8
    seed: int = 0
    deterministic: bool = False
    debug_ranks: bool = Field(
        False, description="write each rank's window indices and final weights to RUN_DIR/ranks/ (distributed tests)"
    )


class TrainConfig(_Strict):
    model: ModelSection = Field(default_factory=ModelSection)
    data: DataSection = Field(default_factory=DataSection)
    rollout: RolloutSection = Field(default_factory=RolloutSection)
    optim: OptimSection = Field(default_factory=OptimSection)
    loss: LossSection = Field(default_factory=LossSection)
    trainer: TrainerSection = Field(default_factory=TrainerSection)

    @model_validator(mode="after")
    def _history_and_steps(self) -> TrainConfig:
        if self.data.history > 1 and len(self.data.step_hours) > 1:
            raise ValueError("history > 1 needs a single step size (data.step_hours with one value)")
        return self


def _describe(error: ValidationError) -> str:
    parts = []
    for e in error.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key {key!r}")
        else:
            parts.append(f"{key}: {e['msg']}")
    return "; ".join(parts)


def load_train_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read and validate a YAML training config (None: the defaults), then apply nested ``overrides``.

    Raises ConfigError naming the file and the key for unknown keys and bad values.
    """
    raw: dict[str, Any] = {}
    where = "defaults"
    if path is not None:
        where = str(path)
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
        raw = loaded or {}
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {})
        if not isinstance(raw[section], dict):
            raise ConfigError(f"{where}: section {section!r} must be a mapping")
        raw[section].update(values)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: invalid training config: {_describe(exc)}") from exc
