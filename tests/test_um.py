"""Met Office PP files through iris (data_catalog.um): every iris-sample-data PP file ingests with iris's own
values or is refused clearly; rotated-pole regridding; GloSea4 members."""

from __future__ import annotations

import os
import shutil
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

pytest.importorskip("iris")
import iris  # noqa: E402
import iris.analysis  # noqa: E402
import iris.analysis.cartography  # noqa: E402

from data_catalog import conventions as conv  # noqa: E402
from data_catalog.errors import InputDataError  # noqa: E402
from data_catalog.forecast_ingest import ingest_forecast  # noqa: E402
from data_catalog.forecasts import to_canonical_forecast  # noqa: E402
from data_catalog.readers import detect_format, open_source  # noqa: E402
from data_catalog.store import open_store  # noqa: E402
from data_catalog.um import iris_sample_dir, iris_sample_files, open_um  # noqa: E402
from workflows.cli import main as wxemu  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)

#: Relative tolerance on the area mean of a rotated-pole field regridded conservatively (docs/metoffice.md).
AREA_MEAN_RTOL = 1e-3


def _iris_value(path: str, stash: str, valid: np.datetime64 | None, member, lat: float, lon: float) -> float:
    """iris's own value of field ``stash`` at ``valid`` (and ``member``) at true (lat, lon): the grid point on a
    regular grid, else iris's bilinear interpolation at the rotated coordinates of the point."""
    for cube in iris.load_raw(path):
        if str(cube.attributes.get("STASH")) != stash:
            continue
        t = cube.coord("time")
        d = t.units.num2date(t.points[0])
        if (
            valid is not None
            and np.datetime64(pd.Timestamp(d.year, d.month, d.day, d.hour, d.minute, d.second)) != valid
        ):
            continue
        if member is not None and cube.coords("realization") and int(cube.coord("realization").points[0]) != member:
            continue
        cs = cube.coord_system()
        if isinstance(cs, iris.coord_systems.RotatedGeogCS):
            x, y = iris.analysis.cartography.rotate_pole(
                np.array([lon]), np.array([lat]), cs.grid_north_pole_longitude, cs.grid_north_pole_latitude
            )
            point = cube.interpolate(
                [("grid_latitude", y[0]), ("grid_longitude", x[0])], iris.analysis.Linear(extrapolation_mode="nan")
            )
            return float(point.data)
        lats, lons = cube.coord("latitude").points, cube.coord("longitude").points
        if not np.allclose(np.diff(lats), np.diff(lats)[0], rtol=1e-3):  # irregular: iris interpolates
            point = cube.interpolate([("latitude", lat), ("longitude", lon)], iris.analysis.Linear())
            return float(point.data)
        j = int(np.argmin(np.abs(lats - lat)))
        i = int(np.argmin(np.abs(np.mod(lons - lon + 180.0, 360.0) - 180.0)))
        return float(cube.data[j, i])
    raise AssertionError(f"{path}: no iris field {stash} at {valid}")


def _check_spot_values(path: str, raw: xr.Dataset, ds: xr.Dataset) -> int:
    rng = np.random.default_rng(0)
    checked = 0
    for name in ds.data_vars:
        stash = raw[name].attrs["um_stash"]
        var = ds[name]
        sel = {d: 0 for d in ("time", "prediction_timedelta", "number", "level") if d in var.dims}
        field = var.isel(sel).values
        valid = None  # a static field (orography) has no time
        if "time" in var.dims:
            lead = ds["prediction_timedelta"].values[0] if "prediction_timedelta" in var.dims else np.timedelta64(0)
            valid = ds["time"].values[0] + lead
        member = int(ds["number"].values[0]) if "number" in var.dims else None
        factor = conv.STANDARD_GRAVITY if name in ("geopotential_at_surface", "geopotential") else 1.0
        for _ in range(3):
            j, i = rng.integers(0, field.shape[0]), rng.integers(0, field.shape[1])
            lat, lon = float(ds["latitude"][j]), float(ds["longitude"][i])
            expected = _iris_value(path, stash, valid, member, lat, lon) * factor
            np.testing.assert_allclose(field[j, i], expected, rtol=2e-4, atol=1e-3, err_msg=f"{path} {name}")
            checked += 1
    return checked


def test_every_sample_pp_file_ingests_with_iris_values_or_is_refused_clearly():
    files = iris_sample_files()
    assert len(files) >= 150
    ingested, refused = [], []
    for path in files:
        assert detect_format(path) == "pp"
        try:
            raw = open_source(path)
            ds = to_canonical_forecast(raw, source=path)
        except InputDataError as exc:
            message = str(exc)
            assert path in message, message
            assert "cannot map variables ['m0" in message, message  # names the STASH codes it cannot map
            refused.append(path)
            continue
        assert _check_spot_values(path, raw, ds) >= 3
        ingested.append(os.path.relpath(path, iris_sample_dir()))
    assert {"A1B.2098.pp", "E1.2098.pp", "pre-industrial.pp", "air_temp.pp", "wind_speed_lake_victoria.pp"} <= set(
        ingested
    )
    assert sum(p.startswith("GloSea4") for p in ingested) == 13
    assert any("colpex" in p for p in refused) and any("northward_sea_ice" in p for p in refused)


