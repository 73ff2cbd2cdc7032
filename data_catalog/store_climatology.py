"""The climatology computed out of core from a written store (the ingest's second way of making it).

The ingest's default keeps the climatology's (day of year, hour) bins in memory while it writes the data (one
pass). When those bins would not fit (a global grid: they are 366 x 24 fields per variable and level, whatever the
record's length), or when the blocks are written on a dask cluster (shipping every block's bins back to the
client costs more than the write), the climatology is made here instead, after the data are on disk: for each
variable, a window slides over the days of year (:func:`data_catalog.climatology.smoothed_blocks`), and each
day's bins are read from the store when the day enters the window and again when it leaves (the data are read
about twice, 64 MB at a time; nothing of size "bins" is held). The work is split into tasks of contiguous days per
variable, run on
the ingest's thread pool or on the cluster's workers, each writing its own climatology chunks.

The bins summed here are the bins the in-memory path sums (float32 samples, float64 sums in time order), so both
ways give the same numbers, bit for bit (tested).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from data_catalog import store as st
from data_catalog.climatology import smoothed_blocks


@dataclass(frozen=True)
class ClimatologyTask:
    """One unit of work: the smoothed climatology of ``name`` for the days of ``runs`` (ascending runs of
    consecutive days of year, each one write), from the store's times [p0, p1) at ``hours`` (picklable)."""

    out: str
    storage_options: tuple[tuple[str, Any], ...] | None
    name: str
    times: np.ndarray
    p0: int
    p1: int
    hours: np.ndarray
    hour_step: int
    window: int
    runs: tuple[np.ndarray, ...]
    per_point: bool

    @property
    def options(self) -> dict[str, Any] | None:
        return dict(self.storage_options) if self.storage_options else None


class StoreDayBins:
    """``day_bins(doy)`` for :func:`smoothed_blocks`, read from ``array`` (a store's time-dependent variable, time
    first; anything with ``get_orthogonal_selection``, ``shape`` and ``dtype``): per hour index, the
    (sum, count) of the samples of the period on that day of year and hour (None where there are none). A bin of
    one sample is that float32 field; of several, their float64 sum in time order. Counts are numbers, or per
    point when ``per_point`` (stores that may hold NaN). A day's samples (one per year and hour) are read
    ``batch_bytes`` at a time, so a long record does not make a task hold all its years of a day at once."""

    def __init__(
        self,
        array: Any,
        times: np.ndarray,
        p0: int,
        p1: int,
        hours: np.ndarray,
        hour_step: int,
        per_point: bool,
        batch_bytes: float = 64e6,
    ) -> None:
        index = pd.DatetimeIndex(np.asarray(times[p0:p1], dtype="datetime64[ns]"))
        hour = np.asarray(index.hour)
        keep = hour % hour_step == 0
        store_index = np.arange(p0, p1)[keep]
        doy = np.asarray(index.day_of_year)[keep]
        hour_index = np.searchsorted(np.asarray(hours), hour[keep])
        order = np.argsort(doy, kind="stable")  # time order within a day of year
        self.doys, first, counts = np.unique(doy[order], return_index=True, return_counts=True)
        self._groups = {
            int(d): (store_index[order[i : i + m]], hour_index[order[i : i + m]])
            for d, i, m in zip(self.doys, first, counts)
        }
        self.array, self.n_hours, self.per_point = array, len(hours), per_point
        sample = int(np.prod(array.shape[1:])) * array.dtype.itemsize
        self.batch = max(1, int(batch_bytes // max(1, sample)))

    def __call__(self, doy: int) -> list[tuple[np.ndarray, Any] | None]:
        idx, hidx = self._groups[doy]
        out: list[tuple[np.ndarray, Any] | None] = [None] * self.n_hours
        for i in range(0, len(idx), self.batch):  # in time order: the sums are the in-memory path's
            values = self.array.get_orthogonal_selection((idx[i : i + self.batch],))  # read concurrently
            hb = hidx[i : i + self.batch]
            for h in np.unique(hb):
                part = values[hb == h]
                if self.per_point:
                    valid = ~np.isnan(part)
                    s, c = np.where(valid, part, 0.0).sum(axis=0, dtype="f8"), valid.sum(axis=0, dtype="f8")
                elif len(part) == 1:
                    s, c = part[0], np.float64(1.0)
                else:
                    s, c = part.sum(axis=0, dtype="f8"), np.float64(len(part))
                prev = out[h]
                out[h] = (s, c) if prev is None else (np.add(prev[0], s, dtype="f8"), prev[1] + c)
        return out


def run_task(task: ClimatologyTask) -> int:
    """Compute and write the climatology of ``task`` (in a thread or on a dask worker); return the days written."""
    array = st.open_array(task.out, task.name, storage_options=task.options, fast=True)
    bins = StoreDayBins(array, task.times, task.p0, task.p1, task.hours, task.hour_step, task.per_point)
    buffers: dict[tuple, np.ndarray] = {}

    def alloc(shape: tuple[int, ...], dtype: str) -> np.ndarray:  # one buffer per shape, reused after each write
        return buffers.setdefault((shape, dtype), np.empty(shape, dtype=dtype))

    blocks = smoothed_blocks(
        bins.doys,
        bins,
        len(task.hours),
        task.window,
        array.shape[1:],
        task.runs,
        dtype="f4",
        alloc=alloc,
        per_point=task.per_point,
    )
    for run, block in zip(task.runs, blocks):
        st.write_steps(
            task.out, {task.name: block}, int(run[0]) - 1, storage_options=task.options, group=st.CLIMATOLOGY_GROUP
        )
    return int(sum(len(r) for r in task.runs))


def plan_tasks(
    out: str,
    storage_options: Mapping[str, Any] | None,
    names: Sequence[str],
    times: np.ndarray,
    p0: int,
    p1: int,
    hours: np.ndarray,
    hour_step: int,
    window: int,
    runs: Sequence[np.ndarray],
    parallel: int,
    per_point: bool,
) -> list[ClimatologyTask]:
    """Split the climatology of ``names`` into tasks of contiguous runs: enough tasks to keep ``parallel``
    workers busy, but at least half a window of days per task (each task starts its window from scratch,
    reading the bins of the half window before its first day again: at most twice the reads)."""
    n_days = sum(len(r) for r in runs)
    per_variable = max(1, min(-(-2 * parallel // max(1, len(names))), n_days // max(1, window // 2)))
    bounds = np.linspace(0, len(runs), per_variable + 1).round().astype(int)
    opts = tuple(sorted(storage_options.items())) if storage_options else None
    return [
        ClimatologyTask(
            out, opts, n, np.asarray(times), p0, p1, np.asarray(hours), hour_step, window, tuple(runs[a:b]), per_point
        )
        for n in names
        for a, b in itertools.pairwise(bounds)
        if b > a
    ]
