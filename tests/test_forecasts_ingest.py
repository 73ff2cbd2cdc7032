"""data_catalog.forecasts.to_canonical_forecast on the real ECMWF and Met Office GRIB forecasts, values checked
against eccodes directly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _grib import check_uv_forecast, eccodes_messages

from data_catalog.errors import InputDataError
from data_catalog.forecasts import to_canonical_forecast
from data_catalog.readers import open_source


def test_ukmo_monthly_ensemble(sample):
    path = sample("forecast_monthly_ukmo.grib")
    with pytest.raises(InputDataError, match="fields are absent from the source"):
        to_canonical_forecast(open_source(path), source="ukmo")
    ds = to_canonical_forecast(open_source(path), source="ukmo", allow_nan=True).load()
    t2m = ds["2m_temperature"]
    assert t2m.dims == ("time", "prediction_timedelta", "number", "latitude", "longitude")
    assert dict(ds.sizes) == {"time": 8, "prediction_timedelta": 20, "number": 28, "latitude": 6, "longitude": 11}
    assert ds["prediction_timedelta"].dtype == np.dtype("timedelta64[ns]")
    assert ds["latitude"].values.tolist() == [40.0, 41.0, 42.0, 43.0, 44.0, 45.0]
    messages = eccodes_messages(path)
    assert int(t2m.notnull().all(["latitude", "longitude"]).sum()) == len(messages) == 168
    for m in messages[::17]:  # ten messages spread over inits, leads and members
        assert m["first_lat"] == 45.0  # stored north to south
        got = t2m.sel(time=m["init"], prediction_timedelta=m["lead"], number=m["number"]).values
        np.testing.assert_allclose(got, m["values"][::-1], atol=1e-4)


def test_uv_on_different_levels(sample):
    path = sample("uv_on_different_levels.grib")
    with pytest.raises(InputDataError, match=r"levels \[400, 850\] hold no v_component_of_wind data"):
        to_canonical_forecast(open_source(path), source="uv").load()
    ds = to_canonical_forecast(open_source(path), source="uv", levels=[500, 700, 1000]).load()
    assert ds["u_component_of_wind"].dims == ("time", "prediction_timedelta", "level", "latitude", "longitude")
    assert dict(ds.sizes) == {"time": 1, "prediction_timedelta": 2, "level": 3, "latitude": 37, "longitude": 72}
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2017-10-18T12")
    assert [pd.Timedelta(v) for v in ds["prediction_timedelta"].values] == [pd.Timedelta("6h"), pd.Timedelta("12h")]
    assert check_uv_forecast(ds, path) == 12
    full = to_canonical_forecast(open_source(path), source="uv", allow_nan=True).load()
    assert full["level"].values.tolist() == [400, 500, 700, 850, 1000]
    assert bool(full["v_component_of_wind"].sel(level=850).isnull().all())
    assert not bool(full["u_component_of_wind"].isnull().any())
    only = to_canonical_forecast(open_source(path), source="uv", lead_times=["12h"], variables=["u"])
    assert only["prediction_timedelta"].values.tolist() == [np.timedelta64(12, "h").astype("timedelta64[ns]")]
    with pytest.raises(InputDataError, match=r"lead times \['1 days 00:00:00'\] not found"):
        to_canonical_forecast(open_source(path), source="uv", lead_times=["24h"], variables=["u"])


def test_t_analysis_as_step_zero_forecast(sample):
    path = sample("t_analysis_and_fc_0.grib")
    ds = to_canonical_forecast(open_source(path), source="t").load()
    assert dict(ds.sizes) == {"time": 1, "prediction_timedelta": 1, "level": 1, "latitude": 37, "longitude": 72}
    assert ds["prediction_timedelta"].values[0] == np.timedelta64(0)
    (m,) = eccodes_messages(path)
    np.testing.assert_allclose(
        ds["temperature"].isel(time=0, prediction_timedelta=0, level=0).values, m["values"][::-1], atol=1e-6
    )
    assert ds["temperature"].attrs["units"] == "K"


def test_wb2_style_forecast_store_and_errors():
    """A store in WeatherBench2's own layout (dims time, prediction_timedelta, level, longitude, latitude)."""
    lead = pd.to_timedelta([0, 6, 12], unit="h")
    init = pd.date_range("2020-01-01", periods=2, freq="12h")
    lon, lat = np.arange(0.0, 360.0, 90.0), np.array([-45.0, 45.0])
    data = np.random.default_rng(0).normal(280, 5, (2, 3, 2, 4, 2))
    src = xr.Dataset(
        {"temperature": (("time", "prediction_timedelta", "level", "longitude", "latitude"), data, {"units": "K"})},
        coords={"time": init, "prediction_timedelta": lead, "level": [500, 850], "longitude": lon, "latitude": lat},
    )
    ds = to_canonical_forecast(src, source="hres")
    assert ds["temperature"].dims == ("time", "prediction_timedelta", "level", "latitude", "longitude")
    np.testing.assert_allclose(
        ds["temperature"].sel(level=850, longitude=270.0).values, data[:, :, 1, 3, :].astype("float32")
    )
    numeric = src.assign_coords(prediction_timedelta=("prediction_timedelta", [0, 6, 12], {"units": "hours"}))
    assert (to_canonical_forecast(numeric, source="hres")["prediction_timedelta"].values == lead.values).all()
    with pytest.raises(InputDataError, match="no lead time"):
        to_canonical_forecast(src.isel(prediction_timedelta=0, drop=True), source="hres")
    dup = src.assign_coords(time=[init[0], init[0]])
    with pytest.raises(InputDataError, match="duplicated times"):
        to_canonical_forecast(dup, source="hres")
