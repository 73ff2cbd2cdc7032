"""Coordinates of a source dataset on the canonical convention (docs/conventions.md): time axis and dates,
coordinate names, ensemble members, the regular latitude/longitude grid, pressure levels, the time selection.

Pure functions over xarray Datasets; errors name the source. ``data_catalog.canonical`` composes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog import conventions as conv
from data_catalog.errors import InputDataError
from data_catalog.regions import AnyRegion, RegionError, box_indices
from data_catalog.source_kinds import refuse_forecast_fields

#: Arrays up to this size (bytes, float32) are checked for NaN immediately; larger ones when computed.
#: The horizontal dimensions of the canonical layout.
SPATIAL_DIMS = ("latitude", "longitude")


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
    missing = [c for c in SPATIAL_DIMS if c not in ds.dims]
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


def crop_to_region(ds: xr.Dataset, region: AnyRegion, source: str) -> xr.Dataset:
    """``ds`` (on the canonical grid) cut to the grid points in the box ``region``, lazily, its longitudes kept in
    the canonical convention (a box across the prime meridian from a 0..360 grid becomes 350 .. 362). Static
    fields are cut alike. Raises InputDataError naming ``source`` when the box holds no point of the grid."""
    try:
        rows, columns, longitude = box_indices(
            region=region, latitude=ds["latitude"].values, longitude=ds["longitude"].values
        )
    except RegionError as exc:
        raise InputDataError(f"{source}: {exc}") from None
    cut = ds.isel(latitude=_as_slice(rows), longitude=_as_slice(columns))
    return cut.assign_coords(longitude=("longitude", longitude, dict(ds["longitude"].attrs)))


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (a plain read of the source's chunks), else the indices."""
    if index.size and np.array_equal(index, np.arange(index[0], index[0] + index.size)):
        return slice(int(index[0]), int(index[0]) + index.size)
    return index


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
