"""data_catalog.samples: local lookup and the verified download path (against a local HTTP server)."""

from __future__ import annotations

import os
import shutil
import zipfile

import pytest

from data_catalog import samples
from data_catalog.errors import InputDataError
from data_catalog.samples import SAMPLES, download_sample, sample_path, sha256sum

T_AN = "t_analysis_and_fc_0.grib"
LAND_SHP = "cartopy/shapefiles/natural_earth/physical/ne_110m_land.shp"


def test_registry_matches_local_files(data_dir):
    assert len(SAMPLES) == 13
    for name, s in SAMPLES.items():
        path = os.path.join(data_dir, name)
        assert os.path.getsize(path) == s.size, name
        assert sha256sum(path) == s.sha256, name
        assert s.url.startswith("https://"), name
    assert "Copernicus Climate Change Service" in SAMPLES["eraint_uvz.nc"].attribution
    assert "Copernicus Climate Change Service" in SAMPLES["era5-2mt-2019-03-uk.grib"].attribution
    assert SAMPLES["eraint_uvz.nc"].url == "https://github.com/pydata/xarray-data/raw/master/eraint_uvz.nc"
    assert SAMPLES[T_AN].url == f"https://github.com/ecmwf/cfgrib/raw/master/tests/sample-data/{T_AN}"


def test_local_dir_from_env_and_default(monkeypatch, data_dir, tmp_path):
    monkeypatch.setenv("WXEMU_DATA_DIR", data_dir)
    assert sample_path("eraint_uvz.nc") == os.path.join(data_dir, "eraint_uvz.nc")
    assert samples.data_dir() == data_dir
    monkeypatch.delenv("WXEMU_DATA_DIR")
    monkeypatch.chdir(tmp_path)  # ../shared/data relative to the cwd is absent: the repository root's is used
    repo_default = os.path.abspath(os.path.join(os.path.dirname(samples.__file__), "..", "..", "shared", "data"))
    if os.path.isdir(repo_default):
        assert sample_path(T_AN) == os.path.join(repo_default, T_AN)
    with pytest.raises(InputDataError, match="unknown sample 'nope.grib'"):
        sample_path("nope.grib")


@pytest.fixture
def mirror(tmp_path, monkeypatch, http_server, data_dir):
    """Serve copies of the cfgrib and Natural Earth samples on 127.0.0.1 and point the URL map at them; the local
    data directory is an empty one, so sample_path must download."""
    served = tmp_path / "served"
    served.mkdir()
    shutil.copy(os.path.join(data_dir, T_AN), served / T_AN)
    with zipfile.ZipFile(served / "ne_110m_land.zip", "w") as z:
        for ext in ("shp", "shx", "dbf"):
            z.write(
                os.path.join(data_dir, f"cartopy/shapefiles/natural_earth/physical/ne_110m_land.{ext}"),
                f"ne_110m_land.{ext}",
            )
    base = http_server(str(served))
    monkeypatch.setenv("WXEMU_URL_MAP", f"{samples.CFGRIB_DATA}={base};{samples.NATURAL_EARTH}={base}")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("WXEMU_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("WXEMU_CACHE_DIR", str(tmp_path / "cache"))
    return served


def test_download_verified_and_cached(mirror, tmp_path):
    path = sample_path(T_AN)
    assert path == str(tmp_path / "cache" / T_AN)
    assert sha256sum(path) == SAMPLES[T_AN].sha256
    os.remove(mirror / T_AN)  # the second call is served from the cache
    assert sample_path(T_AN) == path
    shp = sample_path(LAND_SHP)
    assert shp == str(tmp_path / "cache" / LAND_SHP) and sha256sum(shp) == SAMPLES[LAND_SHP].sha256


def test_download_checksum_mismatch(mirror):
    data = bytearray((mirror / T_AN).read_bytes())
    data[100] ^= 0xFF
    (mirror / T_AN).write_bytes(bytes(data))
    with pytest.raises(InputDataError, match=f"sample '{T_AN}' from http://127.0.0.1:.*checksum mismatch") as err:
        sample_path(T_AN)
    assert f"not in {mirror.parent / 'empty'}: set WXEMU_DATA_DIR to a directory that holds {T_AN}" in str(err.value)
    with pytest.raises(InputDataError, match="download from http://127.0.0.1:.*failed"):
        download_sample("uv_on_different_levels.grib")  # not served: 404


def test_zip_member_checksum_mismatch(mirror, data_dir):
    with zipfile.ZipFile(mirror / "ne_110m_land.zip", "w") as z:
        z.writestr("ne_110m_land.shp", b"not the land shapefile")
    with pytest.raises(InputDataError, match="checksum mismatch for ne_110m_land.shp"):
        sample_path(LAND_SHP)


def test_data_dir_fixture_points_at_samples(data_dir):
    assert data_dir == samples.data_dir()
    assert os.path.isfile(os.path.join(data_dir, "era5-2mt-2019-03-uk.grib"))
