"""data_catalog.readers: opening NetCDF / GRIB / Zarr sources, format detection and bad-input errors."""

from __future__ import annotations

import os
import shutil
import socket
import time

import dask.array
import eccodes
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data_catalog.damaged import corrupt_copy, truncated_copy
from data_catalog.errors import InputDataError
from data_catalog.integrity import netcdf3_expected_size
from data_catalog.readers import apply_url_map, detect_format, expand_paths, open_source, open_sources


def _eccodes_fields(path: str) -> list[dict]:
    """Every message of a GRIB file: shortName, level, step and values (as stored, north to south)."""
    out = []
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            out.append(
                {
                    "shortName": eccodes.codes_get(h, "shortName"),
                    "level": eccodes.codes_get(h, "level"),
                    "step": eccodes.codes_get(h, "endStep"),
                    "values": eccodes.codes_get_values(h).reshape(
                        eccodes.codes_get(h, "Nj"), eccodes.codes_get(h, "Ni")
                    ),
                }
            )
            eccodes.codes_release(h)
    return out


def test_open_grib_lazy_and_raw(sample):
    """Lazy (dask), names and dims as the source has them (the ERA5 UK GRIB is opened in test_canonical)."""
    ds = open_source(sample("era5-levels-members.grib"))
    assert isinstance(ds["t"].data, dask.array.Array)
    assert dict(ds.sizes) == {"number": 10, "time": 4, "isobaricInhPa": 2, "latitude": 61, "longitude": 120}
    assert ds.attrs["wxemu_source_format"] == "grib"
    assert ds["z"].attrs["units"] == "m**2 s**-2"


def test_open_netcdf(sample):
    ds = open_source(sample("eraint_uvz.nc"), variables=["z"])
    assert list(ds.data_vars) == ["z"]
    assert dict(ds.sizes) == {"month": 2, "level": 3, "latitude": 241, "longitude": 480}
    assert isinstance(ds["z"].data, dask.array.Array)


def test_grib_hypercubes_merged_on_levels(sample):
    path = sample("uv_on_different_levels.grib")
    ds = open_source(path).load()
    assert sorted(ds["isobaricInhPa"].values.tolist()) == [400, 500, 700, 850, 1000]
    assert not ds["u"].isnull().any()
    v_levels = ds["v"].notnull().all(["step", "latitude", "longitude"])
    assert sorted(ds["isobaricInhPa"].values[v_levels.values].tolist()) == [500, 700, 1000]
    raw = {(f["shortName"], f["level"], f["step"]): f["values"] for f in _eccodes_fields(path)}
    np.testing.assert_array_equal(
        ds["v"].sel(step=np.timedelta64(12, "h"), isobaricInhPa=700).values, raw[("v", 700, 12)]
    )
    np.testing.assert_array_equal(
        ds["u"].sel(step=np.timedelta64(6, "h"), isobaricInhPa=400).values, raw[("u", 400, 6)]
    )


def test_grib_filter(sample):
    ds = open_source(sample("uv_on_different_levels.grib"), grib_filter={"shortName": "v"})
    assert list(ds.data_vars) == ["v"]
    assert ds["isobaricInhPa"].values.tolist() == [1000, 700, 500]
    with pytest.raises(InputDataError, match="no GRIB fields matching"):
        open_source(sample("uv_on_different_levels.grib"), grib_filter={"shortName": "q"})


def test_corrupted_grib_is_a_clear_error(sample):
    path = sample("era5-levels-corrupted.grib")
    with pytest.raises(InputDataError) as info:
        open_source(path)
    assert path in str(info.value) and "corrupt or truncated GRIB" in str(info.value)


def test_truncated_and_padded_grib(sample, tmp_path):
    data = open(sample("t_analysis_and_fc_0.grib"), "rb").read()
    cut = tmp_path / "cut.grib"
    cut.write_bytes(data[:5000])
    with pytest.raises(InputDataError, match=r"cut\.grib: corrupt or truncated GRIB: message 1"):
        open_source(str(cut))
    padded = tmp_path / "padded.grib"
    padded.write_bytes(data + b"not a grib message")
    with pytest.raises(InputDataError, match="trailing bytes after message 1 are not a GRIB message"):
        open_source(str(padded))


