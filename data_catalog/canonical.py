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
from data_catalog.errors import InputDataError
from data_catalog.source_kinds import refuse_forecast_fields, refuse_projected_grid, single_member

#: Arrays up to this size (bytes, float32) are checked for NaN immediately; larger ones when computed.
EAGER_NAN_CHECK_BYTES = 64 * 2**20

_SPATIAL = ("latitude", "longitude")
_BOUNDS_SUFFIXES = ("_bnds", "_bounds", "_bnd")


# ----------------------------------------------------------------------------------------------- time axes
def apply_time_from(ds: xr.Dataset, time_from: Mapping[str, str] | None, source: str) -> xr.Dataset:
    """Turn a date-less dimension into ``time`` with a template: ``{"month": "2000-{month:02d}-01"}``.

    The template is formatted with the dimension's values (``{month}``) and parsed with ``pandas.Timestamp``.
    """
    if not time_from:
        return ds
    if len(time_from) != 1:
        raise InputDataError(f"{source}: time_from maps one dimension onto time; got {sorted(time_from)}")
    ((dim, template),) = time_from.items()
    if dim not in ds.dims:
        raise InputDataError(
            f"{source}: time_from names dimension {dim!r}, which the source lacks "
            f"(dimensions: {sorted(map(str, ds.dims))})"
        )
    values = ds[dim].values if dim in ds.coords else np.arange(ds.sizes[dim])
    try:
        times = pd.DatetimeIndex([pd.Timestamp(template.format(**{dim: _plain(v)})) for v in values])
    except (KeyError, ValueError, IndexError) as exc:
        raise InputDataError(f"{source}: time_from template {template!r} for {dim!r} fails: {exc}") from None
    drop = [c for c in ("time", "valid_time") if c in ds.coords and c not in ds.dims]
    ds = ds.drop_vars(drop)
    if dim in ds.coords:
        ds = ds.drop_vars(dim)
    return ds.rename({dim: "time"}).assign_coords(time=("time", times.values.astype("datetime64[ns]")))


def _plain(v: Any) -> Any:
    v = v.item() if hasattr(v, "item") else v
    return int(v) if isinstance(v, float) and v.is_integer() else v


def refuse_dateless_dims(ds: xr.Dataset, source: str) -> None:
    """Raise for a ``month``-like dimension that holds no dates (see ``conventions.DATELESS_TIME_DIMS``)."""
    for dim in conv.DATELESS_TIME_DIMS:
        if dim in ds.dims:
            vals = ds[dim].values[:6].tolist() if dim in ds.coords else list(range(min(ds.sizes[dim], 6)))
            raise InputDataError(
                f"{source}: dimension {dim!r} (values {vals}) holds no dates, so it cannot become the time axis "
                f"by itself; map it explicitly, e.g. time_from={{'{dim}': '2000-{{{dim}:02d}}-01'}} "
                f"(catalog entry field `time_from`), or select one {dim} first"
            )


def check_time_axis(times: pd.DatetimeIndex, source: str, *, regular: bool) -> None:
    """Raise on duplicated times and, when ``regular``, on gaps or uneven spacing (naming the first one).

    A calendar-regular axis that pandas can name (``MS``, ``YS``, ...) passes; otherwise the step is the
    smallest difference and every difference must equal it.
    """
    dup = times[times.duplicated()]
    if len(dup):
        raise InputDataError(f"{source}: duplicated times ({len(dup)}), first {dup[0]}")
    if not regular or len(times) < 3:
        return
    times = times.sort_values()
    try:
        if pd.infer_freq(times) is not None:
            return
    except (TypeError, ValueError):
        pass
    diffs = np.diff(times.values)
    step = diffs.min()
    bad = np.flatnonzero(diffs != step)
    if len(bad):
        i = bad[0]
        kind = "missing times" if diffs[i] % step == np.timedelta64(0) else "uneven time steps"
        raise InputDataError(
            f"{source}: {kind}: the axis steps by {pd.Timedelta(step)} but jumps from {times[i]} to "
            f"{times[i + 1]} (first gap after {times[i]}; {len(bad)} irregular step(s))"
        )


