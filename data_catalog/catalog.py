"""Named dataset entries (YAML, validated by pydantic at load) and ``open_dataset(name)`` -> canonical dataset.

Entries ship as package data in ``data_catalog/entries/*.yaml``. User catalog files (``load_catalog(paths)`` and
``$WXEMU_CATALOG``, a ``os.pathsep``-separated list of YAML files) extend them and override entries of the same
name. A YAML file holds one entry (a mapping with ``name``), a list of entries, or
``{entries: [...], mirrors: {prefix: target}}``. ``mirrors`` (and ``$WXEMU_URL_MAP``) rewrite location prefixes,
e.g. ``gs://weatherbench2/`` -> ``http://127.0.0.1:8123/``, so sites with local mirrors (and the tests) read
cloud entries from a local copy.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import fsspec
import pandas as pd
import xarray as xr
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_catalog.errors import ConfigError, InputDataError

ENTRIES_DIR = Path(__file__).parent / "entries"


class Grid(BaseModel):
    """Grid of the source: resolution (degrees), latitude and longitude extent [first, last] in degrees."""

    model_config = ConfigDict(extra="forbid")
    resolution: float | None = Field(default=None, gt=0)
    shape: tuple[int, int] | None = None  # (n_latitude, n_longitude)
    latitude: tuple[float, float] | None = None
    longitude: tuple[float, float] | None = None


class TimeRange(BaseModel):
    """Time coverage: ``start``/``end`` (ISO dates), ``step`` (pandas offset: ``1h``, ``6h``, ``MS``) and, for
    file-per-period archives, ``file_frequency`` (pandas period alias ``D``, ``M``, ``Y``) of the date template."""

    model_config = ConfigDict(extra="forbid")
    start: str | None = None
    end: str | None = None
    step: str | None = None
    file_frequency: str | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            return pd.Timestamp(str(value)).isoformat()
        except ValueError as exc:
            raise ValueError(f"not a date: {value!r}") from exc


class Entry(BaseModel):
    """One named dataset. ``mapping`` sends source names (variables and coordinates) to canonical ones;
    ``variables`` is the default selection (canonical names); ``levels`` the default pressure levels (hPa)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    description: str
    kind: Literal["reanalysis", "forecast", "static"]
    format: Literal["zarr", "netcdf", "grib"]
    location: str | None = None
    sample: str | None = None
    storage_options: dict[str, Any] = Field(default_factory=dict)
    mapping: dict[str, str] = Field(default_factory=dict)
    variables: list[str] | None = None
    levels: list[int] | None = None
    units: dict[str, str] = Field(default_factory=dict)
    time_from: dict[str, str] | None = None
    grib_filter: dict[str, Any] | None = None
    allow_nan: bool = False
    ensemble: bool = True
    grid: Grid | None = None
    time: TimeRange | None = None
    licence: str
    attribution: str = ""
    url: str | None = None  # documentation page

    @model_validator(mode="after")
    def _where(self) -> Entry:
        if not self.location and not self.sample:
            raise ValueError("an entry needs a location (path or URL) or a sample (bundled sample file name)")
        if self.sample:
            from data_catalog.samples import SAMPLES

            if self.sample not in SAMPLES:
                raise ValueError(f"unknown sample {self.sample!r}; known: {', '.join(sorted(SAMPLES))}")
        return self


@dataclass
class Catalog:
    """Entries by name, the URL mirror map and the file each entry came from."""

    entries: dict[str, Entry] = field(default_factory=dict)
    mirrors: dict[str, str] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def names(self) -> list[str]:
        return sorted(self.entries)

    def get(self, name: str) -> Entry:
        try:
            return self.entries[name]
        except KeyError:
            close = self.suggest(name)
            hint = f"did you mean {close!r}? " if close else ""
            raise ConfigError(f"catalog: no entry named {name!r}; {hint}known: {', '.join(self.names())}") from None

    def suggest(self, name: str) -> str | None:
        """The entry name closest to a mistyped ``name`` (difflib), or None when none is close."""
        close = difflib.get_close_matches(name, self.names(), n=1, cutoff=0.75)
        return close[0] if close else None

    __getitem__ = get

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def location(self, name: str) -> str:
        """The entry's location after the mirror map (``mirrors`` and ``$WXEMU_URL_MAP``); a bundled sample's
        local path for sample entries without a location."""
        from data_catalog.readers import apply_url_map
        from data_catalog.samples import sample_path

        entry = self.get(name)
        if entry.location:
            return apply_url_map(entry.location, self.mirrors)
        return sample_path(entry.sample or "")


def _format_validation(path: str, label: str, exc: ValidationError) -> str:
    problems = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(entry)"
        problems.append(f"field {where!r}: {err['msg']}")
    return f"catalog file {path}: entry {label}: " + "; ".join(problems)


