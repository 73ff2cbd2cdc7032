"""Read Met Office PP files and fieldsfiles through iris into a source dataset that ``canonicalise`` maps.

``open_um`` loads every field (one 2-D field per PP header) with ``iris.load_raw``, names it by its STASH code
or CF name (``data_catalog.um.stash``), converts its units with cf-units, brings it onto a regular
latitude/longitude grid when it is not on one (``data_catalog.um.grid``) and stacks the fields into arrays
in cfgrib's layout, which ``canonical.to_canonical`` / ``forecasts.to_canonical_forecast`` already read:

* ``time``: forecast reference time (a dimension, length >= 1); ``step``: forecast period (timedelta; a
  dimension when there are several, else a scalar coordinate); ``valid_time`` = time + step.
* ``number``: ensemble member (iris ``realization``; else the digits that end a file name such as
  ``ensemble_007.pp``, as the iris gallery reads GloSea4); a dimension when there are several.
* ``level``: pressure in hPa for fields on pressure levels; model levels stay ``model_level_number``.

A lagged ensemble (members from different reference times with the same validity times, e.g. GloSea4) becomes
one ensemble at the latest reference time, leads = validity time - that time; the members' own reference
times are recorded in the ``um_lagged_ensemble`` attribute. The ``regridding`` attribute records, per variable,
the method and grids of any regridding; ``source_files`` lists the files read.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog import conventions as conv
from data_catalog.errors import InputDataError
from data_catalog.um import grid as ug
from data_catalog.um import stash as us
from data_catalog.um.detect import check_pp_records, is_um_magic

REGRID_CHOICES = ("auto", "linear", "conservative")
#: Environment variable choosing the regrid method where the caller gives none (``auto`` by default).
REGRID_ENV = "WXEMU_UM_REGRID"
_MEMBER_IN_NAME = re.compile(r"(?:ensemble|member|ens|mem)[_-]?(\d+)$", re.IGNORECASE)


@dataclass
class _Field:
    name: str
    cube: object
    ref: np.datetime64
    valid: np.datetime64
    member: int | None
    level: float | None
    model_level: int | None
    units: str
    source: str = ""
    attrs: dict = field(default_factory=dict)


def _iris():
    try:
        import iris
        import iris.fileformats.pp  # noqa: F401
    except ImportError:
        raise InputDataError(
            "reading Met Office PP/fieldsfiles needs scitools-iris: pip install 'wxemu[metoffice]'"
        ) from None
    # iris warns about its units' date precision whenever a lazy field is read (in dask's threads too)
    warnings.filterwarnings("ignore", message="You are using legacy date precision", category=FutureWarning)
    return iris


def _datetimes(coord, path: str) -> np.ndarray:
    """Points of an iris time coordinate as datetime64[s]; dates a 360-day or other calendar has but the
    Gregorian lacks (30 February) are refused."""
    out = []
    for d in coord.units.num2date(np.atleast_1d(coord.points)):
        try:
            out.append(np.datetime64(pd.Timestamp(d.year, d.month, d.day, d.hour, d.minute, d.second), "s"))
        except ValueError:
            raise InputDataError(
                f"{path}: {coord.name()} {d} of the {coord.units.calendar} calendar is no Gregorian date; "
                "wxemu stores Gregorian times"
            ) from None
    return np.asarray(out)


def _scalar(cube, name: str):
    coords = cube.coords(name)
    return coords[0] if coords else None


def _member_from_filename(path: str) -> int | None:
    stem = os.path.splitext(os.path.basename(path))[0]
    m = _MEMBER_IN_NAME.search(stem)
    return int(m.group(1)) if m else None


def _to_field(cube, path: str) -> _Field:
    stash = str(cube.attributes["STASH"]) if "STASH" in cube.attributes else None
    pressure, height = _scalar(cube, "pressure"), _scalar(cube, "height")
    model_level = _scalar(cube, "model_level_number")
    height_m = float(height.units.convert(height.points[0], "m")) if height is not None else None
    kind = us.vertical_kind(pressure is not None, height_m)
    name = us.canonical_name(stash, cube.standard_name, kind)
    units = str(cube.units)
    if name is not None:
        spec = conv.VARIABLES[name]
        try:
            if us.is_height(stash, cube.standard_name):
                cube.convert_units("m")
                cube = cube * conv.STANDARD_GRAVITY
                cube.units = spec.units
            else:
                cube.convert_units(spec.units)
            units = spec.units
        except ValueError:  # not convertible by cf-units (kg m-2 of water -> m): canonicalise converts or refuses
            pass
    else:
        name = stash or cube.name()
    time = _scalar(cube, "time")
    if time is None:
        raise InputDataError(f"{path}: field {name} has no time coordinate")
    valid = _datetimes(time, path)[0]
    frt = _scalar(cube, "forecast_reference_time")
    ref = _datetimes(frt, path)[0] if frt is not None else valid
    real = _scalar(cube, "realization")
    member = int(real.points[0]) if real is not None else _member_from_filename(path)
    level = float(pressure.units.convert(pressure.points[0], "hPa")) if pressure is not None else None
    return _Field(
        name=name,
        cube=cube,
        ref=ref,
        valid=valid,
        member=member,
        level=level,
        model_level=int(model_level.points[0]) if model_level is not None else None,
        units=units,
        source=path,
        attrs={"um_stash": stash or "", "um_cf_name": cube.name()},
    )


def load_fields(paths: Sequence[str], sources: Sequence[str] | None = None) -> list[_Field]:
    """Every field of ``paths`` (local files) as a 2-D iris cube with its keys; ``sources`` names the files in
    messages (URLs of downloaded copies). A file iris cannot read raises InputDataError naming it."""
    iris = _iris()
    out = []
    for path, label in zip(paths, sources or paths):
        with open(path, "rb") as f:
            head = f.read(8)
        if is_um_magic(head) and int.from_bytes(head[:4], "big") in (256, 512):  # a PP file (not a fieldsfile)
            check_pp_records(path, label)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cubes = iris.load_raw(path)
        except Exception as exc:  # iris raises many kinds; each is a file it cannot read
            hint = ""
            if "encoded before hashing" in str(exc):
                hint = "; iris 3.14 and older fail so with xxhash 4: install xxhash<4 (pinned by wxemu[metoffice])"
            raise InputDataError(
                f"{label}: iris cannot read it as a Met Office PP/fieldsfile ({type(exc).__name__}: {exc}){hint}"
            ) from None
        if not cubes:
            raise InputDataError(f"{label}: no fields (not a PP file or fieldsfile)")
        out += [_to_field(c, label) for c in cubes]
    return out


def _read(cube, name: str, source: str) -> np.ndarray:
    """A field's values as float32 with NaN where masked; what iris fails to read raises InputDataError."""
    try:
        data = cube.core_data()  # computed here, not realised in the cube (which would keep it in memory)
        data = data.compute(scheduler="synchronous") if hasattr(data, "compute") else data
        return np.ma.filled(np.ma.asarray(data, dtype="f4"), np.nan)
    except Exception as exc:  # iris reads lazily: a corrupt data record fails only here
        raise InputDataError(f"{source}: iris cannot read field {name} ({type(exc).__name__}: {exc})") from None


