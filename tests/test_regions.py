"""Region masks: named regions, boxes, longitude conventions (0..360, -180..180, 350..362) and errors."""

import numpy as np
import pytest

from data_catalog.errors import WxemuError
from pipeline.regions import (
    NAMED_REGIONS,
    parse_region,
    parse_regions,
    region_masks,
    region_weights,
)
from pipeline.weights import latitude_weights


def test_europe_box_same_on_all_longitude_conventions():
    lat = np.arange(-90, 90.1, 2.5)
    lon360 = np.arange(0, 360, 2.5)
    lon180 = np.where(lon360 >= 180, lon360 - 360, lon360)
    europe = NAMED_REGIONS["europe"]
    m360, m180 = europe.mask(lat, lon360), europe.mask(lat, lon180)
    np.testing.assert_array_equal(m360, m180)
    cols = lon180[m180.any(0)]
    assert cols.min() == -12.5 and cols.max() == 42.5
    rows = lat[m360.any(1)]
    assert rows.min() == 35 and rows.max() == 75
    assert m360.sum() == 17 * 23  # 35..75 by 2.5 (17 rows) x -12.5..42.5 (23 columns)


def test_uk_on_regional_grid_crossing_zero():
    lat = np.arange(50, 58.01, 0.25)
    lon = np.arange(350, 362.01, 0.25)  # wxemu convention for the UK sample
    m = NAMED_REGIONS["uk"].mask(lat, lon)
    assert m.all()  # 50..58N x 10W..2E lies inside 49..61N x 11W..2E
    box = parse_region("52,56,354,360").mask(lat, lon)
    assert box.sum() == 17 * 25
    assert np.array_equal(parse_region("52,56,-6,0").mask(lat, lon), box)


def test_named_regions_latitude_bands_inclusive_like_wb2():
    lat = np.array([-90, -20, -10, 0, 10, 20, 90.0])
    lon = np.array([0.0, 180.0])

    def rows(name):
        return lat[NAMED_REGIONS[name].mask(lat, lon).any(1)].tolist()

    assert rows("tropics") == [-20, -10, 0, 10, 20]
    assert rows("extra_tropics") == [-90, -20, 20, 90]  # WB2 ExtraTropicalRegion: |lat| >= 20
    assert rows("northern_hemisphere") == [0, 10, 20, 90]
    assert rows("southern_extra_tropics") == [-90, -20]
    na = NAMED_REGIONS["north_america"].mask(np.array([40.0]), np.array([-100.0, 260.0, 300.0]))
    assert na.tolist() == [[True, True, False]]


def test_region_errors_and_weights():
    lat = np.arange(50, 58.01, 0.25)
    lon = np.arange(350, 362.01, 0.25)
    with pytest.raises(WxemuError, match=r"region 'tropics' .*does not overlap the grid of X \(50..58N, 350..362E\)"):
        region_masks([NAMED_REGIONS["tropics"]], lat, lon, grid_name="X")
    with pytest.raises(WxemuError, match="unknown region 'atlantis'"):
        parse_region("atlantis")
    with pytest.raises(WxemuError, match="four numbers"):
        parse_region("1,2,3")
    with pytest.raises(WxemuError, match="duplicate"):
        parse_regions(["uk", "uk"])
    # 0..10E on a grid ending at 2E (362): columns 360..362 only
    w = region_weights(parse_regions(["global", "alps=52,54,0,10"]), lat, lon, latitude_weights(lat))
    np.testing.assert_allclose(w.sum(axis=(1, 2)), 1.0)
    assert (w[1] > 0).sum() == 9 * 9 and [r.name for r in parse_regions(["alps=1,2,3,4"])] == ["alps"]