# ---------------------------------------------------------------------------------------------- coordinates
def rename_coordinates(
    ds: xr.Dataset, source: str, mapping: Mapping[str, str] | None, layout: str, *, at_valid_time: bool = False
) -> xr.Dataset:
    """Rename coordinates onto ``latitude``/``longitude``/``time``/``level``/``number`` (and, for forecasts,
    ``prediction_timedelta``); an explicit ``mapping`` entry for a coordinate wins over the alias table.
    An analysis holding forecast fields (``step`` other than 0) is refused unless ``at_valid_time``."""
    mapping = dict(mapping or {})
    forecast = layout == "forecast"
    # analysis: valid time is the time axis; a forecast keeps init `time` and drops `valid_time`.
    if not forecast:
        if not at_valid_time:
            refuse_forecast_fields(ds, source)
        if "valid_time" in ds.dims and "time" not in ds.dims:
            ds = ds.drop_vars([c for c in ("time", "step") if c in ds.coords and c not in ds.dims])
        elif "valid_time" in ds.coords and "valid_time" not in ds.dims:
            if "step" in ds.dims and ds.sizes["step"] > 1:
                raise InputDataError(
                    f"{source}: has {ds.sizes['step']} forecast steps; read it as a forecast "
                    "(to_canonical_forecast / a catalog entry of kind forecast)"
                )
            if "time" in ds.dims and ds["valid_time"].dims == ("time",):
                ds = ds.assign_coords(time=ds["valid_time"].values)
            elif "time" in ds.coords and ds["time"].ndim == 0 and ds["valid_time"].ndim == 0:
                ds = ds.assign_coords(time=ds["valid_time"])  # one date: its valid time, not its reference time
            ds = ds.drop_vars("valid_time")
        if "time" not in ds.dims and "valid_time" not in ds.dims and ("time" in ds.coords or "valid_time" in ds.coords):
            # one analysis time as a scalar coordinate (GRIB fields of a single date): a length-1 time axis
            when = ds["valid_time"] if "valid_time" in ds.coords else ds["time"]
            ds = ds.drop_vars([c for c in ("time", "valid_time") if c in ds.coords])
            ds = ds.expand_dims(time=[when.values])
        if "step" in ds.dims:
            if ds.sizes["step"] > 1:
                raise InputDataError(f"{source}: has {ds.sizes['step']} forecast steps; read it as a forecast")
            ds = ds.isel(step=0)
    else:
        if "valid_time" in ds.coords and "valid_time" not in ds.dims:
            ds = ds.drop_vars("valid_time")
    renames: dict[str, str] = {}
    for name in list(ds.coords) + [d for d in ds.dims if d not in ds.coords]:
        target = mapping.get(name, conv.COORD_ALIASES.get(name))
        if target is None or target == name:
            continue
        if target == "prediction_timedelta" and not forecast:
            continue
        if target in ds.coords or target in ds.dims or target in renames.values():
            if name not in ds.dims:  # a second, scalar alias of an existing axis: drop it
                ds = ds.drop_vars(name)
                continue
            raise InputDataError(
                f"{source}: both {name!r} and {target!r} would become {target!r}; give a coordinate mapping"
            )
        renames[str(name)] = target
    return ds.rename(renames) if renames else ds


def drop_leftover_coords(ds: xr.Dataset, layout: str) -> xr.Dataset:
    """Drop scalar and auxiliary coordinates (``number``, ``step``, ``surface``, ``heightAboveGround``,
    ``valid_time``, ...) that are not canonical dimensions."""
    keep = set(conv.DIM_ORDER) if layout == "forecast" else set(conv.DIM_ORDER) - {"prediction_timedelta"}
    drop = [c for c in ds.coords if c not in ds.dims or c not in keep]
    return ds.drop_vars(drop)


