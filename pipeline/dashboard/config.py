"""Configuration and result of the dashboard stage (:func:`pipeline.dashboard.build_dashboard`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from data_catalog.config_files import check_fields, read_mapping
from data_catalog.errors import ConfigError

_SEQUENCES = ("scores", "forecasts", "explanations", "headline", "leads")


@dataclasses.dataclass(frozen=True)
class DashboardConfig:
    """What the site shows (everything that determines its content).

    - ``scores``: scores stores written by ``wxemu verify`` (merged along ``forecast``; a forecast name found in
      several stores is taken from the last one). None yet (a cycle before its first verification) gives a site
      whose pages say so.
    - ``forecasts`` and ``truth``: forecast stores and their truth store, for the maps and the runs page
      (optional: without them the maps page says so).
    - ``explanations``: explanation stores written by ``wxemu explain`` (paths, or glob patterns such as
      ``explain/*.zarr``), for the Explanations page (optional: without them the page says so).
    - ``out``: the site directory (replaced atomically; unchanged figures are reused from the previous build).
    - ``reference``: the forecast the scorecards compare against (default: ``persistence`` when scored, else the
      first forecast).
    - ``metric``: the scorecards' metric; ``alpha``: the significance level of the significance scorecard.
    - ``headline``: the scorecard panels as ``variable`` or ``variable/level`` (default: every variable, at
      500 hPa, else its first level, for variables with levels).
    - ``leads``: the lead times of the maps and the per-init timeline, e.g. ``("24h", "72h")`` (default: up to
      four leads spread over the scored ones).
    - ``map_init``: the initial time of the forecast vs truth vs error maps (default: the last one).
    """

    scores: tuple[str, ...] = ()
    forecasts: tuple[str, ...] = ()
    truth: str | None = None
    explanations: tuple[str, ...] = ()
    out: str = "dashboard"
    reference: str | None = None
    metric: str = "rmse"
    alpha: float = 0.05
    headline: tuple[str, ...] | None = None
    leads: tuple[str, ...] | None = None
    map_init: str | None = None
    title: str = "wxemu skill dashboard"

    def __post_init__(self) -> None:
        for name in _SEQUENCES:
            value = getattr(self, name)
            if isinstance(value, (str, Path)):
                value = (value,)
            if value is not None:
                object.__setattr__(self, name, tuple(str(v) for v in value))
        if not str(self.out).strip():
            raise ConfigError("out: the site directory must not be empty")
        if self.forecasts and not self.truth:
            raise ConfigError("truth: the maps of --forecasts need the truth store (--truth)")
        if not 0 < self.alpha < 1:
            raise ConfigError(f"alpha: must lie in (0, 1), got {self.alpha}")
        if self.metric in ("spread_skill",):
            raise ConfigError("metric: spread_skill has no per-init score to test; pick rmse, mae, acc or crps")
        for lead in self.leads or ():
            lead_timedelta(lead)
        if self.map_init is not None:
            try:
                pd.Timestamp(self.map_init)
            except ValueError:
                raise ConfigError(f"map_init: cannot read {self.map_init!r} as a time") from None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DashboardConfig:
        """A config from a flat mapping (unknown keys are an error naming them)."""
        check_fields(cls, d, "dashboard config")
        return cls(**dict(d))

    @classmethod
    def from_yaml(cls, path: str | Path) -> DashboardConfig:
        """A config from a flat YAML file."""
        return cls.from_dict(read_mapping(path, "dashboard config"))


def lead_timedelta(spec: str) -> pd.Timedelta:
    """``"24h"``, ``"2d"`` or a bare number of hours -> Timedelta; ConfigError naming ``leads`` otherwise."""
    text = str(spec).strip()
    try:
        return pd.Timedelta(hours=float(text)) if text.replace(".", "", 1).isdigit() else pd.Timedelta(text)
    except ValueError:
        raise ConfigError(f"leads: cannot read {spec!r} as a lead time (e.g. 24h, 2d, 36)") from None


@dataclasses.dataclass(frozen=True)
class DashboardResult:
    """What a build wrote: the site directory, its pages (paths relative to ``out``), and how many figure and
    data files were drawn afresh or reused unchanged from the previous build."""

    out: Path
    pages: tuple[str, ...]
    drawn: tuple[str, ...]
    reused: tuple[str, ...]
    forecasts: tuple[str, ...]
    reference: str

    @property
    def index(self) -> Path:
        return self.out / "index.html"
