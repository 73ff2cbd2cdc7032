"""Physical plausibility of canonical variables: values no atmosphere produces are refused, not stored.

``BOUNDS`` gives, per canonical variable (in its canonical units, ``conventions.VARIABLES``), a range that every
real value lies in with a wide margin: a value outside it means wrong units (degrees Celsius labelled K, hPa
labelled Pa, g/kg labelled kg/kg), a wrong variable or damaged data. The bounds are deliberately loose (records
and model extremes pass) so that they never refuse real data; see docs/reliability.md.

:func:`check_values` is a pure function on arrays (NaN ignored: the NaN check is separate);
:func:`refuse_implausible` raises for the first variable of a written region that fails, naming the file, the
variable, the count and the first position (time, level, latitude/longitude); :func:`guard_plausible` does the
same for lazy (dask) data as it is computed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array
import numpy as np
import pandas as pd
import xarray as xr

from data_catalog.errors import InputDataError


@dataclass(frozen=True)
class Bounds:
    """Inclusive physical range of a canonical variable, in its canonical units."""

    low: float
    high: float
    units: str


BOUNDS: dict[str, Bounds] = {
    "geopotential": Bounds(-2.0e4, 1.0e6, "m2 s-2"),  # 1000 hPa in a deep low .. 0.1 hPa (~65 km)
    "temperature": Bounds(150.0, 350.0, "K"),
    "u_component_of_wind": Bounds(-250.0, 250.0, "m s-1"),
    "v_component_of_wind": Bounds(-250.0, 250.0, "m s-1"),
    "vertical_velocity": Bounds(-100.0, 100.0, "Pa s-1"),
    "specific_humidity": Bounds(-1.0e-3, 0.1, "kg kg-1"),  # small negatives: spectral/packing noise
    "relative_humidity": Bounds(-5.0, 160.0, "%"),  # supersaturation over ice exceeds 100%
    "2m_temperature": Bounds(150.0, 350.0, "K"),
    "2m_dewpoint_temperature": Bounds(150.0, 350.0, "K"),
    "10m_u_component_of_wind": Bounds(-150.0, 150.0, "m s-1"),
    "10m_v_component_of_wind": Bounds(-150.0, 150.0, "m s-1"),
    "mean_sea_level_pressure": Bounds(80_000.0, 110_000.0, "Pa"),
    "surface_pressure": Bounds(20_000.0, 110_000.0, "Pa"),
    "total_precipitation": Bounds(-1.0e-3, 2.0, "m"),
    "total_precipitation_6hr": Bounds(-1.0e-3, 2.0, "m"),
    "total_precipitation_24hr": Bounds(-1.0e-3, 5.0, "m"),
    "total_column_water_vapour": Bounds(-1.0, 150.0, "kg m-2"),
    "sea_surface_temperature": Bounds(250.0, 320.0, "K"),
    "toa_incident_solar_radiation": Bounds(-1.0e3, 1.0e8, "J m-2"),
    "land_sea_mask": Bounds(-1.0e-6, 1.0 + 1.0e-6, "1"),
    "geopotential_at_surface": Bounds(-1.0e4, 1.0e5, "m2 s-2"),
}


@dataclass(frozen=True)
class Implausible:
    """Values of ``variable`` outside ``bounds``: how many (of ``size``), and the first (C order) by index."""

    variable: str
    count: int
    size: int
    first_index: tuple[int, ...]
    first_value: float
    bounds: Bounds


def check_values(variable: str, values: np.ndarray) -> Implausible | None:
    """The values of canonical ``variable`` outside its physical range (``BOUNDS``), or None when all are
    plausible, NaN, or the variable has no bounds. ``values``: any shape, canonical units."""
    bounds = BOUNDS.get(variable)
    values = np.asarray(values)
    if bounds is None or values.size == 0:
        return None
    lo, hi = values.min(), values.max()  # two passes; NaN only when a NaN is present
    if np.isnan(lo) or np.isnan(hi):
        finite = values[~np.isnan(values)]
        if not finite.size:
            return None
        lo, hi = finite.min(), finite.max()
    if not (lo < bounds.low or hi > bounds.high):
        return None
    bad = (values < bounds.low) | (values > bounds.high)
    first = np.unravel_index(int(np.argmax(bad)), values.shape)
    return Implausible(
        variable=variable,
        count=int(bad.sum()),
        size=int(values.size),
        first_index=tuple(int(i) for i in first),
        first_value=float(values[first]),
        bounds=bounds,
    )


def _label(value: Any) -> Any:
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value)
    if isinstance(value, np.timedelta64):
        return pd.Timedelta(value)
    return value.item() if hasattr(value, "item") else value


def describe(
    found: Implausible, source: str, dims: Sequence[str], coords: Mapping[str, np.ndarray], scope: str = ""
) -> str:
    """The user's message for ``found``: ``source`` (files), the count (of the values checked: ``scope`` says
    which, e.g. " in times A .. B"), the first position by coordinate."""
    where = ", ".join(
        f"{d}={_label(coords[d][i]) if d in coords else i}" for d, i in zip(dims, found.first_index, strict=True)
    )
    b = found.bounds
    return (
        f"{source}: {found.count} of {found.size} values of {found.variable}{scope} are physically impossible "
        f"(outside {b.low:g} .. {b.high:g} {b.units}; first {found.first_value:g} at {where}): wrong units "
        f"(declare them with --units NAME=UNITS), a wrong variable or damaged data; pass --allow-implausible "
        "(allow_implausible=True) to store them anyway"
    )


def refuse_implausible(
    part: xr.Dataset, arrays: Mapping[str, np.ndarray], spans: Sequence[tuple[str, Any, Any]] = ()
) -> None:
    """Raise InputDataError for the first variable of ``arrays`` (values as written, dims of ``part[name]``)
    holding impossible values. ``spans``: [(file, first time, last time)] to name the file holding the first
    one (else "the sources")."""
    for name, values in arrays.items():
        found = check_values(str(name), values)
        if found is None:
            continue
        dims = part[name].dims
        coords = {d: part[d].values for d in dims if d in part.coords}
        files, scope = "the sources", ""
        if "time" in dims:
            t = coords["time"][found.first_index[dims.index("time")]]
            files = ", ".join(f for f, a, b in spans if a <= t <= b) or files
            scope = f" in times {_label(coords['time'][0])} .. {_label(coords['time'][-1])}"
        raise InputDataError(describe(found, files, dims, coords, scope))


def refuse_implausible_dataset(ds: xr.Dataset, source: str) -> None:
    """:func:`refuse_implausible` over every data variable of an in-memory (or small) canonical dataset."""
    arrays = {str(n): np.asarray(ds[n].values) for n in ds.data_vars}
    for name, values in arrays.items():
        found = check_values(name, values)
        if found is not None:
            dims = ds[name].dims
            raise InputDataError(describe(found, source, dims, {d: ds[d].values for d in dims if d in ds.coords}))


def guard_plausible(da: xr.DataArray, name: str, source: str) -> xr.DataArray:
    """``da`` (dask-backed or not) whose blocks raise InputDataError when computed if they hold impossible values
    of canonical variable ``name`` (the message names ``source`` and the first position in that block)."""
    if name not in BOUNDS:
        return da
    dims = da.dims
    coords = {d: da[d].values for d in dims if d in da.coords}
    if not isinstance(da.data, dask.array.Array):
        found = check_values(name, da.values)
        if found is not None:
            raise InputDataError(describe(found, source, dims, coords))
        return da

    def check(block: np.ndarray, block_info=None) -> np.ndarray:
        found = check_values(name, block)
        if found is not None:
            offsets = [lo for lo, _ in block_info[0]["array-location"]] if block_info else [0] * block.ndim
            shifted = dataclasses.replace(found, first_index=tuple(o + i for o, i in zip(offsets, found.first_index)))
            raise InputDataError(describe(shifted, source, dims, coords, " in the block read"))
        return block

    return da.copy(data=da.data.map_blocks(check, dtype=da.dtype))
