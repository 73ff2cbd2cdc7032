"""The configuration of a forecast cycle (``CYCLE.yaml``): stores, models, leads, retention.

A flat YAML mapping; relative paths are taken relative to the YAML file's directory. Every key is validated at
load and an error names the key (:class:`data_catalog.errors.ConfigError`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from data_catalog.errors import ConfigError, WxemuError
from data_catalog.regions import parse_box

BASELINES = ("persistence", "climatology")


def _hours(text: str, key: str) -> float:
    try:
        value = (
            pd.Timedelta(text).total_seconds() / 3600 if not str(text).replace(".", "", 1).isdigit() else float(text)
        )
    except ValueError:
        raise ConfigError(f"cycle config: {key}: cannot read {text!r} as a duration (e.g. 6h, 24h, 2d)") from None
    if value <= 0:
        raise ConfigError(f"cycle config: {key}: must be a positive duration, got {text!r}")
    return value


def model_name(model: str) -> str:
    """The name a model's forecasts are stored under: the baseline's name, or the checkpoint's run directory."""
    if model in BASELINES:
        return model
    path = Path(model)
    return path.parent.name if path.suffix == ".safetensors" else path.name


@dataclasses.dataclass(frozen=True)
class CycleConfig:
    """What a cycle reads and writes.

    source: files/globs or catalog entries the analyses arrive in (ingested with ``append``). store: the
    analysis Zarr store (created at the first cycle from ``analysis_start`` when missing). work_dir: the cycle
    outputs: ``forecasts/POINT/MODEL.zarr``, ``scores/POINT.zarr`` (scores of the forecasts initialised at
    POINT, over the leads verified so far), ``site/`` (dashboard). models: checkpoints (run dir or
    ``model.safetensors``) and baselines (``persistence``, ``climatology``). lead/step: longest lead and lead
    spacing (step None: the store's time step). cycle_hours: hours between cycle points. variables/chunk_time:
    the ingest's selection and chunking. ingest_region: the box every ingest cuts from the source (a region name
    or ``lat0,lat1,lon0,lon1``, as ``wxemu ingest --region``; None: the whole grid). regions: verification
    regions. retention_hours: forecasts initialised more than this before the cycle point are removed by
    housekeep (0: keep everything; otherwise at least the lead, so nothing is removed before it is verified).
    """

    source: tuple[str, ...]
    store: str
    work_dir: str
    models: tuple[str, ...] = BASELINES
    lead: str = "24h"
    step: str | None = None
    cycle_hours: float = 6.0
    analysis_start: str | None = None
    variables: tuple[str, ...] | None = None
    chunk_time: int = 1
    ingest_region: str | None = None
    regions: tuple[str, ...] = ("global",)
    retention_hours: float = 0.0

    def __post_init__(self) -> None:
        if not self.source or not all(isinstance(s, str) and s for s in self.source):
            raise ConfigError("cycle config: source: give one or more files, globs or catalog entries")
        for key in ("store", "work_dir"):
            if not isinstance(getattr(self, key), str) or not getattr(self, key):
                raise ConfigError(f"cycle config: {key}: a path is required")
        if not self.models:
            raise ConfigError("cycle config: models: give at least one checkpoint or baseline")
        names = [model_name(m) for m in self.models]
        if len(set(names)) != len(names):
            raise ConfigError(f"cycle config: models: two models share a name ({names})")
        lead = _hours(self.lead, "lead")
        if self.step is not None:
            step = _hours(self.step, "step")
            if abs(lead / step - round(lead / step)) > 1e-9:
                raise ConfigError(f"cycle config: lead {self.lead} is not a multiple of step {self.step}")
        if not isinstance(self.cycle_hours, (int, float)) or self.cycle_hours <= 0:
            raise ConfigError(f"cycle config: cycle_hours: must be a positive number, got {self.cycle_hours!r}")
        if not isinstance(self.chunk_time, int) or self.chunk_time < 1:
            raise ConfigError(f"cycle config: chunk_time: must be an integer >= 1, got {self.chunk_time!r}")
        if self.ingest_region is not None:
            try:
                parse_box(str(self.ingest_region))
            except WxemuError as exc:
                raise ConfigError(f"cycle config: ingest_region: {exc}") from None
        if not self.regions:
            raise ConfigError("cycle config: regions: give at least one region")
        if not isinstance(self.retention_hours, (int, float)) or self.retention_hours < 0:
            raise ConfigError(f"cycle config: retention_hours: must be >= 0, got {self.retention_hours!r}")
        if 0 < self.retention_hours < lead:
            raise ConfigError(
                f"cycle config: retention_hours: {self.retention_hours:g} is shorter than the lead {self.lead}; "
                "forecasts would be removed before they are verified"
            )
        if self.analysis_start is not None:
            try:
                pd.Timestamp(self.analysis_start)
            except ValueError:
                raise ConfigError(f"cycle config: analysis_start: not a time: {self.analysis_start!r}") from None

    @property
    def lead_hours(self) -> float:
        return _hours(self.lead, "lead")

    @property
    def model_names(self) -> tuple[str, ...]:
        return tuple(model_name(m) for m in self.models)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, base_dir: str | Path | None = None) -> CycleConfig:
        """Build from a flat mapping; relative paths (source, store, work_dir, checkpoints) are resolved against
        ``base_dir`` when given."""
        if not isinstance(data, Mapping):
            raise ConfigError(f"cycle config: expected a mapping of keys, got {type(data).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ConfigError(f"cycle config: unknown key(s) {unknown}; known keys: {sorted(fields)}")
        for key in ("source", "store", "work_dir"):
            if key not in data:
                raise ConfigError(f"cycle config: {key}: missing (required)")
        kw = dict(data)
        for key in ("source", "models", "variables", "regions"):
            value = kw.get(key)
            if isinstance(value, str):
                kw[key] = (value,)
            elif isinstance(value, (list, tuple)):
                kw[key] = tuple(value)
            elif value is not None:
                raise ConfigError(f"cycle config: {key}: expected a list, got {value!r}")
        for key in ("lead", "step", "analysis_start"):
            if kw.get(key) is not None:
                kw[key] = str(kw[key])
        if base_dir is not None:
            base = Path(base_dir)

            def resolve(p: str) -> str:
                return p if "://" in p or Path(p).is_absolute() or p in BASELINES else str(base / p)

            kw["store"] = resolve(kw["store"])
            kw["work_dir"] = resolve(kw["work_dir"])
            # a source that is no path relative to the YAML (a catalog entry) stays as it is
            kw["source"] = tuple(resolve(s) if ("/" in s or "*" in s or "." in s) else s for s in kw["source"])
            if "models" in kw:
                kw["models"] = tuple(resolve(m) for m in kw["models"])
        return cls(**kw)

    @classmethod
    def from_yaml(cls, path: str | Path) -> CycleConfig:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except FileNotFoundError:
            raise ConfigError(f"cycle config {path}: no such file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"cycle config {path}: not valid YAML: {exc}") from None
        try:
            return cls.from_dict(data or {}, base_dir=p.resolve().parent)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """The flat mapping (lists for tuples) that :meth:`from_dict` reads back."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
