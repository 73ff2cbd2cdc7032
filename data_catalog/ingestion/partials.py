"""The statistics and climatology sums accumulated while the blocks are written.

Each block writer returns the partial sums of its block (:func:`block_partial`: moment sums, climatology bins,
first and last steps); :class:`PartialCombiner` adds them in time order, with the differences across block
edges, so the numbers do not depend on the order blocks finish in. A block's done-marker keeps its moment sums
(:func:`block_record`), so a resumed run reads two steps of each done block, not the block
(:func:`recorded_partials`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog import store as st
from data_catalog import store_protocol as sp
from data_catalog.climatology import ClimatologyAccumulator
from data_catalog.errors import InputDataError, WxemuError
from data_catalog.ingestion.config import IngestConfig
from data_catalog.stats import MomentSums, block_sums, boundary_sums, first_step_shift


@dataclass(frozen=True)
class StatsPlan:
    """What the block writers accumulate for the statistics and the climatology (picklable: sent to workers).

    p0/p1: store time indices of the stats period [p0, p1). step: the store's time step (only differences of
    steps this far apart count). hours: hours of day of the climatology (sorted); hour_step: only times whose
    hour is a multiple of it feed the climatology. window: climatology window (days). shifts: {variable:
    conditioning constant of the moment sums, (level,) or () float64}; keep_axes: {variable: axes not reduced}.
    clim_in_memory: the writers accumulate the climatology's bins (else it is made from the store afterwards).
    """

    p0: int
    p1: int
    step: np.timedelta64
    hours: np.ndarray
    hour_step: int
    window: int
    shifts: dict[str, np.ndarray]
    keep_axes: dict[str, tuple[int, ...]]
    clim_in_memory: bool = True


@dataclass
class BlockPartial:
    """Partial accumulators of the store times [start, stop) (inside the stats period): moment sums per variable
    (values and the differences inside the block), the climatology's (day of year, hour) bin sums, and the
    block's first and last time steps ({name: (1, ...) float32}, with their times) for the differences across
    its edges."""

    start: int
    stop: int
    sums: dict[str, Any]
    clim: Any
    first: dict[str, np.ndarray]
    last: dict[str, np.ndarray]
    t_first: np.datetime64
    t_last: np.datetime64


def block_partial(plan: StatsPlan, arrays: dict[str, np.ndarray], times: np.ndarray, a: int) -> BlockPartial | None:
    """Partial sums of the block ``arrays`` {name: (time, ...) float32} at store times a..a+len(times), restricted
    to the stats period; None when the block lies outside it. Pure: the same block gives the same sums whether it
    comes from the write pass or is read back from the store (resume, append)."""
    lo, hi = max(a, plan.p0), min(a + len(times), plan.p1)
    if lo >= hi:
        return None
    t = np.asarray(times[lo - a : hi - a], dtype="datetime64[ns]")
    index = pd.DatetimeIndex(t)
    hour, doy = np.asarray(index.hour), np.asarray(index.day_of_year)
    in_clim = hour % plan.hour_step == 0
    acc = ClimatologyAccumulator(plan.hours, plan.window)
    sums, first, last = {}, {}, {}
    for n, values in arrays.items():
        x = values[lo - a : hi - a]
        sums[n] = block_sums(x, t, plan.step, plan.shifts[n], keep_axes=plan.keep_axes[n])
        first[n], last[n] = x[:1].copy(), x[-1:].copy()
        if plan.clim_in_memory and in_clim.any():
            acc.add(n, x if in_clim.all() else x[in_clim], doy[in_clim], hour[in_clim])
    return BlockPartial(lo, hi, sums, acc, first, last, t[0], t[-1])


def make_stats_plan(
    cfg: IngestConfig,
    times: np.ndarray,
    first: Callable[[int], dict[str, np.ndarray]],
    dims: dict[str, tuple[str, ...]],
    source: str,
    *,
    clim_in_memory: bool = True,
) -> StatsPlan:
    """The stats period of ``cfg`` on the store's full time axis ``times`` and the accumulation settings.

    ``first``: callable(p0) -> {variable: the values of the period's first step as stored, without time};
    ``dims``: {variable: its dims, time first}. Raises InputDataError (naming ``source``) for an empty period or
    one without a time on the climatology's hours.
    """
    p0, p1 = period_indices(cfg, times, source)
    index = pd.DatetimeIndex(times[p0:p1])
    hours = np.asarray(index.hour)
    in_clim = hours % cfg.climatology_hour_step == 0
    if not in_clim.any():
        raise InputDataError(
            f"{source}: no time of the stats period falls on an hour that is a multiple of "
            f"--climatology-hour-step {cfg.climatology_hour_step}"
        )
    t = np.asarray(times, dtype="datetime64[ns]")
    diffs = np.diff(t)
    step = diffs.min() if diffs.size else np.timedelta64(0, "ns")
    values = first(p0)
    keep_axes = {n: ((d.index("level"),) if "level" in d else ()) for n, d in dims.items()}
    for n, d in dims.items():
        if "level" in d and d.index("level") != 1:
            raise WxemuError(f"{source}: variable {n!r} has dims {d}; the canonical order puts level after time")
    shifts = {n: first_step_shift(values[n], has_level="level" in d) for n, d in dims.items()}
    return StatsPlan(
        p0,
        p1,
        step,
        np.unique(hours[in_clim]),
        cfg.climatology_hour_step,
        cfg.climatology_window,
        shifts,
        keep_axes,
        clim_in_memory,
    )


def period_indices(cfg: IngestConfig, times: np.ndarray, source: str) -> tuple[int, int]:
    """Store time indices [p0, p1) of the stats period of ``cfg`` on ``times`` (InputDataError when empty)."""
    t = pd.DatetimeIndex(times)
    p0 = int(t.searchsorted(pd.Timestamp(cfg.stats_start), side="left")) if cfg.stats_start else 0
    p1 = int(t.searchsorted(pd.Timestamp(cfg.stats_end), side="right")) if cfg.stats_end else len(t)
    if p1 <= p0:
        raise InputDataError(
            f"{source}: no times in the stats period {cfg.stats_start} .. {cfg.stats_end} "
            f"(the data cover {t[0]} .. {t[-1]})"
        )
    return p0, p1


def climatology_bins_bytes(cfg: IngestConfig, times: np.ndarray, bytes_per_step: int, source: str) -> int:
    """Memory the climatology's (day of year, hour) bins take while the stats period is accumulated: a bin seen
    once keeps its float32 field (``bytes_per_step``, every time-dependent variable), a bin seen more often a
    float64 sum (twice that)."""
    p0, p1 = period_indices(cfg, times, source)
    index = pd.DatetimeIndex(times[p0:p1])
    hours = np.asarray(index.hour)
    keep = hours % cfg.climatology_hour_step == 0
    _, counts = np.unique(np.asarray(index.day_of_year)[keep] * 24 + hours[keep], return_counts=True)
    return int(bytes_per_step * ((counts == 1).sum() + 2 * (counts > 1).sum()))


def climatology_in_memory(
    cfg: IngestConfig, times: np.ndarray, bytes_per_step: int, source: str, *, clustered: bool, available: int
) -> bool:
    """Whether the block writers keep the climatology's bins in memory (one pass) or the climatology is made
    from the store afterwards (``cfg.climatology_pass``). "auto" keeps them in memory when no cluster is used and
    they fit in half the ``available`` memory (bytes); "memory" is refused, before anything is written, when they
    do not."""
    if cfg.climatology_pass == "store":
        return False
    need = climatology_bins_bytes(cfg, times, bytes_per_step, source)
    have = available
    fits = need <= 0.5 * have
    if cfg.climatology_pass == "memory" and not fits:
        raise WxemuError(
            f"{cfg.out}: --climatology-pass memory would keep {need / 1e9:.1f} GB of (day of year, "
            f"hour) sums in memory and {have / 1e9:.1f} GB are available (at most half is used); use "
            "--climatology-pass store (or auto), a coarser --climatology-hour-step or a shorter "
            "--stats-start/--stats-end period"
        )
    return fits and (cfg.climatology_pass == "memory" or not clustered)


def bytes_per_step(ds: xr.Dataset) -> int:
    """Float32 bytes of one time step of every time-dependent variable (as the store holds them)."""
    return int(sum(4 * ds[v].size // max(1, ds.sizes["time"]) for v in st.time_variables(ds)))


class PartialCombiner:
    """Adds block partials in store time order (so the float64 sums do not depend on which block finished first,
    and a resumed run gives the same numbers as an uninterrupted one). ``units``: the starts of every block
    that will be offered (written and read-back blocks); :meth:`offer` may be called in any order."""

    def __init__(self, plan: StatsPlan, units: Sequence[int]) -> None:
        self.plan = plan
        self.order = sorted(units)
        self._next = 0
        self._waiting: dict[int, BlockPartial | None] = {}
        self.sums: dict[str, Any] = {}
        self.clim = ClimatologyAccumulator(plan.hours, plan.window)
        self.blocks: list[tuple[int, int]] = []  # [start, stop) of the partials merged, in order
        self._prev: BlockPartial | None = None

    def offer(self, unit: int, partial: BlockPartial | None) -> None:
        """Take the partial of the block starting at ``unit`` (None: the block is outside the stats period)."""
        self._waiting[unit] = partial
        while self._next < len(self.order) and self.order[self._next] in self._waiting:
            p = self._waiting.pop(self.order[self._next])
            self._next += 1
            if p is None:
                continue
            prev = self._prev
            if prev is not None and prev.stop != p.start:
                raise WxemuError(f"internal error: stats blocks do not tile the period ({prev.stop} != {p.start})")
            for n, s in p.sums.items():
                if prev is not None:  # the one difference across the edge between the two blocks
                    s = s + boundary_sums(
                        prev.last[n],
                        p.first[n],
                        p.t_first - prev.t_last == self.plan.step,
                        keep_axes=self.plan.keep_axes[n],
                    )
                self.sums[n] = self.sums[n] + s if n in self.sums else s
            self.clim.merge(p.clim)
            self.blocks.append((p.start, p.stop))
            p.clim = None  # merged: release the block's bins
            self._prev = p

    @property
    def complete(self) -> bool:
        return self._next == len(self.order)


def read_back(
    cfg: IngestConfig,
    combiner: PartialCombiner,
    units: Sequence[tuple[int, int]],
    times: np.ndarray,
    names: Sequence[str],
    reads: list[tuple[int, int]],
) -> None:
    """Feed the combiner the partials of store blocks already on disk (blocks written by an interrupted run,
    the existing part of an appended store's stats period): read back once with zarr, never re-written. The
    ranges read are appended to ``reads``."""
    for a, b in units:
        lo, hi = max(a, combiner.plan.p0), min(b, combiner.plan.p1)
        if lo >= hi:
            combiner.offer(a, None)
            continue
        arrays = st.read_steps(cfg.out, names, lo, hi, storage_options=cfg.options)
        reads.append((lo, hi))
        combiner.offer(a, block_partial(combiner.plan, arrays, times[lo:hi], lo))


def block_record(plan: StatsPlan | None, partial: BlockPartial | None) -> dict[str, Any]:
    """What a block's done-marker keeps: its partial's moment sums and extent (a resume needs nothing else of it
    when the climatology is made from the store), or that it lies outside the stats period."""
    if plan is None:
        return {}
    if partial is None:
        return {"partial": None}
    return {
        "partial": {
            "start": partial.start,
            "stop": partial.stop,
            "sums": {n: m.to_json() for n, m in partial.sums.items()},
        }
    }


def recorded_partials(
    cfg: IngestConfig,
    plan: StatsPlan,
    units: Sequence[tuple[int, int, int]],
    times: np.ndarray,
    names: Sequence[str],
    reads: list[tuple[int, int]],
) -> list[tuple[int, BlockPartial | None]] | None:
    """[(a, partial)] of the blocks ``units`` [(index, a, b)] already written, from their done-markers' moment sums
    and their first and last steps (two steps read per block, not the block); None when a marker lacks the sums
    (written by an older wxemu): then the blocks are read back. Their climatology bins are not kept: a run that
    uses these makes the climatology from the store. The ranges read are appended to ``reads``."""
    records = [(a, sp.block_record(cfg.out, i, storage_options=cfg.options)) for i, a, _ in units]
    if any(rec is None or "partial" not in rec for _, rec in records):
        return None
    out = []
    for a, rec in records:
        p = rec["partial"]
        if p is None:
            out.append((a, None))
            continue
        lo, hi = int(p["start"]), int(p["stop"])
        first = st.read_steps(cfg.out, names, lo, lo + 1, storage_options=cfg.options)
        reads.append((lo, lo + 1))
        last = first
        if hi - lo > 1:
            last = st.read_steps(cfg.out, names, hi - 1, hi, storage_options=cfg.options)
            reads.append((hi - 1, hi))
        out.append(
            (
                a,
                BlockPartial(
                    lo,
                    hi,
                    {n: MomentSums.from_json(v) for n, v in p["sums"].items()},
                    ClimatologyAccumulator(plan.hours, plan.window),
                    first,
                    last,
                    np.datetime64(times[lo], "ns"),
                    np.datetime64(times[hi - 1], "ns"),
                ),
            )
        )
    return out