def test_rotated_pole_fields_select_and_match_iris_interpolation(tmp_path):
    path = os.path.join(iris_sample_dir(), "uk_hires.pp")
    raw = open_source(path)
    ds = to_canonical_forecast(raw, source=path, variables=["geopotential_at_surface"])
    assert "linear" in raw.attrs["regridding"] and "RotatedGeogCS" in raw.attrs["regridding"]
    lat = ds["latitude"].values
    assert np.allclose(np.diff(lat), np.diff(lat)[0]) and 52.5 < lat[0] < lat[-1] < 55.4
    assert _check_spot_values(path, raw, ds) == 3
    assert not np.isnan(ds["geopotential_at_surface"].values).any()
    with pytest.raises(InputDataError, match="uk_hires.pp: variables \\['geopotential_at_surface'\\] are static"):
        ingest_forecast([path], str(tmp_path / "x.zarr"), variables=["geopotential_at_surface"])
    assert not (tmp_path / "x.zarr").exists()


def _area_mean(values: np.ndarray, lat: np.ndarray) -> float:
    w = np.cos(np.deg2rad(lat))[:, None] * np.ones_like(values)
    return float((values * w).sum() / w.sum())


def test_rotated_pole_conservative_regrid_conserves_the_area_mean():
    path = os.path.join(iris_sample_dir(), "uk_hires.pp")
    ds = open_um(path, regrid="conservative")
    assert "conservative (area-weighted, 4x4 sub-cells) from the source's RotatedGeogCS" in ds.attrs["regridding"]
    out = ds["geopotential_at_surface"].values
    lat, lon = ds["latitude"].values, ds["longitude"].values
    # independent reference: iris's field split into 8x8 copies per cell (true areas: cos(rotated latitude) on
    # the rotated sphere), mean over the sub-cells whose centres fall in the target domain
    cube = iris.load_cube(path, "surface_altitude")
    cs = cube.coord_system()
    k = 8
    ry, rx = cube.coord("grid_latitude").points, cube.coord("grid_longitude").points
    dy, dx = np.median(np.diff(ry)), np.median(np.diff(rx))
    sub_y = (ry[:, None] + dy * ((np.arange(k) + 0.5) / k - 0.5)).ravel()
    sub_x = (rx[:, None] + dx * ((np.arange(k) + 0.5) / k - 0.5)).ravel()
    tlon, tlat = iris.analysis.cartography.unrotate_pole(
        *np.meshgrid(sub_x, sub_y), cs.grid_north_pole_longitude, cs.grid_north_pole_latitude
    )
    values = np.repeat(np.repeat(cube.data, k, axis=0), k, axis=1)
    d_lat, d_lon = lat[1] - lat[0], lon[1] - lon[0]
    inside = (
        (tlat >= lat[0] - d_lat / 2)
        & (tlat < lat[-1] + d_lat / 2)
        & (np.mod(tlon, 360) >= lon[0] - d_lon / 2)
        & (np.mod(tlon, 360) < lon[-1] + d_lon / 2)
    )
    area = np.cos(np.deg2rad(sub_y))[:, None] * np.ones_like(tlat)
    source_mean = float((values * area)[inside].sum() / area[inside].sum()) * conv.STANDARD_GRAVITY
    assert _area_mean(out, lat) == pytest.approx(source_mean, rel=AREA_MEAN_RTOL)
    # bilinear interpolation is not conservative: it differs from the conservative field cell by cell
    linear = open_um(path, regrid="linear")["geopotential_at_surface"].values
    assert np.abs(linear - out).max() > 10.0


def test_glosea4_lagged_ensemble_keeps_members(tmp_path):
    pattern = os.path.join(iris_sample_dir(), "GloSea4", "*.pp")
    ds = ingest_forecast([pattern], str(tmp_path / "glosea4.zarr"))
    assert ds["number"].values.tolist() == [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 13]
    assert ds.attrs["wxemu_model"] == "ukmo" and len(ds.attrs["wxemu_sources"]) == 13
    assert pd.Timestamp(ds["time"].values[0]) == pd.Timestamp("2011-07-24")  # the latest member's start
    assert "2011-07-18" in ds.attrs["um_lagged_ensemble"]
    member7 = iris.load_cube(os.path.join(iris_sample_dir(), "GloSea4", "ensemble_007.pp"))
    lat = ds["latitude"].values
    expected = member7.data[0, ::-1] if member7.coord("latitude").points[0] > 0 else member7.data[0]
    assert lat[0] < lat[-1]
    np.testing.assert_array_equal(ds["skin_temperature"].sel(number=7).isel(time=0, prediction_timedelta=0), expected)
    valid = ds["time"].values[0] + ds["prediction_timedelta"].values[0]
    assert pd.Timestamp(valid) == pd.Timestamp("2011-08-16T12")