def test_missing_and_unknown(tmp_path):
    with pytest.raises(InputDataError, match="nope.grib: no such file"):
        open_source(str(tmp_path / "nope.grib"))
    with pytest.raises(InputDataError, match="no such file or store"):
        open_source(str(tmp_path / "nope"))
    text = tmp_path / "notes.txt"
    text.write_text("hello, not weather")
    with pytest.raises(InputDataError, match="notes.txt: unknown format"):
        open_source(str(text))
    with pytest.raises(InputDataError, match="unknown format 'csv'"):
        open_source(str(text), "csv")
    (tmp_path / "plain_dir").mkdir()
    with pytest.raises(InputDataError, match="not a Zarr store"):
        open_source(str(tmp_path / "plain_dir"))


def test_missing_variable_lists_what_is_there(sample):
    with pytest.raises(InputDataError, match=r"variables \['q'\] not found; the source has \['u', 'v', 'z'\]"):
        open_source(sample("eraint_uvz.nc"), variables=["q"])


def test_format_sniffed_from_magic_bytes(sample, tmp_path):
    grib = tmp_path / "analysis"
    shutil.copy(sample("t_analysis_and_fc_0.grib"), grib)
    assert detect_format(str(grib)) == "grib"
    ds = xr.Dataset({"x": ("a", np.arange(3.0))})
    ds.to_netcdf(tmp_path / "hdf", engine="netcdf4")
    ds.to_netcdf(tmp_path / "classic", engine="scipy")
    assert detect_format(str(tmp_path / "hdf")) == "netcdf"
    assert detect_format(str(tmp_path / "classic")) == "netcdf"
    np.testing.assert_array_equal(open_source(str(tmp_path / "classic"))["x"].values, [0.0, 1.0, 2.0])
    ds.to_zarr(tmp_path / "store", zarr_format=3)
    assert detect_format(str(tmp_path / "store")) == "zarr"


def test_zarr_over_http_and_memory(tmp_path, http_server):
    ds = xr.Dataset(
        {"t": (("time", "lat"), np.arange(6.0).reshape(2, 3))},
        coords={"time": np.array(["2020-01-01", "2020-01-02"], "datetime64[ns]"), "lat": [0, 1, 2]},
    )
    ds.to_zarr(tmp_path / "a.zarr", zarr_format=2, consolidated=True)
    url = http_server(str(tmp_path)) + "a.zarr"
    remote = open_source(url)
    np.testing.assert_array_equal(remote["t"].values, ds["t"].values)
    ds.to_zarr("memory://wxemu-test/b.zarr", zarr_format=3, consolidated=True, mode="w")
    np.testing.assert_array_equal(open_source("memory://wxemu-test/b.zarr")["t"].values, ds["t"].values)
    with pytest.raises(InputDataError, match="missing.zarr"):
        open_source(http_server(str(tmp_path)) + "missing.zarr", "zarr")


def test_remote_netcdf_is_cached(tmp_path, http_server, monkeypatch):
    monkeypatch.setenv("WXEMU_CACHE_DIR", str(tmp_path / "cache"))
    xr.Dataset({"x": ("a", np.arange(4.0))}).to_netcdf(tmp_path / "f.nc")
    ds = open_source(http_server(str(tmp_path)) + "f.nc")
    np.testing.assert_array_equal(ds["x"].values, np.arange(4.0))
    assert os.listdir(tmp_path / "cache" / "remote")


def test_url_map(monkeypatch):
    mirrors = {"gs://weatherbench2/": "http://127.0.0.1:1/wb2/", "gs://weatherbench2/datasets/hres/": "/local/"}
    assert (
        apply_url_map("gs://weatherbench2/datasets/era5/x.zarr", mirrors)
        == "http://127.0.0.1:1/wb2/datasets/era5/x.zarr"
    )
    assert apply_url_map("gs://weatherbench2/datasets/hres/y.zarr", mirrors) == "/local/y.zarr"
    monkeypatch.setenv("WXEMU_URL_MAP", "gs://weatherbench2/=/env/")
    assert apply_url_map("gs://weatherbench2/datasets/era5/x.zarr", mirrors) == "/env/datasets/era5/x.zarr"
    monkeypatch.setenv("WXEMU_URL_MAP", "nonsense")
    with pytest.raises(InputDataError, match="PREFIX=TARGET"):
        apply_url_map("x")


