"""The climatology made from a store (data_catalog.store_climatology) equals the in-memory one, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import zarr

from data_catalog import store_climatology as sc
from data_catalog.climatology import ClimatologyAccumulator, climatology_days, day_runs, smoothed_blocks


def _record(nan: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Two and a half years of hourly values on a 2 x 3 grid (bins of one, two and three samples; a leap year)."""
    times = pd.date_range("2019-11-20", "2022-05-10T23", freq="h").values
    rng = np.random.default_rng(0)
    doy = pd.DatetimeIndex(times).day_of_year.values
    values = (280 + 10 * np.sin(2 * np.pi * doy / 366)[:, None, None] + rng.normal(0, 3, (len(times), 2, 3))).astype(
        "f4"
    )
    if nan:
        values[rng.integers(0, len(times), 40), 1, 2] = np.nan
    return times, values


def _in_memory(times, values, p0, p1, hours, hour_step, window, runs, block=500) -> list[np.ndarray]:
    """The ingest's one-pass path: blocks of ``block`` steps accumulated, merged in time order."""
    total = ClimatologyAccumulator(hours, window)
    for a in range(p0, p1, block):
        b = min(p1, a + block)
        index = pd.DatetimeIndex(times[a:b])
        keep = index.hour % hour_step == 0
        part = ClimatologyAccumulator(hours, window)
        part.add("x", values[a:b][keep], index.day_of_year[keep], index.hour[keep])
        total.merge(part)
    return [blk.copy() for blk in total.blocks("x", runs, dtype="f4")]


@pytest.mark.parametrize("nan", [False, True])
def test_store_bins_give_the_in_memory_climatology_bit_for_bit(nan: bool) -> None:
    times, values = _record(nan)
    array = zarr.create_array({}, shape=values.shape, chunks=(24, 2, 3), dtype="f4", fill_value=np.nan)
    array[:] = values
    p0, p1, hour_step, window = 100, len(times) - 50, 3, 31
    hours = np.arange(0, 24, hour_step)
    days = climatology_days(times[p0:p1], hour_step, window)
    assert len(days) == 366
    runs = day_runs(days, 9)
    want = _in_memory(times, values, p0, p1, hours, hour_step, window, runs)
    for batch_bytes in (64e6, 5 * 24):  # a day's samples (16-24) read at once, or 5 at a time (bounded memory)
        bins = sc.StoreDayBins(array, times, p0, p1, hours, hour_step, per_point=nan, batch_bytes=batch_bytes)
        got = list(
            smoothed_blocks(bins.doys, bins, len(hours), window, values.shape[1:], runs, dtype="f4", per_point=nan)
        )
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and np.array_equal(g, w, equal_nan=True)
    assert np.isfinite(np.concatenate(got)).all()  # every day has samples in its window; NaNs are skipped
    # a task split in the middle of the year starts its window afresh and gives the same days
    tail = list(
        smoothed_blocks(bins.doys, bins, len(hours), window, values.shape[1:], runs[20:], dtype="f4", per_point=nan)
    )
    assert all(np.array_equal(g, w, equal_nan=True) for g, w in zip(tail, want[20:]))


def test_store_bins_are_read_twice_and_never_held() -> None:
    """Each day's bins are read when the day enters the window and when it leaves: the data are read about twice."""
    times, values = _record()
    reads: list[int] = []

    class Counting:
        shape, dtype = values.shape, values.dtype

        def get_orthogonal_selection(self, sel):
            reads.append(len(sel[0]))
            return values[sel[0]]

    hours = np.arange(24)
    bins = sc.StoreDayBins(Counting(), times, 0, len(times), hours, 1, per_point=False)
    runs = day_runs(climatology_days(times, 1, 61), 30)
    for _ in smoothed_blocks(bins.doys, bins, 24, 61, values.shape[1:], runs, dtype="f4"):
        pass
    assert 2 * len(times) <= sum(reads) <= 2.2 * len(times)


def test_plan_tasks_keeps_a_window_of_days_per_task() -> None:
    times = pd.date_range("2019-01-01", periods=24 * 365, freq="h").values
    runs = day_runs(np.arange(1, 367), 10)  # 37 runs
    tasks = sc.plan_tasks("s.zarr", None, ["a", "b"], times, 0, len(times), np.arange(24), 1, 61, runs, 8, False)
    assert len(tasks) == 2 * 8  # 8 workers: 8 tasks per variable (366 days allow 12 of at least 30 days)
    for name in ("a", "b"):
        mine = [t for t in tasks if t.name == name]
        days = np.concatenate([r for t in mine for r in t.runs])
        assert np.array_equal(days, np.arange(1, 367))
        assert min(sum(len(r) for r in t.runs) for t in mine) >= 40
    short = sc.plan_tasks("s.zarr", None, ["a"], times, 0, 48, np.arange(24), 1, 61, runs[:3], 8, False)
    assert len(short) == 1  # 30 days: one task
    few = sc.plan_tasks("s.zarr", None, ["a"], times, 0, 48, np.arange(24), 1, 61, runs[:10], 8, False)
    assert len(few) == 3  # 100 days: 3 tasks of at least 30 days
