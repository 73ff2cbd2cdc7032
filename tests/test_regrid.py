"""Area-conservative regridding: conservation, constants, brute force, and the real UK sample."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from data_catalog import regrid
from data_catalog.errors import WxemuError


def _areas(lat_e: np.ndarray, lon_e: np.ndarray) -> np.ndarray:
    return np.diff(np.sin(np.deg2rad(lat_e)))[:, None] * np.diff(lon_e)[None, :]


def _brute_force(x, lat, lon, dlat, dlon):
    """Loop over every target/source cell pair and intersect the spherical rectangles directly."""
    le, oe = regrid.cell_bounds(lat, clip=(-90, 90)), regrid.cell_bounds(lon)
    dle = np.clip(regrid.cell_bounds(dlat, clip=(-90, 90)), le[0], le[-1])
    doe = regrid.cell_bounds(dlon)
    periodic = regrid.is_global_longitude(lon)
    if not periodic:
        doe = np.clip(doe, oe[0], oe[-1])
    out = np.zeros((len(dlat), len(dlon)))
    for i in range(len(dlat)):
        for k in range(len(dlon)):
            num = den = 0.0
            for j in range(len(lat)):
                lo, hi = max(dle[i], le[j]), min(dle[i + 1], le[j + 1])
                if hi <= lo:
                    continue
                band = np.sin(np.deg2rad(hi)) - np.sin(np.deg2rad(lo))
                for m in range(len(lon)):
                    width = 0.0
                    for shift in (-360, 0, 360) if periodic else (0,):
                        width += max(0.0, min(doe[k + 1], oe[m + 1] + shift) - max(doe[k], oe[m] + shift))
                    num += band * width * x[j, m]
                    den += band * width
            out[i, k] = num / den
    return out


@pytest.mark.parametrize("periodic", [True, False])
def test_conservation_constant_and_brute_force(periodic: bool) -> None:
    rng = np.random.default_rng(0)
    if periodic:
        lat, lon = np.linspace(-90, 90, 19), np.arange(0, 360, 10.0)
        dlat, dlon = regrid.target_axis(lat, 30.0), np.arange(0, 360, 30.0)
    else:
        lat, lon = np.arange(50, 58.01, 0.25), np.arange(350, 362.01, 0.25)
        dlat, dlon = regrid.target_axis(lat, 1.0), regrid.target_axis(lon, 1.0)
    x = rng.normal(size=(len(lat), len(lon)))
    w_lat, w_lon = regrid.conservative_weights(lat, lon, dlat, dlon)
    y = regrid.regrid_array(x, w_lat, w_lon)
    # area-weighted means agree to round-off
    src_a = _areas(regrid.cell_bounds(lat, clip=(-90, 90)), regrid.cell_bounds(lon))
    le = regrid.cell_bounds(lat, clip=(-90, 90))
    dle = np.clip(regrid.cell_bounds(dlat, clip=(-90, 90)), le[0], le[-1])
    doe = regrid.cell_bounds(dlon)
    if not periodic:
        oe = regrid.cell_bounds(lon)
        doe = np.clip(doe, oe[0], oe[-1])
    dst_a = _areas(dle, doe)
    np.testing.assert_allclose((y * dst_a).sum() / dst_a.sum(), (x * src_a).sum() / src_a.sum(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(dst_a.sum(), src_a.sum(), rtol=1e-12)
    # constant stays constant
    np.testing.assert_allclose(regrid.regrid_array(np.full_like(x, 7.5), w_lat, w_lon), 7.5, rtol=1e-13)
    # equals the brute-force intersection of cells
    np.testing.assert_allclose(y, _brute_force(x, lat, lon, dlat, dlon), rtol=1e-10, atol=1e-12)


def test_regrid_dataset_uk_sample_half_degree(sample) -> None:
    ds = (
        xr.open_dataset(sample("era5-2mt-2019-03-uk.grib"), engine="cfgrib", backend_kwargs={"indexpath": ""})
        .isel(time=slice(0, 24))
        .sortby("latitude")
    )
    ds = ds.assign_coords(longitude=ds["longitude"] % 360).sortby("longitude")  # not contiguous: only a test
    src = ds[["t2m"]].assign_coords(longitude=np.arange(350, 362.01, 0.25)).load()
    out = regrid.regrid_dataset(src.chunk({"time": 6}), 0.5)
    assert out["t2m"].dims == src["t2m"].dims and out["t2m"].dtype == np.float32
    np.testing.assert_allclose(out["latitude"], np.arange(50, 58.01, 0.5))
    np.testing.assert_allclose(out["longitude"], np.arange(350, 362.01, 0.5))
    # an interior 0.5 deg cell centred on a source point averages 3x3 source points with edge weights 1/2
    y = out["t2m"].isel(time=5).values
    x = src["t2m"].isel(time=5).values.astype("f8")
    i, j = 4, 6  # target (52.0, 353.0) -> source rows 8 (52.0) and cols 12 (353.0)
    wl = np.diff(np.sin(np.deg2rad([51.75, 51.875, 52.125, 52.25])))
    wo = np.array([0.125, 0.25, 0.125])
    expect = (wl[:, None] * wo[None, :] * x[7:10, 11:14]).sum() / (wl.sum() * wo.sum())
    np.testing.assert_allclose(y[i, j], expect, rtol=1e-6)
    with pytest.raises(WxemuError, match="not coarser"):
        regrid.regrid_dataset(src, 0.25)


@pytest.mark.parametrize("grid", ["nan", "inf", "-1"])
def test_non_finite_grid_is_a_clear_error(grid: str, tmp_path, capsys) -> None:
    """`--grid nan|inf` gave a traceback ('cannot convert float NaN to integer')."""
    from data_catalog.samples import sample_path
    from workflows.cli import main

    out = tmp_path / "o.zarr"
    assert main(["ingest", sample_path("era5-2mt-2019-03-uk.grib"), "--grid", grid, "--out", str(out)]) == 2
    assert f"--grid must be a positive resolution in degrees, got {float(grid)}" in capsys.readouterr().err
    assert not out.exists()
    ds = xr.Dataset(coords={"latitude": np.arange(3.0), "longitude": np.arange(4.0)})
    with pytest.raises(WxemuError, match=f"regrid: --grid {float(grid)} must be a finite resolution"):
        regrid.regrid_dataset(ds, float(grid))


def test_grid_coarser_than_the_domain_is_a_clear_error() -> None:
    """A target of one cell along an axis (6 deg on the 8 x 12 deg UK domain) gave 'need at least two coordinate
    values to infer cell bounds'."""
    lat, lon = np.arange(50.0, 58.01, 0.25), np.arange(350.0, 362.01, 0.25)
    ds = xr.Dataset(
        {"t": (("latitude", "longitude"), np.ones((lat.size, lon.size), "f4"))},
        coords={"latitude": lat, "longitude": lon},
    )
    with pytest.raises(WxemuError, match=r"spans fewer than two 6.0 deg cells.*choose a finer --grid"):
        regrid.regrid_dataset(ds, 6.0)
    assert regrid.regrid_dataset(ds, 4.0)["t"].shape == (2, 3)