def handle_members(ds: xr.Dataset, source: str, ensemble: bool, member: int | None = None) -> xr.Dataset:
    """Keep a ``number`` dimension of several members (unless ``ensemble`` is False: refuse); drop one member,
    except the member of an ensemble a source holds alone (``member``, see :func:`single_member`): kept as
    ``number`` when ``ensemble``, else refused (it is no analysis unless selected on purpose)."""
    if "number" not in ds.dims:
        return ds
    if ds.sizes["number"] == 1 and member is not None:
        if not ensemble:
            raise InputDataError(
                f"{source}: holds ensemble member {member} alone (a perturbed or control forecast), not a "
                f"deterministic analysis; ingest it on purpose with --member {member} (it is then stored as that "
                "member), or as a forecast with --forecast (kept as `number`)"
            )
        return ds.assign_coords(number=ds["number"].values.astype("int64"))
    if ds.sizes["number"] == 1:
        return ds.isel(number=0, drop=True)
    if not ensemble:
        raise InputDataError(
            f"{source}: is an ensemble of {ds.sizes['number']} members (dimension `number`) "
            "but a deterministic dataset was asked for; select one member first "
            "(e.g. ds.sel(number=0)) or allow ensembles"
        )
    return ds.assign_coords(number=ds["number"].values.astype("int64"))


def _check_regular(values: np.ndarray, name: str, source: str) -> float:
    if len(values) < 2:
        return float("nan")
    diffs = np.diff(values)
    step = float(np.median(diffs))
    if step <= 0 or not np.allclose(diffs, step, rtol=1e-3, atol=1e-6):
        i = int(np.flatnonzero(~np.isclose(diffs, step, rtol=1e-3, atol=1e-6))[0]) if step > 0 else 0
        raise InputDataError(
            f"{source}: {name} grid is not regular: spacing {diffs[i]:.6g} between "
            f"{values[i]:.6g} and {values[i + 1]:.6g} differs from {step:.6g} (a Gaussian or "
            "irregular grid must be regridded before ingestion)"
        )
    return step


