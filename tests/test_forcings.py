"""Forcings: top-of-atmosphere insolation against known geometry, time features, the stacked forcing array."""

from __future__ import annotations

import numpy as np
import pytest

from data_catalog.errors import ConfigError
from models.forcings import (
    SOLAR_CONSTANT,
    ForcingSpec,
    compute_forcings,
    forcing_names,
    solar_geometry,
    time_features,
    toa_incident_solar,
    toa_incident_solar_accumulated,
)

LAT = np.arange(-90.0, 90.01, 1.0)
LON = np.arange(0.0, 360.0, 1.0)


def _t(*s: str) -> np.ndarray:
    return np.array(s, dtype="datetime64[ns]")


def _global_mean(field: np.ndarray) -> float:
    w = np.cos(np.radians(LAT))[:, None] * np.ones_like(field)
    return float((field * w).sum() / w.sum())


def test_night_is_zero_and_day_positive():
    f = toa_incident_solar(_t("2019-03-20T12:00"), np.array([0.0]), np.array([0.0, 90.0, 180.0, 270.0]))
    assert f.shape == (1, 1, 4)
    assert f[0, 0, 0] > 1300 and f[0, 0, 2] == 0.0
    # Terminator near +-90 deg of longitude; the equation of time (-7.5 min on 20 March) puts the sun 1.9 deg
    # west of the Greenwich meridian, so lon 90E still sees it just above the horizon and lon 90W does not.
    assert 0 < f[0, 0, 1] < 60 and f[0, 0, 3] == 0.0


def test_maximum_at_subsolar_point_and_earth_sun_distance():
    june = toa_incident_solar(_t("2019-06-21T12:00"), LAT, LON)[0]
    i, j = np.unravel_index(np.argmax(june), june.shape)
    assert LAT[i] == pytest.approx(23.4, abs=1.0)
    assert min(LON[j], 360 - LON[j]) <= 1.0
    # Aphelion in early July: the sun is 3.3 % dimmer than at 1 au; perihelion in early January 3.4 % brighter.
    assert june.max() == pytest.approx(SOLAR_CONSTANT * 0.967, rel=3e-3)
    january = toa_incident_solar(_t("2019-01-03T12:00"), LAT, LON)[0]
    assert january.max() == pytest.approx(SOLAR_CONSTANT * 1.034, rel=3e-3)
    assert LAT[np.unravel_index(np.argmax(january), january.shape)[0]] == pytest.approx(-22.9, abs=1.0)


def test_global_mean_is_a_quarter_of_the_subsolar_flux():
    for t in ("2019-03-20T06:00", "2019-07-04T18:00", "2020-12-21T00:30"):
        f = toa_incident_solar(_t(t), LAT, LON)[0]
        assert _global_mean(f) == pytest.approx(f.max() / 4, rel=5e-3)


def test_cos_zenith_and_equinox_symmetry():
    # 2019 March equinox: 21:58 UTC. Declination ~0: north and south mirror each other.
    decl, _, dist = solar_geometry(_t("2019-03-20T21:58"))
    assert abs(np.degrees(decl[0])) < 0.02
    f = toa_incident_solar(_t("2019-03-20T21:58"), LAT, LON)[0]
    np.testing.assert_allclose(f, f[::-1], atol=0.01 * SOLAR_CONSTANT)
    # Along the subsolar meridian the flux is S0 * (d0/d)^2 * cos(latitude).
    j = np.argmax(f[90])
    np.testing.assert_allclose(f[:, j], SOLAR_CONSTANT * dist[0] * np.cos(np.radians(LAT)), atol=0.01 * SOLAR_CONSTANT)


def test_daily_mean_at_equator_on_equinox_is_s0_over_pi():
    times = np.datetime64("2019-03-21T00:00", "ns") + np.arange(0, 24 * 60, 10).astype("timedelta64[m]")
    f = toa_incident_solar(times, np.array([0.0]), np.array([30.0]))
    _, _, dist = solar_geometry(times)
    assert f.mean() == pytest.approx(SOLAR_CONSTANT * dist.mean() / np.pi, rel=5e-3)


