"""Opening the stores a verification reads, and putting a forecast onto the truth grid.

Stores are opened lazily without dask (xarray's lazy indexing reads only the chunks selected); every dataset comes
back with dims named ``latitude``/``longitude`` and latitude ascending, in whatever order its arrays are stored
(the block reader transposes in memory). An incomplete wxemu store is refused with the command that completes it.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from data_catalog.regions import describe_grid
from data_catalog.store_protocol import COMPLETE_ATTR, is_complete, require_complete, root_attrs
from pipeline.verification.config import VerifyError

#: The store role (:data:`data_catalog.store_protocol.WRITER_OF`) of what verify reads.
ROLES = {"truth": "analysis", "forecast": "forecast", "climatology": "analysis"}


def _attrs_or_none(path: str) -> dict | None:
    """Root attributes of a Zarr v3 store, or None when it is not one (then it is opened, and reported, later)."""
    try:
        return root_attrs(path)
    except Exception:  # noqa: BLE001 - not a readable Zarr v3 root
        return None


def open_lazy(path: str, group: str | None = None) -> xr.Dataset:
    """Open a Zarr store (or a group of it) lazily, without dask."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return xr.open_zarr(str(path), group=group, chunks=None)


def open_dataset(path: str, role: str) -> xr.Dataset:
    """Open a truth or forecast Zarr store lazily (no dask), latitude ascending.

    A wxemu store (root attribute ``wxemu_complete``) that is not complete raises
    :class:`~data_catalog.errors.IncompleteStoreError` saying which command completes it
    (:func:`data_catalog.store_protocol.require_complete`); stores written elsewhere (WeatherBench2's) are opened
    as they are.
    """
    if not Path(path).exists() and "://" not in str(path):
        raise VerifyError(f"{role} store {path}: no such file or directory")
    attrs = _attrs_or_none(path)
    if attrs is not None and COMPLETE_ATTR in attrs and not is_complete(path):
        require_complete(path, ROLES[role])
    try:
        ds = open_lazy(path)
    except Exception as exc:
        raise VerifyError(f"{role} store {path}: cannot open as Zarr: {exc}") from exc
    return canonical_grid(ds, path, role)


def open_climatology_for(truth_path: str, climatology_path: str | None) -> xr.Dataset | None:
    """The climatology: ``climatology_path`` (a store whose root or group ``climatology`` has dims dayofyear,
    [hour], ...), else the truth store's ``climatology`` group, else None."""
    path = climatology_path or truth_path
    attrs = _attrs_or_none(path)
    if climatology_path and attrs is not None and COMPLETE_ATTR in attrs and not is_complete(path):
        require_complete(path, ROLES["climatology"])
    for group in ("climatology", None):
        try:
            ds = open_lazy(path, group)
        except Exception:  # noqa: BLE001, S112 - no such group / not Zarr: try the next layout
            continue
        if "dayofyear" in ds.dims:
            return canonical_grid(ds, path, "climatology")
    if climatology_path:
        raise VerifyError(f"climatology {path}: no group 'climatology' or root with a 'dayofyear' dimension")
    return None


def canonical_grid(ds: xr.Dataset, path: str, role: str) -> xr.Dataset:
    """``ds`` with dims ``lat``/``lon`` renamed ``latitude``/``longitude`` and latitude ascending (lazily)."""
    for a, b in (("lat", "latitude"), ("lon", "longitude")):
        if a in ds.dims and b not in ds.dims:
            ds = ds.rename({a: b})
    for d in ("latitude", "longitude"):
        if d not in ds.dims:
            raise VerifyError(f"{role} store {path}: no {d!r} dimension (dims: {dict(ds.sizes)})")
    if ds.sizes["latitude"] > 1 and float(ds["latitude"][0]) > float(ds["latitude"][-1]):
        ds = ds.isel(latitude=slice(None, None, -1))
    return ds


def forecast_name(ds: xr.Dataset, path: str) -> str:
    """A forecast's name: its ``wxemu_model`` or ``model`` attribute, else the store's file stem."""
    for key in ("wxemu_model", "model"):
        value = ds.attrs.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, dict) and value.get("name"):
            return str(value["name"])
    return Path(str(path).rstrip("/")).stem


# ------------------------------------------------------------------------------------------------------ regridding
def same_grid(a: xr.Dataset, b: xr.Dataset) -> bool:
    """True when ``a`` and ``b`` have the same latitudes and longitudes (to 1e-6 degrees)."""
    return all(
        a.sizes[d] == b.sizes[d] and np.allclose(a[d].values, b[d].values, atol=1e-6) for d in ("latitude", "longitude")
    )


def interp_to_truth(block: xr.DataArray, truth: xr.Dataset) -> xr.DataArray:
    """Bilinear interpolation of a forecast block onto the truth grid, longitudes matched modulo 360."""
    lon = block["longitude"].values.astype(np.float64)
    t_lon = truth["longitude"].values.astype(np.float64)
    span = lon.max() - lon.min()
    spacing = np.median(np.diff(lon)) if lon.size > 1 else 360.0
    periodic = span + spacing >= 360.0 - 1e-6
    # shift the forecast longitudes into the window that contains the truth's western edge
    base = t_lon.min()
    lon_m = base + (lon - base) % 360.0
    order = np.argsort(lon_m)
    block = block.isel(longitude=order).assign_coords(longitude=lon_m[order])
    if periodic:  # add wrap-around columns on both sides
        left = block.isel(longitude=[-1]).assign_coords(longitude=block["longitude"].values[-1:] - 360.0)
        right = block.isel(longitude=[0]).assign_coords(longitude=block["longitude"].values[:1] + 360.0)
        block = xr.concat([left, block, right], dim="longitude")
    target_lon = base + (t_lon - base) % 360.0
    out = block.interp(latitude=truth["latitude"].values, longitude=target_lon, method="linear")
    return out.assign_coords(longitude=t_lon)


def check_regrid(forecast: xr.Dataset, truth: xr.Dataset, fpath: str, tpath: str) -> str:
    """How the forecast is put on the truth grid (recorded in the scores); raises when it does not cover it."""
    ones = xr.DataArray(
        np.ones((forecast.sizes["latitude"], forecast.sizes["longitude"]), np.float32),
        dims=("latitude", "longitude"),
        coords={"latitude": forecast["latitude"].values, "longitude": forecast["longitude"].values},
    )
    probe = interp_to_truth(ones, truth)
    if np.isnan(probe.values).any():
        raise VerifyError(
            f"forecast {fpath} (grid {describe_grid(forecast.latitude, forecast.longitude)}) does not cover the "
            f"grid of the truth {tpath} ({describe_grid(truth.latitude, truth.longitude)}): cannot regrid it"
        )
    return (
        f"bilinear interpolation (xarray interp) from {forecast.sizes['latitude']}x"
        f"{forecast.sizes['longitude']} ({describe_grid(forecast.latitude, forecast.longitude)}) to the truth "
        f"grid {truth.sizes['latitude']}x{truth.sizes['longitude']}"
    )
