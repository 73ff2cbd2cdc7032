"""Time blocks of a write: planning them (whole chunks, along the sources' own boundaries) and writing one.

A block is a range [a, b) of store time indices, a whole number of chunks; it is the unit of progress, resume and
parallelism. :func:`write_block` writes one (in a thread, from the sources opened once in this process) and
:func:`write_block_on_worker` on a dask worker (from the sources narrowed to the block's files, opened once per
worker and kept by an :class:`OpenedSourcesCache` the ingest sends to every worker).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from dask.local import get_sync  # the synchronous scheduler as a function: no dask.distributed import

from data_catalog import store as st
from data_catalog import store_protocol as sp
from data_catalog.catalog import is_catalog_name
from data_catalog.errors import InputDataError, WxemuError
from data_catalog.ingestion.config import config_from_json, config_to_json
from data_catalog.ingestion.partials import BlockPartial, StatsPlan, block_partial, block_record
from data_catalog.ingestion.sources import OpenedSources, open_sources
from data_catalog.plausibility import refuse_implausible  # reliability


def plan_blocks(
    start: int, stop: int, chunk_time: int, steps_per_block: int, source_bounds: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """[(a, b), ...] store time-index blocks covering start..stop.

    Boundaries fall on multiples of ``chunk_time`` (so concurrent blocks never share a chunk). With
    ``source_bounds`` (store indices where a source chunk or file begins, rounded down to a chunk boundary),
    consecutive source chunks are grouped into blocks of at most ``steps_per_block`` steps, cut only where a
    source chunk begins, so each lazily read source chunk is read by one block (daily files of 24 steps and
    150-step blocks: six files a block, not one); a source chunk longer than that is cut every
    ``steps_per_block`` steps. Without them, blocks are ``steps_per_block`` steps long.
    """
    per = max(chunk_time, steps_per_block - steps_per_block % chunk_time)
    seams = sorted({b - b % chunk_time for b in source_bounds or () if start < b - b % chunk_time < stop})
    edges = [start]
    for seg_start, seg_stop in itertools.pairwise([start, *seams, stop]):
        if seg_stop - edges[-1] > per and edges[-1] < seg_start:  # this source chunk does not fit: cut before it
            edges.append(seg_start)
        while seg_stop - edges[-1] > per:  # a source chunk longer than a block: cut it (on the chunk grid)
            cut = edges[-1] + per
            edges.append(cut - cut % chunk_time)
    edges.append(stop)
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def source_bounds(ds: xr.Dataset, offset: int) -> list[int] | None:
    """Store indices where the lazy dataset's time chunks begin (None when it is in memory)."""
    names = st.time_variables(ds)
    if not names or ds[names[0]].chunks is None:
        return None
    return [offset + int(b) for b in np.cumsum((0,) + ds[names[0]].chunks[0])[1:-1]]


