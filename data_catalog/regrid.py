"""Area-conservative regridding of regular latitude/longitude grids to a coarser resolution.

A cell's area on the sphere is proportional to (sin(lat_upper) - sin(lat_lower)) * (lon_east - lon_west), so
conservative weights factor into two 1-D overlap matrices: one in sin(latitude), one in longitude (periodic for
global grids). Cell bounds follow docs/conventions.md's area convention: halfway between rows, half a spacing beyond the
edge rows, clipped to +-90 degrees. The target value is the area-weighted mean of the source cells it overlaps,
so the area-weighted mean over the domain is preserved to round-off and a constant field stays constant.

The weights are pure functions of the coordinates (:func:`cell_bounds`, :func:`overlap_matrix`,
:func:`conservative_weights`); :func:`regrid_array` applies them separably (two matrix products) and
:func:`regrid_dataset` wraps that for xarray (lazy with dask: one block per input chunk).

xarray-regrid's ``conservative`` method was tried first (it is as fast on the UK sample) but weighs latitude by
cos(lat) at cell centres over degree overlaps instead of exact sin(lat) band areas, and needs flox and
numpy-groupies; these 1-D matrices are a few lines, exact, and add no dependency.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from data_catalog.errors import ConfigError, WxemuError


def cell_bounds(centres: np.ndarray, *, clip: tuple[float, float] | None = None) -> np.ndarray:
    """(n+1,) cell edges for ascending, regularly or irregularly spaced ``centres``: midpoints between
    neighbours, half a spacing beyond the first and last centre, optionally clipped to ``clip``."""
    c = np.asarray(centres, dtype="f8")
    if c.size < 2:
        raise ValueError("need at least two coordinate values to infer cell bounds")
    mid = 0.5 * (c[1:] + c[:-1])
    edges = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
    return np.clip(edges, *clip) if clip else edges


def overlap_matrix(
    src_edges: np.ndarray, dst_edges: np.ndarray, *, period: float | None = None, transform=None
) -> np.ndarray:
    """(n_dst, n_src) overlap lengths between 1-D cells given by ascending edges.

    ``transform`` (e.g. ``np.sin`` of radians for latitude) is applied to the edges before measuring overlaps.
    With ``period`` (360 for global longitude) source cells are also compared shifted by +-period.
    """
    s0, s1 = np.asarray(src_edges[:-1], "f8"), np.asarray(src_edges[1:], "f8")
    d0, d1 = np.asarray(dst_edges[:-1], "f8"), np.asarray(dst_edges[1:], "f8")
    shifts = [0.0] if period is None else [-period, 0.0, period]
    out = np.zeros((d0.size, s0.size))
    for shift in shifts:
        lo = np.maximum(d0[:, None], s0[None, :] + shift)
        hi = np.minimum(d1[:, None], s1[None, :] + shift)
        if transform is not None:
            ov = np.where(hi > lo, transform(hi) - transform(np.minimum(lo, hi)), 0.0)
        else:
            ov = np.clip(hi - lo, 0.0, None)
        out += ov
    return out


def _sin_deg(x: np.ndarray) -> np.ndarray:
    return np.sin(np.deg2rad(x))


def is_global_longitude(lon: np.ndarray) -> bool:
    """True when a regular longitude axis covers the full circle (n * spacing == 360)."""
    lon = np.asarray(lon, "f8")
    return lon.size > 1 and np.isclose((lon[1] - lon[0]) * lon.size, 360.0)


def target_axis(centres: np.ndarray, resolution: float) -> np.ndarray:
    """Target centres at multiples of ``resolution`` within [centres.min(), centres.max()] (WeatherBench2-style
    grids: 0, 1.5, 3, ... ; -90..90 include the poles when the source does)."""
    lo, hi = float(np.min(centres)), float(np.max(centres))
    k0, k1 = int(np.ceil(lo / resolution - 1e-9)), int(np.floor(hi / resolution + 1e-9))
    return np.round(np.arange(k0, k1 + 1) * resolution, 10)


def conservative_weights(
    src_lat: np.ndarray, src_lon: np.ndarray, dst_lat: np.ndarray, dst_lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row-normalised 1-D weights (W_lat (n_dst_lat, n_src_lat), W_lon (n_dst_lon, n_src_lon)).

    dst = W_lat @ src @ W_lon.T is the area-weighted mean of the overlapped source cells. Target edges are
    clipped to the source domain so the two grids cover exactly the same area (conservation).
    """
    src_lat_e = cell_bounds(src_lat, clip=(-90.0, 90.0))
    dst_lat_e = np.clip(cell_bounds(dst_lat, clip=(-90.0, 90.0)), src_lat_e[0], src_lat_e[-1])
    w_lat = overlap_matrix(src_lat_e, dst_lat_e, transform=_sin_deg)
    periodic = is_global_longitude(src_lon)
    src_lon_e = cell_bounds(src_lon)
    dst_lon_e = cell_bounds(dst_lon)
    if not periodic:
        dst_lon_e = np.clip(dst_lon_e, src_lon_e[0], src_lon_e[-1])
    w_lon = overlap_matrix(src_lon_e, dst_lon_e, period=360.0 if periodic else None)
    for name, w in (("latitude", w_lat), ("longitude", w_lon)):
        if (w.sum(axis=1) <= 0).any():
            raise WxemuError(f"regrid: a target {name} cell overlaps no source cell")
    return w_lat / w_lat.sum(axis=1, keepdims=True), w_lon / w_lon.sum(axis=1, keepdims=True)