def test_wxemu_ingest_pp_analysis_store(tmp_path):
    path = os.path.join(iris_sample_dir(), "air_temp.pp")
    out = str(tmp_path / "air.zarr")
    assert wxemu(["ingest", path, "--out", out, "--quiet"]) == 0
    ds = open_store(out)
    cube = iris.load_cube(path)
    assert ds["temperature"].dims == ("time", "level", "latitude", "longitude")
    assert ds["level"].values.tolist() == [1000]
    np.testing.assert_array_equal(ds["temperature"].values[0, 0], cube.data[::-1])  # iris: latitude descending


def _header_word(data: bytes, word: int, value: int) -> bytes:
    out = bytearray(data)
    out[4 + 4 * word : 8 + 4 * word] = value.to_bytes(4, "big")
    return bytes(out)


def test_a_file_iris_cannot_read_is_refused_naming_it(tmp_path, capsys):
    good = open(os.path.join(iris_sample_dir(), "air_temp.pp"), "rb").read()
    bad = tmp_path / "bad_date.pp"
    bad.write_bytes(_header_word(good, 8, 99999))  # LBDAY (day of the validity time): iris fails inside cftime
    with pytest.raises(InputDataError, match="bad_date.pp: iris cannot read it as a Met Office PP/fieldsfile"):
        open_source(str(bad))
    unknown = tmp_path / "bad_lbrel.pp"
    unknown.write_bytes(_header_word(good, 21, 99999))  # LBREL (header release) of no PP version: iris skips it
    with pytest.raises(InputDataError, match="bad_lbrel.pp: no fields"):
        open_source(str(unknown))
    out = tmp_path / "never.zarr"
    assert wxemu(["ingest", str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "bad_date.pp: iris cannot read it" in err and "Traceback" not in err
    assert not out.exists()
    assert wxemu(["ingest", "--forecast", str(bad), "--out", str(out)]) == 2
    assert "bad_date.pp: iris cannot read it" in capsys.readouterr().err and not out.exists()


def test_a_truncated_pp_file_is_refused_before_reading(tmp_path):
    good = open(os.path.join(iris_sample_dir(), "air_temp.pp"), "rb").read()
    bad = tmp_path / "truncated.pp"
    bad.write_bytes(good[:2000])
    with pytest.raises(InputDataError, match="truncated.pp: truncated PP file: the data record of field 1 ends"):
        open_source(str(bad))


def test_pp_without_suffix_is_detected_by_its_first_bytes(tmp_path):
    copy = tmp_path / "umglaa_pa000"
    shutil.copy(os.path.join(iris_sample_dir(), "air_temp.pp"), copy)
    assert detect_format(str(copy)) == "pp"


def test_a_field_iris_fails_to_read_while_writing_is_refused_naming_the_file(tmp_path, capsys):
    good = open(os.path.join(iris_sample_dir(), "air_temp.pp"), "rb").read()
    bad = tmp_path / "packed.pp"
    bad.write_bytes(_header_word(good, 20, 1))  # LBPACK 1 (WGDOS) over unpacked data: fails when the data are read
    out = tmp_path / "packed.zarr"
    assert wxemu(["ingest", str(bad), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "packed.pp: iris cannot read field temperature" in err and "Traceback" not in err
    assert not out.exists()


def test_the_regrid_choice_is_recorded_in_the_analysis_store(tmp_path, monkeypatch):
    path = os.path.join(iris_sample_dir(), "UM", "northward_sea_ice_velocity.1890.01.01.00.00.pp")
    out = str(tmp_path / "ice.zarr")
    # the ocean model's velocity mapped by its STASH code (a test of the mapping, not a physical equivalence)
    argv = ["ingest", path, "--out", out, "--mapping", "m02s00i149=10m_v_component_of_wind", "--allow-nan", "--quiet"]
    assert wxemu(argv) == 0
    ds = open_store(out)
    assert "linear (iris.analysis.Linear) from the source's irregular latitude/longitude" in ds.attrs["regridding"]
    lat = ds["latitude"].values
    assert np.allclose(np.diff(lat), 1.0)
    monkeypatch.setenv("WXEMU_UM_REGRID", "conservative")  # asked for on the command line
    assert wxemu([*argv[:3], str(tmp_path / "ice2.zarr"), *argv[4:]]) == 0
    assert "conservative (iris.analysis.AreaWeighted)" in open_store(str(tmp_path / "ice2.zarr")).attrs["regridding"]
