"""Power spectra: Parseval, a known sine's peak, latitude weighting, radial binning, and verify's group."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from pipeline.spectra import (
    grid_spacing_km,
    is_global,
    radial_bins,
    radial_power_spectrum,
    zonal_power_spectrum,
    zonal_spectrum,
    zonal_wavelength_km,
)


@pytest.mark.parametrize("n", [240, 241, 36])
def test_zonal_parseval_on_random_rows(n):
    x = np.random.default_rng(0).normal(3.0, 2.0, (5, 7, n))
    p = zonal_power_spectrum(x)
    assert p.shape == (5, 7, n // 2 + 1)
    np.testing.assert_allclose(p.sum(-1), (x**2).mean(-1), rtol=1e-12)


def test_known_sine_peaks_at_its_wavenumber_with_half_its_amplitude_squared():
    lon = np.arange(240) * 1.5
    x = 4.0 * np.sin(np.deg2rad(7 * lon) + 0.3) + 1.0
    p = zonal_power_spectrum(x)
    assert int(np.argmax(p[1:])) + 1 == 7
    np.testing.assert_allclose(p[7], 4.0**2 / 2, rtol=1e-12)  # a sine's mean square
    np.testing.assert_allclose(p[0], 1.0, rtol=1e-12)
    assert p[np.r_[1:7, 8:121]].max() < 1e-20
    np.testing.assert_allclose(zonal_wavelength_km(121)[7], 2 * np.pi * 6371 / 7)


def test_zonal_spectrum_weights_latitude_rows():
    lon = np.arange(36) * 10.0
    rows = np.stack([np.sin(np.deg2rad(2 * lon)), 3 * np.sin(np.deg2rad(5 * lon))])
    s = zonal_spectrum(rows, np.array([1.0, 3.0]))
    np.testing.assert_allclose(s[2], 0.25 * 0.5, rtol=1e-12)
    np.testing.assert_allclose(s[5], 0.75 * 4.5, rtol=1e-12)


def test_radial_spectrum_parseval_and_a_plane_wave():
    ny, nx, d = 32, 48, 25.0
    bins, wavelength = radial_bins(ny, nx, d, d)
    x = np.random.default_rng(1).normal(size=(3, ny, nx))
    p = radial_power_spectrum(x, bins)
    np.testing.assert_allclose(p.sum(-1), (x**2).mean((-2, -1)), rtol=1e-12)
    # a wave with 6 cycles along the longer (48 * 25 km) side: all power in bin 6, wavelength 200 km
    wave = np.cos(2 * np.pi * 6 * np.arange(nx) / nx)[None, :] * np.ones((ny, 1))
    q = radial_power_spectrum(wave, bins)
    assert int(np.argmax(q)) == 6 and wavelength[6] == pytest.approx(nx * d / 6)
    np.testing.assert_allclose(q[6], 0.5, rtol=1e-12)


def test_grid_helpers():
    assert is_global(np.arange(240) * 1.5) and not is_global(np.arange(350, 362.01, 0.25))
    dy, dx = grid_spacing_km(np.array([0.0, 1.0]), np.array([0.0, 1.0, 2.0]))
    assert dy == pytest.approx(111.19, rel=1e-3) and dx == pytest.approx(111.19 * np.cos(np.deg2rad(0.5)), rel=1e-3)


def test_verify_writes_spectra_of_forecast_and_truth(tmp_path):
    from pipeline.verification import VerifyConfig, open_spectra, verify
    from pipeline.verification.testing import synthetic_stores

    p = synthetic_stores(tmp_path, n_init=3, n_lead=2)
    res = verify(VerifyConfig(forecasts=[p["forecast"]], truth=p["truth"], out=str(tmp_path / "s.zarr")))
    sp = open_spectra(str(tmp_path / "s.zarr"))
    da = sp["temperature"]
    assert da.dims == ("forecast", "prediction_timedelta", "level", "wavenumber")
    assert list(da.forecast.values) == ["synthetic", "truth"] and da.sizes["wavenumber"] == 36 // 2
    assert sp["2m_temperature"].dims == ("forecast", "prediction_timedelta", "wavenumber")
    np.testing.assert_allclose(da.wavelength_km.values, 2 * np.pi * 6371 / da.wavenumber.values)
    xr.testing.assert_allclose(sp, res.spectra)
    # the truth: waves 2, 4, 7 dominate; its spectrum by hand at the first valid time of lead 12 h, level 500
    truth = xr.open_zarr(p["truth"])
    t = truth["temperature"].sel(level=500)
    valid = res.scores.prediction_timedelta.values[0] + xr.open_zarr(p["forecast"]).time.values
    rows = t.sel(time=valid).values  # (3 inits, lat, lon)
    from pipeline.weights import latitude_weights

    expected = zonal_spectrum(rows, latitude_weights(truth.latitude.values)).mean(0)[1:]
    np.testing.assert_allclose(da.sel(forecast="truth", level=500).isel(prediction_timedelta=0), expected, rtol=1e-6)
    peaks = np.argsort(expected)[-3:] + 1
    assert sorted(peaks.tolist()) == [2, 4, 7]
