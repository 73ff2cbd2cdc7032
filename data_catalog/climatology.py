"""Smoothed climatology by day of year and hour of day, as WeatherBench2 computes it.

For every hour of day present in the data and every day of year d = 1..366, the climatology is the mean over all
samples at that hour whose day of year lies within a circular window of ``window`` days centred on d (61 by
default, i.e. d-30 .. d+30, wrapping across the year end; day of year is the calendar day 1..366 of the timestamp,
as ``time.dt.dayofyear``). NaN where the window holds no sample.

The computation is two pure steps on arrays: :func:`doy_hour_sums` accumulates sums and counts per (day of year,
hour) bin in float64 (one pass over the data, block by block), and :func:`smooth_circular` sums the bins of each
window and divides.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import xarray as xr

N_DAYS = 366


def window_matrix(window: int = 61, n_days: int = N_DAYS) -> np.ndarray:
    """(n_days, n_days) 0/1 float64 matrix: M[d, e] = 1 where circular |d - e| <= window // 2."""
    if window < 1 or window % 2 == 0:
        raise ValueError(f"climatology window must be a positive odd number of days, got {window}")
    idx = np.arange(n_days)
    dist = np.abs(idx[:, None] - idx[None, :])
    dist = np.minimum(dist, n_days - dist)
    return (dist <= window // 2).astype("f8")


def doy_hour_sums(
    values: np.ndarray, dayofyear: np.ndarray, hour_index: np.ndarray, n_hours: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sums and counts of ``values`` (time first, any trailing shape) per (day of year, hour) bin.

    ``dayofyear``: int (time,) in 1..366; ``hour_index``: int (time,) in 0..n_hours-1. Returns
    ``sums`` (366, n_hours, *trailing) float64 and ``counts`` of the same shape (NaNs are not counted).
    """
    v = np.asarray(values, dtype="f8")
    valid = ~np.isnan(v)
    trailing = v.shape[1:]
    sums = np.zeros((N_DAYS * n_hours, *trailing))
    counts = np.zeros((N_DAYS * n_hours, *trailing))
    flat = (np.asarray(dayofyear) - 1) * n_hours + np.asarray(hour_index)
    np.add.at(sums, flat, np.where(valid, v, 0.0))
    np.add.at(counts, flat, valid.astype("f8"))
    return sums.reshape(N_DAYS, n_hours, *trailing), counts.reshape(N_DAYS, n_hours, *trailing)


def smooth_circular(sums: np.ndarray, counts: np.ndarray, window: int = 61) -> np.ndarray:
    """Windowed mean along axis 0 (day of year, circular): float64 of the input shape, NaN where the window
    holds no data. Window sums come from a cumulative sum over the circularly padded axis (O(n), exact counts).
    """
    n_days = sums.shape[0]
    if window < 1 or window % 2 == 0 or window > n_days:
        raise ValueError(f"climatology window must be an odd number of days in 1..{n_days}, got {window}")
    half = window // 2

    def window_sums(a: np.ndarray) -> np.ndarray:
        ext = np.concatenate([a[n_days - half :], a, a[:half]], axis=0) if half else a
        c = np.cumsum(ext, axis=0)
        c = np.concatenate([np.zeros((1, *a.shape[1:])), c], axis=0)
        return c[window : window + n_days] - c[:n_days]

    s, n = window_sums(sums), window_sums(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0.5, s / np.where(n > 0.5, n, 1.0), np.nan)


def circular_distance(a: np.ndarray, b: np.ndarray, n_days: int = N_DAYS) -> np.ndarray:
    """|a - b| on a circle of ``n_days`` days (broadcasting)."""
    d = np.abs(np.asarray(a)[..., None] - np.asarray(b)[None, ...]) if np.ndim(a) else np.abs(a - np.asarray(b))
    return np.minimum(d, n_days - d)


def days_with_data(bin_doy: np.ndarray, window: int = 61) -> np.ndarray:
    """Days of year (1..366, sorted) whose window holds at least one of the days ``bin_doy``."""
    days = np.arange(1, N_DAYS + 1)
    if len(bin_doy) == 0:
        return days[:0]
    return days[(circular_distance(days, np.unique(bin_doy)) <= window // 2).any(axis=1)]


class ClimatologyAccumulator:
    """Sums and counts per (day of year, hour) bin, only for bins that occur: one pass over the data in time
    blocks (:meth:`add`), then smoothed output for any set of days (:meth:`block`)."""

    def __init__(self, hours: np.ndarray, window: int = 61) -> None:
        if window < 1 or window % 2 == 0 or window > N_DAYS:
            raise ValueError(f"climatology window must be an odd number of days in 1..{N_DAYS}, got {window}")
        self.hours = np.asarray(hours, dtype="int64")
        self.window = int(window)
        self._bins: dict[str, dict[tuple[int, int], list[np.ndarray]]] = {}

    def add(self, name: str, values: np.ndarray, dayofyear: np.ndarray, hour: np.ndarray) -> None:
        """Accumulate ``values`` (time first) observed at ``dayofyear`` (1..366) and ``hour`` (of ``hours``).

        Counts are kept as one number per bin when the values hold no NaN (the usual case), else per point. A bin
        seen once keeps its sample as given (a view, no float64 copy: its sum is exact in any precision); sums of
        two or more samples are float64.
        """
        v = np.asarray(values)
        bins = self._bins.setdefault(name, {})
        flat = np.asarray(dayofyear, dtype="int64") * len(self.hours) + np.searchsorted(self.hours, hour)
        order = np.argsort(flat, kind="stable")
        keys, first, counts = np.unique(flat[order], return_index=True, return_counts=True)
        for key, i0, m in zip(keys, first, counts):
            sel = order[i0 : i0 + m]
            part = v[sel[0]] if m == 1 else v[sel]
            if not np.isnan(part.min()):
                s, c = (part if m == 1 else part.sum(axis=0, dtype="f8")), np.float64(m)
            else:
                valid = ~np.isnan(part)
                s = np.where(valid, part, 0.0).astype("f8")
                c = valid.astype("f8")
                if m > 1:
                    s, c = s.sum(axis=0), c.sum(axis=0)
            k = (int(key) // len(self.hours), int(key) % len(self.hours))
            if k in bins:
                bins[k] = [np.add(bins[k][0], s, dtype="f8"), np.add(bins[k][1], c, dtype="f8")]
            else:
                bins[k] = [s, c]

    def merge(self, other: ClimatologyAccumulator) -> None:
        """Add the bins of ``other`` (same hours and window; e.g. one time region's partial sums) to these."""
        if not np.array_equal(self.hours, other.hours) or self.window != other.window:
            raise ValueError("climatology accumulators with different hours or windows cannot be merged")
        for name, theirs in other._bins.items():
            mine = self._bins.setdefault(name, {})
            for k, (s, c) in theirs.items():
                if k in mine:
                    mine[k] = [np.add(mine[k][0], s, dtype="f8"), np.add(mine[k][1], c, dtype="f8")]
                else:
                    mine[k] = [s, c]

    def days(self) -> np.ndarray:
        """Days of year whose window holds data (the others are all NaN)."""
        doys = {k[0] for bins in self._bins.values() for k in bins}
        return days_with_data(np.array(sorted(doys), dtype="int64"), self.window)

    def block(self, name: str, days: np.ndarray, dtype: str = "f8") -> np.ndarray:
        """(len(days), n_hours, *trailing) smoothed climatology of ``name`` for ``days`` (any order; ascending is
        cheapest), in ``dtype`` (computed in float64; "f4" rounds once, at the end)."""
        return next(self.blocks(name, [np.asarray(days)], dtype))

    def blocks(
        self,
        name: str,
        runs: Sequence[np.ndarray],
        dtype: str = "f8",
        alloc: Callable[[tuple[int, ...], str], np.ndarray] | None = None,
    ) -> Iterator[np.ndarray]:
        """For each array of days in ``runs`` (days ascending, within and across runs), the (len(run), n_hours,
        *trailing) smoothed climatology of ``name`` in ``dtype``, one run at a time (see :func:`smoothed_blocks`)."""
        bins = self._bins[name]
        first = next(iter(bins.values()))
        n_hours = len(self.hours)
        doys = np.array(sorted({k[0] for k in bins}), dtype="int64")
        by_day = {int(d): [bins.get((int(d), h)) for h in range(n_hours)] for d in doys}
        day_bins = by_day.__getitem__
        per_point = any(np.ndim(c) for _, c in bins.values())
        yield from smoothed_blocks(
            doys,
            day_bins,
            n_hours,
            self.window,
            np.shape(first[0]),
            runs,
            dtype=dtype,
            alloc=alloc,
            per_point=per_point,
            hour_major=True,
        )


DayBins = Callable[[int], Sequence["tuple[np.ndarray, np.ndarray | np.float64] | None"]]


def smoothed_blocks(
    doys: np.ndarray,
    day_bins: DayBins,
    n_hours: int,
    window: int,
    trailing: tuple[int, ...],
    runs: Sequence[np.ndarray],
    *,
    dtype: str = "f8",
    alloc: Callable[[tuple[int, ...], str], np.ndarray] | None = None,
    per_point: bool = False,
    hour_major: bool = False,
) -> Iterator[np.ndarray]:
    """The smoothed climatology from (day of year, hour) bins, one block of days at a time.

    ``doys``: the days of year (sorted) that have bins; ``day_bins(doy)``: for each hour index, the bin's
    (sum, count) or None (count: a number, or per point when ``per_point``). The bins may live in memory
    (:class:`ClimatologyAccumulator`) or be read on demand from a store (``data_catalog.store_climatology``):
    each bin is asked for when it enters the window and again when it leaves, never held. For each array of days
    in ``runs`` (ascending, within and across runs) yields the (len(run), n_hours, *trailing) climatology in
    ``dtype``. ``alloc(shape, dtype)`` gives the output buffers (default: new arrays; a writer passes buffers it
    has finished with, since touching fresh memory costs as much as the arithmetic).

    A window slides over the days of year: moving to the next day adds the bins that enter it and subtracts those
    that leave (float64 running sums, all hours at once), so a day costs one division plus the bins that changed,
    and a day whose window holds the same bins as the day before (every day of a record shorter than the window,
    for instance) is a copy. The same bins give the same numbers wherever they come from, in either order:
    ``hour_major`` slides one window per hour through each run (its running sums stay in cache from day to day:
    10-25 % faster when the bins are in memory, but each day's bins are asked for once per hour); the default
    slides one window for all hours (each day's bins asked for once: for bins read from a store).
    """
    doys = np.asarray(doys, dtype="int64")
    groups = [[h] for h in range(n_hours)] if hour_major else [list(range(n_hours))]
    windows = [_SlidingWindow(doys, day_bins, hours, window // 2, trailing, per_point) for hours in groups]
    for run in runs:
        shape = (len(run), n_hours, *trailing)
        out = alloc(shape, dtype) if alloc is not None else np.empty(shape, dtype=dtype)
        for win, hours in zip(windows, groups):
            win.last = None  # copies only within this run's buffer (earlier buffers may be handed back)
            for i, day in enumerate(np.asarray(run)):
                win.mean_into(int(day), out[i, hours[0] : hours[-1] + 1])
        yield out


class _SlidingWindow:
    """Running float64 sums and counts, for the hour indices ``hours`` (consecutive), of the bins whose day of year
    lies within ``half`` days (circularly) of a target day; ``doys`` sorted (cheapest when the day only moves
    forward: a step back restarts the sums)."""

    def __init__(
        self,
        doys: np.ndarray,
        day_bins: DayBins,
        hours: list[int],
        half: int,
        trailing: tuple[int, ...],
        per_point: bool,
    ) -> None:
        self.m = len(doys)
        self.doys = doys
        self.ext = np.concatenate([doys - N_DAYS, doys, doys + N_DAYS])  # the days on three turns of the circle
        self.day_bins, self.half, self.hours = day_bins, half, hours
        self.s = np.zeros((len(hours), *trailing))
        self.c = np.zeros((len(hours), *trailing)) if per_point else np.zeros(len(hours))
        self.lo = self.hi = 0
        self.last: np.ndarray | None = None  # the last means written (a view into the caller's output)

    def _apply(self, j: int, op: Callable) -> None:
        bins = self.day_bins(int(self.doys[j % self.m]))
        for k, h in enumerate(self.hours):
            b = bins[h]
            if b is not None:
                op(self.s[k], b[0], out=self.s[k])
                self.c[k] = op(self.c[k], b[1])

    def _move(self, lo: int, hi: int) -> bool:
        if (lo, hi) == (self.lo, self.hi):
            return False
        if lo >= self.hi or lo < self.lo or hi < self.hi:  # disjoint, or the day moved back: start from zero
            self.s[...] = 0.0
            self.c[...] = 0.0
            self.lo = self.hi = lo
        while self.hi < hi:
            self._apply(self.hi, np.add)
            self.hi += 1
        while self.lo < lo:
            self._apply(self.lo, np.subtract)
            self.lo += 1
        empty = self.c <= 0.5
        if empty.any():  # an hour (or point) whose window is empty: exact zeros again (no rounding residue)
            self.s[empty] = 0.0
            self.c[empty] = 0.0
        return True

    def mean_into(self, day: int, out: np.ndarray) -> None:
        """Write the window means for ``day`` into ``out`` (len(hours), *trailing); NaN where no sample."""
        lo = int(np.searchsorted(self.ext, day - self.half, side="left"))
        hi = int(np.searchsorted(self.ext, day + self.half, side="right"))
        if not self._move(lo, hi) and self.last is not None:
            out[...] = self.last
            self.last = out
            return
        if self.c.ndim == 1:
            for h in range(len(self.c)):
                if self.c[h] > 0.5:
                    np.divide(self.s[h], self.c[h], out=out[h], casting="same_kind")
                else:
                    out[h] = np.nan
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[...] = np.where(self.c > 0.5, self.s / np.where(self.c > 0.5, self.c, 1.0), np.nan)
        self.last = out


def _time_blocks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def accumulate(ds: xr.Dataset, *, window: int = 61, block: int = 48) -> tuple[ClimatologyAccumulator, dict]:
    """One pass over the time-dependent variables of ``ds`` (``block`` steps at a time). Returns the
    accumulator and {name: dims after dayofyear/hour} for the output layout."""
    names = [str(v) for v in ds.data_vars if "time" in ds[v].dims]
    times = ds["time"].to_index()
    acc = ClimatologyAccumulator(np.unique(times.hour), window)
    orders = {n: ("time",) + tuple(d for d in ds[n].dims if d != "time") for n in names}
    doy, hour = np.asarray(times.day_of_year), np.asarray(times.hour)
    for sl in _time_blocks(len(times), block):
        chunk = ds[names].isel(time=sl).load()
        for n in names:
            acc.add(n, chunk[n].transpose(*orders[n]).values, doy[sl], hour[sl])
    return acc, {n: orders[n][1:] for n in names}


def climatology_template(
    ds: xr.Dataset, hours: np.ndarray, window: int, dims: dict, *, chunk_days: int = 1
) -> xr.Dataset:
    """The climatology group's layout as a lazy all-NaN dataset (dask; chunks of ``chunk_days`` days of year:
    the ingest passes 366, one dask chunk, and sets the Zarr chunks of one day in the encoding, which is
    much cheaper to write as metadata only). ``dims``: {variable: its dims after time}."""
    import dask.array as da

    out = xr.Dataset(coords={"dayofyear": np.arange(1, N_DAYS + 1), "hour": np.asarray(hours)})
    for name in ("level", "latitude", "longitude"):
        if name in ds.coords:
            out = out.assign_coords({name: ds[name].values})
    for n, trailing in dims.items():
        shape = (N_DAYS, len(hours), *[ds.sizes[d] for d in trailing])
        out[n] = (
            ("dayofyear", "hour", *trailing),
            da.full(shape, np.nan, dtype="f4", chunks=(chunk_days, *shape[1:])),
            {k: v for k, v in ds[n].attrs.items() if k in ("units", "long_name", "standard_name")},
        )
    out.attrs["window_days"] = int(window)
    return out


def climatology_days(times: np.ndarray, hour_step: int, window: int) -> np.ndarray:
    """Days of year whose window holds one of ``times`` on an hour that is a multiple of ``hour_step`` (the days
    the climatology has values for; the others are NaN)."""
    index = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[ns]"))
    keep = np.asarray(index.hour) % hour_step == 0
    return days_with_data(np.unique(np.asarray(index.day_of_year)[keep]), window)


def day_runs(days: np.ndarray, days_per_block: int) -> list[np.ndarray]:
    """``days`` (sorted) cut into runs of consecutive days at most ``days_per_block`` long (one write each)."""
    return [
        run
        for i in range(0, len(days), days_per_block)
        for run in np.split(
            days[i : i + days_per_block], np.flatnonzero(np.diff(days[i : i + days_per_block]) != 1) + 1
        )
    ]


def compute_climatology(ds: xr.Dataset, *, window: int = 61, block: int = 48) -> xr.Dataset:
    """Climatology of every time-dependent data variable of a canonical dataset, in memory.

    Returns float32 variables with dims (``dayofyear`` 1..366, ``hour``, [``level``], ``latitude``,
    ``longitude``); ``hour`` = the hours of day present in ``ds`` (sorted); attribute ``window_days``. For large
    grids write it block by block instead (``data_catalog.ingestion`` does, with :func:`accumulate`).
    """
    acc, dims = accumulate(ds, window=window, block=block)
    out = climatology_template(ds, acc.hours, acc.window, dims).load()
    days = acc.days()
    for n in dims:
        if len(days):
            out[n].values[days - 1] = acc.block(n, days).astype("f4")
    return out