def _read_file(path: str) -> tuple[list[dict], dict[str, str]]:
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except FileNotFoundError:
        raise ConfigError(f"catalog file {path}: not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"catalog file {path}: invalid YAML ({exc})") from None
    if doc is None:
        return [], {}
    mirrors: dict[str, str] = {}
    if isinstance(doc, dict) and ("entries" in doc or "mirrors" in doc) and "name" not in doc:
        unknown = set(doc) - {"entries", "mirrors"}
        if unknown:
            raise ConfigError(
                f"catalog file {path}: unknown top-level keys {sorted(unknown)} (expected entries, mirrors)"
            )
        mirrors = {str(k): str(v) for k, v in (doc.get("mirrors") or {}).items()}
        doc = doc.get("entries") or []
    items = doc if isinstance(doc, list) else [doc]
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ConfigError(f"catalog file {path}: entry {i + 1} is not a mapping")
    return items, mirrors


def _env_catalog_paths() -> list[str]:
    return [p for p in os.environ.get("WXEMU_CATALOG", "").split(os.pathsep) if p.strip()]


def load_catalog(paths: Iterable[str] | None = None) -> Catalog:
    """The built-in entries, then ``paths``, then ``$WXEMU_CATALOG`` files (later files override entries of the
    same name and add mirrors). Raises ConfigError naming the file, the entry and the field."""
    files = sorted(str(p) for p in ENTRIES_DIR.glob("*.yaml")) + [str(p) for p in (paths or [])]
    files += _env_catalog_paths()
    catalog = Catalog()
    for path in files:
        items, mirrors = _read_file(path)
        catalog.mirrors.update(mirrors)
        seen: set[str] = set()
        for i, item in enumerate(items):
            label = repr(item.get("name")) if item.get("name") else f"#{i + 1}"
            try:
                entry = Entry.model_validate(item)
            except ValidationError as exc:
                raise ConfigError(_format_validation(path, label, exc)) from None
            if entry.name in seen:
                raise ConfigError(f"catalog file {path}: entry {entry.name!r} is defined twice")
            seen.add(entry.name)
            catalog.entries[entry.name] = entry
            catalog.origins[entry.name] = path
    return catalog


def get_entry(name: str, catalog: Catalog | None = None) -> Entry:
    """The entry ``name`` of ``catalog`` (default: ``load_catalog()``)."""
    return (catalog or load_catalog()).get(name)


def open_dataset(
    name: str,
    *,
    variables: list[str] | None = None,
    levels: list[int] | None = None,
    start=None,
    end=None,
    storage_options: dict | None = None,
    catalog: Catalog | None = None,
    allow_nan: bool | None = None,
) -> xr.Dataset:
    """Open catalog entry ``name`` lazily, already canonical (forecast entries in the forecast layout).

    variables/levels default to the entry's; start/end select times (initial times for forecasts) and pick the
    files of a date-templated location; storage_options update the entry's. The result's attributes carry the
    entry name, licence and attribution.
    """
    from data_catalog.canonical import canonicalise
    from data_catalog.canonical_coords import select_time
    from data_catalog.forecasts import to_canonical_forecast
    from data_catalog.readers import expand_paths, open_source

    catalog = catalog or load_catalog()
    entry = catalog.get(name)
    location = catalog.location(name)
    options = dict(entry.storage_options)
    if entry.location and fsspec.utils.get_protocol(location) != fsspec.utils.get_protocol(entry.location):
        options = {}  # mirrored onto another protocol: the entry's options (e.g. gcs token) do not apply
    options.update(storage_options or {})
    variables = variables if variables is not None else entry.variables
    levels = levels if levels is not None else entry.levels
    allow_nan = entry.allow_nan if allow_nan is None else allow_nan
    source = f"catalog entry {name!r} ({location})"
    # Open the source(s): a date template expands over the requested (or the entry's) period.
    if "{date" in location:
        t0 = start if start is not None else (entry.time.start if entry.time else None)
        t1 = end if end is not None else (entry.time.end if entry.time else None)
        if t0 is None or t1 is None:
            raise ConfigError(
                f"catalog entry {name!r}: a date-templated location needs start and end "
                "(arguments or the entry's time range)"
            )
        freq = entry.time.file_frequency if entry.time and entry.time.file_frequency else "D"
        paths = expand_paths([location], start=t0, end=t1, freq=freq, storage_options=options)
    else:
        paths = [location]
    common = dict(
        mapping=entry.mapping,
        variables=variables,
        levels=levels,
        allow_nan=allow_nan,
        units=entry.units,
        ensemble=entry.ensemble,
    )
    parts = []
    for path in paths:
        raw = open_source(path, entry.format, storage_options=options or None, grib_filter=entry.grib_filter)
        one_file = len(paths) == 1
        if entry.kind == "forecast":
            parts.append(
                to_canonical_forecast(
                    raw, source=source, start=start if one_file else None, end=end if one_file else None, **common
                )
            )
        else:
            parts.append(
                canonicalise(
                    raw,
                    source=source,
                    layout="analysis",
                    time_from=entry.time_from,
                    start=start if one_file else None,
                    end=end if one_file else None,
                    **common,
                )
            )
    if len(parts) == 1:
        ds = parts[0]
    else:
        try:
            ds = xr.concat(
                parts,
                dim="time",
                data_vars="all",
                coords="minimal",
                compat="override",
                join="exact",
                combine_attrs="override",
            )
        except ValueError as exc:
            raise InputDataError(f"{source}: the files do not line up on one grid ({exc})") from None
        ds = select_time(ds, source, start, end, regular=entry.kind != "forecast")
    ds.attrs.update({"wxemu_catalog_entry": name, "licence": entry.licence, "attribution": entry.attribution})
    return ds


def entry_as_dict(entry: Entry) -> dict[str, Any]:
    """The entry as plain data (for ``wxemu catalog show``), unset optional fields left out."""
    return entry.model_dump(mode="json", exclude_none=True)


def is_catalog_name(source: str) -> bool:
    """Whether a SOURCE argument names a catalog entry (rather than a path, glob or URL).

    A bare name that is no file is looked up in the catalog, so a catalog file that fails validation raises its
    ConfigError (naming the file, entry and field) rather than passing for a missing file, and a name close to an
    entry's raises ConfigError "no file and no catalog entry named X; did you mean Y?"."""
    if any(ch in source for ch in "/*?[\\") or "://" in source or os.path.exists(source):
        return False
    catalog = load_catalog()
    if source in catalog.entries:
        return True
    close = catalog.suggest(source)
    if close:
        raise ConfigError(
            f"{source}: no file and no catalog entry named {source!r}; did you mean {close!r}? (`wxemu catalog list`)"
        )
    return False
