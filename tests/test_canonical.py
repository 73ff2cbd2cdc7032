"""data_catalog.canonical.to_canonical: real samples checked against the raw files, and each bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data_catalog import canonical
from data_catalog.canonical import to_canonical
from data_catalog.conventions import STANDARD_GRAVITY, normalise_units
from data_catalog.damaged import edit_grib
from data_catalog.errors import InputDataError
from data_catalog.forecasts import to_canonical_forecast
from data_catalog.readers import open_source

RAW_GRIB = {"engine": "cfgrib", "backend_kwargs": {"indexpath": ""}}


def eccodes_fields(path: str, wanted: set[tuple[int, int]]) -> dict[tuple[int, int], np.ndarray]:
    """{(validityDate, validityTime): values (Nj, Ni) as stored, north to south} for the wanted messages."""
    import eccodes

    out = {}
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            key = (eccodes.codes_get(h, "validityDate"), eccodes.codes_get(h, "validityTime"))
            if key in wanted:
                out[key] = eccodes.codes_get_values(h).reshape(eccodes.codes_get(h, "Nj"), eccodes.codes_get(h, "Ni"))
            eccodes.codes_release(h)
    return out


@pytest.fixture(scope="module")
def uk(sample):
    path = sample("era5-2mt-2019-03-uk.grib")
    return path, to_canonical(open_source(path), source="era5-uk").load()


def test_era5_uk_values_after_flip_and_contiguous_longitudes(uk):
    path, ds = uk
    t2m = ds["2m_temperature"]
    assert t2m.dims == ("time", "latitude", "longitude") and t2m.dtype == np.float32
    assert ds["latitude"].values[0] == 50.0 and ds["latitude"].values[-1] == 58.0
    np.testing.assert_allclose(ds["longitude"].values, np.arange(350.0, 362.01, 0.25))
    assert t2m.attrs["units"] == "K" and t2m.attrs["standard_name"] == "air_temperature"
    points = [
        ("2019-03-01T00", 58.0, -10.0),
        ("2019-03-10T12", 52.5, -3.0),
        ("2019-03-31T23", 50.0, 2.0),
        ("2019-03-15T06", 51.5, 0.0),
    ]
    keys = {
        pd.Timestamp(w): (int(pd.Timestamp(w).strftime("%Y%m%d")), pd.Timestamp(w).hour * 100) for w, _, _ in points
    }
    raw = eccodes_fields(path, set(keys.values()))
    for when, lat, lon in points:
        row, col = int(round((58.0 - lat) / 0.25)), int(round((lon + 10.0) / 0.25))  # raw grid: 58N..50N, 10W..2E
        expected = raw[keys[pd.Timestamp(when)]][row, col]
        got = float(t2m.sel(time=when, latitude=lat, longitude=lon + 360.0))  # 10W..2E -> 350..362
        assert got == pytest.approx(expected, abs=1e-4)
    # a whole field equals the raw one flipped north-south
    field = raw[keys[pd.Timestamp("2019-03-10T12")]]
    np.testing.assert_allclose(t2m.sel(time="2019-03-10T12").values, field[::-1], atol=1e-4)
    assert not set(ds.coords) - {"time", "latitude", "longitude"}  # number/step/surface/valid_time dropped


def test_era5_uk_time_selection(uk):
    _, ds = uk
    raw_ds = ds  # already canonical: selecting again must keep values
    sub = to_canonical(raw_ds, source="uk", start="2019-03-02", end="2019-03-02T05")
    assert sub.sizes["time"] == 6
    with pytest.raises(
        InputDataError,
        match=r"no times between 2020-01-01 and 2020-02-01; the source covers "
        r"2019-03-01 00:00:00 \.\. 2019-03-31 23:00:00",
    ):
        to_canonical(raw_ds, source="uk", start="2020-01-01", end="2020-02-01")


def test_eraint_month_refused_then_mapped(sample):
    path = sample("eraint_uvz.nc")
    with pytest.raises(InputDataError) as info:
        to_canonical(open_source(path), source="eraint")
    assert "'month'" in str(info.value) and "time_from" in str(info.value) and "eraint" in str(info.value)
    ds = to_canonical(open_source(path), source="eraint", time_from={"month": "2000-{month:02d}-01"})
    assert ds["time"].values.tolist() == [pd.Timestamp("2000-01-01").value, pd.Timestamp("2000-07-01").value]
    assert ds["level"].values.tolist() == [200, 500, 850]
    assert ds["longitude"].values[0] == 0.0 and ds["longitude"].values[-1] == 359.25
    assert ds["latitude"].values[0] == -90.0
    raw = xr.open_dataset(path)
    for month, lat, lon in [(7, 45.0, -120.0), (1, -30.0, 150.0), (7, 0.0, 0.0), (1, 89.25, -0.75)]:
        expected = float(raw["z"].sel(month=month, level=500, latitude=lat, longitude=lon))
        got = float(ds["geopotential"].sel(time=f"2000-{month:02d}-01", level=500, latitude=lat, longitude=lon % 360))
        assert got == pytest.approx(expected, rel=1e-6)
    assert ds["u_component_of_wind"].attrs["units"] == "m s-1"


def test_ensemble_number_kept_or_refused(sample):
    path = sample("era5-levels-members.grib")
    ds = to_canonical(open_source(path), source="eda").load()
    assert ds["temperature"].dims == ("time", "number", "level", "latitude", "longitude")
    assert ds["number"].values.tolist() == list(range(10)) and ds["level"].values.tolist() == [500, 850]
    raw = xr.open_dataset(path, **RAW_GRIB).load()
    points = [(3, "2017-01-01T12", 850, 60.0, 9.0), (9, "2017-01-02T00", 500, -30.0, 357.0)]
    for number, when, level, lat, lon in points:
        expected = float(raw["t"].sel(number=number, time=when, isobaricInhPa=level, latitude=lat, longitude=lon))
        assert (
            float(ds["temperature"].sel(number=number, time=when, level=level, latitude=lat, longitude=lon)) == expected
        )
    with pytest.raises(InputDataError, match="ensemble of 10 members"):
        to_canonical(open_source(path), source="eda", ensemble=False)
    one = to_canonical(
        open_source(path).sel(number=[4]), source="eda", ensemble=False, levels=[850], variables=["geopotential"]
    )
    assert "number" not in one.dims and list(one.data_vars) == ["geopotential"]


def test_scalar_level_and_time_become_dimensions(sample):
    ds = to_canonical(open_source(sample("t_analysis_and_fc_0.grib")), source="t-an")
    assert dict(ds.sizes) == {"time": 1, "level": 1, "latitude": 37, "longitude": 72}
    assert ds["level"].values.tolist() == [1000]
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2017-10-18T12")


def test_forecast_steps_refused_as_analysis(sample):
    with pytest.raises(InputDataError, match="holds forecast fields.*--forecast"):
        to_canonical(open_source(sample("uv_on_different_levels.grib")), source="uv")


def test_corrupted_grib_error_names_file(sample):
    path = sample("era5-levels-corrupted.grib")
    with pytest.raises(InputDataError, match="era5-levels-corrupted.grib: corrupt or truncated GRIB"):
        to_canonical(open_source(path), source=path)


# ----------------------------------------------------------------------------------- synthetic edge cases
def _synthetic(
    name="t2m",
    units="K",
    *,
    nt=4,
    lat=(30.0, 20.0, 10.0),
    lon=(0.0, 10.0, 20.0, 30.0),
    level=None,
    level_units=None,
    step="6h",
) -> xr.Dataset:
    times = pd.date_range("2020-01-01", periods=nt, freq=step)
    dims, coords = ["time"], {"time": times}
    shape = [nt]
    if level is not None:
        dims.append("plev")
        coords["plev"] = ("plev", np.asarray(level, float), {"units": level_units} if level_units else {})
        shape.append(len(level))
    dims += ["lat", "lon"]
    coords.update(lat=np.asarray(lat), lon=np.asarray(lon))
    shape += [len(lat), len(lon)]
    data = np.arange(np.prod(shape), dtype="float64").reshape(shape) + 250.0
    attrs = {"units": units} if units is not None else {}
    return xr.Dataset({name: (dims, data, attrs)}, coords=coords)


def test_names_coords_levels_in_pa():
    src = _synthetic("air", level=[85000.0, 50000.0], level_units="Pa")
    ds = to_canonical(src, source="ncep")
    assert list(ds.data_vars) == ["temperature"] and ds["level"].values.tolist() == [500, 850]
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    np.testing.assert_array_equal(
        ds["temperature"].sel(level=850, latitude=30.0).values, src["air"].sel(plev=85000.0, lat=30.0).values
    )
    ds2 = to_canonical(_synthetic("air", level=[85000.0, 50000.0]), source="ncep", levels=[850])  # Pa by magnitude
    assert ds2["level"].values.tolist() == [850]
    with pytest.raises(InputDataError, match=r"levels \[300\] hPa not found; the source has \[500, 850\]"):
        to_canonical(src, source="ncep", levels=[300])


@pytest.mark.parametrize(
    "name,units,canonical_name,scale,offset",
    [
        ("t2m", "degC", "2m_temperature", 1.0, 273.15),
        ("msl", "hPa", "mean_sea_level_pressure", 100.0, 0.0),
        ("gh", "m", "geopotential", STANDARD_GRAVITY, 0.0),
        ("z", "m**2 s**-2", "geopotential", 1.0, 0.0),
        ("q", "g kg-1", "specific_humidity", 1e-3, 0.0),
        ("tp", "mm", "total_precipitation", 1e-3, 0.0),
    ],
)
def test_unit_conversions(name, units, canonical_name, scale, offset):
    levels = [500.0] if canonical_name in ("geopotential", "specific_humidity") else None
    src = _synthetic(name, units, level=levels)
    ds = to_canonical(src, source="s")
    out = ds[canonical_name]
    assert out.attrs["units"] == canonical.conv.VARIABLES[canonical_name].units
    expected = src[name].values * scale + offset
    np.testing.assert_allclose(out.values, expected[..., ::-1, :], rtol=1e-6)


def test_bad_units():
    with pytest.raises(InputDataError, match="units 'm' of variable 'z' disagree with geopotential"):
        to_canonical(_synthetic("z", "m", level=[500.0]), source="s")
    with pytest.raises(InputDataError, match="units 'furlongs' of variable 't2m' are unknown"):
        to_canonical(_synthetic("t2m", "furlongs"), source="s")
    with pytest.raises(InputDataError, match="'t2m' has no units attribute"):
        to_canonical(_synthetic("t2m", None), source="s")
    with pytest.raises(InputDataError, match="pressure-level variable but has no level dimension"):
        to_canonical(_synthetic("air"), source="s")
    ds = to_canonical(_synthetic("t2m", None), source="s", units={"t2m": "degC"})
    assert float(ds["2m_temperature"].isel(time=0, latitude=-1, longitude=0)) == pytest.approx(250.0 + 273.15)
    assert normalise_units("m**2 s**-2") == normalise_units("m2 s-2") == "m2s-2"


def test_mapping_and_missing_variables():
    src = _synthetic("foo", "K").assign(bar=_synthetic("bar", "K")["bar"])
    with pytest.raises(InputDataError, match=r"cannot map variables \['foo', 'bar'\]"):
        to_canonical(src, source="s")
    ds = to_canonical(src, source="s", mapping={"foo": "2m_temperature"}, variables=["2m_temperature"])
    assert list(ds.data_vars) == ["2m_temperature"] and ds["2m_temperature"].attrs["source_name"] == "foo"
    with pytest.raises(
        InputDataError,
        match=r"variables \['temperature'\] not found; the source has foo "
        r"\(2m_temperature\)",
    ):
        to_canonical(src, source="s", mapping={"foo": "2m_temperature"}, variables=["temperature"])
    with pytest.raises(InputDataError, match="not a canonical variable"):
        to_canonical(src, source="s", mapping={"foo": "warmth"})
    renamed = to_canonical(_synthetic().rename(lat="yy"), source="s", mapping={"yy": "latitude"})
    assert renamed.sizes["latitude"] == 3


def test_nan_refused_eagerly_and_lazily(monkeypatch):
    src = _synthetic()
    src["t2m"][1, 0, 2] = np.nan
    with pytest.raises(
        InputDataError,
        match=r"s: 2m_temperature has NaN values \(1 of 48; first at "
        r"time=2020-01-01 06:00:00, latitude=30.0, longitude=20.0\)",
    ):
        to_canonical(src, source="s")
    assert int(to_canonical(src, source="s", allow_nan=True)["2m_temperature"].isnull().sum()) == 1
    monkeypatch.setattr(canonical, "EAGER_NAN_CHECK_BYTES", 0)
    lazy = to_canonical(src.chunk({"time": 1}), source="s")  # no error until computed
    lazy.isel(time=0).load()
    with pytest.raises(InputDataError, match="time=2020-01-01 06:00:00, latitude=30.0, longitude=20.0"):
        lazy.load()


def test_time_axis_checks():
    src = _synthetic(nt=6)
    dup = xr.concat([src.isel(time=[0, 1]), src.isel(time=[1, 2])], dim="time")
    with pytest.raises(InputDataError, match="duplicated times .*first 2020-01-01 06:00:00"):
        to_canonical(dup, source="s")
    gap = src.isel(time=[0, 1, 2, 4, 5])
    with pytest.raises(InputDataError, match=r"missing times: .*first gap after 2020-01-01 12:00:00"):
        to_canonical(gap, source="s")
    monthly = _synthetic(nt=5, step="MS")
    assert to_canonical(monthly, source="s").sizes["time"] == 5  # calendar months are regular
    shuffled = src.isel(time=[3, 0, 1, 2, 5, 4])
    assert (np.diff(to_canonical(shuffled, source="s")["time"].values) > np.timedelta64(0)).all()


def test_grid_checks_and_global_roll():
    with pytest.raises(InputDataError, match="latitude grid is not regular"):
        to_canonical(_synthetic(lat=(0.0, 10.0, 25.0)), source="s")
    with pytest.raises(InputDataError, match="longitude grid is not regular"):
        to_canonical(_synthetic(lon=(0.0, 10.0, 30.0, 40.0)), source="s")
    with pytest.raises(InputDataError, match="no latitude dimension"):
        to_canonical(_synthetic().rename(lat="yy"), source="s")
    glob = _synthetic(lon=tuple(np.arange(-180.0, 180.0, 90.0)))
    ds = to_canonical(glob, source="s")
    assert ds["longitude"].values.tolist() == [0.0, 90.0, 180.0, 270.0]
    np.testing.assert_array_equal(
        ds["2m_temperature"].sel(longitude=270.0).values, glob["t2m"].sel(lon=-90.0).values[:, ::-1]
    )
    # a regional grid given in 0..360 that crosses the prime meridian stays contiguous: 340 .. 370
    region = _synthetic(lon=(0.0, 10.0, 340.0, 350.0))
    ds = to_canonical(region, source="s")
    assert ds["longitude"].values.tolist() == [340.0, 350.0, 360.0, 370.0]
    np.testing.assert_array_equal(
        ds["2m_temperature"].sel(longitude=360.0).values, region["t2m"].sel(lon=0.0).values[:, ::-1]
    )


def test_dateless_dimensions_and_time_from_errors():
    src = _synthetic(nt=2).rename(time="season").assign_coords(season=[1, 2])
    with pytest.raises(InputDataError, match="dimension 'season'"):
        to_canonical(src, source="s")
    with pytest.raises(InputDataError, match="time_from names dimension 'month'"):
        to_canonical(src, source="s", time_from={"month": "2000-{month:02d}-01"})
    with pytest.raises(InputDataError, match="time_from template"):
        to_canonical(src, source="s", time_from={"season": "2000-{month}-01"})


def test_static_field_loses_time():
    src = _synthetic("lsm", "(0 - 1)", nt=1)
    ds = to_canonical(src, source="s")
    assert ds["land_sea_mask"].dims == ("latitude", "longitude")


# ------------------------------------------------------------------------------------------- reliability (issue 22)
def _first_t2m_messages(sample, tmp_path, name: str, n: int, **keys) -> str:
    return edit_grib(sample("era5-2mt-2019-03-uk.grib"), str(tmp_path / name), limit=n, **keys)


@pytest.mark.parametrize("n_messages", [1, 3])
def test_forecast_fields_are_refused_as_analysis_or_read_at_valid_time(sample, tmp_path, n_messages):
    """+3 h forecast fields (GRIB step 3) are no analysis at their reference time (today: stored 3 h early for
    one message, at valid time for several, without a word)."""
    path = _first_t2m_messages(sample, tmp_path, "fc3.grib", n_messages, dataType="fc", stepRange="3")
    with pytest.raises(
        InputDataError,
        match=r"fc3.grib: holds forecast fields, not analyses \(lead \+3h "
        r"from reference time 2019-03-01 00:00:00 \(valid 2019-03-01 03:00:00\)\).*--forecast",
    ):
        to_canonical(open_source(path), source=path)
    ds = to_canonical(open_source(path), source=path, at_valid_time=True)
    expected = pd.date_range("2019-03-01T03", periods=n_messages, freq="h")
    assert pd.DatetimeIndex(ds["time"].values).equals(expected)
    raw = edit_grib(sample("era5-2mt-2019-03-uk.grib"), str(tmp_path / "an.grib"), limit=n_messages)
    np.testing.assert_array_equal(
        ds["2m_temperature"].values, to_canonical(open_source(raw), source=raw)["2m_temperature"].values
    )


def _one_member(sample, tmp_path, name: str, **keys) -> str:
    """Member 3 of the ERA5 EDA sample, t at 850 hPa on 2017-01-01T00, re-labelled as a perturbed forecast."""
    return edit_grib(
        sample("era5-levels-members.grib"),
        str(tmp_path / name),
        keep=lambda m: (
            m["number"] == 3
            and m["shortName"] == "t"
            and m["level"] == 850
            and m["dataDate"] == 20170101
            and m["dataTime"] == 0
        ),
        dataType="pf",
        **keys,
    )


def test_one_ensemble_member_is_kept_or_refused(sample, tmp_path):
    """A file of one perturbed member is no deterministic analysis (today: its member number was dropped)."""
    path = _one_member(sample, tmp_path, "pf.grib")
    with pytest.raises(InputDataError, match="pf.grib: holds ensemble member 3 alone.*--member 3"):
        to_canonical(open_source(path), source=path, ensemble=False)
    ds = to_canonical(open_source(path), source=path)
    assert ds["temperature"].dims == ("time", "number", "level", "latitude", "longitude")
    assert ds["number"].values.tolist() == [3]


def test_one_member_forecast_keeps_its_number(sample, tmp_path):
    """Member 3 at +72 h: refused as an analysis (forecast fields), and read as a forecast with number 3 kept."""
    path = _one_member(sample, tmp_path, "pf72.grib", stepRange="72")
    with pytest.raises(InputDataError, match="pf72.grib: holds forecast fields.*lead \\+72h.*--forecast"):
        to_canonical(open_source(path), source=path, ensemble=False)
    fc = to_canonical_forecast(open_source(path), source=path)
    assert fc["number"].values.tolist() == [3]
    assert fc["prediction_timedelta"].values.tolist() == [np.timedelta64(72, "h").astype("timedelta64[ns]")]
    assert pd.Timestamp(fc["time"].values[0]) == pd.Timestamp("2017-01-01T00")


def test_projected_grid_is_named(sample, tmp_path):
    """A Lambert conformal GRIB (2-D latitude/longitude on x/y) is named as such (today: 'no latitude or
    longitude dimension; give a coordinate mapping')."""
    path = _first_t2m_messages(
        sample,
        tmp_path,
        "lambert.grib",
        2,
        gridType="lambert",
        Nx=49,
        Ny=33,
        latitudeOfFirstGridPointInDegrees=50.0,
        longitudeOfFirstGridPointInDegrees=-10.0,
        LoVInDegrees=-2.0,
        Latin1InDegrees=52.0,
        Latin2InDegrees=52.0,
        DxInMetres=25000,
        DyInMetres=25000,
    )
    with pytest.raises(
        InputDataError,
        match=r"lambert.grib: a projected grid \(Lambert conformal: GRIB gridType "
        r"'lambert' on dimensions \['x', 'y'\]\), not a regular latitude-longitude grid; regrid",
    ):
        to_canonical(open_source(path), source=path)


def test_cf_grid_mapping_is_named():
    """A NetCDF with a CF grid_mapping (polar stereographic) is named, before its grid-mapping variable is taken
    for an unmappable data variable."""
    ds = xr.Dataset(
        {
            "tas": (("time", "y", "x"), np.full((1, 3, 4), 280.0), {"units": "K", "grid_mapping": "crs"}),
            "crs": ((), 0, {"grid_mapping_name": "polar_stereographic"}),
        },
        coords={"time": pd.date_range("2020-01-01", periods=1), "y": np.arange(3.0), "x": np.arange(4.0)},
    )
    with pytest.raises(InputDataError, match=r"polar.nc: a projected grid \(polar stereographic: CF grid_mapping"):
        to_canonical(ds, source="polar.nc")


def test_non_grib_fields_with_a_step_are_stored_at_their_valid_time():
    """A reader without GRIB's analysis/forecast distinction (e.g. the Met Office PP reader: forecast period since
    a climate run began) gives time, step and valid_time: the field is stored at its valid time, also when the
    time is a single scalar (it was stored at its reference time)."""
    ref, step = pd.Timestamp("1998-03-01T03"), pd.Timedelta("6597h")
    ds = xr.Dataset(
        {"air_temperature": (("latitude", "longitude"), np.full((3, 4), 280.0, "f4"), {"units": "K"})},
        coords={
            "time": ref,
            "step": step,
            "valid_time": ref + step,
            "latitude": [0.0, 1.0, 2.0],
            "longitude": [0.0, 1.0, 2.0, 3.0],
        },
    )
    out = to_canonical(ds, source="um.pp", mapping={"air_temperature": "2m_temperature"})
    assert pd.DatetimeIndex(out["time"].values).tolist() == [pd.Timestamp("1998-12-01T00")]
