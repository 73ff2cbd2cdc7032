"""Smoothed day-of-year x hour climatology on plain arrays."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data_catalog import climatology as clim


def test_window_matrix_is_circular() -> None:
    m = clim.window_matrix(5, 10)
    np.testing.assert_array_equal(m[0], [1, 1, 1, 0, 0, 0, 0, 0, 1, 1])
    assert (m.sum(axis=1) == 5).all()
    with pytest.raises(ValueError, match="odd"):
        clim.window_matrix(4)


def test_smoothed_mean_matches_hand_computation() -> None:
    # samples on days 1, 2, 40 and 365 at two hours
    doy = np.array([1, 2, 40, 365, 1])
    hour_idx = np.array([0, 0, 0, 0, 1])
    values = np.array([1.0, 2.0, 10.0, 4.0, 7.0])[:, None]
    s, c = clim.doy_hour_sums(values, doy, hour_idx, 2)
    out = clim.smooth_circular(s, c, window=61)
    assert out.shape == (366, 2, 1)
    np.testing.assert_allclose(out[0, 0, 0], (1 + 2 + 4) / 3)  # day 1: days 1, 2, 365 (wraps); day 40 is 39 away
    np.testing.assert_allclose(out[9, 0, 0], (1 + 2 + 10 + 4) / 4)  # day 10: 1, 2, 40 (30 away), 365 (11 away)
    np.testing.assert_allclose(out[69, 0, 0], 10.0)  # day 70: only day 40
    assert np.isnan(out[200, 0, 0])  # nothing within 30 days
    np.testing.assert_allclose(out[0, 1, 0], 7.0)
    assert np.isnan(out[100, 1, 0])


def test_dataset_wrapper_layout_and_point_value() -> None:
    t = pd.date_range("2019-03-01", periods=40, freq="12h")
    rng = np.random.default_rng(0)
    x = rng.normal(280, 3, (40, 2, 3))
    ds = xr.Dataset(
        {"2m_temperature": (("time", "latitude", "longitude"), x, {"units": "K"})},
        coords={"time": t, "latitude": [50.0, 51.0], "longitude": [0.0, 1.0, 2.0]},
    )
    out = clim.compute_climatology(ds, window=61, block=7)
    assert out["2m_temperature"].dims == ("dayofyear", "hour", "latitude", "longitude")
    assert list(out["hour"].values) == [0, 12]
    assert out.sizes["dayofyear"] == 366
    # day 100 (2019-04-10) at 12 UTC: samples at 12 UTC on days 70..130 -> all 20 noon samples from day 60 on
    sel = (t.hour == 12) & (np.abs(t.dayofyear - 100) <= 30)
    np.testing.assert_allclose(out["2m_temperature"].sel(dayofyear=100, hour=12).values, x[sel].mean(axis=0), rtol=1e-6)
    assert np.isnan(out["2m_temperature"].sel(dayofyear=250, hour=0).values).all()


def test_cumulative_window_equals_matrix_form() -> None:
    rng = np.random.default_rng(5)
    sums = rng.normal(size=(366, 2, 3))
    counts = rng.integers(0, 2, size=(366, 2, 3)).astype(float)
    counts[100:200] = 0.0
    m = clim.window_matrix(61)
    n = np.tensordot(m, counts, axes=(1, 0))
    expect = np.where(n > 0, np.tensordot(m, sums, axes=(1, 0)) / np.where(n > 0, n, 1), np.nan)
    np.testing.assert_allclose(clim.smooth_circular(sums, counts, 61), expect, rtol=1e-10, atol=1e-12)


def test_sparse_window_means_equal_dense_form() -> None:
    rng = np.random.default_rng(7)
    doy = np.array([1, 1, 5, 40, 200, 366, 366])
    hour_idx = np.array([0, 1, 0, 1, 0, 0, 1])
    values = rng.normal(size=(7, 2, 3))
    s, c = clim.doy_hour_sums(values, doy, hour_idx, 2)
    dense = clim.smooth_circular(s, c, 61)
    acc = clim.ClimatologyAccumulator(np.array([0, 12]), 61)
    acc.add("x", values[:4], doy[:4], np.array([0, 12])[hour_idx[:4]])
    acc.add("x", values[4:], doy[4:], np.array([0, 12])[hour_idx[4:]])
    days = acc.days()
    assert set(days) == set(np.flatnonzero(~np.isnan(dense).all(axis=(1, 2, 3))) + 1)
    np.testing.assert_allclose(acc.block("x", days), dense[days - 1], rtol=1e-12)


def test_prefix_sum_blocks_match_window_means_with_nan() -> None:
    rng = np.random.default_rng(11)
    t = pd.date_range("2019-12-01", periods=24 * 70, freq="6h")  # crosses the year end: circular windows
    x = rng.normal(size=(len(t), 2, 2))
    x[5, 0, 1] = np.nan
    acc = clim.ClimatologyAccumulator(np.array([0, 6, 12, 18]), 31)
    for i in range(0, len(t), 100):
        acc.add("x", x[i : i + 100], t.dayofyear[i : i + 100], t.hour[i : i + 100])
    s, c = clim.doy_hour_sums(x, np.asarray(t.dayofyear), np.searchsorted([0, 6, 12, 18], t.hour), 4)
    dense = clim.smooth_circular(s, c, 31)
    days = np.arange(1, 367)
    np.testing.assert_allclose(acc.block("x", days), dense, rtol=1e-10, atol=1e-12)


def test_merged_partials_equal_one_accumulator_and_float32_bins_sum_in_float64() -> None:
    """Per-region accumulators merged in order give the single accumulator's result; bins holding one float32
    sample (kept as given) are summed in float64 when more samples arrive."""
    t = pd.date_range("2019-02-20", periods=24 * 20, freq="3h")  # several samples per (day, hour) bin
    rng = np.random.default_rng(12)
    x = (280.0 + rng.normal(size=(len(t), 2, 3))).astype("f4")
    hours = np.arange(0, 24, 3)
    one = clim.ClimatologyAccumulator(hours, 61)
    one.add("x", x, t.day_of_year, t.hour)
    merged = clim.ClimatologyAccumulator(hours, 61)
    for a in range(0, len(t), 37):
        part = clim.ClimatologyAccumulator(hours, 61)
        part.add("x", x[a : a + 37], t.day_of_year[a : a + 37], t.hour[a : a + 37])
        merged.merge(part)
    days = one.days()
    s, c = clim.doy_hour_sums(x, np.asarray(t.day_of_year), np.searchsorted(hours, t.hour), len(hours))
    dense = clim.smooth_circular(s, c, 61)
    np.testing.assert_allclose(merged.block("x", days), dense[days - 1], rtol=1e-12)
    np.testing.assert_allclose(merged.block("x", days, dtype="f4"), one.block("x", days, dtype="f4"), rtol=1e-7)
    with pytest.raises(ValueError, match="cannot be merged"):
        merged.merge(clim.ClimatologyAccumulator(hours[:2], 61))


def test_blocks_over_runs_with_reused_dirty_buffers_equal_the_dense_form() -> None:
    """The sliding window gives the dense form's values run by run (gaps between runs, windows that empty and
    refill, a record longer than the window), and overwrites every value of the buffers it is handed."""
    rng = np.random.default_rng(5)
    t = pd.date_range("2019-01-01", periods=4 * 150, freq="6h")
    x = rng.normal(280, 5, size=(len(t), 3, 2))
    keep = (t.day_of_year < 40) | (t.day_of_year > 120)  # a 80-day hole: windows empty in between
    t, x = t[keep], x[keep]
    hours = np.array([0, 6, 12, 18])
    acc = clim.ClimatologyAccumulator(hours, 31)
    acc.add("x", x, t.day_of_year, t.hour)
    s, c = clim.doy_hour_sums(x, np.asarray(t.day_of_year), np.searchsorted(hours, t.hour), 4)
    dense = clim.smooth_circular(s, c, 31)
    days = np.arange(1, 367)
    runs = [days[:7], days[7:60], days[100:101], days[101:300], days[340:]]

    def dirty(shape: tuple[int, ...], dtype: str) -> np.ndarray:
        return np.full(shape, 1e30, dtype=dtype)

    got = list(acc.blocks("x", runs, alloc=dirty))
    for run, block in zip(runs, got):
        np.testing.assert_allclose(block, dense[run - 1], rtol=1e-12)
    assert np.isnan(np.concatenate(got)).any() and not (np.concatenate(got) == 1e30).any()


def test_block_for_days_out_of_order_equals_the_dense_form() -> None:
    rng = np.random.default_rng(9)
    t = pd.date_range("2019-03-01", periods=24 * 31, freq="h")
    x = rng.normal(size=(len(t), 2, 3))
    acc = clim.ClimatologyAccumulator(np.arange(24), 61)
    acc.add("x", x, t.day_of_year, t.hour)
    s, c = clim.doy_hour_sums(x, np.asarray(t.day_of_year), np.asarray(t.hour), 24)
    dense = clim.smooth_circular(s, c, 61)
    days = np.array([100, 40, 75, 75, 60, 120])
    np.testing.assert_allclose(acc.block("x", days), dense[days - 1], rtol=1e-12)
