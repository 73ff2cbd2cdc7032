"""Map a source dataset onto the canonical convention of docs/conventions.md
(WeatherBench2 names, CF units, sorted grid).

``to_canonical`` gives the analysis layout (dims ``time``, [``number``], [``level``], ``latitude``,
``longitude``); ``data_catalog.forecasts.to_canonical_forecast`` gives the forecast layout. Both run
``canonicalise``, a chain of small steps (each a function of a dataset) that rename, convert and validate.

Conventions applied (see docs/architecture.md):

* variables renamed to WeatherBench2 names (``conventions.VARIABLES``; an explicit ``mapping`` wins), units
  converted to the canonical ones from the ``units`` attribute (unknown or disagreeing units are an error);
  CF ``units``/``standard_name``/``long_name`` set; float32; encodings cleared.
* coordinates renamed (``lat``/``lon``/``valid_time``/``isobaricInhPa``/``plev``/... ->
  ``latitude``/``longitude``/``time``/``level``); ``level`` in integer hPa, ascending; latitude ascending;
  longitude ascending, in [0, 360) for global grids; a regional grid crossing the prime meridian keeps its
  columns contiguous (western edge in [0, 360), values may exceed 360: the UK sample becomes 350 .. 362).
* ensembles: a ``number`` dimension of more than one member, or the one member of an ensemble a file holds
  alone, is kept as ``number`` (pass ``ensemble=False`` to
  refuse it); a single member of a deterministic source is dropped.
* a dimension such as ``month`` that holds no dates is refused unless ``time_from`` maps it onto dates, e.g.
  ``time_from={"month": "2000-{month:02d}-01"}``.
* NaNs are refused unless ``allow_nan``: checked at once for data up to ``EAGER_NAN_CHECK_BYTES``, otherwise
  when the lazy data are computed (the error is raised from inside the dask computation).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from data_catalog import conventions as conv
from data_catalog.canonical_coords import (
    SPATIAL_DIMS,
    apply_time_from,
    drop_leftover_coords,
    handle_members,
    normalise_grid,
    normalise_levels,
    refuse_dateless_dims,
    rename_coordinates,
    select_time,
)
from data_catalog.errors import InputDataError
from data_catalog.source_kinds import refuse_projected_grid, single_member

#: Arrays up to this size (bytes, float32) are checked for NaN immediately; larger ones when computed.
EAGER_NAN_CHECK_BYTES = 64 * 2**20

_BOUNDS_SUFFIXES = ("_bnds", "_bounds", "_bnd")


# ----------------------------------------------------------------------------------------------- time axes
def _is_bounds(ds: xr.Dataset, name: str) -> bool:
    referenced = {str(v.attrs.get("bounds")) for v in ds.variables.values() if "bounds" in v.attrs}
    return name in referenced or name.endswith(_BOUNDS_SUFFIXES)


def resolve_variables(
    ds: xr.Dataset, source: str, mapping: Mapping[str, str] | None, variables: list[str] | None
) -> dict[str, str]:
    """{source name: canonical name} for the variables to keep.

    ``mapping`` (source -> canonical) wins over the alias table; ``variables`` may name canonical or source
    names. Raises for a requested variable that is not there (listing what is), for variables that cannot be
    mapped when no selection is given, and for two sources mapping onto one name.
    """
    mapping = dict(mapping or {})
    candidates = {str(v): v for v in ds.data_vars if not _is_bounds(ds, str(v))}
    resolved: dict[str, str] = {}
    unmapped: list[str] = []
    for name in candidates:
        target = mapping.get(name) or conv.GEOPOTENTIAL_HEIGHT_ALIASES.get(name) or conv.VARIABLE_ALIASES.get(name)
        if target is None and ds[name].attrs.get("standard_name") == "geopotential_height":
            target = "geopotential"
        if target is None:
            unmapped.append(name)
        elif target not in conv.VARIABLES:
            raise InputDataError(
                f"{source}: mapping sends {name!r} to {target!r}, which is not a canonical "
                f"variable (known: {', '.join(sorted(conv.VARIABLES))})"
            )
        else:
            resolved[name] = target
    if variables:
        chosen: dict[str, str] = {}
        missing = []
        for want in variables:
            hits = [s for s, c in resolved.items() if want in (s, c)]
            if not hits:
                missing.append(want)
            for s in hits:
                chosen[s] = resolved[s]
        if missing:
            have = ", ".join(f"{s} ({c})" if s != c else s for s, c in resolved.items())
            raise InputDataError(
                f"{source}: variables {missing} not found; the source has {have or 'none'}"
                + (f" and unmapped {unmapped}" if unmapped else "")
            )
        resolved = chosen
    elif unmapped:
        raise InputDataError(
            f"{source}: cannot map variables {unmapped} onto canonical names; give a mapping "
            f"(source -> one of {', '.join(sorted(conv.VARIABLES))}) or select variables"
        )
    targets = list(resolved.values())
    clash = sorted({t for t in targets if targets.count(t) > 1})
    if clash:
        raise InputDataError(
            f"{source}: several source variables map onto {clash}: "
            f"{[s for s, c in resolved.items() if c in clash]}; select variables"
        )
    return resolved


def _declared_height(da: xr.DataArray, source_name: str) -> bool:
    return (
        source_name in conv.GEOPOTENTIAL_HEIGHT_ALIASES
        or da.attrs.get("standard_name") == "geopotential_height"
        or conv.normalise_units(str(da.attrs.get("units", ""))) == "gpm"
    )


def convert_units(
    da: xr.DataArray, canonical: str, source_name: str, source: str, units: str | None = None
) -> xr.DataArray:
    """Convert ``da`` onto the canonical units of ``canonical`` using its ``units`` attribute (or ``units``).

    Geopotential height (m) becomes geopotential (m2 s-2) only when declared as such (``gh``/``hgt``/``zg``
    or standard_name ``geopotential_height``). Missing, unknown or disagreeing units raise InputDataError.
    """
    spec = conv.VARIABLES[canonical]
    given = units if units is not None else da.attrs.get("units")
    if given is None:
        raise InputDataError(
            f"{source}: variable {source_name!r} has no units attribute; declare its units "
            f"(expected {spec.units!r} for {canonical})"
        )
    if canonical == "geopotential" and _declared_height(da, source_name):
        factor = conv.GEOPOTENTIAL_HEIGHT_UNITS.get(conv.normalise_units(str(given)))
    else:
        factor = conv.conversion_for(spec.units, str(given))
    if factor is None:
        known = {u for table in conv.UNIT_CONVERSIONS.values() for u in table}
        problem = "disagree with" if conv.normalise_units(str(given)) in known else "are unknown; expected"
        raise InputDataError(
            f"{source}: units {given!r} of variable {source_name!r} {problem} {canonical} ({spec.units})"
        )
    scale, offset = factor
    if scale != 1.0 or offset != 0.0:
        da = da * np.float32(scale) + np.float32(offset) if da.dtype == np.float32 else da * scale + offset
    return da


def _nan_where(block: np.ndarray, offsets: list[int], dims: tuple, coords: dict[str, np.ndarray]) -> str:
    idx = np.argwhere(np.isnan(block))[0]
    parts = []
    for i, dim in enumerate(dims):
        j = offsets[i] + int(idx[i])
        value = coords[dim][j] if dim in coords else j
        if isinstance(value, np.datetime64):
            value = pd.Timestamp(value)
        elif isinstance(value, np.timedelta64):
            value = pd.Timedelta(value)
        parts.append(f"{dim}={value}")
    return ", ".join(parts)


def guard_nan(da: xr.DataArray, name: str, source: str) -> xr.DataArray:
    """Raise InputDataError if ``da`` holds NaN: at once for small or in-memory data, else when computed."""
    coords = {d: da[d].values for d in da.dims if d in da.coords}
    dims = da.dims
    hint = "select levels/variables/times that hold data, or allow NaN (allow_nan=True / catalog allow_nan)"

    def problem(block: np.ndarray, offsets: list[int]) -> str:
        nan_count = int(np.isnan(block).sum())
        return (
            f"{source}: {name} has NaN values ({nan_count} in the block read; first at "
            f"{_nan_where(block, offsets, dims, coords)}); {hint}"
        )

    if not isinstance(da.data, dask.array.Array) or da.nbytes <= EAGER_NAN_CHECK_BYTES:
        isnan = np.isnan(da.data)
        bad = isnan.any()
        if bool(bad.compute() if hasattr(bad, "compute") else bad):
            isnan_np = np.asarray(isnan)
            if "level" in dims:  # say which levels hold no data at all (GRIB hypercubes merged on levels)
                axes = tuple(i for i, d in enumerate(dims) if d != "level")
                empty = da["level"].values[isnan_np.all(axis=axes)].tolist()
                if empty:
                    hint = f"levels {empty} hold no {name} data; " + hint
            if set(SPATIAL_DIMS) <= set(dims) and da.ndim > 2:  # whole fields absent: a sparse GRIB hypercube
                axes = tuple(i for i, d in enumerate(dims) if d in SPATIAL_DIMS)
                absent = isnan_np.all(axis=axes)
                if absent.any() and absent.sum() * np.prod([da.sizes[d] for d in SPATIAL_DIMS]) == isnan_np.sum():
                    hint = (
                        f"{int(absent.sum())} of {absent.size} fields are absent from the source (a sparse "
                        "hypercube, e.g. leads or members that differ per initial time); " + hint
                    )
            first = np.argwhere(isnan_np)[0]
            where = ", ".join(
                f"{d}={_fmt(coords[d][k]) if d in coords else k}" for d, k in zip(dims, first, strict=True)
            )
            raise InputDataError(
                f"{source}: {name} has NaN values ({int(isnan_np.sum())} of {isnan_np.size}; first at {where}); {hint}"
            )
        return da

    def check(block: np.ndarray, block_info=None) -> np.ndarray:
        if np.isnan(block).any():
            offsets = [lo for lo, _ in block_info[0]["array-location"]] if block_info else [0] * block.ndim
            raise InputDataError(problem(block, offsets))
        return block

    return da.copy(data=da.data.map_blocks(check, dtype=da.dtype))


def _fmt(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value)
    if isinstance(value, np.timedelta64):
        return pd.Timedelta(value)
    return value.item() if hasattr(value, "item") else value


# ------------------------------------------------------------------------------------------------ pipeline
def canonicalise(
    ds: xr.Dataset,
    *,
    source: str,
    layout: str = "analysis",
    mapping: Mapping[str, str] | None = None,
    variables: list[str] | None = None,
    levels: list[int] | None = None,
    start=None,
    end=None,
    allow_nan: bool = False,
    time_from: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    ensemble: bool = True,
    extra_steps: list[Callable[[xr.Dataset], xr.Dataset]] | None = None,
    at_valid_time: bool = False,
) -> xr.Dataset:
    """The shared chain behind ``to_canonical`` (layout ``"analysis"``) and ``to_canonical_forecast``
    (layout ``"forecast"``; ``extra_steps`` run after the coordinates are renamed, before validation)."""
    if layout not in ("analysis", "forecast"):
        raise ValueError(f"layout must be 'analysis' or 'forecast', not {layout!r}")
    mapping = dict(mapping or {})
    ds = apply_time_from(ds, time_from, source)
    refuse_dateless_dims(ds, source)
    coord_mapping = {k: v for k, v in mapping.items() if k in ds.coords or k in ds.dims}
    var_mapping = {k: v for k, v in mapping.items() if k in ds.data_vars}
    refuse_projected_grid(ds, source)
    member = single_member(ds)
    if member is not None:
        ds = ds.expand_dims("number")  # one member of an ensemble: keep its number (handle_members decides)
    ds = rename_coordinates(ds, source, coord_mapping, layout, at_valid_time=at_valid_time)
    for step in extra_steps or []:
        ds = step(ds)
    ds = drop_leftover_coords(ds, layout)
    resolved = resolve_variables(ds, source, var_mapping, variables)
    source_has_levels = "level" in ds.dims
    ds = ds[list(resolved)]
    if source_has_levels and "level" not in ds.dims:
        levels = None  # levels select among the variables that have them; the ones chosen here have none
    ds = handle_members(ds, source, ensemble, member)
    ds = normalise_levels(ds, source, levels)
    ds = normalise_grid(ds, source)
    ds = select_time(ds, source, start, end, regular=layout == "analysis")

    allowed = set(conv.DIM_ORDER) if layout == "forecast" else set(conv.DIM_ORDER) - {"prediction_timedelta"}
    units = dict(units or {})
    out: dict[str, xr.DataArray] = {}
    for src_name, name in resolved.items():
        spec = conv.VARIABLES[name]
        da = ds[src_name]
        extra = [d for d in da.dims if d not in allowed]
        if extra:
            raise InputDataError(
                f"{source}: variable {src_name!r} has dimensions {extra} that the canonical "
                f"{layout} layout lacks ({', '.join(d for d in conv.DIM_ORDER if d in allowed)}); "
                "select or map them first"
            )
        if spec.levels and "level" not in da.dims:
            raise InputDataError(
                f"{source}: {src_name!r} ({name}) is a pressure-level variable but has no level "
                "dimension; give a coordinate mapping for its level"
            )
        if spec.static:
            for dim in ("time", "prediction_timedelta", "number"):
                if dim in da.dims:
                    da = da.isel({dim: 0}, drop=True)
        da = convert_units(da, name, src_name, source, units.get(src_name, units.get(name)))
        da = da.astype("float32").transpose(*[d for d in conv.DIM_ORDER if d in da.dims])
        da.attrs = {
            "units": spec.units,
            "standard_name": spec.standard_name,
            "long_name": spec.long_name,
            "source_name": src_name,
        }
        da.encoding = {}
        if not allow_nan:
            da = guard_nan(da, name, source)
        out[name] = da
    probe = xr.Dataset(out)
    result = xr.Dataset(coords={d: probe[d] for d in conv.DIM_ORDER if d in probe.coords})
    for name, da in out.items():
        result[name] = da
    drop_coords = [c for c in result.coords if c not in result.dims]
    result = result.drop_vars(drop_coords)
    for c in result.coords:
        result[c].encoding = {}
    if "time" in result.coords:
        result["time"].attrs = {
            "standard_name": "time",
            "long_name": "initialisation time" if layout == "forecast" else "time",
        }
    if "number" in result.coords:
        result["number"].attrs = {"long_name": "ensemble member", "standard_name": "realization"}
    keep_attrs = {k: v for k, v in ds.attrs.items() if not k.startswith(("GRIB_", "wxemu_"))}
    result.attrs = {**keep_attrs, "Conventions": "CF-1.8", "wxemu_source": source, "wxemu_layout": layout}
    return result


def to_canonical(
    ds: xr.Dataset,
    *,
    source: str,
    mapping: dict[str, str] | None = None,
    variables: list[str] | None = None,
    levels: list[int] | None = None,
    start=None,
    end=None,
    allow_nan: bool = False,
    time_from: dict[str, str] | None = None,
    units: dict[str, str] | None = None,
    ensemble: bool = True,
    at_valid_time: bool = False,
) -> xr.Dataset:
    """Map a source dataset onto the canonical analysis convention (docs/conventions.md); lazy where the input is.

    ds: as opened by ``readers.open_source`` (source names). source: a name for messages (entry or path).
    mapping: {source name: canonical name} for variables and coordinates, overriding the alias tables.
    variables: canonical (or source) names to keep; None keeps all and refuses unmappable ones.
    levels: pressure levels (hPa) to keep. start, end: inclusive time range.
    allow_nan: accept NaN values (otherwise InputDataError, at once for small data, else when computed).
    time_from: {"month": "2000-{month:02d}-01"} turns a date-less dimension into ``time``.
    units: {source or canonical name: units} for variables without (or with wrong) ``units`` attributes.
    ensemble: keep a ``number`` dimension of several members (True) or refuse it (False); a source holding one
    member of an ensemble (GRIB ``number`` other than 0, or ``dataType`` pf/cf) keeps it as a length-1 ``number``
    (True) or is refused (False).
    at_valid_time: accept forecast fields (GRIB ``step`` other than 0) and store them at their valid time;
    otherwise such a source is refused (ingest it as a forecast).

    Returns dims (``time``, [``number``], [``level``], ``latitude``, ``longitude``); static fields without
    ``time``; float32 data with CF attributes. Raises InputDataError naming ``source`` and the problem.
    """
    return canonicalise(
        ds,
        source=source,
        layout="analysis",
        mapping=mapping,
        variables=variables,
        levels=levels,
        start=start,
        end=end,
        allow_nan=allow_nan,
        time_from=time_from,
        units=units,
        ensemble=ensemble,
        at_valid_time=at_valid_time,
    )
