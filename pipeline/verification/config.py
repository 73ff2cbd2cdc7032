"""The verification config (what is scored, against what, where it goes) and the result of a run.

:class:`VerifyConfig` is a frozen dataclass validated on construction (a bad field raises
:class:`~data_catalog.errors.ConfigError` naming it); how a run executes (progress, workers, scheduler) are keyword
arguments of :func:`pipeline.verification.verify`, not config fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from data_catalog.config_files import check_fields, read_mapping
from data_catalog.errors import ConfigError, InputDataError

OUT_FORMATS = ("zarr", "wb2")


class VerifyError(InputDataError):
    """The forecasts, truth or options given to ``wxemu verify`` cannot be scored together."""


def _strings(value: Any, field: str) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Sequence) or not all(isinstance(v, str | Path) for v in value):
        raise ConfigError(f"VerifyConfig.{field}: expected a list of strings, got {value!r}")
    return tuple(str(v) for v in value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class VerifyConfig:
    """What a verification scores.

    forecasts: forecast Zarr stores (WeatherBench2 layout); truth: the analysis store; out: the scores store
    (Zarr, or with ``out_format="wb2"`` a directory of WeatherBench2 results NetCDF files; None: not written);
    regions: names or boxes ``lat0,lat1,lon0,lon1`` (:mod:`data_catalog.regions`); variables / metrics / leads: None
    means all shared / the default set / all; climatology: a store for ACC (default: the truth's group
    ``climatology``); reference: a forecast name for scorecards; block_mb: memory budget (MiB) of the data held
    at once; spectra: also compute power spectra (group ``spectra``); allow_nan: accept non-finite scores.
    """

    forecasts: Sequence[str] = ()
    truth: str = ""
    out: str | None = None
    regions: Sequence[str] = ("global",)
    variables: Sequence[str] | None = None
    metrics: Sequence[str] | None = None
    leads: Sequence[str] | None = None
    climatology: str | None = None
    reference: str | None = None
    block_mb: float = 64.0
    overwrite: bool = False
    spectra: bool = True
    allow_nan: bool = False
    out_format: str = "zarr"

    def __post_init__(self) -> None:
        for name in ("forecasts", "regions", "variables", "metrics", "leads"):
            object.__setattr__(self, name, _strings(getattr(self, name), name))
        if not self.forecasts:
            raise ConfigError("VerifyConfig.forecasts: no forecast store given (--forecast)")
        if not self.truth:
            raise ConfigError("VerifyConfig.truth: no truth store given (--truth)")
        if not self.regions:
            object.__setattr__(self, "regions", ("global",))
        try:
            block_mb = float(self.block_mb)
        except (TypeError, ValueError):
            block_mb = float("nan")
        if not block_mb > 0:
            raise ConfigError(f"VerifyConfig.block_mb: --block-mb must be positive, got {self.block_mb}")
        if self.out_format not in OUT_FORMATS:
            raise ConfigError(f"VerifyConfig.out_format: must be one of {OUT_FORMATS}, got {self.out_format!r}")
        if self.out_format == "wb2" and not self.out:
            raise ConfigError("VerifyConfig.out: --format wb2 needs --out DIRECTORY")
        parse_leads(self.leads)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> VerifyConfig:
        """A config from a flat mapping (keys = field names); unknown keys raise ConfigError."""
        check_fields(cls, d, "VerifyConfig")
        return cls(**dict(d))

    @classmethod
    def from_yaml(cls, path: str | Path) -> VerifyConfig:
        """A config from a flat YAML file."""
        return cls.from_dict(read_mapping(path, "verify config"))


def parse_leads(specs: Sequence[str] | None) -> list[pd.Timedelta] | None:
    """``["24h", "48", "3d"]`` -> Timedeltas (a bare number means hours); commas also split."""
    if not specs:
        return None
    out = []
    for spec in specs:
        for item in str(spec).split(","):
            item = item.strip()
            if not item:
                continue
            try:
                out.append(
                    pd.Timedelta(hours=float(item)) if item.replace(".", "", 1).isdigit() else pd.Timedelta(item)
                )
            except ValueError:
                raise ConfigError(
                    f"VerifyConfig.leads: --leads: cannot read {item!r} as a lead time (e.g. 24h, 2d, 36)"
                ) from None
    return out


@dataclasses.dataclass(frozen=True)
class VerifyResult:
    """What :func:`pipeline.verification.verify` returns.

    path: where the scores were written (None if not); scores: dims (metric, forecast, region,
    prediction_timedelta, [level]) per variable; per_init: the same with ``time``; spectra: dims (forecast,
    prediction_timedelta, [level], wavenumber) per variable (empty when not computed); blocks: for each
    (forecast, variable), the blocks of initial times ``(t0, t1)`` read at once; notes: what the user should know
    (e.g. metrics the default set left out).
    """

    path: str | None
    scores: xr.Dataset
    per_init: xr.Dataset
    spectra: xr.Dataset
    blocks: Mapping[tuple[str, str], list[tuple[int, int]]]
    notes: tuple[str, ...] = ()