def _lazy(f: _Field):
    import dask
    import dask.array as da

    shape = (f.cube.coord("latitude").shape[0], f.cube.coord("longitude").shape[0])
    return da.from_delayed(dask.delayed(_read, pure=False)(f.cube, f.name, f.source), shape, dtype="f4")


def _lagged(fields: list[_Field]) -> dict[int, str] | None:
    """{member: reference time} when the members come from different reference times but share validity times
    (a lagged ensemble), else None."""
    members = {f.member for f in fields}
    if len(members) < 2 or None in members:
        return None
    refs: dict[int, set] = {}
    valids: dict[int, set] = {}
    for f in fields:
        refs.setdefault(f.member, set()).add(f.ref)
        valids.setdefault(f.member, set()).add(f.valid)
    if any(len(r) != 1 for r in refs.values()) or len({next(iter(r)) for r in refs.values()}) < 2:
        return None
    if len({frozenset(v) for v in valids.values()}) != 1:
        return None
    return {m: str(pd.Timestamp(next(iter(r)))) for m, r in sorted(refs.items())}


def _stack(name: str, fields: list[_Field], label: str) -> tuple[xr.DataArray, dict[int, str] | None]:
    """One variable's fields as an array (time, step, [number], [level | model_level_number], lat, lon); a
    static field (orography, land mask) is its first field without time axes."""
    import dask.array as da

    if name in conv.VARIABLES and conv.VARIABLES[name].static:
        f = fields[0]
        lat, lon = f.cube.coord("latitude").points, f.cube.coord("longitude").points
        arr = xr.DataArray(
            _lazy(f),
            dims=("latitude", "longitude"),
            coords={"latitude": lat.astype("f8"), "longitude": lon.astype("f8")},
            attrs={"units": f.units, **f.attrs},
        )
        return arr, None

    lagged = _lagged(fields)
    nominal = max(f.ref for f in fields) if lagged else None
    keyed: dict[tuple, _Field] = {}
    for f in fields:
        ref = nominal if lagged else f.ref
        key = (ref, f.valid - ref, f.member, f.level, f.model_level)
        if key in keyed:
            raise InputDataError(
                f"{label}: two {name} fields for reference time {pd.Timestamp(ref)}, lead "
                f"{pd.Timedelta(key[1])}, member {f.member}, level {f.level or f.model_level}"
            )
        keyed[key] = f
    axes = [sorted({k[i] for k in keyed}, key=lambda v: (v is None, v)) for i in range(5)]
    first = fields[0].cube
    lat, lon = first.coord("latitude").points, first.coord("longitude").points
    blank = da.full((lat.size, lon.size), np.nan, dtype="f4")
    arrays = []
    for idx in np.ndindex(*[len(a) for a in axes]):
        f = keyed.get(tuple(axes[i][j] for i, j in enumerate(idx)))
        arrays.append(_lazy(f) if f is not None else blank)
    data = da.stack(arrays).reshape(*[len(a) for a in axes], lat.size, lon.size)
    dims = ["time", "step", "number", "level", "model_level_number", "latitude", "longitude"]
    coords: dict = {
        "time": np.asarray(axes[0], "datetime64[ns]"),
        "step": np.asarray(axes[1], "timedelta64[ns]"),
        "latitude": ("latitude", lat.astype("f8")),
        "longitude": ("longitude", lon.astype("f8")),
    }
    arr = xr.DataArray(data, dims=dims, coords=coords)
    for dim, values, attrs in (
        ("number", axes[2], {}),
        ("level", axes[3], {"units": "hPa"}),
        ("model_level_number", axes[4], {}),
    ):
        if values == [None]:
            arr = arr.isel({dim: 0}, drop=True)
        else:
            arr = arr.assign_coords({dim: (dim, np.asarray(values), attrs)})
            if dim == "number" and len(values) == 1:
                arr = arr.isel(number=0)
    arr.attrs = {"units": fields[0].units, **fields[0].attrs}
    return arr, lagged


