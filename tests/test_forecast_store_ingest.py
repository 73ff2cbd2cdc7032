"""data_catalog.forecast_ingest / `wxemu ingest --forecast` on the real ECMWF and Met Office GRIB forecasts: store
values against eccodes, store conventions, combining sources, atomic writes, and an end-to-end `wxemu verify`
whose RMSE is checked by hand."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _grib import check_uv_forecast, eccodes_messages

from data_catalog import forecast_ingest as fi
from data_catalog.errors import InputDataError, WxemuError
from data_catalog.forecast_ingest import ingest_forecast, lead_chunk
from data_catalog.readers import open_source
from workflows.cli import main as wxemu


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(directory: Path) -> list[str]:
    return sorted(os.listdir(directory))


def test_ukmo_monthly_ensemble_store(sample, tmp_path):
    path = sample("forecast_monthly_ukmo.grib")
    out = tmp_path / "ukmo.zarr"
    with pytest.raises(InputDataError, match="fields are absent from the source"):
        ingest_forecast([path], str(out))
    assert leftovers(tmp_path) == []
    ds = ingest_forecast([path], str(out), allow_nan=True)
    t2m = ds["2m_temperature"]
    assert t2m.dims == ("time", "prediction_timedelta", "number", "latitude", "longitude")
    assert dict(ds.sizes) == {"time": 8, "prediction_timedelta": 20, "number": 28, "latitude": 6, "longitude": 11}
    assert t2m.dtype == np.float32 and ds["prediction_timedelta"].dtype == np.dtype("timedelta64[ns]")
    # conventions: the analysis stores' codec, zarr v3 consolidated, one chunk = one init x all leads
    meta = json.loads((out / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and "consolidated_metadata" in meta
    arr = json.loads((out / "2m_temperature" / "zarr.json").read_text())
    assert arr["chunk_grid"]["configuration"]["chunk_shape"] == [1, 20, 28, 6, 11]
    assert any(c["name"] == "blosc" and c["configuration"]["cname"] == "lz4" for c in arr["codecs"])
    assert ds.attrs["wxemu_model"] == "ukmo" and ds.attrs["wxemu_kind"] == "forecast"
    assert ds.attrs["wxemu_complete"] is True
    assert ds.attrs["wxemu_sources"] == [{"path": path, "sha256": sha256(path), "bytes": os.path.getsize(path)}]
    assert ds.attrs["wxemu_recipe"]["command"].startswith("wxemu ingest --forecast")
    assert "--allow-nan" in ds.attrs["wxemu_recipe"]["command"]
    # values: every message present at its (init, lead, member), the missing ones NaN
    values = t2m.load()
    messages = eccodes_messages(path)
    assert int(values.notnull().all(["latitude", "longitude"]).sum()) == len(messages) == 168
    assert int(values.isnull().all(["latitude", "longitude"]).sum()) == 8 * 20 * 28 - 168
    for m in messages[::13]:
        got = values.sel(time=m["init"], prediction_timedelta=m["lead"], number=m["number"]).values
        np.testing.assert_allclose(got, m["values"][::-1].astype(np.float32), rtol=0, atol=0)
        assert float(
            values.sel(
                time=m["init"], prediction_timedelta=m["lead"], number=m["number"], latitude=44.0, longitude=17.0
            )
        ) == pytest.approx(m["values"][1, 7], abs=1e-4)
    # what wxemu verify sees
    from pipeline.verification import forecast_name, open_dataset

    opened = open_dataset(str(out), "forecast")
    assert forecast_name(opened, str(out)) == "ukmo"


def test_netcdf_parts_combined_on_time(sample, tmp_path):
    """Initial times split over two NetCDF files (given out of order) give the same store as the GRIB file;
    an initial time in two sources and mismatched grids are refused, naming the file."""
    path = sample("forecast_monthly_ukmo.grib")
    raw = open_source(path).load()
    a, b = tmp_path / "early.nc", tmp_path / "late.nc"
    raw.isel(time=slice(0, 3)).to_netcdf(a)
    raw.isel(time=slice(3, 8)).to_netcdf(b)
    whole = ingest_forecast([path], str(tmp_path / "grib.zarr"), allow_nan=True).load()
    parts = ingest_forecast([str(b), str(a)], str(tmp_path / "nc.zarr"), allow_nan=True).load()
    assert parts["time"].values.tolist() == whole["time"].values.tolist()
    xr.testing.assert_identical(parts["2m_temperature"], whole["2m_temperature"])
    assert parts.attrs["wxemu_model"] == "ukmo"  # cfgrib's centre attribute survives the NetCDF round trip
    assert [s["sha256"] for s in parts.attrs["wxemu_sources"]] == [sha256(str(b)), sha256(str(a))]
    overlap = tmp_path / "overlap.nc"
    raw.isel(time=slice(2, 4)).to_netcdf(overlap)
    shared = pd.Timestamp(raw["time"].values[2])
    with pytest.raises(InputDataError, match=rf"overlap\.nc: initial time {shared} is also in .*early\.nc"):
        ingest_forecast([str(a), str(overlap)], str(tmp_path / "dup.zarr"), allow_nan=True)
    with pytest.raises(InputDataError, match=r"uv_on_different_levels\.grib: variables .* differ"):
        ingest_forecast([str(a), sample("uv_on_different_levels.grib")], str(tmp_path / "mix.zarr"), allow_nan=True)
    with pytest.raises(InputDataError, match=r"coarse\.nc: its latitude axis differs from that of .*early\.nc"):
        coarse = tmp_path / "coarse.nc"
        raw.isel(time=slice(3, 5), latitude=slice(0, 3)).to_netcdf(coarse)
        ingest_forecast([str(a), str(coarse)], str(tmp_path / "grid.zarr"), allow_nan=True)
    assert not any(
        n.endswith(".zarr") and n not in ("grib.zarr", "nc.zarr") or ".tmp-" in n for n in leftovers(tmp_path)
    )


def test_ecmwf_uv_store_with_the_cli(sample, tmp_path, capsys):
    path = sample("uv_on_different_levels.grib")
    out = tmp_path / "uv.zarr"
    assert wxemu(["ingest", "--forecast", path, "--out", str(out), "--levels", "500,700,1000"]) == 0
    assert "forecast store of 'ecmwf': 1 initial times x 2 leads" in capsys.readouterr().out
    ds = xr.open_zarr(out).load()
    assert ds.attrs["wxemu_model"] == "ecmwf" and ds.attrs["wxemu_complete"] is True
    assert ds["u_component_of_wind"].dims == ("time", "prediction_timedelta", "level", "latitude", "longitude")
    assert [pd.Timedelta(v) for v in ds["prediction_timedelta"].values] == [pd.Timedelta("6h"), pd.Timedelta("12h")]
    assert check_uv_forecast(ds, path) == 12
    # one lead, one variable, by the catalog entry; the entry name is the model name
    out2 = tmp_path / "entry.zarr"
    assert (
        wxemu(
            [
                "ingest",
                "--forecast",
                "ecmwf-uv-forecast",
                "--out",
                str(out2),
                "--levels",
                "500",
                "700",
                "1000",
                "--variables",
                "u_component_of_wind",
                "--leads",
                "12h",
            ]
        )
        == 0
    )
    one = xr.open_zarr(out2)
    assert one.attrs["wxemu_model"] == "ecmwf-uv-forecast"
    assert list(one.data_vars) == ["u_component_of_wind"] and one.sizes["prediction_timedelta"] == 1
    assert one.attrs["wxemu_sources"][0]["sha256"] == sha256(path)
    np.testing.assert_array_equal(one["u_component_of_wind"].values[:, 0], ds["u_component_of_wind"].values[:, 1])
    # v is absent on 850 and 400 hPa: refused without --levels, naming the file
    assert wxemu(["ingest", "--forecast", path, "--out", str(tmp_path / "all.zarr")]) == 2
    assert "uv_on_different_levels.grib" in capsys.readouterr().err
    assert wxemu(["ingest", "--forecast", path, "--out", str(tmp_path / "x.zarr"), "--grid", "10"]) == 2
    assert "--grid apply to analysis stores only" in capsys.readouterr().err
    assert sorted(leftovers(tmp_path)) == ["entry.zarr", "uv.zarr"]


def test_verify_end_to_end_rmse_by_hand(sample, tmp_path, capsys):
    """Truth: the t analysis ingested with `wxemu ingest`. Forecasts: the same GRIB message as a step-0 forecast
    (the file holds ONE message, dataType=an, step 0, so RMSE is exactly 0) and a NetCDF forecast = analysis + a
    known field p, whose RMSE/bias/MAE are computed here with docs/conventions.md's area weights."""
    path = sample("t_analysis_and_fc_0.grib")  # its "t" is -0.0004..0.03 (a test field): --allow-implausible
    (m,) = eccodes_messages(path)
    truth, fc, pert, scores = (str(tmp_path / n) for n in ("truth.zarr", "fc.zarr", "pert.zarr", "scores.zarr"))
    assert wxemu(["ingest", "--allow-implausible", path, "--out", truth, "--quiet"]) == 0
    assert wxemu(["ingest", "--allow-implausible", "--forecast", path, "--out", fc]) == 0
    lat = np.arange(-90.0, 90.1, 5.0)  # the stores' order (south to north)
    lon = np.arange(0.0, 360.0, 5.0)
    p = 1.0 + 3.0 * np.sin(np.deg2rad(lat))[:, None] + 0.5 * np.cos(np.deg2rad(lon))[None, :]
    raw = open_source(path).load()
    raw["t"] = raw["t"] + xr.DataArray(p[::-1], dims=("latitude", "longitude"))  # the file is north to south
    raw.to_netcdf(tmp_path / "perturbed.nc")
    assert (
        wxemu(
            [
                "ingest",
                "--allow-implausible",
                "--forecast",
                str(tmp_path / "perturbed.nc"),
                "--out",
                pert,
                "--model-name",
                "perturbed",
            ]
        )
        == 0
    )
    assert (
        wxemu(
            [
                "verify",
                "--forecast",
                fc,
                pert,
                "--truth",
                truth,
                "--out",
                scores,
                "--quiet",
                "--metrics",
                "rmse",
                "bias",
                "mae",
            ]
        )
        == 0
    )
    capsys.readouterr()
    sc = xr.open_zarr(scores)["temperature"].load().sel(region="global", level=1000, prediction_timedelta="0h")
    assert sc["forecast"].values.tolist() == ["ecmwf", "perturbed"]
    assert float(sc.sel(metric="rmse", forecast="ecmwf")) == 0.0
    # conventions: a row weighs sin(upper) - sin(lower), bounds halfway between rows and half a spacing beyond the
    # edge rows, clipped to +-90, normalised to mean 1
    edges = np.clip(np.concatenate([[lat[0] - 2.5], (lat[1:] + lat[:-1]) / 2, [lat[-1] + 2.5]]), -90, 90)
    w = np.diff(np.sin(np.deg2rad(edges)))
    w = w / w.mean()
    t = m["values"][::-1]
    err = (t + p).astype(np.float32).astype(np.float64) - t.astype(np.float32).astype(np.float64)

    def wmean(x: np.ndarray) -> float:
        return float((w[:, None] * x).sum() / (w.sum() * x.shape[1]))

    assert float(sc.sel(metric="rmse", forecast="perturbed")) == pytest.approx(np.sqrt(wmean(err**2)), rel=1e-6)
    assert float(sc.sel(metric="bias", forecast="perturbed")) == pytest.approx(wmean(err), rel=1e-6)
    assert float(sc.sel(metric="mae", forecast="perturbed")) == pytest.approx(wmean(np.abs(err)), rel=1e-6)
    # not the unweighted mean: the weights matter for this p
    assert abs(np.sqrt(wmean(err**2)) - np.sqrt((err**2).mean())) > 0.05


