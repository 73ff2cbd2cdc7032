"""The configuration of a comparison study (``wxemu study STUDY.yaml``): what is compared with what, on what.

A study file is flat YAML; every key is a field of :class:`StudyConfig`. Paths may be local, fsspec URLs, or
``sample:NAME`` (a bundled sample file, ``data_catalog.samples.sample_path``) and ``iris-sample:GLOB`` (a file of
iris-sample-data, installed by the extra ``metoffice``); relative paths are taken from the study file's folder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from data_catalog.config_files import read_mapping
from data_catalog.errors import ConfigError, WxemuError
from data_catalog.regions import parse_box

BASELINES = ("persistence", "climatology")
_TUPLES = ("emulators", "baselines", "variables", "regions", "metrics")


@dataclasses.dataclass(frozen=True)
class StudyConfig:
    """A comparison study.

    - ``truth``: the analysis everything is scored against: a Zarr analysis store (wxemu's or WeatherBench2's),
      or source files (GRIB, NetCDF, PP; path, glob or URL) that the study ingests (``truth_start``..
      ``truth_end``). With ``truth_member`` the truth source is a forecast and the truth is that member's fields
      at their validity times (a perfect-model study). ``truth_note`` says what the truth is and why, in the scores.
    - ``inits`` (``START[/END/EVERY]``), ``lead``, ``step``: the forecasts the study runs itself: ``emulators``
      (checkpoints: run dirs or ``model.safetensors``) and ``baselines`` (``persistence``, ``climatology``),
      initialised from the truth store.
    - ``forecasts``: physics-model forecasts, {name: source or [sources]} (GRIB, PP, NetCDF, WeatherBench2
      Zarr; local or fsspec), ingested with ``wxemu ingest --forecast`` (initial times ``start``..``end``;
      ``forecast_format``, ``grib_filter`` as there); PP sources of one forecast are read together.
    - ``ingest_region``: the box every ingest of the study cuts from its sources (truth and physics-model
      forecasts; a region name or ``lat0,lat1,lon0,lon1``, as ``wxemu ingest --region``; None: the whole grid).
    - ``variables``, ``regions``, ``metrics``: as ``wxemu verify``; ``reference``: the forecast the scorecards
      compare against (``scorecard_metric``); ``out``: the study folder; ``overwrite``: replace its outputs.
    """

    name: str = "study"
    out: str = "study-output"
    truth: str = ""
    truth_start: str | None = None
    truth_end: str | None = None
    truth_member: int | None = None
    truth_note: str = ""
    inits: str | None = None
    lead: str = "24h"
    step: str | None = None
    emulators: tuple[str, ...] = ()
    baselines: tuple[str, ...] = ()
    forecasts: tuple[tuple[str, tuple[str, ...]], ...] = ()
    forecast_format: str | None = None
    grib_filter: tuple[tuple[str, str], ...] | None = None
    start: str | None = None
    end: str | None = None
    variables: tuple[str, ...] | None = None
    ingest_region: str | None = None
    regions: tuple[str, ...] = ("global",)
    metrics: tuple[str, ...] | None = None
    reference: str | None = None
    scorecard_metric: str = "rmse"
    storage_options: tuple[tuple[str, Any], ...] | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in _TUPLES:
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            if value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))
        forecasts = self.forecasts.items() if isinstance(self.forecasts, Mapping) else self.forecasts
        norm = []
        for item in forecasts:
            if not (isinstance(item, (tuple, list)) and len(item) == 2):
                raise ConfigError(f"forecasts: expected a mapping of name -> source(s), got {item!r}")
            fname, sources = item
            sources = (sources,) if isinstance(sources, str) else tuple(str(s) for s in sources)
            if not sources:
                raise ConfigError(f"forecasts: {fname!r} has no source")
            norm.append((str(fname), sources))
        object.__setattr__(self, "forecasts", tuple(norm))
        for name in ("grib_filter", "storage_options"):
            value = getattr(self, name)
            if isinstance(value, Mapping):
                object.__setattr__(self, name, tuple(sorted(value.items())))
        if not str(self.truth).strip():
            raise ConfigError("truth: name the analysis to score against (a store or source files)")
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ConfigError(f"baselines: {bad} unknown; choose from {', '.join(BASELINES)}")
        if (self.emulators or self.baselines) and not self.inits:
            raise ConfigError("inits: emulators and baselines need initial times (START[/END/EVERY])")
        if not (self.emulators or self.baselines or self.forecasts):
            raise ConfigError("forecasts: the study compares nothing; give emulators, baselines or forecasts")
        names = [n for n, _ in self.forecasts] + list(self.baselines)
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"forecasts: names {dup} are used twice")
        for name in ("lead", "step"):
            value = getattr(self, name)
            if value is not None:
                try:
                    pd.Timedelta(value)
                except ValueError:
                    raise ConfigError(f"{name}: cannot read {value!r} as a duration (e.g. 24h, 6h)") from None
        for name in ("truth_start", "truth_end", "start", "end"):
            value = getattr(self, name)
            if value is not None:
                try:
                    pd.Timestamp(value)
                except ValueError:
                    raise ConfigError(f"{name}: cannot read {value!r} as a time") from None
        if self.ingest_region is not None:
            try:
                parse_box(str(self.ingest_region))
            except WxemuError as exc:
                raise ConfigError(f"ingest_region: {exc}") from None
        if self.forecast_format not in (None, "netcdf", "grib", "zarr", "pp"):
            raise ConfigError(f"forecast_format: {self.forecast_format!r}; expected netcdf, grib, zarr or pp")
        if not str(self.out).strip():
            raise ConfigError("out: the study folder must not be empty")

    @property
    def options(self) -> dict[str, Any] | None:
        """fsspec storage options as a dict (None when none are given)."""
        return dict(self.storage_options) if self.storage_options else None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, base: str | Path | None = None) -> StudyConfig:
        """A config from a flat mapping; unknown keys are an error naming them. ``base``: the folder relative
        paths (``truth``, forecast sources, emulators) are taken from; ``out`` is taken from the working folder."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"study: unknown option(s) {unknown}; known: {sorted(known)}")
        d = dict(d)
        if base is not None:
            for key in ("truth",):
                if key in d and d[key]:
                    d[key] = _rooted(str(d[key]), base)
            if "emulators" in d and d["emulators"]:
                items = [d["emulators"]] if isinstance(d["emulators"], str) else d["emulators"]
                d["emulators"] = [_rooted(str(e), base) for e in items]
            if isinstance(d.get("forecasts"), Mapping):
                d["forecasts"] = {
                    k: [_rooted(str(s), base) for s in ([v] if isinstance(v, str) else v)]
                    for k, v in d["forecasts"].items()
                }
        return cls(**d)

    @classmethod
    def from_yaml(cls, path: str | Path) -> StudyConfig:
        """A config from a flat YAML study file (relative paths from the file's folder)."""
        return cls.from_dict(read_mapping(path, "study"), base=Path(path).resolve().parent)


def _rooted(path: str, base: str | Path) -> str:
    if ":" in path.split("/", 1)[0] or Path(path).is_absolute():  # URL, sample:, iris-sample:, absolute
        return path
    return str(Path(base) / path)
