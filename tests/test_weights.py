"""Area weights: WeatherBench2's band areas, checked against brute-force integration and hand values."""

import numpy as np
import pytest
from scipy.integrate import quad

from data_catalog.errors import WxemuError
from pipeline.weights import latitude_bounds, latitude_weights


def brute(lat):
    lat = np.asarray(lat, float)
    out = []
    for i, phi in enumerate(lat):
        lo = (lat[i - 1] + phi) / 2 if i else phi - (lat[1] - lat[0]) / 2
        hi = (lat[i + 1] + phi) / 2 if i < lat.size - 1 else phi + (lat[-1] - lat[-2]) / 2
        out.append(quad(lambda x: np.cos(np.deg2rad(x)), max(lo, -90), min(hi, 90))[0])
    out = np.array(out)
    return out / out.mean()


@pytest.mark.parametrize(
    "lat",
    [
        np.linspace(-90, 90, 121),
        np.linspace(-87.1875, 87.1875, 32),
        np.arange(50, 58.01, 0.25),
        np.array([-10.0, 0.0, 25.0, 30.0]),
    ],
)
def test_weights_match_brute_force_band_areas(lat):
    np.testing.assert_allclose(latitude_weights(lat), brute(lat), rtol=1e-10)
    assert latitude_weights(lat).mean() == pytest.approx(1.0)


def test_weights_equal_weatherbench2_on_global_grids():
    # WB2 uses bounds -90, midpoints, +90 (metrics._latitude_cell_bounds); on global grids ours are the same
    for lat in (np.linspace(-90, 90, 721), np.linspace(-89.296875, 89.296875, 128), np.linspace(-87.1875, 87.1875, 32)):
        b = np.deg2rad(np.concatenate([[-90], (lat[:-1] + lat[1:]) / 2, [90]]))
        wb2 = np.sin(b[1:]) - np.sin(b[:-1])
        np.testing.assert_allclose(latitude_weights(lat), wb2 / wb2.mean(), rtol=1e-12)


def test_pole_rows_and_cos_away_from_poles():
    lat = np.linspace(-90, 90, 7)  # 30 deg spacing
    w = latitude_weights(lat)
    # pole row: band 75..90 -> 1 - sin 75; equator: 2 sin 15
    ratio = (1 - np.sin(np.deg2rad(75))) / (2 * np.sin(np.deg2rad(15)))
    assert w[0] / w[3] == pytest.approx(ratio)
    assert w[0] == pytest.approx(w[-1])
    np.testing.assert_allclose(w[1:-1] / w[3], np.cos(np.deg2rad(lat[1:-1])), rtol=1e-12)


def test_descending_latitude_keeps_row_order_and_bounds_clip():
    lat = np.array([60.0, 30.0, 0.0])
    np.testing.assert_allclose(latitude_weights(lat), latitude_weights(lat[::-1])[::-1])
    np.testing.assert_allclose(latitude_bounds(np.array([-89.0, 0.0, 89.0])), [-90, -44.5, 44.5, 90])
    with pytest.raises(WxemuError, match="ascending"):
        latitude_bounds(np.array([0.0, 0.0, 1.0]))
