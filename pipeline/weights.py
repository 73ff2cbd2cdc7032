"""Area weights of latitude rows, as WeatherBench2 weighs them.

A row at latitude phi stands for the band between the midpoints to its neighbours (half a spacing beyond the
edge rows, clipped to +-90 deg); its weight is the band's area per unit longitude, ``sin(upper) - sin(lower)``
(equal to ``cos(phi) * dphi`` away from the poles, and right on pole rows and regional grids). Weights are
normalised to mean 1 over the rows given, so an unweighted mean of ones stays 1.

Pure numpy: no I/O, no xarray objects needed (``latitude_weights_da`` wraps the result for xarray users).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from data_catalog.errors import WxemuError


def latitude_bounds(latitude_deg: np.ndarray) -> np.ndarray:
    """Band edges (degrees, shape ``(n + 1,)``) of rows at ``latitude_deg`` (degrees north, strictly ascending).

    Inner edges lie halfway between rows; the outer edges half a spacing beyond the first and last rows,
    clipped to +-90 degrees. A single row gets a band of zero width unless it is alone at a pole; callers should
    not pass a single row (its weight is meaningless) - we return +-90 for it.
    """
    lat = np.asarray(latitude_deg, dtype=np.float64)
    if lat.ndim != 1 or lat.size == 0:
        raise WxemuError(f"latitude must be a non-empty 1-D array, got shape {lat.shape}")
    if lat.size == 1:
        return np.array([-90.0, 90.0])
    if not np.all(np.diff(lat) > 0):
        raise WxemuError("latitude must be strictly ascending to compute area weights")
    mid = (lat[:-1] + lat[1:]) / 2
    lower = lat[0] - (lat[1] - lat[0]) / 2
    upper = lat[-1] + (lat[-1] - lat[-2]) / 2
    return np.clip(np.concatenate([[lower], mid, [upper]]), -90.0, 90.0)


def latitude_weights(latitude_deg: np.ndarray) -> np.ndarray:
    """Area weight of each latitude row, shape ``(n,)``, float64, normalised to mean 1.

    ``latitude_deg``: row latitudes in degrees north, ascending (a descending array is handled by flipping
    and flipping back, so the weights stay aligned with the rows given).
    """
    lat = np.asarray(latitude_deg, dtype=np.float64)
    if lat.size > 1 and lat[0] > lat[-1]:
        return latitude_weights(lat[::-1])[::-1].copy()
    bounds = np.deg2rad(latitude_bounds(lat))
    area = np.sin(bounds[1:]) - np.sin(bounds[:-1])
    return area / area.mean()


def latitude_weights_da(latitude: xr.DataArray) -> xr.DataArray:
    """:func:`latitude_weights` as a DataArray on the ``latitude`` coordinate given."""
    return xr.DataArray(
        latitude_weights(latitude.values), dims=latitude.dims, coords=latitude.coords, name="area_weight"
    )
