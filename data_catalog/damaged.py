"""Damaged and relabelled copies of sample files: the bad input the reliability tests (and users checking a
site's own files) feed the readers. Every function writes a new file ``dst`` and returns its path; the source is
only read.

* :func:`truncated_copy`: the first ``fraction`` of the bytes (a download cut short);
* :func:`corrupt_copy`: ``count`` bytes overwritten at ``at`` (a bad disk block);
* :func:`edit_grib`: GRIB messages re-encoded with header keys changed by eccodes (``stepRange``, ``dataType``,
  ``number``, ``gridType``...), optionally only the messages a predicate keeps;
* :func:`relabel_units`: a NetCDF copy whose variables' ``units`` attributes are changed and values kept.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xarray as xr


def truncated_copy(src: str, dst: str, fraction: float) -> str:
    """Copy the first ``fraction`` (0 < fraction < 1) of ``src``'s bytes to ``dst``."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    with open(src, "rb") as f:
        data = f.read()
    with open(dst, "wb") as f:
        f.write(data[: int(len(data) * fraction)])
    return dst


def corrupt_copy(src: str, dst: str, at: int, count: int = 64, byte: bytes = b"\xff") -> str:
    """Copy ``src`` to ``dst`` with ``count`` bytes from offset ``at`` (negative: from the end) set to ``byte``."""
    with open(src, "rb") as f:
        data = bytearray(f.read())
    start = at if at >= 0 else len(data) + at
    data[start : start + count] = byte * min(count, len(data) - start)
    with open(dst, "wb") as f:
        f.write(bytes(data))
    return dst


def grib_keys(path: str, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The values of ``keys`` in every message of a GRIB file (eccodes), in file order."""
    import eccodes

    out = []
    with open(path, "rb") as f:
        while (handle := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                out.append({k: eccodes.codes_get(handle, k) for k in keys})
            finally:
                eccodes.codes_release(handle)
    return out


def handle_size(handle: Any) -> int:
    """Number of grid points of an eccodes GRIB handle."""
    import eccodes

    return int(eccodes.codes_get_size(handle, "values"))


def edit_grib(
    src: str,
    dst: str,
    *,
    keep: Callable[[dict[str, Any]], bool] | None = None,
    limit: int | None = None,
    **keys: Any,
) -> str:
    """Write the messages of ``src`` to ``dst`` with the header ``keys`` set (eccodes ``codes_set``, in the order
    given, e.g. ``dataType="fc", stepRange="3"``; ``values`` sets the field, a scalar or the whole array).
    ``keep(message)`` receives ``shortName``, ``number``, ``level``, ``dataDate``, ``dataTime`` and decides whether
    a message is copied; ``limit`` caps the count."""
    import eccodes

    written = 0
    with open(src, "rb") as f, open(dst, "wb") as out:
        while (handle := eccodes.codes_grib_new_from_file(f)) is not None:
            try:
                info = {
                    k: eccodes.codes_get(handle, k) for k in ("shortName", "number", "level", "dataDate", "dataTime")
                }
                if keep is not None and not keep(info):
                    continue
                for key, value in keys.items():
                    if key == "values":
                        eccodes.codes_set_values(handle, np.broadcast_to(value, (handle_size(handle),)).copy())
                    else:
                        eccodes.codes_set(handle, key, value)
                out.write(eccodes.codes_get_message(handle))
                written += 1
            finally:
                eccodes.codes_release(handle)
            if limit is not None and written >= limit:
                break
    if not written:
        os.remove(dst)
        raise ValueError(f"{src}: no GRIB message kept")
    return dst


def relabel_units(
    src: str,
    dst: str,
    units: Mapping[str, str],
    *,
    offsets: Mapping[str, float] | None = None,
    isel: Mapping[str, Any] | None = None,
    fmt: str = "NETCDF3_64BIT",
) -> str:
    """Write ``src`` (any file xarray opens; GRIB through cfgrib) to NetCDF ``dst`` with the ``units`` attribute
    of each variable in ``units`` replaced. ``offsets`` are added to the values first (``{"t2m": -273.15}`` with
    ``{"t2m": "K"}``: degrees Celsius labelled K); ``isel`` selects a part first (``{"time": slice(0, 24)}``)."""
    kwargs = {"backend_kwargs": {"indexpath": ""}} if str(src).endswith((".grib", ".grb", ".grib2")) else {}
    with xr.open_dataset(src, **kwargs) as ds:
        ds = (ds.isel(dict(isel)) if isel else ds).load()
    for name, offset in (offsets or {}).items():
        ds[name] = (ds[name] + offset).assign_attrs(ds[name].attrs)
    for name, value in units.items():
        ds[name].attrs["units"] = value
    for var in ds.variables.values():  # cfgrib's attributes are not all NetCDF-writable
        var.attrs = {k: v for k, v in var.attrs.items() if not k.startswith("GRIB_")}
    ds.attrs = {k: v for k, v in ds.attrs.items() if not k.startswith("GRIB_")}
    ds.to_netcdf(dst, format=fmt)
    return dst