def normalise_grid(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Latitude ascending in [-90, 90]; longitude ascending, [0, 360) for a global grid, contiguous for a
    regional one (western edge in [0, 360), values may exceed 360); both regular. Raises otherwise."""
    missing = [c for c in _SPATIAL if c not in ds.dims]
    if missing:
        raise InputDataError(
            f"{source}: no {' or '.join(missing)} dimension (dimensions: "
            f"{sorted(map(str, ds.dims))}); give a coordinate mapping"
        )
    lat = ds["latitude"].values.astype("float64")
    if np.any(np.abs(lat) > 90.0 + 1e-6):
        raise InputDataError(f"{source}: latitude values outside [-90, 90] ({lat.min()} .. {lat.max()})")
    if len(lat) > 1 and np.all(np.diff(lat) < 0):
        ds = ds.isel(latitude=slice(None, None, -1))
    elif len(lat) > 1 and not np.all(np.diff(lat) > 0):
        ds = ds.isel(latitude=np.argsort(lat, kind="stable"))
    lat = ds["latitude"].values.astype("float64")
    dup = pd.Index(lat).duplicated()
    if dup.any():
        raise InputDataError(f"{source}: duplicated latitude {lat[dup][0]}")
    _check_regular(lat, "latitude", source)

    lon = ds["longitude"].values.astype("float64")
    wrapped = np.mod(lon, 360.0)
    order = np.argsort(wrapped, kind="stable")
    sorted_lon = wrapped[order]
    keep = ~pd.Index(np.round(sorted_lon, 6)).duplicated()  # a global grid listing both 0 and 360
    order, sorted_lon = order[keep], sorted_lon[keep]
    n = len(sorted_lon)
    if n > 1:
        spacing = float(np.min(np.diff(sorted_lon))) if n > 1 else 360.0
        is_global = abs(n * spacing - 360.0) <= 0.01 * spacing
        if not is_global:
            gaps = np.diff(np.r_[sorted_lon, sorted_lon[0] + 360.0])
            start = (int(np.argmax(gaps)) + 1) % n
            order, sorted_lon = np.roll(order, -start), np.roll(sorted_lon, -start)
            sorted_lon = sorted_lon[0] + np.mod(sorted_lon - sorted_lon[0], 360.0)
    if not np.array_equal(order, np.arange(len(lon))):
        ds = ds.isel(longitude=order)
    _check_regular(sorted_lon, "longitude", source)
    # both coordinates in one assignment (each Dataset assignment re-aligns every variable: per file of a
    # long archive that was a third of the canonical mapping's time)
    return ds.assign_coords(
        latitude=("latitude", lat, {"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude"}),
        longitude=(
            "longitude",
            sorted_lon,
            {"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"},
        ),
    )


def normalise_levels(ds: xr.Dataset, source: str, levels: list[int] | None) -> xr.Dataset:
    """``level`` in integer hPa (from Pa/hPa by the ``units`` attribute, else by magnitude), ascending,
    restricted to ``levels`` (each must exist)."""
    if "level" not in ds.dims:
        if levels:
            raise InputDataError(f"{source}: levels {levels} asked for, but the source has no pressure levels")
        return ds
    raw = ds["level"].values.astype("float64")
    units = conv.normalise_units(str(ds["level"].attrs.get("units", "")))
    if units in conv.LEVEL_UNITS_TO_HPA:
        factor = conv.LEVEL_UNITS_TO_HPA[units]
    elif units:
        raise InputDataError(
            f"{source}: pressure level units {ds['level'].attrs['units']!r} not understood (expected Pa or hPa)"
        )
    else:
        factor = 0.01 if raw.max() > 1100.0 else 1.0
    hpa = raw * factor
    if not np.allclose(hpa, np.round(hpa), atol=1e-3):
        raise InputDataError(f"{source}: pressure levels {hpa.tolist()} hPa are not whole hPa")
    ds = ds.assign_coords(level=("level", np.round(hpa).astype("int64")))
    if pd.Index(ds["level"].values).duplicated().any():
        raise InputDataError(f"{source}: duplicated pressure levels {ds['level'].values.tolist()}")
    ds = ds.sortby("level")
    if levels:
        have = ds["level"].values.tolist()
        missing = [lev for lev in levels if lev not in have]
        if missing:
            raise InputDataError(f"{source}: levels {missing} hPa not found; the source has {have}")
        ds = ds.sel(level=sorted(levels))
    ds["level"].attrs = {"units": "hPa", "long_name": "pressure level", "standard_name": "air_pressure"}
    return ds


def select_time(ds: xr.Dataset, source: str, start, end, *, regular: bool) -> xr.Dataset:
    """Validate the ``time`` axis (datetime, no duplicates, gaps only where ``regular`` allows), sort it and
    select ``start``..``end`` (inclusive)."""
    if "time" not in ds.dims:
        return ds
    if not np.issubdtype(ds["time"].dtype, np.datetime64):
        raise InputDataError(
            f"{source}: time axis of dtype {ds['time'].dtype} holds no dates; decode it or map it with time_from"
        )
    times = pd.DatetimeIndex(ds["time"].values)
    check_time_axis(times, source, regular=False)
    if not times.is_monotonic_increasing:
        ds = ds.sortby("time")
    if start is not None or end is not None:
        first, last = ds["time"].values[0], ds["time"].values[-1]
        ds = ds.sel(
            time=slice(
                pd.Timestamp(start) if start is not None else None, pd.Timestamp(end) if end is not None else None
            )
        )
        if ds.sizes["time"] == 0:
            raise InputDataError(
                f"{source}: no times between {start} and {end}; the source covers "
                f"{pd.Timestamp(first)} .. {pd.Timestamp(last)}"
            )
    check_time_axis(pd.DatetimeIndex(ds["time"].values), source, regular=regular)
    return ds


# ------------------------------------------------------------------------------------------------ variables
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
            if set(_SPATIAL) <= set(dims) and da.ndim > 2:  # whole fields absent: a sparse GRIB hypercube
                axes = tuple(i for i, d in enumerate(dims) if d in _SPATIAL)
                absent = isnan_np.all(axis=axes)
                if absent.any() and absent.sum() * np.prod([da.sizes[d] for d in _SPATIAL]) == isnan_np.sum():
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
    ds = ds[list(resolved)]
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