def test_corrupt_grib_leaves_nothing(sample, tmp_path, capsys):
    path = sample("era5-levels-corrupted.grib")
    out = tmp_path / "bad.zarr"
    with pytest.raises(InputDataError, match="era5-levels-corrupted.grib"):
        ingest_forecast([path], str(out))
    assert leftovers(tmp_path) == []
    assert wxemu(["ingest", "--forecast", path, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "wxemu ingest: error:" in err and "era5-levels-corrupted.grib" in err
    assert leftovers(tmp_path) == []


def test_failure_while_writing_leaves_nothing_and_overwrite(sample, tmp_path, monkeypatch, capsys):
    path = sample("t_analysis_and_fc_0.grib")  # "t" of -0.0004..0.03: allow_implausible
    out = tmp_path / "fc.zarr"

    write = fi._write_tmp

    def boom(ds, tmp, *args, **kwargs):  # data on disk under the temporary name, then a failure
        write(ds, tmp, *args, **kwargs)
        assert os.path.exists(tmp) and Path(tmp).parent == tmp_path and Path(tmp).name.startswith(".fc.zarr.tmp-")
        raise RuntimeError("disk full")

    with monkeypatch.context() as mp:
        mp.setattr(fi, "_write_tmp", boom)
        with pytest.raises(RuntimeError, match="disk full"):
            ingest_forecast([path], str(out), allow_implausible=True)
    assert leftovers(tmp_path) == []
    ingest_forecast([path], str(out), allow_implausible=True)
    with pytest.raises(WxemuError, match=r"fc\.zarr: exists; pass --overwrite"):
        ingest_forecast([path], str(out), model_name="other", allow_implausible=True)
    assert wxemu(["ingest", "--allow-implausible", "--forecast", path, "--out", str(out), "--model-name", "other"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert xr.open_zarr(out).attrs["wxemu_model"] == "ecmwf"
    # a failed overwrite keeps the old store
    with monkeypatch.context() as mp:
        mp.setattr(fi, "_write_tmp", boom)
        with pytest.raises(RuntimeError):
            ingest_forecast([path], str(out), model_name="other", overwrite=True, allow_implausible=True)
    assert leftovers(tmp_path) == ["fc.zarr"] and xr.open_zarr(out).attrs["wxemu_model"] == "ecmwf"
    assert (
        wxemu(
            [
                "ingest",
                "--allow-implausible",
                "--forecast",
                path,
                "--out",
                str(out),
                "--model-name",
                "other",
                "--overwrite",
            ]
        )
        == 0
    )
    assert xr.open_zarr(out).attrs["wxemu_model"] == "other" and leftovers(tmp_path) == ["fc.zarr"]


def test_fsspec_memory_output(sample):
    path = sample("uv_on_different_levels.grib")
    out = "memory://fc-ingest-test/uv.zarr"
    ds = ingest_forecast([path], out, levels=[500], variables=["v"], lead_times=["6h"], grib_filter={"shortName": "v"})
    assert ds.attrs["wxemu_complete"] is True and ds.attrs["wxemu_recipe"]["grib_filter"] == {"shortName": "v"}
    v = ds["v_component_of_wind"].values
    (m,) = [
        m for m in eccodes_messages(path) if (m["shortName"], m["level"], m["lead"]) == ("v", 500, pd.Timedelta("6h"))
    ]
    np.testing.assert_allclose(v[0, 0, 0], m["values"][::-1], atol=1e-5)
    import fsspec

    fs = fsspec.filesystem("memory")
    assert [p.rsplit("/", 1)[-1] for p in fs.ls("/fc-ingest-test", detail=False)] == ["uv.zarr"]
    fs.rm("/fc-ingest-test", recursive=True)


def test_lead_chunk_rule():
    """All leads in one chunk while it stays under 64 MB; fine grids get fewer leads per chunk (>= 1)."""

    def fc(nlat: int, nlon: int, nlev: int, nlead: int) -> xr.Dataset:
        shape = (2, nlead, nlev, nlat, nlon)
        return xr.Dataset(
            {
                "t": (
                    ("time", "prediction_timedelta", "level", "latitude", "longitude"),
                    da.zeros(shape, dtype="float32", chunks=shape),
                )
            }
        )

    assert lead_chunk(fc(32, 64, 13, 41)) == 41  # WeatherBench2 HRES 64 x 32: 4.4 MB per init
    assert lead_chunk(fc(121, 240, 13, 41)) == 41  # 1.5 deg: 61.9 MB per init, just under the cap
    assert lead_chunk(fc(121, 240, 13, 41), chunk_mb=16) == 10
    assert lead_chunk(fc(721, 1440, 13, 41)) == 1  # 0.25 deg: 54 MB per lead
    assert lead_chunk(fc(721, 1440, 1, 41)) == 15  # 4.15 MB per lead -> 15 leads in 62 MB


def test_wb2_hres_catalog_entry_over_http(tmp_path, http_server, monkeypatch):
    """The `wb2-hres-forecast` catalog entry (gs://weatherbench2/...) read from a stand-in served over HTTP on
    127.0.0.1 ($WXEMU_URL_MAP): WeatherBench2's own layout (longitude before latitude, Zarr v2) is mapped onto the
    store's, the entry name is the model name and the remote store is fingerprinted by its root metadata."""
    init = pd.date_range("2020-01-01", periods=3, freq="12h")
    lead = pd.to_timedelta([0, 6, 12], unit="h")
    lon = np.arange(64) * 5.625
    lat = -87.1875 + np.arange(32) * 5.625
    data = np.random.default_rng(0).normal(250, 10, (3, 3, 2, 64, 32)).astype(np.float32)
    src = xr.Dataset(
        {"temperature": (("time", "prediction_timedelta", "level", "longitude", "latitude"), data, {"units": "K"})},
        coords={"time": init, "prediction_timedelta": lead, "level": [500, 850], "longitude": lon, "latitude": lat},
    )
    rel = "datasets/hres/2016-2022-0012-64x32_equiangular_conservative.zarr"
    src.to_zarr(tmp_path / "mirror" / rel, zarr_format=2, consolidated=True)
    monkeypatch.setenv("WXEMU_URL_MAP", f"gs://weatherbench2/={http_server(str(tmp_path / 'mirror'))}")
    out = tmp_path / "hres.zarr"
    ds = ingest_forecast(
        ["wb2-hres-forecast"],
        str(out),
        variables=["temperature"],
        levels=[850],
        start="2020-01-01T12",
        end="2020-01-02T00",
        lead_times=["6h", "12h"],
    ).load()
    assert ds.attrs["wxemu_model"] == "wb2-hres-forecast" and ds.attrs["wxemu_catalog_entry"] == "wb2-hres-forecast"
    assert ds["temperature"].dims == ("time", "prediction_timedelta", "level", "latitude", "longitude")
    assert dict(ds.sizes) == {"time": 2, "prediction_timedelta": 2, "level": 1, "latitude": 32, "longitude": 64}
    np.testing.assert_array_equal(ds["temperature"].values[:, :, 0], data[1:, 1:, 1].transpose(0, 1, 3, 2))
    (fp,) = ds.attrs["wxemu_sources"]
    assert fp["catalog_entry"] == "wb2-hres-forecast" and fp["path"].startswith("http://127.0.0.1:")
    assert fp["hashed"] == ".zmetadata" and fp["bytes"] is None
    assert fp["sha256"] == hashlib.sha256((tmp_path / "mirror" / rel / ".zmetadata").read_bytes()).hexdigest()

    # the same entry cut to a box across the prime meridian (`--region europe`, 35..75N, 12.5W..42.5E)
    eu_out = str(tmp_path / "eu.zarr")
    eu = ingest_forecast(["wb2-hres-forecast"], eu_out, variables=["temperature"], levels=[850], region="europe")
    cols = np.r_[np.arange(62, 64), np.arange(0, 8)]  # 348.75, 354.375, then 0 .. 39.375
    rows = np.flatnonzero((lat >= 35) & (lat <= 75))
    np.testing.assert_allclose(eu["longitude"].values, lon[62] + 5.625 * np.arange(10))  # 348.75 .. 399.375
    np.testing.assert_allclose(eu["latitude"].values, lat[rows])
    want = data[:, :, 1:, cols][:, :, :, :, rows].transpose(0, 1, 2, 4, 3)
    np.testing.assert_array_equal(eu["temperature"].values, want)
    assert eu.attrs["wxemu_recipe"]["region"] == "europe"


def test_crash_before_marking_complete_leaves_a_refused_store(sample, tmp_path, monkeypatch):
    """A crash after the rename but before ``wxemu_complete`` is set: the store is there but every reader
    (``open_store``, so ``wxemu verify``) refuses it; re-running with overwrite repairs it."""
    from data_catalog import store as st
    from data_catalog.errors import IncompleteStoreError
    from pipeline.verification import open_dataset

    path = sample("t_analysis_and_fc_0.grib")  # "t" of -0.0004..0.03: allow_implausible
    out = str(tmp_path / "fc.zarr")

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as mp:
        mp.setattr(st, "mark_complete", killed)
        with pytest.raises(KeyboardInterrupt):
            ingest_forecast([path], out, allow_implausible=True)
    assert leftovers(tmp_path) == ["fc.zarr"] and st.root_attrs(out)["wxemu_complete"] is False
    with pytest.raises(IncompleteStoreError, match="fc.zarr: store is incomplete"):
        open_dataset(out, "forecast")
    with pytest.raises(WxemuError, match="exists; pass --overwrite"):
        ingest_forecast([path], out, allow_implausible=True)
    assert ingest_forecast([path], out, overwrite=True, allow_implausible=True).attrs["wxemu_complete"] is True
    assert float(
        open_dataset(out, "forecast")["temperature"].sel(latitude=0.0, longitude=0.0).squeeze()
    ) == pytest.approx(eccodes_messages(path)[0]["values"][18, 0], abs=1e-4)