def _method(name: str, regrid: str) -> str:
    if regrid == "auto":
        return "conservative" if name in us.EXTENSIVE else "linear"
    return regrid


def _field_grid(cube) -> ug.RegularGrid:
    return ug.RegularGrid(
        tuple(np.round(cube.coord("latitude").points.astype("f8"), 8).tolist()),
        tuple(np.round(cube.coord("longitude").points.astype("f8"), 8).tolist()),
    )


def _onto_grid(fields: list[_Field], target: ug.RegularGrid | None, regrid: str) -> tuple[list[_Field], list[str]]:
    """Regrid the fields that are not on ``target`` (default: the first field's own regular grid, or the
    default target of a rotated/irregular one); returns the fields and one provenance line per variable."""
    notes: dict[str, str] = {}
    regridders: dict[tuple, object] = {}
    for f in fields:
        reason = ug.needs_regrid(f.cube)
        if target is None:
            target = ug.default_target(f.cube) if reason else _field_grid(f.cube)
        if reason is None and _field_grid(f.cube) == target:
            continue
        method = _method(f.name, regrid)
        src = f"{reason} grid" if reason else "regular grid other than the first field's"
        how = (
            "iris.analysis.Linear"
            if method == "linear"
            else "iris.analysis.AreaWeighted"
            if ug.same_system(f.cube)
            else f"area-weighted, {ug.SUBCELLS}x{ug.SUBCELLS} sub-cells"
        )
        key = (method, ug.grid_key(f.cube))
        if key not in regridders:
            regridders[key] = ug.regridder(f.cube, target, method)
        f.cube = regridders[key](f.cube)
        notes[f.name] = f"{f.name}: {method} ({how}) from the source's {src} onto a {target.describe()}"
    return fields, list(notes.values())


