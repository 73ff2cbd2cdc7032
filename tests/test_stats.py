"""Normalisation statistics against plain numpy."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from data_catalog import stats


def _times(n: int, gap_at: int | None = None) -> np.ndarray:
    t = pd.date_range("2021-01-01", periods=n, freq="6h").values.copy()
    if gap_at is not None:
        t[gap_at:] = t[gap_at:] + np.timedelta64(18, "h")
    return t


def test_regular_pairs_marks_gaps() -> None:
    np.testing.assert_array_equal(stats.regular_pairs(_times(5, gap_at=3)), [True, True, False, True])
    assert stats.regular_pairs(_times(1)).shape == (0,)


def test_moments_match_numpy_with_levels_gap_and_nan() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(5e4, 300.0, (9, 3, 4, 5))  # time, level, lat, lon; large offset like geopotential
    x[2, 1, 0, 0] = np.nan
    pairs = stats.regular_pairs(_times(9, gap_at=5))
    shift = np.array([5e4, 5e4, 5e4])
    sums = stats.moment_sums(da.from_array(x, chunks=(2, 3, 4, 5)), pairs, keep_axes=(1,), shift=shift)
    got = stats.stats_from_sums(
        stats.MomentSums(*[np.asarray(a) for a in da.compute(sums.n, sums.s, sums.ss, sums.dn, sums.ds, sums.dss)]),
        shift,
    )
    d = np.diff(x, axis=0)[pairs]
    for lev in range(3):
        xl, dl = x[:, lev], d[:, lev]
        np.testing.assert_allclose(
            got[:, lev], [np.nanmean(xl), np.nanstd(xl), np.nanmean(dl), np.nanstd(dl)], rtol=1e-9
        )


def test_lat_weighted_moments() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 2))
    w = np.array([0.5, 1.0, 2.0])
    got = stats.stats_from_sums(stats.moment_sums(x, np.ones(3, bool), lat_weights=w, lat_axis=1))
    wb = np.broadcast_to(w[None, :, None], x.shape)
    mean = np.average(x, weights=wb)
    np.testing.assert_allclose(got[0], mean)
    np.testing.assert_allclose(got[1], np.sqrt(np.average((x - mean) ** 2, weights=wb)))


def test_compute_stats_dataset() -> None:
    rng = np.random.default_rng(3)
    t = _times(7, gap_at=4)
    ds = xr.Dataset(
        {
            "temperature": (("time", "level", "latitude", "longitude"), rng.normal(250, 10, (7, 2, 3, 4))),
            "2m_temperature": (("time", "latitude", "longitude"), rng.normal(280, 3, (7, 3, 4)), {"units": "K"}),
            "land_sea_mask": (("latitude", "longitude"), rng.uniform(size=(3, 4))),
        },
        coords={"time": t, "level": [500, 850], "latitude": [0.0, 1, 2], "longitude": [0.0, 1, 2, 3]},
    ).chunk({"time": 1})
    out = stats.compute_stats(ds)
    assert list(out["stat"].values) == list(stats.STAT_NAMES)
    x = ds["2m_temperature"].values
    d = np.diff(x, axis=0)[[0, 1, 2, 4, 5]]
    np.testing.assert_allclose(out["2m_temperature"].values, [x.mean(), x.std(), d.mean(), d.std()], rtol=1e-10)
    assert out["2m_temperature"].attrs["units"] == "K"
    t850 = ds["temperature"].sel(level=850).values
    np.testing.assert_allclose(out["temperature"].sel(level=850, stat="std"), t850.std(), rtol=1e-10)
    lsm = ds["land_sea_mask"].values
    np.testing.assert_allclose(out["land_sea_mask"].values[:2], [lsm.mean(), lsm.std()])
    assert np.isnan(out["land_sea_mask"].values[2:]).all()


def test_streaming_accumulator_equals_one_shot() -> None:
    rng = np.random.default_rng(4)
    t = _times(11, gap_at=6)
    x = rng.normal(250, 10, (11, 2, 3, 4))
    acc = stats.StatsAccumulator()
    for a, b in [(0, 3), (3, 4), (4, 11)]:
        acc.add("t", x[a:b], t[a:b], has_level=True)
    pairs = stats.regular_pairs(t)
    d = np.diff(x, axis=0)[pairs]
    for lev in range(2):
        np.testing.assert_allclose(
            acc.result("t")[:, lev], [x[:, lev].mean(), x[:, lev].std(), d[:, lev].mean(), d[:, lev].std()], rtol=1e-9
        )


def test_blocks_plus_edges_equal_one_shot_sums() -> None:
    """The write pass's per-block sums plus one difference per block edge add up to the whole period's sums
    (float32 values, as the store holds them; a gap inside the last block)."""
    rng = np.random.default_rng(6)
    t = _times(12, gap_at=9)
    x = rng.normal(5e4, 300.0, (12, 2, 3, 4)).astype("f4")
    step = np.timedelta64(6, "h")
    shift = stats.first_step_shift(x[3], has_level=True)
    total = None
    edges = [(3, 5), (5, 6), (6, 12)]
    for a, b in edges:
        part = stats.block_sums(x[a:b], t[a:b], step, shift, keep_axes=(1,))
        total = part if total is None else total + part
    for _, b in edges[:-1]:
        total = total + stats.boundary_sums(x[b - 1 : b], x[b : b + 1], True, keep_axes=(1,))
    got = stats.stats_from_sums(total, shift)
    one_shot = stats.stats_from_sums(
        stats.moment_sums(x[3:], stats.regular_pairs(t[3:]), keep_axes=(1,), shift=shift), shift
    )
    np.testing.assert_allclose(got, one_shot, rtol=1e-12)
    xs = x[3:].astype("f8")
    d = np.diff(xs, axis=0)[stats.regular_pairs(t[3:])]
    for lev in range(2):  # float32 arithmetic (differences of float32 values) against float64
        np.testing.assert_allclose(
            got[:, lev], [xs[:, lev].mean(), xs[:, lev].std(), d[:, lev].mean(), d[:, lev].std()], rtol=1e-6
        )
        np.testing.assert_allclose(got[0, lev], xs[:, lev].mean(), rtol=1e-12)  # exact re-centring on the shift
    gap = stats.boundary_sums(x[8:9], x[9:10], False, keep_axes=(1,))
    assert (gap.dn == 0).all() and (gap.n == 0).all()