def regrid_array(values: np.ndarray, w_lat: np.ndarray, w_lon: np.ndarray) -> np.ndarray:
    """Apply separable weights to ``values`` (..., lat, lon) -> (..., n_dst_lat, n_dst_lon), float64 math."""
    v = np.asarray(values, dtype="f8")
    return np.einsum("ij,...jk,lk->...il", w_lat, v, w_lon, optimize=True)


def regrid_dataset(ds: xr.Dataset, resolution: float) -> xr.Dataset:
    """Conservatively regrid every variable with (latitude, longitude) dims of a canonical dataset to a grid of
    ``resolution`` degrees (must be coarser than the source). Keeps dtypes and attributes; lazy with dask."""
    if not 0 < resolution < 360:  # NaN and inf too
        raise ConfigError(f"regrid: --grid {resolution} must be a finite resolution in degrees, 0 < grid < 360")
    lat, lon = ds["latitude"].values, ds["longitude"].values
    src_res = float(np.min(np.abs(np.diff(lat))))
    if resolution <= src_res + 1e-9:
        raise WxemuError(f"regrid: --grid {resolution} is not coarser than the source grid ({src_res} deg)")
    dst_lat = target_axis(lat, resolution)
    if is_global_longitude(lon):
        dst_lon = np.round(np.arange(0.0, 360.0 - 1e-9, resolution) + np.ceil(lon[0] / resolution) * resolution, 10)
    else:
        dst_lon = target_axis(lon, resolution)
    if dst_lat.size < 2 or dst_lon.size < 2:
        raise WxemuError(
            f"regrid: the source grid ({np.ptp(lat):g} x {np.ptp(lon):g} deg) spans fewer than two {resolution} deg "
            "cells along latitude or longitude; choose a finer --grid"
        )
    w_lat, w_lon = conservative_weights(lat, lon, dst_lat, dst_lon)

    def apply(x: np.ndarray) -> np.ndarray:
        return regrid_array(x, w_lat, w_lon).astype(x.dtype)

    out = xr.Dataset(attrs=ds.attrs)
    for name, var in ds.data_vars.items():
        if "latitude" not in var.dims or "longitude" not in var.dims:
            out[name] = var
            continue
        new = xr.apply_ufunc(
            apply,
            var,
            input_core_dims=[["latitude", "longitude"]],
            output_core_dims=[["latitude_out", "longitude_out"]],
            dask="parallelized",
            output_dtypes=[var.dtype],
            dask_gufunc_kwargs={"output_sizes": {"latitude_out": dst_lat.size, "longitude_out": dst_lon.size}},
        ).rename({"latitude_out": "latitude", "longitude_out": "longitude"})
        new.attrs = var.attrs
        out[name] = new.transpose(*var.dims)
    out = out.assign_coords(
        latitude=("latitude", dst_lat, ds["latitude"].attrs), longitude=("longitude", dst_lon, ds["longitude"].attrs)
    )
    for c in ds.coords:
        if c not in ("latitude", "longitude") and c not in out.coords:
            out = out.assign_coords({c: ds[c]})
    out.attrs["wxemu_regrid"] = f"area-conservative to {resolution} deg"
    return out