def test_globs_and_date_templates(tmp_path):
    for day in ("20200101", "20200102", "20200103"):
        xr.Dataset({"x": ("a", [float(day[-1])])}).to_netcdf(tmp_path / f"f_{day}.nc")
    assert [os.path.basename(p) for p in expand_paths([str(tmp_path / "f_*.nc")])] == [
        "f_20200101.nc",
        "f_20200102.nc",
        "f_20200103.nc",
    ]
    paths = expand_paths([str(tmp_path / "f_{date:%Y%m%d}.nc")], start="2020-01-02", end="2020-01-03T18")
    assert [os.path.basename(p) for p in paths] == ["f_20200102.nc", "f_20200103.nc"]
    opened = open_sources([str(tmp_path / "f_{date:%Y%m%d}.nc")], start="2020-01-01", end="2020-01-02")
    assert [float(ds["x"][0]) for _, ds in opened] == [1.0, 2.0]
    with pytest.raises(InputDataError, match="matches no file"):
        expand_paths([str(tmp_path / "g_*.nc")])
    with pytest.raises(InputDataError, match="needs a start and an end"):
        expand_paths([str(tmp_path / "f_{date:%Y%m%d}.nc")])


def test_grib_with_several_level_types_merges(sample, tmp_path):
    """An ERA5-style download mixing pressure-level, 2 m, 10 m and surface fields (written with eccodes from the
    real t analysis message) opens as one dataset; the level-type scalars move into attributes."""
    with open(sample("t_analysis_and_fc_0.grib"), "rb") as f:
        base = eccodes.codes_grib_new_from_file(f)
    values = eccodes.codes_get_values(base)
    path = tmp_path / "mixed.grib"
    with open(path, "wb") as out:
        for short, level_type, level, offset in [
            ("t", "isobaricInhPa", 1000, 280.0),
            ("2t", "heightAboveGround", 2, 285.0),
            ("10u", "heightAboveGround", 10, 1.0),
            ("msl", "surface", 0, 1e5),
        ]:
            h = eccodes.codes_clone(base)
            eccodes.codes_set(h, "shortName", short)
            eccodes.codes_set(h, "typeOfLevel", level_type)
            eccodes.codes_set(h, "level", level)
            eccodes.codes_set_values(h, values + offset)
            eccodes.codes_write(h, out)
            eccodes.codes_release(h)
    eccodes.codes_release(base)
    ds = open_source(str(path))
    assert sorted(ds.data_vars) == ["msl", "t", "t2m", "u10"]
    assert ds["t"].dims == ("isobaricInhPa", "latitude", "longitude")
    assert ds["t2m"].attrs["GRIB_heightAboveGround"] == 2.0 and "heightAboveGround" not in ds.coords
    np.testing.assert_allclose(ds["msl"].values.ravel(), values + 1e5, rtol=1e-6)
    np.testing.assert_allclose(ds["t2m"].values.ravel(), values + 285.0, atol=1e-3)


# ------------------------------------------------------------------------------------------- reliability (issue 22)
@pytest.fixture(scope="module")
def netcdf4_copy(tmp_path_factory, sample) -> str:
    """The ERA-Interim sample (one month, two levels) as NetCDF4/HDF5 with chunked, compressed variables."""
    path = str(tmp_path_factory.mktemp("nc4") / "uvz.nc")
    with xr.open_dataset(sample("eraint_uvz.nc")) as ds:
        part = ds.isel(month=[0], level=[0, 1]).load()
    enc = {v: {"zlib": True, "chunksizes": (1, 1, 241, 480)} for v in part.data_vars}
    part.to_netcdf(path, engine="netcdf4", format="NETCDF4", encoding=enc)
    return path


@pytest.mark.parametrize("fraction", [0.002, 0.3, 0.5, 0.9])
def test_truncated_netcdf3_is_named(sample, tmp_path, fraction):
    """NetCDF3 reads past the end of a short file as zeros: the size the header promises is checked first
    (today: 'month must be in 1..12', or zeros and garbage ingested as data)."""
    path = truncated_copy(sample("eraint_uvz.nc"), str(tmp_path / "uvz.nc"), fraction)
    with pytest.raises(InputDataError, match=r"uvz.nc: truncated NetCDF3 file: its header promises 4168980 bytes"):
        open_source(path)


def test_netcdf3_cut_inside_its_header(sample, tmp_path):
    path = truncated_copy(sample("eraint_uvz.nc"), str(tmp_path / "head.nc"), 200 / 4168980)
    with pytest.raises(InputDataError, match="head.nc: truncated or corrupt NetCDF3 file: it ends inside the header"):
        open_source(path)


