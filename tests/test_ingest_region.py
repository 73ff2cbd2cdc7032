"""`wxemu ingest --region`: a box cut from a global cloud store is the regional store a user would otherwise need
a regional file for (the ARCO-ERA5 layout over HTTP, with the real UK sample embedded in it), and forecasts
(`--forecast`) are cut alike (the real ECMWF u/v forecast GRIB)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr
from _ingest import raw_uk

from data_catalog import store as st
from data_catalog.canonical import to_canonical
from data_catalog.catalog import load_catalog
from data_catalog.readers import open_source
from data_catalog.um import iris_sample_dir
from workflows.cli import main

TIMES = pd.date_range("2019-03-01T00", periods=4, freq="1h")


def _arco_standin(root) -> None:
    """A global 0.25 deg store in ARCO-ERA5's layout (Zarr v3, latitude 90..-90, longitude 0..359.75, one hour a
    chunk): 2 m temperature is the real ERA5 UK sample inside its box and a smooth field elsewhere; 10 m wind a
    smooth field."""
    lat = np.linspace(90.0, -90.0, 721)
    lon = np.arange(1440) * 0.25
    background = (288.0 - 0.4 * np.abs(lat))[:, None] + 2.0 * np.cos(np.deg2rad(lon))[None, :]
    t2m = np.repeat(background[None].astype("f4"), len(TIMES), axis=0)
    uk = raw_uk()["t2m"].sel(time=TIMES).values  # (time, 33 latitudes 58..50, 49 longitudes -10..2)
    rows = np.flatnonzero((lat <= 58.0) & (lat >= 50.0))
    cols = np.r_[np.arange(1400, 1440), np.arange(0, 9)]  # 350..359.75 then 0..2
    t2m[:, rows[:, None], cols[None, :]] = uk
    entry = load_catalog().get("arco-era5")  # its levels: the store's level axis (no variable here uses it)
    u10 = np.repeat((5.0 * np.cos(np.deg2rad(lat)))[None, :, None] * np.ones((1, 1, 1440), "f4"), len(TIMES), 0)
    ds = xr.Dataset(
        {
            "2m_temperature": (("time", "latitude", "longitude"), t2m, {"units": "K"}),
            "10m_u_component_of_wind": (("time", "latitude", "longitude"), u10.astype("f4"), {"units": "m s**-1"}),
        },
        coords={"time": TIMES, "latitude": lat, "longitude": lon, "level": ("level", entry.levels, {"units": "hPa"})},
    )
    path = root / entry.location.split("://", 1)[1]
    with warnings.catch_warnings():  # zarr: consolidated metadata is not in the v3 spec (ARCO has it)
        warnings.simplefilter("ignore")
        ds.chunk({"time": 1}).to_zarr(path, zarr_format=3, consolidated=True, mode="w")


def test_region_cut_from_global_arco_store_equals_the_regional_sample(tmp_path, http_server, monkeypatch):
    _arco_standin(tmp_path / "bucket")
    base = http_server(str(tmp_path / "bucket"))
    monkeypatch.setenv("WXEMU_URL_MAP", f"gs://gcp-public-data-arco-era5/={base}gcp-public-data-arco-era5/")
    span = ["--start", str(TIMES[0]), "--end", str(TIMES[-1]), "--quiet"]
    cut = tmp_path / "arco-uk.zarr"
    argv = ["ingest", "arco-era5", "--variables", "2m_temperature", "10m_u_component_of_wind"]
    assert main([*argv, "--region", "50,58,-10,2", "--out", str(cut), *span]) == 0
    direct = tmp_path / "sample.zarr"
    assert main(["ingest", "era5-t2m-uk-2019-03", "--out", str(direct), *span]) == 0

    got, want = st.open_store(str(cut)), st.open_store(str(direct))
    assert got.sizes == {"time": 4, "latitude": 33, "longitude": 49}
    np.testing.assert_array_equal(got["longitude"].values, want["longitude"].values)  # 350 .. 362, as the sample
    np.testing.assert_array_equal(got["latitude"].values, want["latitude"].values)
    np.testing.assert_array_equal(got["2m_temperature"].values, want["2m_temperature"].values)
    np.testing.assert_allclose(got["10m_u_component_of_wind"].values[0, :, 0], 5.0 * np.cos(np.deg2rad(got.latitude)))
    assert "--region 50,58,-10,2" in got.attrs["wxemu_recipe"]["command"]

    # a rerun with another box is another recipe: refused, naming what the store holds
    assert main([*argv, "--region", "uk", "--out", str(cut), *span]) == 2


def test_region_cut_of_forecast_grib(tmp_path, sample):
    path = sample("uv_on_different_levels.grib")
    out = tmp_path / "uv-uk.zarr"
    argv = ["ingest", "--forecast", path, "--grib-filter", "shortName=u", "--out", str(out), "--region", "uk"]
    assert main(argv) == 0
    got = st.open_store(str(out))
    assert got["latitude"].values.tolist() == [50.0, 55.0, 60.0]  # 49..61N on the 5 deg grid
    assert got["longitude"].values.tolist() == [350.0, 355.0, 360.0]  # 11W..2E: 350, 355 and 0, eastward
    src = open_source(path, "grib", grib_filter={"shortName": "u"})["u"].sortby("isobaricInhPa")
    for lon_cut, lon_src in ((350.0, 350.0), (360.0, 0.0)):
        np.testing.assert_array_equal(
            got["u_component_of_wind"].sel(latitude=55.0, longitude=lon_cut).values.ravel(),
            src.sel(latitude=55.0, longitude=lon_src).transpose("step", "isobaricInhPa").values.ravel(),
        )
    assert "--region uk" in got.attrs["wxemu_recipe"]["command"]
    assert main([*argv[:-2], "--region", "extra-tropics", "--overwrite"]) == 2  # not one box
    assert st.open_store(str(out)).sizes == got.sizes  # the refused run left the store as it was


def test_region_cut_of_a_global_unified_model_field(tmp_path):
    """Met Office UM output (iris-sample-data's global air_temp.pp: 3.75 x 2.5 deg, single-precision longitudes
    whose spacing wanders by 1e-4 deg) cut to the UK: one contiguous box across the prime meridian."""
    path = f"{iris_sample_dir()}/air_temp.pp"
    out = tmp_path / "uk.zarr"
    assert main(["ingest", path, "--region", "uk", "--out", str(out), "--quiet"]) == 0
    got = st.open_store(str(out))
    np.testing.assert_allclose(got["longitude"].values, [352.5, 356.25, 360.0], atol=1e-3)
    np.testing.assert_allclose(got["latitude"].values, [50.0, 52.5, 55.0, 57.5, 60.0], atol=1e-3)
    (name,) = got.data_vars
    whole = to_canonical(open_source(path), source=path)[name]
    want = whole.sel(latitude=got["latitude"].values, method="nearest").isel(longitude=[-2, -1, 0])
    assert got[name].dims == whole.dims
    np.testing.assert_array_equal(got[name].values, want.values)
