"""End-to-end tests of `wxemu verify` on real ERA5 data (UK, March 2019) and the Met Office ensemble sample.

Truth = the ERA5 2 m temperature store; forecasts = persistence and damped persistence in WeatherBench2 layout.
Every score is checked against independent implementations (`scores`, `xskillscore`, plain numpy); also the
regridding of another grid, the CLI, bad inputs and the blocks of inits. WeatherBench2's own layouts, the export,
distributed runs and the refusals on synthetic stores: test_verify_wb2.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data_catalog.errors import WxemuError
from pipeline.verification import VerifyConfig, open_scores, verify

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
REPO = Path(__file__).resolve().parents[1]


def sample(name: str) -> Path:
    try:
        from data_catalog.samples import sample_path

        return Path(sample_path(name))
    except Exception:  # noqa: BLE001 - module not there yet
        return DATA / name


def brute_force_weights(lat: np.ndarray) -> np.ndarray:
    """Band areas by numerical integration of cos(latitude) between half-way bounds (independent of weights.py)."""
    from scipy.integrate import quad

    lat = np.sort(np.asarray(lat, float))
    out = []
    for i, phi in enumerate(lat):
        lo = (lat[i - 1] + phi) / 2 if i > 0 else phi - (lat[1] - lat[0]) / 2
        hi = (lat[i + 1] + phi) / 2 if i < len(lat) - 1 else phi + (lat[-1] - lat[-2]) / 2
        lo, hi = max(lo, -90), min(hi, 90)
        out.append(quad(lambda x: np.cos(np.deg2rad(x)), lo, hi)[0])
    return np.array(out)


def load_era5_uk() -> xr.Dataset:
    ds = xr.open_dataset(sample("era5-2mt-2019-03-uk.grib"), engine="cfgrib", backend_kwargs={"indexpath": ""})
    ds = ds.rename({"t2m": "2m_temperature"})[["2m_temperature"]].drop_vars(
        ["number", "step", "surface", "valid_time"], errors="ignore"
    )
    ds = ds.sortby("latitude")
    ds = ds.assign_coords(longitude=(ds.longitude.values % 360.0))
    ds = ds.assign_coords(longitude=np.where(ds.longitude.values < 180, ds.longitude.values + 360, ds.longitude.values))
    ds = ds.sortby("longitude")  # 350 .. 362 (wxemu convention for a grid crossing 0E)
    ds["2m_temperature"].attrs = {"units": "K", "long_name": "2 metre temperature"}
    return ds.load()


def climatology_of(truth: xr.Dataset) -> xr.Dataset:
    """Hour-of-day mean of the month, copied onto every day of year (WB2 climatology layout)."""
    by_hour = truth.groupby("time.hour").mean("time")
    clim = by_hour.expand_dims(dayofyear=np.arange(1, 367)).transpose("dayofyear", "hour", ...)
    return clim.astype(np.float32)


def persistence(
    truth: xr.Dataset,
    inits: pd.DatetimeIndex,
    leads: pd.TimedeltaIndex,
    damp: float | None = None,
    clim: xr.Dataset | None = None,
) -> xr.Dataset:
    f0 = truth.sel(time=inits)
    if damp is not None:
        c = clim.sel(
            dayofyear=xr.DataArray(np.asarray(inits.dayofyear), dims="time"),
            hour=xr.DataArray(np.asarray(inits.hour), dims="time"),
        ).drop_vars(["dayofyear", "hour"])
        f0 = damp * f0 + (1 - damp) * c.assign_coords(time=inits)
    fc = f0.expand_dims(prediction_timedelta=leads).transpose("time", "prediction_timedelta", ...)
    fc = fc.astype(np.float32)
    fc["2m_temperature"].attrs = {"units": "K"}
    return fc


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("verify")
    truth = load_era5_uk()
    clim = climatology_of(truth)
    truth_path = tmp / "era5.zarr"
    truth.attrs = {"wxemu_complete": True}
    truth.to_zarr(truth_path, mode="w", zarr_format=3, consolidated=True)
    clim.to_zarr(truth_path, group="climatology", mode="a", zarr_format=3, consolidated=True)
    inits = pd.date_range("2019-03-01", "2019-03-25T12", freq="12h")
    leads = pd.to_timedelta(np.arange(0, 73, 6), "h")
    pers = persistence(truth, inits, leads)
    pers.attrs = {"wxemu_model": "persistence"}
    damped = persistence(truth, inits, leads, damp=0.7, clim=clim)
    damped.attrs = {"model": "damped"}
    paths = {"truth": truth_path, "persistence": tmp / "pers.zarr", "damped": tmp / "damped.zarr"}
    pers.to_zarr(paths["persistence"], mode="w", zarr_format=3)
    damped.to_zarr(paths["damped"], mode="w", zarr_format=3)
    return {"paths": paths, "truth": truth, "clim": clim, "pers": pers, "damped": damped, "tmp": tmp}


def test_verify_deterministic_matches_scores_and_xskillscore(stores):
    import scores.continuous as sc
    import xskillscore as xs

    p = stores["paths"]
    out = stores["tmp"] / "scores.zarr"
    result = verify(
        VerifyConfig(
            forecasts=[str(p["persistence"]), str(p["damped"])],
            truth=str(p["truth"]),
            out=str(out),
            regions=["global", "uk", "52,56,354,360"],
            overwrite=True,
        )
    )
    res, per_init = result.scores, result.per_init
    assert result.path == str(out)
    assert res["2m_temperature"].dims == ("metric", "forecast", "region", "prediction_timedelta")
    assert list(res.forecast.values) == ["persistence", "damped"]
    assert list(res.metric.values) == ["rmse", "mae", "bias", "acc"]
    on_disk, pi_disk = open_scores(str(out))
    assert pi_disk["2m_temperature"].sizes["time"] == 50
    xr.testing.assert_allclose(on_disk["2m_temperature"], res["2m_temperature"])
    assert on_disk.attrs["wxemu_complete"] is True and "truth" in on_disk.attrs

    truth, fc = stores["truth"]["2m_temperature"], stores["damped"]["2m_temperature"]
    valid = fc.time + fc.prediction_timedelta
    tv = truth.sel(time=valid)
    w = xr.DataArray(
        brute_force_weights(truth.latitude.values), dims="latitude", coords={"latitude": truth.latitude}
    ) * xr.ones_like(truth.longitude, dtype=float)
    mse = sc.mse(fc, tv, reduce_dims=["latitude", "longitude"], weights=w)
    rmse_ref = np.sqrt(mse.mean("time"))
    mae_ref = sc.mae(fc, tv, reduce_dims=["latitude", "longitude"], weights=w).mean("time")
    bias_ref = sc.additive_bias(fc, tv, reduce_dims=["latitude", "longitude"], weights=w).mean("time")
    got = res["2m_temperature"].sel(forecast="damped", region="global")
    np.testing.assert_allclose(got.sel(metric="rmse"), rmse_ref, rtol=2e-5)
    np.testing.assert_allclose(got.sel(metric="mae"), mae_ref, rtol=2e-5)
    np.testing.assert_allclose(got.sel(metric="bias"), bias_ref, rtol=1e-4, atol=1e-5)
    # xskillscore: per-init weighted RMSE, squared, averaged, square root
    xs_rmse = xs.rmse(fc, tv, dim=["latitude", "longitude"], weights=w)
    np.testing.assert_allclose(got.sel(metric="rmse"), np.sqrt((xs_rmse**2).mean("time")), rtol=2e-5)
    # per-init MSE kept for scorecards
    np.testing.assert_allclose(
        per_init["2m_temperature"].sel(metric="rmse", forecast="damped", region="global").transpose("time", ...),
        mse.transpose("time", ...),
        rtol=2e-5,
    )
    # ACC (WB2: uncentred, per init then averaged), in plain numpy
    c = stores["clim"]["2m_temperature"].sel(dayofyear=valid.dt.dayofyear, hour=valid.dt.hour)
    fa, ta = (fc - c).values, (tv - c).values
    wv = w.values[None, None]
    acc = (fa * ta * wv).sum((-2, -1)) / np.sqrt((fa**2 * wv).sum((-2, -1)) * (ta**2 * wv).sum((-2, -1)))
    np.testing.assert_allclose(got.sel(metric="acc"), acc.mean(0), rtol=2e-5, atol=2e-6)
    # box region 52..56N, 354..360E on the 350..362 grid: mask by hand
    box = (truth.latitude >= 52) & (truth.latitude <= 56) & (truth.longitude >= 354) & (truth.longitude <= 360)
    mse_box = sc.mse(fc, tv, reduce_dims=["latitude", "longitude"], weights=w.where(box, 0))
    np.testing.assert_allclose(
        res["2m_temperature"].sel(forecast="damped", region="52,56,354,360", metric="rmse"),
        np.sqrt(mse_box.mean("time")),
        rtol=2e-5,
    )
    # persistence at lead 0 is perfect
    assert float(res["2m_temperature"].sel(forecast="persistence", metric="rmse", region="global")[0]) == 0.0
    # spectra on this regional grid: radially binned; persistence at lead 0 has the truth's spectrum
    sp = result.spectra["2m_temperature"]
    assert sp.attrs["spectrum"] == "radially binned 2-D" and list(sp.forecast.values) == [
        "persistence",
        "damped",
        "truth",
    ]
    assert (np.diff(sp.wavelength_km.values) < 0).all()
    np.testing.assert_allclose(sp.sel(forecast="persistence")[0], sp.sel(forecast="truth")[0], rtol=1e-12)
    assert not np.allclose(sp.sel(forecast="damped")[0], sp.sel(forecast="truth")[0], rtol=1e-3)


def test_verify_regrids_other_grid_and_records_it(stores, tmp_path):
    """A field linear in latitude/longitude survives bilinear regridding exactly, across longitude conventions."""
    truth = stores["truth"].isel(time=slice(0, 12))
    lat, lon = truth.latitude, truth.longitude

    def linear(lat, lon, offset=0.0):
        lon180 = ((lon + 180) % 360) - 180  # -10 .. 2: linear across 0E
        return (280.0 + 0.3 * lat + 0.2 * lon180 + offset).astype(np.float32)

    field = linear(lat, lon).broadcast_like(truth["2m_temperature"]).transpose("time", ...)
    tstore = truth.copy(data={"2m_temperature": field.values})
    tstore.attrs = {}
    tstore.to_zarr(tmp_path / "truth.zarr", zarr_format=3)
    # forecast on a coarser grid written with longitudes -10 .. 2 (the other convention), latitude descending
    clat = lat.values[::2][::-1]
    clon = ((lon.values[::2] + 180) % 360) - 180
    inits = truth.time.values[:6]
    leads = pd.to_timedelta([0, 3, 6], "h")
    vals = linear(xr.DataArray(clat, dims="latitude"), xr.DataArray(clon, dims="longitude"), offset=1.0)
    fc = vals.expand_dims(time=inits, prediction_timedelta=leads).assign_coords(latitude=clat, longitude=clon)
    fc = fc.to_dataset(name="2m_temperature")
    fc["2m_temperature"].attrs = {"units": "K"}
    fc.to_zarr(tmp_path / "coarse.zarr", zarr_format=3)
    res = verify(
        VerifyConfig(
            forecasts=[str(tmp_path / "coarse.zarr")], truth=str(tmp_path / "truth.zarr"), metrics=["bias", "rmse"]
        )
    ).scores
    assert "bilinear" in res.attrs["regridding"] and "coarse" in res.attrs["regridding"]
    np.testing.assert_allclose(res["2m_temperature"].sel(metric="bias"), 1.0, atol=1e-4)
    np.testing.assert_allclose(res["2m_temperature"].sel(metric="rmse"), 1.0, atol=1e-4)


def test_verify_ensemble_crps_spread_against_scores(tmp_path):
    import scores.probability as sp

    ds = xr.open_dataset(sample("forecast_monthly_ukmo.grib"), engine="cfgrib", backend_kwargs={"indexpath": ""})
    raw = ds["t2m"].sortby("latitude").transpose("time", "step", "latitude", "longitude", "number").values
    # the sample is a sparse hypercube: each (init, step) has 7 of the 28 members, most (init, step) none
    present = ~np.isnan(raw).any(axis=(2, 3))  # (time, step, number)
    n_mem = int(present.sum(-1).max())
    dense = np.full(raw.shape[:-1] + (n_mem,), np.nan, np.float32)
    for i, k in zip(*np.nonzero(present.any(-1))):
        dense[i, k] = raw[i, k][..., present[i, k]]
    ds = ds.sortby("latitude")
    fc = xr.DataArray(
        dense,
        dims=("time", "prediction_timedelta", "latitude", "longitude", "number"),
        coords={
            "time": ds.time.values,
            "prediction_timedelta": ds.step.values,
            "latitude": ds.latitude.values,
            "longitude": ds.longitude.values,
            "number": np.arange(n_mem),
        },
        attrs={"units": "K"},
    )
    valid = (fc.time + fc.prediction_timedelta).values.ravel()
    uniq, first = np.unique(valid, return_index=True)
    member0 = fc.isel(number=0).values.reshape(-1, fc.sizes["latitude"], fc.sizes["longitude"])
    member0 = np.where(np.isnan(member0), 275.0, member0)
    truth = xr.Dataset(
        {"t2m": (("time", "latitude", "longitude"), member0[first] + 0.5)},
        coords={"time": uniq, "latitude": fc.latitude, "longitude": fc.longitude},
    )
    truth["t2m"].attrs = {"units": "K"}
    truth.astype(np.float32).to_zarr(tmp_path / "truth.zarr", zarr_format=3)
    fc.to_dataset(name="t2m").to_zarr(tmp_path / "ukmo.zarr", zarr_format=3)
    res = verify(
        VerifyConfig(
            forecasts=[str(tmp_path / "ukmo.zarr")],
            truth=str(tmp_path / "truth.zarr"),
            metrics=["crps", "spread", "ens_mean_rmse", "spread_skill"],
            block_mb=0.5,
        )
    ).scores
    got = res["t2m"].sel(forecast="ukmo", region="global")
    tv = truth["t2m"].astype(np.float32).sel(time=fc.time + fc.prediction_timedelta)
    w = xr.DataArray(brute_force_weights(fc.latitude.values), dims="latitude", coords={"latitude": fc.latitude})
    w = w * xr.ones_like(fc.longitude, dtype=float)
    scored = np.isfinite(fc).all(("number", "latitude", "longitude"))  # (init, lead) pairs with a forecast
    assert int(scored.sum()) == 24 and not got.isnull().any()
    crps = sp.crps_for_ensemble(fc, tv, "number", method="fair", reduce_dims=["latitude", "longitude"], weights=w)
    np.testing.assert_allclose(got.sel(metric="crps"), crps.where(scored).mean("time"), rtol=3e-5)
    var = fc.var("number", ddof=1).weighted(w).mean(["latitude", "longitude"]).where(scored).mean("time")
    np.testing.assert_allclose(got.sel(metric="spread"), np.sqrt(var), rtol=3e-5)
    ens_mse = ((fc.mean("number") - tv) ** 2).weighted(w).mean(["latitude", "longitude"]).where(scored).mean("time")
    np.testing.assert_allclose(got.sel(metric="ens_mean_rmse"), np.sqrt(ens_mse), rtol=3e-5)
    np.testing.assert_allclose(got.sel(metric="spread_skill"), np.sqrt(var / ens_mse), rtol=3e-5)
    # WeatherBench2's probabilistic results: its names, ensemble_variance = spread ** 2
    from pipeline.verification import wb2_results

    prob = wb2_results(res, "ukmo", "probabilistic")["t2m"]
    assert list(prob.metric.values) == ["crps", "ensemble_mean_rmse", "ensemble_mean_mse", "ensemble_variance"]
    np.testing.assert_allclose(prob.sel(metric="ensemble_variance", region="global"), var, rtol=6e-5)
    assert not wb2_results(res, "ukmo", "deterministic").data_vars


def test_verify_cli_scorecard_and_errors(stores, tmp_path):
    p = stores["paths"]
    out = tmp_path / "s.zarr"
    cmd = [
        sys.executable,
        "-m",
        "workflows.cli",
        "verify",
        "--forecast",
        str(p["damped"]),
        str(p["persistence"]),
        "--truth",
        str(p["truth"]),
        "--out",
        str(out),
        "--reference",
        "persistence",
        "--leads",
        "24h",
        "48h",
        "--regions",
        "global",
        "uk",
        "--quiet",
    ]
    r = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "damped vs persistence" in r.stdout and "24h" in r.stdout
    assert out.exists()
    # region outside the domain: clear error, no store left behind
    bad = tmp_path / "bad.zarr"
    r = subprocess.run(
        cmd[:10] + [str(bad), "--regions", "tropics", "--quiet"],
        check=False,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 2
    assert "region 'tropics'" in r.stderr and "does not overlap the grid" in r.stderr and "350..362E" in r.stderr
    assert not bad.exists() and not list(tmp_path.glob(".bad.zarr*"))


def test_verify_bad_inputs_name_the_files(stores, tmp_path):
    p = stores["paths"]
    truth = str(p["truth"])
    # no overlapping valid times
    late = stores["pers"].assign_coords(time=stores["pers"].time + np.timedelta64(400, "D"))
    late.to_zarr(tmp_path / "late.zarr", zarr_format=3)
    with pytest.raises(WxemuError, match="no valid time in common.*late.zarr|late.zarr.*no valid time in common"):
        verify(VerifyConfig(forecasts=[str(tmp_path / "late.zarr")], truth=truth, out=str(tmp_path / "o.zarr")))
    # unit mismatch
    degc = stores["pers"] - 273.15
    degc["2m_temperature"].attrs = {"units": "degC"}
    degc.to_zarr(tmp_path / "degc.zarr", zarr_format=3)
    with pytest.raises(WxemuError, match=r"units differ.*degc.zarr.*'degC'.*'K'"):
        verify(VerifyConfig(forecasts=[str(tmp_path / "degc.zarr")], truth=truth, out=str(tmp_path / "o.zarr")))
    # variable missing from the truth
    extra = stores["pers"].rename({"2m_temperature": "10m_u_component_of_wind"})
    extra.to_zarr(tmp_path / "u10.zarr", zarr_format=3)
    with pytest.raises(WxemuError, match="share no variable"):
        verify(VerifyConfig(forecasts=[str(tmp_path / "u10.zarr")], truth=truth, out=str(tmp_path / "o.zarr")))
    with pytest.raises(WxemuError, match=r"truth .*era5.zarr: variable\(s\) \['10m_u_component_of_wind'\]"):
        verify(
            VerifyConfig(
                forecasts=[str(tmp_path / "u10.zarr")],
                truth=truth,
                out=str(tmp_path / "o.zarr"),
                variables=["10m_u_component_of_wind"],
            )
        )
    # an incomplete wxemu truth store is refused
    inc = stores["truth"].isel(time=slice(0, 10)).assign_attrs(wxemu_complete=False)
    inc.to_zarr(tmp_path / "inc.zarr", zarr_format=3, consolidated=True)
    with pytest.raises(WxemuError, match="incomplete"):
        verify(VerifyConfig(forecasts=[str(p["persistence"])], truth=str(tmp_path / "inc.zarr")))
    # a forecast grid that does not cover the truth grid
    far = stores["pers"].assign_coords(latitude=stores["pers"].latitude - 40)
    far.to_zarr(tmp_path / "far.zarr", zarr_format=3)
    with pytest.raises(WxemuError, match="far.zarr.*does not cover the grid of the truth"):
        verify(VerifyConfig(forecasts=[str(tmp_path / "far.zarr")], truth=truth, out=str(tmp_path / "o.zarr")))
    assert not (tmp_path / "o.zarr").exists()


def test_plan_blocks_fit_the_budget_and_prefetch_only_when_two_fit():
    from pipeline.verification import plan_blocks

    n_init, n_lead = 20, 10
    index = np.arange(n_init)[:, None] + np.arange(1, n_lead + 1)[None]  # 12-hourly inits and leads
    index[3, 4] = -1  # a valid time the truth lacks
    clim = np.arange(index.max() + 1) % 4  # 4 distinct climatology fields (doy, hour)

    def cost(t0, t1):
        rows = np.unique(index[t0:t1][index[t0:t1] >= 0])
        return (t1 - t0) * 100 + (rows.size + np.unique(clim[rows]).size) * 10

    plan = plan_blocks(index, clim, 100, 10, 50, budget=2000)
    assert plan.prefetch
    assert plan.blocks[0][0] == 0 and plan.blocks[-1][1] == n_init
    assert all(a[1] == b[0] for a, b in zip(plan.blocks, plan.blocks[1:]))
    assert all(2 * cost(*b) + 50 <= 2000 for b in plan.blocks)
    # 7 inits: 700 + 16 rows * 10 + 4 fields * 10 = 900 <= (2000 - 50) / 2; 8 would need 1010
    assert plan.blocks[0] == (0, 7)
    assert plan.peak_bytes <= 2000
    # two one-init blocks (2 * 240 + 50) do not fit 400: no prefetch, the whole budget for one block
    plan = plan_blocks(index, clim, 100, 10, 50, budget=400)
    assert not plan.prefetch and all(cost(*b) + 50 <= 400 for b in plan.blocks)
    # not even one init fits: one init per block, still everything scored
    plan = plan_blocks(index, None, 100, 10, 50, budget=10)
    assert plan.blocks == [(i, i + 1) for i in range(n_init)] and not plan.prefetch


def test_verify_scores_do_not_depend_on_blocks_or_chunks(stores, tmp_path):
    """Blocks of a few inits cutting across the forecast's Zarr time chunks give the scores of one block holding
    everything; the blocks read stay within the budget and cover every init once."""
    p = stores["paths"]
    damped = stores["damped"].chunk({"time": 3})
    path = tmp_path / "damped_chunked.zarr"
    damped.to_zarr(path, mode="w", zarr_format=3)
    whole = verify(VerifyConfig(forecasts=[str(path)], truth=str(p["truth"]), block_mb=1024))
    per_init_bytes = damped["2m_temperature"].isel(time=0).nbytes
    budget_mb = 5.5 * per_init_bytes / 2**20  # ~ 2-4 inits with truth rows and climatology fields
    small = verify(VerifyConfig(forecasts=[str(path)], truth=str(p["truth"]), block_mb=budget_mb))
    assert whole.blocks[("damped", "2m_temperature")] == [(0, damped.sizes["time"])]
    blocks = small.blocks[("damped", "2m_temperature")]
    sizes = [(b - a) * per_init_bytes for a, b in blocks]
    assert len(blocks) > 10 and max(sizes) <= budget_mb * 2**20 and max(sizes) < 5 * per_init_bytes
    assert blocks[0][0] == 0 and blocks[-1][1] == damped.sizes["time"]
    assert all(a[1] == b[0] for a, b in zip(blocks, blocks[1:]))  # every init read exactly once
    xr.testing.assert_allclose(whole.scores, small.scores, rtol=1e-6)
    xr.testing.assert_allclose(whole.per_init, small.per_init, rtol=1e-6)