def test_accumulated_over_preceding_hour_in_joules():
    t = _t("2019-06-01T13:00")
    acc = toa_incident_solar_accumulated(t, LAT[::10], LON[::30])
    fine = toa_incident_solar_accumulated(t, LAT[::10], LON[::30], n_samples=240)
    np.testing.assert_allclose(acc, fine, rtol=0.01, atol=0.002 * SOLAR_CONSTANT * 3600)
    # Where the sun is up all hour the hourly mean is close to the flux at mid-hour.
    mid = toa_incident_solar(_t("2019-06-01T12:30"), LAT[::10], LON[::30])
    day = mid > 300
    assert day.sum() > 20
    np.testing.assert_allclose(acc[day] / 3600.0, mid[day], rtol=0.01)


def test_time_features_local_hour_and_day_of_year():
    tf = time_features(_t("2019-01-01T00:00", "2019-07-02T12:00"), np.array([0.0, 90.0, 180.0]))
    assert tf.shape == (2, 4, 3) and tf.dtype == np.float32
    # 00 UTC at lon 0: local midnight; at lon 90: 06 local; at lon 180: noon.
    np.testing.assert_allclose(tf[0, 0], [0.0, 1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(tf[0, 1], [1.0, 0.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(tf[0, 2:], [[0, 0, 0], [1, 1, 1]], atol=1e-6)
    # 2 July 12 UTC is exactly half way through 2019 (day 183 of 365, at noon): sin ~ 0, cos = -1.
    np.testing.assert_allclose(tf[1, 3], -1.0, atol=1e-6)


def test_compute_forcings_layout_normalisation_and_static():
    lat, lon = np.linspace(50, 58, 33), np.linspace(350, 362, 49)
    spec = ForcingSpec(static=("land_sea_mask", "geopotential_at_surface"))
    names = forcing_names(spec)
    assert names == [
        "toa_incident_solar_radiation",
        "sin_local_hour",
        "cos_local_hour",
        "sin_day_of_year",
        "cos_day_of_year",
        "land_sea_mask",
        "geopotential_at_surface",
    ]
    times = _t("2019-03-01T00:00", "2019-03-01T12:00")
    static = {"land_sea_mask": np.ones((33, 49)), "geopotential_at_surface": np.full((33, 49), 9806.65 * 0.5)}
    f = compute_forcings(spec, times, lat, lon, static)
    assert f.shape == (2, 7, 33, 49) and f.dtype == np.float32
    assert f[0, 0].max() == 0.0  # UK at midnight
    assert 0.4 < f[1, 0].max() < 0.7  # UK at noon on 1 March: cos(54 - (-7.7)) ~ 0.47..0.6
    np.testing.assert_allclose(f[:, 5], 1.0)
    np.testing.assert_allclose(f[:, 6], 0.5, rtol=1e-6)
    assert np.all(np.abs(f[:, 1:5]) <= 1.0)
    assert ForcingSpec.from_dict(spec.to_dict()) == spec


def test_forcing_errors_name_the_problem():
    spec = ForcingSpec(toa_solar=False, static=("land_sea_mask",))
    with pytest.raises(ConfigError, match="'land_sea_mask'"):
        compute_forcings(spec, _t("2019-03-01"), np.arange(3.0), np.arange(4.0), {})
    with pytest.raises(ConfigError, match=r"shape \(2, 2\)"):
        compute_forcings(spec, _t("2019-03-01"), np.arange(3.0), np.arange(4.0), {"land_sea_mask": np.ones((2, 2))})
    with pytest.raises(ConfigError, match="'solar'"):
        ForcingSpec.from_dict({"solar": True})


def test_climatology_channels_pass_through_and_refuse_nan() -> None:
    from data_catalog.errors import ConfigError
    from models.forcings import ForcingSpec, compute_forcings, forcing_names

    spec = ForcingSpec(toa_solar=False, local_hour=False, day_of_year=False, climatology=("2m_temperature",))
    assert forcing_names(spec) == ["climatology/2m_temperature"]
    assert ForcingSpec.from_dict(spec.to_dict()) == spec
    times = np.array(["2019-03-01T00", "2019-03-01T01"], dtype="datetime64[ns]")
    lat, lon = np.linspace(50, 58, 3), np.linspace(350, 362, 4)
    clim = np.random.default_rng(0).normal(size=(2, 1, 3, 4)).astype(np.float32)
    np.testing.assert_array_equal(compute_forcings(spec, times, lat, lon, climatology=clim), clim)
    with pytest.raises(ConfigError, match="shape"):
        compute_forcings(spec, times, lat, lon)
    clim[1, 0, 0, 0] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        compute_forcings(spec, times, lat, lon, climatology=clim)