def test_netcdf3_expected_size_matches_intact_files(sample, tmp_path):
    """The header parser agrees with the netCDF library's own files: classic, 64-bit offset, with a record
    dimension (the size promised equals the size written)."""
    assert netcdf3_expected_size(sample("eraint_uvz.nc"))[0] == os.path.getsize(sample("eraint_uvz.nc"))
    with xr.open_dataset(sample("eraint_uvz.nc")) as ds:
        part = ds.isel(level=[0], latitude=slice(0, 30)).load()
    for fmt in ("NETCDF3_CLASSIC", "NETCDF3_64BIT"):
        for unlimited in (None, "month"):
            path = str(tmp_path / f"{fmt}-{unlimited}.nc")
            part.to_netcdf(path, format=fmt, unlimited_dims=[unlimited] if unlimited else None)
            assert netcdf3_expected_size(path)[0] == os.path.getsize(path), (fmt, unlimited)
            xr.testing.assert_allclose(open_source(path).load(), part.astype(open_source(path).dtypes))
    big = str(tmp_path / "big-header.nc")  # a header of 300 kB (read in growing steps)
    part.assign_attrs(history="x" * 300_000).to_netcdf(big, format="NETCDF3_64BIT")
    assert netcdf3_expected_size(big)[0] == os.path.getsize(big)
    with pytest.raises(InputDataError, match="it ends inside the header"):
        open_source(truncated_copy(big, str(tmp_path / "big-cut.nc"), 0.05))


def test_truncated_netcdf4_is_named(netcdf4_copy, tmp_path):
    """HDF5 says only 'NetCDF: HDF error'; the superblock's end-of-file address names the truncation."""
    path = truncated_copy(netcdf4_copy, str(tmp_path / "cut.nc"), 0.6)
    with pytest.raises(InputDataError, match=r"cut.nc: truncated NetCDF4/HDF5 file: its superblock records \d+ bytes"):
        open_source(path)


def test_corrupt_netcdf4_chunk_is_named(netcdf4_copy, tmp_path):
    """A damaged compressed chunk inside an intact-sized NetCDF4 file: the variable and region are named."""
    size = os.path.getsize(netcdf4_copy)
    path = corrupt_copy(netcdf4_copy, str(tmp_path / "bad.nc"), at=size // 2, count=4096)
    ds = open_source(path)
    with pytest.raises(InputDataError, match=r"bad.nc: corrupt or truncated NetCDF data: variable '\w+' at month"):
        ds.load()


def test_corrupt_zarr_chunk_is_named(sample, tmp_path):
    """A truncated Zarr chunk fails with the store, the variable and the region (today: 'Zstd decompression
    error' from deep inside dask)."""
    store = str(tmp_path / "uvz.zarr")
    with xr.open_dataset(sample("eraint_uvz.nc")) as ds:
        ds.isel(month=[0]).load().chunk({"level": 1}).to_zarr(store, zarr_format=3)
    chunk = os.path.join(store, "u", "c", "0", "1", "0", "0")
    with open(chunk, "rb") as f:
        data = f.read()
    with open(chunk, "wb") as f:
        f.write(data[: len(data) // 2])
    ds = open_source(store)
    np.testing.assert_array_equal(ds["v"].values.shape, (1, 3, 241, 480))  # other variables still read
    with pytest.raises(
        InputDataError,
        match=r"uvz.zarr: corrupt or truncated Zarr chunk: variable 'u' at month\[0:1\], "
        r"level\[1:2\]",
    ):
        ds["u"].load()


def test_unreachable_cloud_host_fails_at_once(monkeypatch):
    """No network: one clear error in seconds (fsspec's cloud clients retried for about a minute, logging a
    traceback per attempt)."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(InputDataError, match=rf"gs://bucket/era5.zarr: cannot reach 127.0.0.1:{port} .*mirror"):
        open_source("gs://bucket/era5.zarr", storage_options={"token": "anon"})
    with pytest.raises(InputDataError, match=rf"cannot reach 127.0.0.1:{port}"):
        open_source("gs://bucket/era5-no-suffix", storage_options={"token": "anon"})
    assert time.monotonic() - t0 < 10


def test_grib_cut_at_a_message_boundary_reads_the_whole_messages(sample, tmp_path):
    """A GRIB cut exactly between messages is a valid, shorter file (no format can tell): it is read as the
    messages it holds, each at its own time, never padded with zeros."""
    path = truncated_copy(sample("era5-2mt-2019-03-uk.grib"), str(tmp_path / "half.grib"), 0.5)
    ds = open_source(path)
    assert ds.sizes["time"] == 372 and pd.Timestamp(ds["time"].values[-1]) == pd.Timestamp("2019-03-16T11")
    full = open_source(sample("era5-2mt-2019-03-uk.grib"))
    np.testing.assert_array_equal(ds["t2m"].values, full["t2m"].isel(time=slice(0, 372)).values)
