"""Metric kernels: hand-checkable cases, the fast numpy form against the xarray reference form, and both
against the `scores` and `xskillscore` packages on real data (ERA5 UK 2 m temperature, Met Office ensemble)."""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from data_catalog.regions import NAMED_REGIONS, parse_region
from pipeline import metrics as M
from pipeline.weights import latitude_weights

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def sample(name):
    try:
        from data_catalog.samples import sample_path

        return sample_path(name)
    except Exception:  # noqa: BLE001
        return str(DATA / name)


def fast(metric, f, t, w, member_axis=None, clim=None):
    """Per-init and time-reduced scores through the numpy kernel; f/t shape (time, npoints[, ...])."""
    stats = {
        n: M.spatial_means(a, w)
        for n, a in M.pointwise_statistics(
            f, t, M.required_statistics([metric]), member_axis=member_axis, climatology=clim
        )
    }
    return metric.per_init(stats), metric.reduce_time(stats, axis=0)


def test_hand_checkable_deterministic():
    # two init times, 4 points, equal weights: errors [1, -1, 3, -3] and [2, 2, 2, 2]
    t = np.zeros((2, 4), np.float32)
    f = np.array([[1, -1, 3, -3], [2, 2, 2, 2]], np.float32)
    w = np.full((4, 1), 0.25, np.float32)
    per, score = fast(M.RMSE(), f, t, w)
    np.testing.assert_allclose(per[:, 0], [5.0, 4.0])
    assert score[0] == pytest.approx(np.sqrt(4.5))  # sqrt of the mean MSE, not the mean of RMSEs
    per, score = fast(M.RMSESqrtBeforeTimeAvg(), f, t, w)  # WB2's rmse_sqrt_before_time_avg: the mean of RMSEs
    np.testing.assert_allclose(per[:, 0], [np.sqrt(5.0), 2.0], rtol=1e-6)
    assert score[0] == pytest.approx((np.sqrt(5.0) + 2.0) / 2)
    assert fast(M.MAE(), f, t, w)[1][0] == pytest.approx(2.0)
    assert fast(M.Bias(), f, t, w)[1][0] == pytest.approx(1.0)
    # ACC: anomalies (f - c)(t - c) with c = 0 and truth = f * 2 -> perfectly correlated
    acc = fast(M.ACC(), f, 2 * f, w, clim=np.zeros_like(f))[1][0]
    assert acc == pytest.approx(1.0)
    anti = fast(M.ACC(), f, -f, w, clim=np.zeros_like(f))[1][0]
    assert anti == pytest.approx(-1.0)


def test_hand_checkable_ensemble():
    # one point, members [0, 1, 3], truth 1: E|X-Y| = (1+0+2)/3; fair E|X-X'| = 2*(1+3+2)/(3*2) = 2
    f = np.array([[[0.0], [1.0], [3.0]]], np.float32)  # (time, member, point)
    t = np.array([[1.0]], np.float32)
    w = np.ones((1, 1), np.float32)
    stats = {
        n: M.spatial_means(a, w)
        for n, a in M.pointwise_statistics(f, t, ["crps_skill", "crps_spread", "ens_var", "se"], member_axis=1)
    }
    assert stats["crps_skill"][0, 0] == pytest.approx(1.0)
    assert stats["crps_spread"][0, 0] == pytest.approx(2.0)
    assert M.CRPS().reduce_time(stats)[0] == pytest.approx(0.0)
    assert stats["ens_var"][0, 0] == pytest.approx(np.var([0, 1, 3], ddof=1))
    assert stats["se"][0, 0] == pytest.approx((4 / 3 - 1) ** 2)
    with pytest.raises(Exception, match="at least 2 members"):
        list(M.pointwise_statistics(f[:, :1], t, ["crps_spread"], member_axis=1))


@pytest.fixture(scope="module")
def era5():
    ds = xr.open_dataset(sample("era5-2mt-2019-03-uk.grib"), engine="cfgrib", backend_kwargs={"indexpath": ""})
    t2m = ds["t2m"].drop_vars(["number", "step", "surface", "valid_time"], errors="ignore").sortby("latitude")
    return t2m.isel(time=slice(0, 240, 6)).load()  # 40 six-hourly fields


def test_fast_kernel_equals_xarray_reference_and_scores(era5):
    import scores.continuous as sc
    import xskillscore as xs

    truth = era5.isel(time=slice(4, None))
    fc = era5.isel(time=slice(0, -4)).assign_coords(time=truth.time)  # 24 h persistence
    clim = era5.mean("time")
    lat, lon = era5.latitude.values, era5.longitude.values
    regions = [NAMED_REGIONS["global"], parse_region("52,56,-6,0")]
    wrows = latitude_weights(lat)
    w = np.stack([(r.mask(lat, lon) * wrows[:, None]).ravel() for r in regions], axis=1)
    w = (w / w.sum(0)).astype(np.float32)
    f2 = fc.values.reshape(fc.shape[0], -1)
    t2 = truth.values.reshape(truth.shape[0], -1)
    c2 = np.broadcast_to(clim.values.ravel(), t2.shape)
    wda = xr.DataArray(wrows, dims="latitude", coords={"latitude": era5.latitude}) * xr.ones_like(era5.longitude)
    for metric, ref in [
        (M.RMSE(), lambda: np.sqrt(sc.mse(fc, truth, reduce_dims=["latitude", "longitude"], weights=wda).mean("time"))),
        (M.MAE(), lambda: xs.mae(fc, truth, dim=["latitude", "longitude"], weights=wda).mean("time")),
        (
            M.Bias(),
            lambda: sc.additive_bias(fc, truth, reduce_dims=["latitude", "longitude"], weights=wda).mean("time"),
        ),
    ]:
        per, score = fast(metric, f2, t2, w)
        np.testing.assert_allclose(score[0], float(ref()), rtol=2e-5)
        for k, region in enumerate(regions):
            np.testing.assert_allclose(score[k], float(metric.compute(fc, truth, region=region)), rtol=2e-5)
            np.testing.assert_allclose(
                per[:, k], metric.compute_chunk(fc, truth, region=region).values, rtol=2e-5, atol=1e-6
            )
    acc_fast = fast(M.ACC(), f2, t2, w, clim=c2)[1]
    acc_ref = M.ACC().compute(fc, truth, region=regions[1], climatology=clim)
    np.testing.assert_allclose(acc_fast[1], float(acc_ref), rtol=2e-5)
    fa, ta, wv = (fc - clim).values, (truth - clim).values, wda.values
    by_hand = ((fa * ta * wv).sum((1, 2)) / np.sqrt((fa**2 * wv).sum((1, 2)) * (ta**2 * wv).sum((1, 2)))).mean()
    np.testing.assert_allclose(acc_fast[0], by_hand, rtol=2e-5)


