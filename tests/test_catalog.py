"""data_catalog.catalog: entry validation, user catalogs, mirrors, open_dataset on every entry (cloud entries
against local stand-ins served on 127.0.0.1) and the `wxemu catalog` command."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from data_catalog.catalog import load_catalog, open_dataset
from data_catalog.errors import ConfigError, InputDataError
from workflows.cli import main

CLOUD = ["arco-era5", "wb2-era5-1.5deg", "wb2-era5-64x32", "wb2-hres-forecast", "wb2-hres-forecast-0.25deg"]
SAMPLE_ENTRIES = [
    "era5-t2m-uk-2019-03",
    "eraint-uvz-monthly",
    "era5-ensemble-levels",
    "ukmo-monthly-t2m-forecast",
    "ecmwf-uv-forecast",
    "ecmwf-t-analysis",
]
SOURCE_UNITS = {
    "geopotential": "m**2 s**-2",
    "temperature": "K",
    "u_component_of_wind": "m s**-1",
    "v_component_of_wind": "m s**-1",
    "specific_humidity": "kg kg**-1",
    "2m_temperature": "K",
    "10m_u_component_of_wind": "m s**-1",
    "10m_v_component_of_wind": "m s**-1",
    "mean_sea_level_pressure": "Pa",
    "boundary_layer_height": "m",
}
LEVEL_VARS = {"geopotential", "temperature", "u_component_of_wind", "v_component_of_wind", "specific_humidity"}


def test_builtin_entries():
    cat = load_catalog()
    assert set(CLOUD + SAMPLE_ENTRIES) <= set(cat.names())
    assert cat.get("arco-era5").location == "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
    assert cat.get("wb2-era5-64x32").location == (
        "gs://weatherbench2/datasets/era5/1959-2023_01_10-6h-64x32_equiangular_conservative.zarr"
    )
    assert cat.get("wb2-hres-forecast").kind == "forecast"
    for name in SAMPLE_ENTRIES:
        assert cat.get(name).sample and cat.get(name).licence
    assert "Copernicus Climate Change Service" in cat.get("eraint-uvz-monthly").attribution
    with pytest.raises(ConfigError, match="no entry named 'nope'"):
        cat.get("nope")


@pytest.mark.parametrize("name", SAMPLE_ENTRIES)
def test_sample_entries_open_canonical(name):
    kw = {"start": "2019-03-05", "end": "2019-03-05T23"} if name == "era5-t2m-uk-2019-03" else {}
    ds = open_dataset(name, **kw)
    expected = {
        "era5-t2m-uk-2019-03": {"time": 24, "latitude": 33, "longitude": 49},
        "eraint-uvz-monthly": {"time": 2, "level": 3, "latitude": 241, "longitude": 480},
        "era5-ensemble-levels": {"time": 4, "number": 10, "level": 2, "latitude": 61, "longitude": 120},
        "ukmo-monthly-t2m-forecast": {
            "time": 8,
            "prediction_timedelta": 20,
            "number": 28,
            "latitude": 6,
            "longitude": 11,
        },
        "ecmwf-uv-forecast": {"time": 1, "prediction_timedelta": 2, "level": 3, "latitude": 37, "longitude": 72},
        "ecmwf-t-analysis": {"time": 1, "level": 1, "latitude": 37, "longitude": 72},
    }[name]
    assert dict(ds.sizes) == expected
    assert ds.attrs["wxemu_catalog_entry"] == name and ds.attrs["licence"]
    if name == "era5-t2m-uk-2019-03":
        assert "Copernicus" in ds.attrs["attribution"]
    if name == "ecmwf-uv-forecast":  # the entry's default levels are those both u and v have
        assert not bool(ds["v_component_of_wind"].isnull().any())


def _write(path: str, ds: xr.Dataset, zarr_format: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ds.to_zarr(path, zarr_format=zarr_format, consolidated=True, mode="w")


def _standin(entry, rng: np.random.Generator) -> tuple[xr.Dataset, int]:
    """A tiny store in the entry's own layout and names: ARCO (zarr v3, latitude 90..-90, dims time, level,
    latitude, longitude, 37 levels, an extra variable) or WeatherBench2 (zarr v2, latitude ascending, dims
    ... level, longitude, latitude; forecasts add prediction_timedelta)."""
    arco = entry.name == "arco-era5"
    levels = [1, 2, 3, 5, 7] + list(entry.levels) if arco else list(entry.levels)
    lon = np.arange(0.0, 360.0, 45.0)
    lat = np.linspace(90, -90, 7) if arco else np.linspace(-67.5, 67.5, 4)
    times = pd.date_range("2020-01-01", periods=4, freq="1h" if arco else "12h")
    lead = pd.to_timedelta([0, 6, 12], unit="h")
    lead_dims = ["prediction_timedelta"] if entry.kind == "forecast" else []
    space = ["latitude", "longitude"] if arco else ["longitude", "latitude"]
    sizes = {"time": 4, "prediction_timedelta": 3, "level": len(levels), "latitude": len(lat), "longitude": len(lon)}
    data = {}
    for name, units in SOURCE_UNITS.items():
        dims = ["time"] + lead_dims + (["level"] if name in LEVEL_VARS else []) + space
        values = rng.normal(250.0, 10.0, [sizes[d] for d in dims]).astype("float32")
        data[name] = (dims, values, {"units": units, "long_name": name})
    coords = {"time": times, "level": ("level", np.asarray(levels, "int64")), "latitude": lat, "longitude": lon}
    if lead_dims:
        coords["prediction_timedelta"] = lead
    return xr.Dataset(data, coords=coords), 3 if arco else 2


@pytest.fixture(scope="module")
def cloud_mirror(tmp_path_factory):
    """Stand-ins for every cloud entry under one served directory; returns (catalog, {entry: stand-in})."""
    import functools
    import http.server
    import threading

    root = tmp_path_factory.mktemp("cloud")
    cat = load_catalog()
    rng = np.random.default_rng(42)
    standins = {}
    for name in CLOUD:
        entry = cat.get(name)
        ds, fmt = _standin(entry, rng)
        bucket_path = entry.location.split("://", 1)[1]  # bucket/path/to/store.zarr
        _write(str(root / bucket_path), ds, fmt)
        standins[name] = ds

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    user = root / "site.yaml"  # WeatherBench2 via a catalog `mirrors:` section, ARCO via $WXEMU_URL_MAP
    user.write_text(yaml.safe_dump({"mirrors": {"gs://weatherbench2/": base + "weatherbench2/"}}))
    yield str(user), f"gs://gcp-public-data-arco-era5/={base}gcp-public-data-arco-era5/", standins
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("name", CLOUD)
def test_cloud_entries_through_local_mirror(name, cloud_mirror, monkeypatch):
    user_catalog, arco_map, standins = cloud_mirror
    monkeypatch.setenv("WXEMU_URL_MAP", arco_map)
    cat = load_catalog([user_catalog])
    assert cat.location(name).startswith("http://127.0.0.1:")
    src = standins[name]
    ds = open_dataset(name, catalog=cat, start="2020-01-01T01", end="2020-01-01T12")
    forecast = cat.get(name).kind == "forecast"
    assert set(ds.data_vars) == set(cat.get(name).variables)  # the extra variable is not selected
    assert ds["level"].values.tolist() == cat.get(name).levels
    assert (np.diff(ds["latitude"].values) > 0).all()
    lead_dims = ("prediction_timedelta",) if forecast else ()
    assert ds["temperature"].dims == ("time", *lead_dims, "level", "latitude", "longitude")
    assert ds["2m_temperature"].dims == ("time", *lead_dims, "latitude", "longitude")
    assert ds["geopotential"].attrs["units"] == "m2 s-2" and ds["temperature"].dtype == np.float32
    expected_times = src["time"].sel(time=slice("2020-01-01T01", "2020-01-01T12")).values
    assert (ds["time"].values == expected_times).all()
    when = ds["time"].values[0]
    for var, lat_i, lon in [("temperature", 1, 90.0), ("2m_temperature", -1, 315.0), ("geopotential", 0, 0.0)]:
        lat = ds["latitude"].values[lat_i]
        sel = {"time": when, "latitude": lat, "longitude": lon}
        if var in LEVEL_VARS:
            sel["level"] = 850
        if forecast:
            sel["prediction_timedelta"] = np.timedelta64(6, "h")
        assert float(ds[var].sel(sel)) == float(src[var].sel(sel))
    assert ds.attrs["licence"] == cat.get(name).licence


def test_open_dataset_overrides(cloud_mirror, monkeypatch):
    user_catalog, arco_map, _ = cloud_mirror
    monkeypatch.setenv("WXEMU_URL_MAP", arco_map)
    cat = load_catalog([user_catalog])
    ds = open_dataset("arco-era5", catalog=cat, variables=["temperature", "2m_temperature"], levels=[1, 500])
    assert sorted(ds.data_vars) == ["2m_temperature", "temperature"] and ds["level"].values.tolist() == [1, 500]
    surface = open_dataset("arco-era5", catalog=cat, variables=["2m_temperature"])  # the entry's levels do not apply
    assert list(surface.data_vars) == ["2m_temperature"] and "level" not in surface.dims
    with pytest.raises(InputDataError, match=r"variables \['total_precipitation_6hr'\] not found"):
        open_dataset("wb2-era5-64x32", catalog=cat, variables=["total_precipitation_6hr"])


def test_user_catalog_overrides_extends_and_date_templates(tmp_path, monkeypatch):
    days = pd.date_range("2021-06-01", periods=3, freq="D")
    for day in days:
        times = pd.date_range(day, periods=4, freq="6h")
        ds = xr.Dataset(
            {"air": (("time", "level", "lat", "lon"), np.full((4, 2, 3, 4), 280.0 + day.day), {"units": "degK"})},
            coords={
                "time": times,
                "level": ("level", [850.0, 500.0], {"units": "millibar"}),
                "lat": [10.0, 0.0, -10.0],
                "lon": [0.0, 90.0, 180.0, 270.0],
            },
        )
        ds.to_netcdf(tmp_path / f"air.{day:%Y%m%d}.nc")
    user = tmp_path / "user.yaml"
    user.write_text(
        yaml.safe_dump(
            {
                "entries": [
                    {
                        "name": "ncep-daily",
                        "description": "daily files",
                        "kind": "reanalysis",
                        "format": "netcdf",
                        "location": str(tmp_path / "air.{date:%Y%m%d}.nc"),
                        "licence": "test",
                        "time": {"file_frequency": "D"},
                    },
                    {
                        "name": "wb2-era5-64x32",
                        "description": "overridden",
                        "kind": "reanalysis",
                        "format": "zarr",
                        "location": "/elsewhere.zarr",
                        "licence": "test",
                    },
                ]
            }
        )
    )
    monkeypatch.setenv("WXEMU_CATALOG", str(user))
    cat = load_catalog()
    assert cat.get("wb2-era5-64x32").location == "/elsewhere.zarr" and cat.origins["ncep-daily"] == str(user)
    ds = open_dataset("ncep-daily", start="2021-06-01T12", end="2021-06-02T18")
    assert ds.sizes["time"] == 6 and ds["level"].values.tolist() == [500, 850]
    assert float(ds["temperature"].sel(time="2021-06-02T06", level=500, latitude=0.0, longitude=90.0)) == 282.0
    with pytest.raises(InputDataError, match=r"air\.20210604\.nc: no such file"):
        open_dataset("ncep-daily", start="2021-06-03", end="2021-06-04")
    with pytest.raises(ConfigError, match="needs start and end"):
        open_dataset("ncep-daily")


@pytest.mark.parametrize(
    "entry,message",
    [
        ({"kind": "analysis"}, "entry 'bad': field 'kind'"),
        ({"format": "hdf"}, "entry 'bad': field 'format'"),
        ({"colour": "red"}, "entry 'bad': field 'colour': Extra inputs are not permitted"),
        ({"location": None}, "needs a location"),
        ({"sample": "nope.grib", "location": None}, "unknown sample 'nope.grib'"),
        ({"levels": ["high"]}, "field 'levels.0'"),
        ({"time": {"start": "yesterday-ish"}}, "field 'time.start'"),
        ({"licence": None}, "field 'licence'"),
    ],
)
def test_entry_validation_errors(tmp_path, entry, message):
    good = {
        "name": "bad",
        "description": "d",
        "kind": "reanalysis",
        "format": "zarr",
        "location": "/x.zarr",
        "licence": "l",
    }
    doc = {k: v for k, v in {**good, **entry}.items() if v is not None}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as info:
        load_catalog([str(path)])
    assert message in str(info.value) and str(path) in str(info.value)


def test_catalog_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("entries: [\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_catalog([str(bad)])
    with pytest.raises(ConfigError, match="not found"):
        load_catalog([str(tmp_path / "missing.yaml")])
    twice = tmp_path / "twice.yaml"
    entry = {"name": "a", "description": "d", "kind": "static", "format": "zarr", "location": "/x", "licence": "l"}
    twice.write_text(yaml.safe_dump([entry, entry]))
    with pytest.raises(ConfigError, match="entry 'a' is defined twice"):
        load_catalog([str(twice)])
    odd = tmp_path / "odd.yaml"
    odd.write_text(yaml.safe_dump({"entries": [], "colours": {}}))
    with pytest.raises(ConfigError, match="unknown top-level keys"):
        load_catalog([str(odd)])


def test_cli_list_and_show(capsys, tmp_path):
    assert main(["catalog", "list"]) == 0
    out = capsys.readouterr().out
    for name in CLOUD + SAMPLE_ENTRIES:
        assert name in out
    assert "gs://weatherbench2/datasets/hres/2016-2022-0012-64x32_equiangular_conservative.zarr" in out
    assert main(["catalog", "show", "wb2-era5-64x32"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["name"] == "wb2-era5-64x32" and shown["kind"] == "reanalysis" and shown["format"] == "zarr"
    assert shown["levels"][-1] == 1000 and shown["grid"]["shape"] == [32, 64]
    assert main(["catalog", "show", "era5-t2m-uk-2019-03"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["resolved_location"].endswith("era5-2mt-2019-03-uk.grib")
    assert "Copernicus" in shown["attribution"]
    assert main(["catalog", "show", "nope"]) == 2
    assert "wxemu catalog: error: catalog: no entry named 'nope'" in capsys.readouterr().err
    user = tmp_path / "u.yaml"
    user.write_text(
        yaml.safe_dump(
            {
                "name": "mine",
                "description": "d",
                "kind": "static",
                "format": "netcdf",
                "location": "/data/lsm.nc",
                "licence": "l",
            }
        )
    )
    assert main(["catalog", "--catalog", str(user), "list"]) == 0
    assert "mine" in capsys.readouterr().out


def test_ingest_of_a_cloud_zarr_entry_never_lists_the_store(cloud_mirror, monkeypatch, tmp_path):
    """`wxemu ingest arco-era5 ...` through the stand-in: the provenance fingerprint of a remote Zarr store is the
    sha256 of its consolidated metadata; the store is never listed (the real one holds millions of chunks)."""
    import hashlib

    import fsspec.implementations.http as fhttp

    from data_catalog import store
    from data_catalog.ingestion import IngestConfig, ingest

    user_catalog, arco_map, standins = cloud_mirror
    monkeypatch.setenv("WXEMU_URL_MAP", arco_map)

    def no_listing(self, *a, **k):
        raise AssertionError("a remote store was listed")

    monkeypatch.setattr(fhttp.HTTPFileSystem, "find", no_listing)
    monkeypatch.setattr(fhttp.HTTPFileSystem, "_find", no_listing)
    out = tmp_path / "arco.zarr"
    result = ingest(
        IngestConfig(
            sources=("arco-era5",),
            out=str(out),
            variables=("2m_temperature", "temperature"),
            levels=(850,),
        )
    )
    (fp,) = result.sources
    assert fp["path"].startswith("http://127.0.0.1:") and fp["hashed"] == "zarr.json" and fp["bytes"] is None
    root = _mirror_dir(fp["path"], user_catalog)
    assert fp["sha256"] == hashlib.sha256((root / "zarr.json").read_bytes()).hexdigest()
    got = store.open_store(str(out))["2m_temperature"]
    src = standins["arco-era5"]["2m_temperature"]
    assert got.sizes["time"] == 4
    np.testing.assert_array_equal(got.values, src.values[:, ::-1, :])  # latitude ascending in the store


def _mirror_dir(url: str, user_catalog: str):
    """The stand-in directory that serves ``url`` (the mirror root is beside the user catalog)."""
    from pathlib import Path

    return Path(user_catalog).parent / url.split("/", 3)[3]


# ------------------------------------------------------------------------------------------- reliability (issue 22)
def test_catalog_list_shows_markup_as_text(tmp_path, capsys):
    """`[/]` in a location or name of a user entry is printed as is (rich markup would crash on it)."""
    user = tmp_path / "markup.yaml"
    user.write_text(
        yaml.safe_dump(
            {
                "name": "markup-entry",
                "description": "[bold]not bold[/] [/]",
                "kind": "reanalysis",
                "format": "grib",
                "location": "/data/[/]odd[bold]name.grib",
                "licence": "l",
            }
        )
    )
    assert main(["catalog", "--catalog", str(user), "list"]) == 0
    assert "/data/[/]odd[bold]name.grib" in capsys.readouterr().out


def test_mistyped_entry_name_gets_a_suggestion(tmp_path, capsys):
    """A name close to an entry's is no 'no such file': the error names the entry meant."""
    out = tmp_path / "o.zarr"
    assert main(["ingest", "era5-t2m-uk-2019-3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no file and no catalog entry named 'era5-t2m-uk-2019-3'; did you mean 'era5-t2m-uk-2019-03'?" in err
    assert main(["ingest", "--forecast", "ukmo-monthly-t2m-forcast", "--out", str(out)]) == 2
    assert "did you mean 'ukmo-monthly-t2m-forecast'?" in capsys.readouterr().err
    assert main(["catalog", "show", "wb2-era5-64x23"]) == 2
    assert "did you mean 'wb2-era5-64x32'?" in capsys.readouterr().err
    assert not out.exists()


def test_invalid_catalog_file_is_named_not_taken_for_a_missing_file(tmp_path, monkeypatch, capsys):
    """A catalog file failing validation is reported with the file, the entry and the key, by every stage that
    looks names up (today's ingest said 'no such file or store')."""
    bad = tmp_path / "site.yaml"
    bad.write_text(
        yaml.safe_dump(
            {"name": "site-t2m", "description": "d", "kind": "reanalysis", "format": "gribx", "location": "/x.grib"}
        )
    )
    monkeypatch.setenv("WXEMU_CATALOG", str(bad))
    for argv in (["ingest", "site-t2m"], ["ingest", "--forecast", "site-t2m"]):
        assert main([*argv, "--out", str(tmp_path / "o.zarr")]) == 2
        err = capsys.readouterr().err
        assert f"catalog file {bad}: entry 'site-t2m': field 'format'" in err and "field 'licence'" in err
        assert "no such file" not in err
