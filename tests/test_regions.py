"""Region masks: named regions, boxes, longitude conventions (0..360, -180..180, 350..362) and errors."""

import numpy as np
import pytest

from data_catalog.errors import WxemuError
from data_catalog.regions import (
    NAMED_REGIONS,
    WB2_REGIONS,
    box_indices,
    parse_box,
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
        return lat[parse_region(name).mask(lat, lon).any(1)].tolist()

    assert rows("tropics") == [-20, -10, 0, 10, 20]
    assert rows("extra_tropics") == rows("extra-tropics") == [-90, -20, 20, 90]  # WB2: |lat| >= 20
    # WeatherBench2's hemispheres start at 20 degrees, whatever the spelling; wxemu's 0..90 has its own name
    assert rows("northern_hemisphere") == rows("Northern-Hemisphere") == [20, 90]
    assert rows("southern-hemisphere") == [-90, -20]
    assert rows("north_of_equator") == [0, 10, 20, 90] and rows("south_of_equator") == [-90, -20, -10, 0]
    assert rows("southern_extra_tropics") == [-90, -20]
    na = parse_region("north_america").mask(np.array([40.0]), np.array([-100.0, 260.0, 300.0]))
    assert na.tolist() == [[True, True, False]]


#: WeatherBench2's regions as scripts/evaluate.py defines them (google-research/weatherbench2, `predefined_regions`),
#: written out independently: name -> (latitude slices, longitude slices) applied with ``.sel`` on a 0..360 grid.
WB2_BOXES = {
    "global": ([slice(None, None)], [slice(None, None)]),
    "tropics": ([slice(-20, 20)], [slice(None, None)]),
    "extra-tropics": ([slice(None, -20), slice(20, None)], [slice(None, None)]),
    "northern-hemisphere": ([slice(20, None)], [slice(None, None)]),
    "southern-hemisphere": ([slice(None, -20)], [slice(None, None)]),
    "europe": ([slice(35, 75)], [slice(360 - 12.5, None), slice(0, 42.5)]),
    "north-america": ([slice(25, 60)], [slice(360 - 120, 360 - 75)]),
    "north-atlantic": ([slice(25, 65)], [slice(360 - 70, 360 - 10)]),
    "north-pacific": ([slice(25, 60)], [slice(145, 360 - 130)]),
    "east-asia": ([slice(25, 60)], [slice(102.5, 150)]),
    "ausnz": ([slice(-45, -12.5)], [slice(120, 175)]),
    "arctic": ([slice(60, 90)], [slice(None, None)]),
    "antarctic": ([slice(-90, -60)], [slice(None, None)]),
}


@pytest.mark.parametrize("step", [1.5, 0.25, 5.625])
def test_every_weatherbench2_region_selects_what_weatherbench2_selects(step):
    """WB2's published grids (0..360 longitudes, poles included for 1.5 and 0.25 deg): the same grid points."""
    import xarray as xr

    lat = np.arange(-90, 90 + step / 2, step) if step != 5.625 else np.arange(-87.1875, 90, step)
    lon = np.arange(0, 360, step)
    grid = xr.DataArray(np.zeros((lat.size, lon.size)), dims=("latitude", "longitude"), coords=(lat, lon))
    assert set(WB2_REGIONS) == set(WB2_BOXES)
    for name, (lats, lons) in WB2_BOXES.items():
        sel_lat = np.concatenate([grid.latitude.sel(latitude=s).values for s in lats])
        sel_lon = np.concatenate([grid.longitude.sel(longitude=s).values for s in lons])
        expected = np.isin(lat, sel_lat)[:, None] & np.isin(lon, sel_lon)[None, :]
        region = parse_region(name)
        assert region.name == name
        np.testing.assert_array_equal(region.mask(lat, lon), expected, err_msg=name)
        # the underscore spelling means the same
        np.testing.assert_array_equal(parse_region(name.replace("-", "_")).mask(lat, lon), expected, err_msg=name)


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


def test_box_indices_cut_a_global_grid_to_the_uk_sample_grid():
    lat = np.arange(-90, 90.01, 0.25)
    lon360 = np.arange(0, 360, 0.25)
    lon180 = np.where(lon360 >= 180, lon360 - 360, lon360)
    box = parse_box("50,58,-10,2")
    rows, cols, new = box_indices(region=box, latitude=lat, longitude=lon360)
    np.testing.assert_array_equal(lat[rows], np.arange(50, 58.01, 0.25))
    np.testing.assert_array_equal(new, np.arange(350, 362.01, 0.25))  # the bundled sample's canonical grid
    np.testing.assert_array_equal(lon360[cols] % 360, new % 360)  # each column is the point it claims to be
    rows2, cols2, new2 = box_indices(region=box, latitude=lat, longitude=lon180)
    np.testing.assert_array_equal(rows2, rows)
    np.testing.assert_array_equal(new2, new)
    np.testing.assert_array_equal(lon180[cols2] % 360, new % 360)


def test_box_indices_invariants_on_random_boxes():
    rng = np.random.default_rng(0)
    lat = np.arange(-90, 90.01, 2.5)
    for lon in (np.arange(0, 360, 5.0), np.arange(-180, 180, 5.0), np.arange(300, 420, 5.0)):
        for _ in range(200):
            lat0, lat1 = np.sort(rng.uniform(-90, 90, 2))
            lon0, lon1 = rng.uniform(-360, 360, 2)
            region = parse_box(f"{lat0},{lat1},{lon0},{lon1}")
            mask = region.mask(lat, lon)
            in_two = lon[0] == 300 and (np.diff(np.flatnonzero(mask.any(0))) > 1).any()  # the regional grid
            if not mask.any() or in_two:  # no point, or a regional grid met at both its ends
                with pytest.raises(WxemuError, match="holds no point" if not mask.any() else "two separate pieces"):
                    box_indices(region=region, latitude=lat, longitude=lon)
                continue
            rows, cols, new = box_indices(region=region, latitude=lat, longitude=lon)
            assert set(zip(*np.nonzero(mask))) == {(r, c) for r in rows for c in cols}  # exactly the mask's points
            if region.all_longitudes:  # every column, as the grid has them
                assert cols.tolist() == list(range(lon.size)) and new.tolist() == lon.tolist()
                continue
            assert 0 <= new[0] < 360 and (np.diff(new) > 0).all()  # canonical: eastward, first in [0, 360)
            np.testing.assert_allclose(np.diff(new), 5.0)  # contiguous: no gap where the box crosses 0 or 360
            np.testing.assert_allclose(lon[cols] % 360, new % 360)


def test_box_indices_whole_longitudes_and_refusals():
    lat, lon = np.arange(-60, 61, 30.0), np.arange(0, 360, 90.0)
    rows, cols, new = box_indices(region=parse_box("-30,30,0,360"), latitude=lat, longitude=lon)
    assert lat[rows].tolist() == [-30, 0, 30] and cols.tolist() == [0, 1, 2, 3] and new.tolist() == lon.tolist()
    with pytest.raises(WxemuError, match="not one box"):
        parse_box("extra-tropics")
    with pytest.raises(WxemuError, match=r"holds no point of the grid \(-60..60N, 0..270E\)"):
        box_indices(region=parse_box("70,80,0,10"), latitude=lat, longitude=lon)
