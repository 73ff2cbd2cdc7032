"""Scorecards: the autocorrelation-aware paired test and the scorecard dataset/table."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from data_catalog.errors import WxemuError
from pipeline.scorecard import (
    effective_sample_size,
    lag1_autocorrelation,
    paired_test,
    render_scorecard,
    scorecard,
)


def ar1(n, r, rng):
    x = np.zeros(n)
    e = rng.standard_normal(n)
    for i in range(1, n):
        x[i] = r * x[i - 1] + np.sqrt(1 - r * r) * e[i]
    return x


def test_lag1_and_effective_sample_size():
    rng = np.random.default_rng(0)
    assert lag1_autocorrelation(ar1(20000, 0.6, rng)) == pytest.approx(0.6, abs=0.02)
    assert lag1_autocorrelation([1.0, 2.0]) == 0.0
    assert effective_sample_size(100, 0.5) == pytest.approx(100 / 3)
    assert effective_sample_size(100, -0.3) == 100  # negative correlation does not inflate n
    assert effective_sample_size(10, 0.99) == 2.0


def test_paired_test_equals_scipy_when_uncorrelated_and_is_wider_when_correlated():
    a = np.array([1.0, 3.0, 2.0, 5.0, 4.0, 6.0])
    b = np.array([0.5, 2.0, 2.5, 3.0, 4.5, 4.0])
    d = a - b
    assert lag1_autocorrelation(d) <= 0
    p, n_eff = paired_test(a, b)
    assert n_eff == 6
    assert p == pytest.approx(stats.ttest_rel(a, b).pvalue)
    rng = np.random.default_rng(1)
    base = rng.standard_normal(200)
    corr = 0.3 + ar1(200, 0.8, rng)
    p_corr, n_corr = paired_test(base + corr, base)
    assert n_corr < 60
    assert p_corr > stats.ttest_rel(base + corr, base).pvalue  # autocorrelation widens the interval
    assert np.isnan(paired_test(np.array([1.0]), np.array([2.0]))[0])


def per_init_fixture():
    rng = np.random.default_rng(2)
    times = pd.date_range("2020-01-01", periods=40, freq="12h")
    leads = pd.to_timedelta([24, 48], "h")
    ref = 1.0 + 0.1 * rng.standard_normal((40, 2)) ** 2
    better = 0.8 * ref  # 20 % smaller MSE at every init: RMSE 10.56 % smaller, highly significant
    same = ref + 0.01 * rng.standard_normal((40, 2))
    data = np.stack([better, ref, same])[None, :, None]  # metric, forecast, region, time, lead
    da = xr.DataArray(
        data,
        dims=("metric", "forecast", "region", "time", "prediction_timedelta"),
        coords={
            "metric": ["rmse"],
            "forecast": ["A", "B", "C"],
            "region": ["global"],
            "time": times,
            "prediction_timedelta": leads,
        },
    )
    return xr.Dataset({"t2m": da})


def test_scorecard_values_and_table():
    per_init = per_init_fixture()
    card = scorecard(per_init, "A", "B")
    rel = card["t2m"].sel(quantity="relative_difference", region="global")
    np.testing.assert_allclose(rel, np.sqrt(0.8) - 1, rtol=1e-12)
    assert (card["t2m"].sel(quantity="p_value") < 1e-6).all()
    same = scorecard(per_init, "C", "B")
    assert (same["t2m"].sel(quantity="p_value") > 1e-3).any()
    from rich.console import Console

    console = Console(record=True, width=120)
    console.print(render_scorecard(card))
    text = console.export_text()
    assert "A vs B" in text and "-10.6" in text and "24h" in text
    with pytest.raises(WxemuError, match="not in the scores"):
        scorecard(per_init, "A", "Z")
    with pytest.raises(WxemuError, match="was not computed"):
        scorecard(per_init, "A", "B", metric="mae")