def open_um(
    paths: str | Sequence[str],
    *,
    sources: Sequence[str] | None = None,
    regrid: str | None = None,
    target: ug.RegularGrid | None = None,
) -> xr.Dataset:
    """Open Met Office PP files / fieldsfiles (local paths) as one lazy source dataset (see module docstring).

    sources: names of the files for messages and provenance (URLs of downloaded copies); default ``paths``.
    regrid: ``auto`` (conservative for extensive variables, ``stash.EXTENSIVE``; linear otherwise),
    ``linear`` or ``conservative``; None reads ``$WXEMU_UM_REGRID`` (default ``auto``). target: the regular grid
    to regrid onto (default: see ``grid.default_target``).
    Raises InputDataError naming the file for files iris cannot read, impossible dates, duplicated fields.
    """
    paths = [paths] if isinstance(paths, str) else list(paths)
    sources = list(sources) if sources else paths
    regrid = regrid or os.environ.get(REGRID_ENV, "auto") or "auto"
    if regrid not in REGRID_CHOICES:
        raise InputDataError(f"regrid {regrid!r} (or ${REGRID_ENV}): expected one of {', '.join(REGRID_CHOICES)}")
    label = sources[0] if len(sources) == 1 else f"{sources[0]} (+{len(sources) - 1} files)"
    fields, notes = _onto_grid(load_fields(paths, sources), target, regrid)
    by_name: dict[str, list[_Field]] = {}
    for f in fields:
        by_name.setdefault(f.name, []).append(f)
    data_vars, lagged_notes = {}, []
    for name, group in by_name.items():
        arr, lagged = _stack(name, group, label)
        data_vars[name] = arr
        if lagged:
            lagged_notes.append(f"{name}: members' reference times {lagged}; nominal {arr['time'].values[-1]}")
    try:
        ds = xr.Dataset(data_vars)
    except ValueError as exc:
        raise InputDataError(f"{label}: the fields do not share time/lead axes ({exc}); open them separately") from None
    if "step" in ds.dims and ds.sizes["step"] == 1:
        ds = ds.isel(step=0)
    if "time" in ds.coords:
        ds = ds.assign_coords(valid_time=ds["time"] + ds["step"])
    ds.attrs = {
        "institution": "Met Office",
        "source_files": list(sources),
        "regridding": "; ".join(notes) if notes else "none",
    }
    if lagged_notes:
        ds.attrs["um_lagged_ensemble"] = "; ".join(lagged_notes)
    return ds