def steps_per_block(ds: xr.Dataset, block_mb: float, chunk_time: int) -> int:
    """Time steps of about ``block_mb`` decoded MB, a whole number of chunks."""
    per_step = sum(ds[v].dtype.itemsize * ds[v].size // max(1, ds.sizes["time"]) for v in st.time_variables(ds))
    n = max(1, int(block_mb * 1e6 // max(1, per_step)))
    return max(chunk_time, n - n % chunk_time)


@dataclass(frozen=True)
class BlockJob:
    """One block to write (picklable: sent to cluster workers).

    index: the block's number in the plan. start/stop: store time indices [start, stop). offset: store index of
    the sources' first time. stats_plan: what to accumulate (None: no statistics). sources_json: the config a
    worker opens (narrowed to the block's files when that is safe, :func:`narrow_to_block`). first_time: the
    time of step ``start`` when ``sources_json`` is narrowed (its own time axis starts elsewhere), else None.
    """

    index: int
    start: int
    stop: int
    offset: int = 0
    stats_plan: StatsPlan | None = None
    sources_json: str = ""
    first_time: np.datetime64 | None = None


def narrow_to_block(opened: OpenedSources, a: int, b: int, offset: int = 0) -> tuple[str, np.datetime64 | None]:
    """(config JSON, time of store step ``a``) for writing block a..b on a cluster worker: the sources narrowed to
    the files whose times meet the block (plus any without time), so that a worker opens the one or two files
    of its blocks rather than every source. The full config (and None) when that is not safe: catalog entries, or
    sources of different variables (their files need not share boundaries), or when every file is needed."""
    cfg = opened.cfg
    full = config_to_json(cfg)
    if any(is_catalog_name(s) for s in cfg.sources) or len({v for _, v, timed in opened.parts if timed}) != 1:
        return full, None
    spans = {name: (t0, t1) for name, t0, t1 in opened.spans}
    times = opened.ds["time"].values
    t_a, t_b = times[a - offset], times[b - 1 - offset]
    keep = [
        name
        for name, _, timed in opened.parts
        if not timed or (name in spans and spans[name][0] <= t_b and spans[name][1] >= t_a)
    ]
    if len(keep) == len(opened.parts):
        return full, None
    return config_to_json(dataclasses.replace(cfg, sources=tuple(keep))), t_a


def nan_error(opened: OpenedSources, part: xr.Dataset, name: str, values: np.ndarray) -> InputDataError:
    """The error for NaN values in ``values`` (variable ``name`` of the block ``part``), naming file and position."""
    idx = np.argwhere(np.isnan(values))[0]
    dims = part[name].dims
    where = ", ".join(
        f"{d}={part[d].values[i] if d != 'time' else pd.Timestamp(part[d].values[i])}" for d, i in zip(dims, idx)
    )
    files = opened.files_at(part["time"].values[idx[0]]) or ["the sources"]
    return InputDataError(
        f"{', '.join(files)}: NaN values in {name} (first at {where}); fix the data or pass --allow-nan"
    )


def write_block(job: BlockJob, opened: OpenedSources) -> tuple[int, BlockPartial | None]:
    """Load the block's time steps from ``opened`` (its store steps ``job.start - job.offset ..`` unless
    ``job.first_time`` locates them) and write them; then record the block (with its moment sums, for a resume).
    Returns the decoded bytes written and, with a stats plan, the block's partial statistics and climatology sums
    (from the float32 values as written; None when the block is outside the stats period)."""
    cfg, ds = opened.cfg, opened.ds
    a, b = job.start, job.stop
    names = st.time_variables(ds)
    start = a - job.offset
    if job.first_time is not None:  # sources narrowed to the block's files: find step a in their own time axis
        start = int(np.searchsorted(ds["time"].values, job.first_time))
        if start >= ds.sizes["time"] or ds["time"].values[start] != job.first_time:
            raise WxemuError(f"internal error: {job.first_time} not found in the sources narrowed to block {job.index}")
    # no graph optimisation: a block's graph is a slice of one source chunk or two; fusing it cost more than it
    # saved (0.27 vs 0.30-0.42 s for the benchmark's 35 blocks)
    part = ds[names].isel(time=slice(start, start + b - a)).compute(scheduler=get_sync, optimize_graph=False)
    arrays = {n: np.asarray(part[n].values, dtype="f4") for n in names}  # what the store holds
    if not cfg.allow_nan:
        for n, values in arrays.items():
            if values.size and np.isnan(values.min()):  # min is NaN if any value is (one pass, no mask)
                raise nan_error(opened, part, n, values)
    if not cfg.allow_implausible:  # reliability: physically impossible values (data_catalog.plausibility)
        refuse_implausible(part, arrays, opened.spans)
    st.write_steps(cfg.out, arrays, a, storage_options=cfg.options)
    plan = job.stats_plan
    partial = block_partial(plan, arrays, part["time"].values, a) if plan is not None else None
    sp.mark_block_done(cfg.out, job.index, block_record(plan, partial), storage_options=cfg.options)
    return int(sum(v.nbytes for v in arrays.values())), partial


class OpenedSourcesCache:
    """The sources a cluster worker opened, by config JSON (at most ``size``): sent to every worker once per
    ingest (``client.scatter(..., broadcast=True)``), so each worker opens the files of its blocks once, and
    nothing outlives the ingest. Pickles empty."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._opened: dict[str, OpenedSources] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        return {"size": self.size}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["size"])

    def get(self, cfg_json: str) -> OpenedSources:
        with self._lock:
            found = self._opened.get(cfg_json)
        if found is None:
            found = open_sources(config_from_json(cfg_json))
            with self._lock:
                if len(self._opened) >= self.size:
                    self._opened.pop(next(iter(self._opened)))
                self._opened[cfg_json] = found
        return found


def write_block_on_worker(job: BlockJob, cache: OpenedSourcesCache) -> tuple[int, BlockPartial | None]:
    """:func:`write_block` on a dask worker: the sources of ``job.sources_json``, opened once per worker."""
    return write_block(job, cache.get(job.sources_json))