def test_crps_against_scores_fair_and_xskillscore_ecdf():
    import scores.probability as sp
    import xskillscore as xs

    ds = xr.open_dataset(sample("forecast_monthly_ukmo.grib"), engine="cfgrib", backend_kwargs={"indexpath": ""})
    raw = ds["t2m"].values  # (number, time, step, lat, lon), 7 of 28 members present per (time, step)
    present = ~np.isnan(raw[:, :, :, 0, 0])
    i, k = np.argwhere(present.sum(0) > 1)[0]
    ens = raw[present[:, i, k], i, k]  # (members, lat, lon) real members
    obs = raw[present[:, i, k], i, k].mean(0) + np.linspace(-2, 2, ens.shape[-1], dtype=np.float32)
    members = ens.shape[0]
    fda = xr.DataArray(ens, dims=("number", "latitude", "longitude"))
    oda = xr.DataArray(obs, dims=("latitude", "longitude"))
    f = np.moveaxis(ens, 0, -1).reshape(1, -1, members)  # (time, point, member)
    t = obs.reshape(1, -1)
    pointwise = dict(M.pointwise_statistics(f, t, ["crps_skill", "crps_spread"], member_axis=2))
    fair = pointwise["crps_skill"] - 0.5 * pointwise["crps_spread"]
    ref_fair = sp.crps_for_ensemble(
        fda, oda, "number", method="fair", preserve_dims=["latitude", "longitude"]
    ).values.ravel()
    np.testing.assert_allclose(fair.ravel(), ref_fair, rtol=1e-5, atol=1e-6)
    # ecdf CRPS = skill - E|X-X'| (M-1)/(2M): from the same two terms, compared with xskillscore
    ecdf = pointwise["crps_skill"] - 0.5 * pointwise["crps_spread"] * (members - 1) / members
    ref_ecdf = xs.crps_ensemble(oda, fda, member_dim="number", dim=[]).values.ravel()
    np.testing.assert_allclose(ecdf.ravel(), ref_ecdf, rtol=1e-5, atol=1e-6)
    # the rank trick equals the O(M^2) pair sum
    pairs = np.abs(f[..., :, None] - f[..., None, :]).sum((-1, -2)) / (members * (members - 1))
    np.testing.assert_allclose(pointwise["crps_spread"], pairs, rtol=1e-5)


def test_metric_registry_and_errors():
    assert [m.name for m in M.get_metrics(["RMSE", "crps"])] == ["rmse", "crps"]
    # WeatherBench2's deterministic set (scripts/evaluate.py: mse, acc, bias, mae, rmse_sqrt_before_time_avg) + rmse
    wb2 = [m.name for m in M.get_metrics(["wb2", "rmse"])]
    assert wb2 == ["mse", "rmse", "acc", "bias", "mae", "rmse_sqrt_before_time_avg"]
    assert [M.needs_climatology(m) for m in M.get_metrics(["acc", "rmse"])] == [True, False]
    with pytest.raises(Exception, match="unknown metric 'rsme'"):
        M.get_metrics(["rsme"])
    assert M.required_statistics(M.get_metrics(["spread_skill", "acc", "rmse"])) == [
        "se",
        "fa_ta",
        "fa2",
        "ta2",
        "ens_var",
    ]
    # init times with no truth (NaN) are skipped in the time mean
    stats = {"se": np.array([[4.0], [np.nan], [16.0]])}
    assert M.RMSE().reduce_time(stats)[0] == pytest.approx(np.sqrt(10.0))


def test_spatial_means_all_regions_at_float32_round_off():
    """One row or many, the float32 product matches the float64 weighted means to float32 round-off, with shape
    (..., n_regions)."""
    rng = np.random.default_rng(0)
    lat = np.linspace(-90, 90, 121)
    w = latitude_weights(lat)[:, None] * np.ones(240)
    masks = np.stack(
        [np.ones_like(w), (np.abs(lat) <= 20)[:, None] * np.ones(240), (lat >= 20)[:, None] * np.ones(240)]
    )
    weights = (masks * w).reshape(3, -1)
    weights = (weights / weights.sum(1, keepdims=True)).T.astype(np.float32)  # (npoints, regions)
    for shape in [(1,), (13,), (2, 13)]:
        values = (250 + 30 * rng.random((*shape, 121 * 240))).astype(np.float32)
        got = M.spatial_means(values, weights)
        ref = values.astype(np.float64) @ weights.astype(np.float64)
        assert got.shape == (*shape, 3) and got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-6)
