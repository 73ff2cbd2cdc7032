"""What kind of source a dataset is, decided before it is mapped onto the canonical convention: the facts a store
would otherwise record wrongly (issue 22; docs/reliability.md).

* GRIB forecast fields (a ``step`` other than 0) are no analysis, at their reference time or (unasked) at their
  valid time (:func:`refuse_forecast_fields`); other sources' fields are stored at their valid time;
* one member of an ensemble is no deterministic field (:func:`single_member`);
* a projected grid (Lambert, polar stereographic, rotated pole...) is no latitude-longitude grid
  (:func:`refuse_projected_grid`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog.errors import InputDataError

_PROJECTIONS = {
    "lambert": "Lambert conformal",
    "lambert_conformal_conic": "Lambert conformal",
    "lambert_azimuthal_equal_area": "Lambert azimuthal equal-area",
    "polar_stereographic": "polar stereographic",
    "mercator": "Mercator",
    "transverse_mercator": "transverse Mercator",
    "rotated_ll": "rotated latitude-longitude",
    "rotated_latitude_longitude": "rotated latitude-longitude",
    "space_view": "geostationary (space view)",
    "geostationary": "geostationary",
    "albers_conical_equal_area": "Albers equal-area",
    "stereographic": "stereographic",
}
_LATLON_GRIDS = {"regular_ll", "regular_gg", "reduced_gg", "reduced_ll", "latitude_longitude"}


def refuse_projected_grid(ds: xr.Dataset, source: str) -> None:
    """Raise for a projected grid (GRIB ``gridType`` such as ``lambert``, a CF ``grid_mapping`` other than
    latitude_longitude, or 2-D latitude/longitude), naming the projection: wxemu needs a latitude-longitude grid."""
    kinds = []
    for var in ds.data_vars.values():
        grid_type = var.attrs.get("GRIB_gridType")
        if isinstance(grid_type, str) and grid_type not in _LATLON_GRIDS:
            kinds.append(f"GRIB gridType {grid_type!r}")
        mapping = var.attrs.get("grid_mapping")
        if isinstance(mapping, str) and mapping in ds.variables:
            name = str(ds[mapping].attrs.get("grid_mapping_name", ""))
            if name and name not in _LATLON_GRIDS:
                kinds.append(f"CF grid_mapping {name!r}")
    two_d = [c for c in ("latitude", "lat", "longitude", "lon") if c in ds.coords and ds[c].ndim == 2]
    if not kinds and not two_d:
        return
    key = kinds[0].split("'")[1] if kinds else ""
    name = _PROJECTIONS.get(key, key or "unknown projection")
    dims = sorted(map(str, ds[two_d[0]].dims)) if two_d else None
    raise InputDataError(
        f"{source}: a projected grid ({name}: {kinds[0] if kinds else '2-D latitude/longitude'}"
        + (f" on dimensions {dims}" if dims else "")
        + "), not a regular latitude-longitude grid; regrid it onto one first (e.g. `cdo remapcon,r360x180`, "
        "or xESMF), then ingest the result"
    )


def is_grib(ds: xr.Dataset) -> bool:
    """Whether ``ds`` was read by cfgrib (its variables carry ``GRIB_*`` attributes)."""
    return any(str(k).startswith("GRIB_") for v in ds.data_vars.values() for k in v.attrs)


def refuse_forecast_fields(ds: xr.Dataset, source: str) -> None:
    """Raise for GRIB forecast fields (a ``step`` other than 0) read as an analysis: GRIB tells analyses from
    forecasts, and a forecast field is no analysis, neither at its reference time nor, unasked, at its valid time.

    Other readers' ``step`` (the Met Office PP reader's forecast period, e.g. the time since a climate run began)
    carries no such distinction: their fields are stored at their valid time (``valid_time``)."""
    if "step" not in ds.coords or "valid_time" in ds.dims or not is_grib(ds):
        return
    steps = pd.to_timedelta(np.atleast_1d(ds["step"].values).ravel())
    leads = sorted({s for s in steps if s != pd.Timedelta(0)})
    if not leads:
        return
    when = pd.Timestamp(np.atleast_1d(ds["time"].values)[0]) if "time" in ds.coords else None
    at = f" from reference time {when} (valid {when + leads[0]})" if when is not None else ""
    hours = leads[0] / pd.Timedelta(hours=1)
    lead = f"+{hours:g}h" if hours == int(hours) else str(leads[0])
    raise InputDataError(
        f"{source}: holds forecast fields, not analyses (lead {lead}{at}); as an analysis they would be "
        "stored at the wrong time: ingest it with --forecast (to_canonical_forecast, a catalog entry of kind "
        "forecast), or read it at its valid time on purpose (to_canonical(..., at_valid_time=True))"
    )


def single_member(ds: xr.Dataset) -> int | None:
    """The member number of a source holding ONE ensemble member (a scalar ``number`` other than 0, or GRIB
    ``dataType`` ``pf``/``cf``: perturbed or control forecast), else None (a deterministic source)."""
    if "number" not in ds.coords or ds["number"].ndim != 0:
        return None
    number = int(ds["number"].values)
    types = {str(v.attrs.get("GRIB_dataType")) for v in ds.data_vars.values()}
    return number if number != 0 or types & {"pf", "cf"} else None
