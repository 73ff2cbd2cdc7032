"""Physics-model forecasts (ECMWF, Met Office GRIB via cfgrib; WeatherBench2 HRES Zarr) in the forecast layout.

The forecast layout is WeatherBench2's: dims ``time`` (initialisation), ``prediction_timedelta`` (lead,
timedelta64), [``number``] (ensemble member), [``level``], ``latitude``, ``longitude``. Names, units and the grid
follow the same conventions as analyses: this module adds only the forecast axes to
``data_catalog.canonical.canonicalise``.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog.canonical import canonicalise
from data_catalog.errors import InputDataError

_LEAD_UNITS = {
    "h": "h",
    "hour": "h",
    "hours": "h",
    "hr": "h",
    "d": "D",
    "day": "D",
    "days": "D",
    "m": "min",
    "min": "min",
    "minutes": "min",
    "s": "s",
    "seconds": "s",
}


def forecast_axes(ds: xr.Dataset, *, source: str) -> xr.Dataset:
    """Make ``time`` (init) and ``prediction_timedelta`` (lead, timedelta64) dimensions, promoting scalar
    coordinates (a single init or a single step) to length-1 dimensions; numeric leads use their ``units``."""
    for dim, what in (("time", "initialisation time (time)"), ("prediction_timedelta", "lead time (step)")):
        if dim not in ds.dims:
            if dim not in ds.coords:
                raise InputDataError(
                    f"{source}: no {what} coordinate, so it is no forecast; dimensions {sorted(map(str, ds.dims))}"
                )
            ds = ds.expand_dims(dim)
    lead = ds["prediction_timedelta"]
    if not np.issubdtype(lead.dtype, np.timedelta64):
        unit = _LEAD_UNITS.get(str(lead.attrs.get("units", "")).strip().lower())
        if unit is None:
            raise InputDataError(
                f"{source}: lead times of dtype {lead.dtype} with units "
                f"{lead.attrs.get('units')!r}; expected timedelta64 or hours/days"
            )
        ds = ds.assign_coords(prediction_timedelta=pd.to_timedelta(lead.values, unit=unit).values)
    leads = pd.TimedeltaIndex(ds["prediction_timedelta"].values)
    if leads.duplicated().any():
        raise InputDataError(f"{source}: duplicated lead times {leads[leads.duplicated()][0]}")
    if not leads.is_monotonic_increasing:
        ds = ds.sortby("prediction_timedelta")
    ds["prediction_timedelta"].attrs = {"long_name": "lead time", "standard_name": "forecast_period"}
    return ds


def to_canonical_forecast(
    ds: xr.Dataset,
    *,
    source: str,
    mapping: dict[str, str] | None = None,
    variables: list[str] | None = None,
    levels: list[int] | None = None,
    start=None,
    end=None,
    lead_times: list | None = None,
    allow_nan: bool = False,
    units: dict[str, str] | None = None,
    ensemble: bool = True,
) -> xr.Dataset:
    """Map a physics-model forecast onto the WeatherBench2 forecast layout (see module docstring).

    ds: as opened by ``readers.open_source``: cfgrib's ``time`` (init), ``step`` (lead), ``number`` (member),
    ``valid_time`` (dropped: it is ``time + prediction_timedelta``), or a WeatherBench2 forecast store.
    start, end: inclusive range of initialisation times. lead_times: leads to keep (anything
    ``pandas.to_timedelta`` reads: ``"6h"``, ``np.timedelta64``); each must exist. Other arguments as
    ``canonical.to_canonical``. Raises InputDataError naming ``source`` and the problem.
    """
    out = canonicalise(
        ds,
        source=source,
        layout="forecast",
        mapping=mapping,
        variables=variables,
        levels=levels,
        start=start,
        end=end,
        allow_nan=allow_nan,
        units=units,
        ensemble=ensemble,
        extra_steps=[partial(forecast_axes, source=source)],
    )
    if lead_times is not None:
        wanted = pd.to_timedelta(list(lead_times))
        have = pd.TimedeltaIndex(out["prediction_timedelta"].values)
        missing = [str(w) for w in wanted if w not in have]
        if missing:
            raise InputDataError(f"{source}: lead times {missing} not found; the forecast has {[str(h) for h in have]}")
        out = out.sel(prediction_timedelta=wanted.values)
    return out
