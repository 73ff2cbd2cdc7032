"""`wxemu ingest`: sources (catalog entry or NetCDF/GRIB/Zarr files) -> the canonical Zarr store.

Orchestration only; the numerical parts live in ``stats``, ``climatology`` and ``regrid``, the reading and
mapping in ``readers``/``canonical``/``catalog``, the store layout in ``store``.

Steps (docs/ingest.md):

1. Resolve the sources, open them lazily and map them onto the canonical convention; combine files along time;
   validate everything (names, units, grid, time axis) before anything is written. A validation failure writes
   nothing. The sources are hashed (sha256 and size of every file) in the background meanwhile, and on while the
   regions are written (:class:`SourceChecksums`); the ingest waits for the checksums only to finish.
2. Create the store (metadata + coordinates + static fields) marked ``wxemu_complete=False`` with a plan
   (``wxemu_progress/plan.json``: fingerprints and time regions; a local file not hashed yet is named by its size
   and modification time, and the plan takes the checksums once they are known). A re-run of the same command on
   an incomplete store checks the fingerprints and skips the regions already recorded as written; changed inputs
   are refused.
3. Write the time regions (each a whole number of chunks): by default with a small thread pool in this process
   (the fastest single-machine path measured), or as tasks on dask.distributed (``--workers`` starts a
   LocalCluster, ``--scheduler`` uses an existing one, e.g. a dask-jobqueue SLURMCluster). A region is recorded
   as written only after its chunks are on disk. Each region writer also returns the partial sums of the
   statistics and (in the one-pass way) the climatology's bins over its block (:func:`block_partial`);
   :class:`PartialCombiner` adds them in time order, with the differences across block edges. The region's
   done-marker keeps its moment sums, so a resumed run reads two steps of each done region, not the region.
4. Finish the statistics from the combined sums and the climatology from the combined bins or, when they would
   not fit in memory or on a cluster, from the store (``store_climatology``: tasks of contiguous days; the same
   numbers); keep the period's moment sums (``wxemu_stats_sums``), write provenance, mark the store complete.

``--append`` extends a complete store with the times that follow its last one, writing only new chunks; it adds
the new regions' sums to the kept ones and redoes the climatology only for the days whose window holds a new day.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import hashlib
import itertools
import json
import os
import shlex
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import xarray as xr
from dask.local import (
    get_sync,  # the synchronous scheduler as a function: no dask.distributed import
)

from data_catalog import store as st
from data_catalog.catalog import is_catalog_name
from data_catalog.errors import ConfigError, InputDataError, WxemuError
from data_catalog.version import wxemu_version

#: How the climatology is made (IngestConfig.climatology_pass).
CLIMATOLOGY_PASSES = ("auto", "memory", "store")
#: Environment variable: simulate a crash after this many regions were written (for resume tests).
CRASH_ENV = "WXEMU_INGEST_CRASH_AFTER"


class SimulatedCrash(RuntimeError):
    """Raised by the crash hook (``$WXEMU_INGEST_CRASH_AFTER``) to simulate a killed ingest."""


@dataclass(frozen=True)
class IngestConfig:
    """Everything that determines the store's contents (the recipe) plus how to run it.

    sources: catalog entry names or file paths/globs/URLs (NetCDF, GRIB, Zarr). out: store path or URL.
    variables/levels/start/end: selection (canonical or source variable names; hPa; inclusive times).
    grid: target resolution in degrees for conservative regridding (None: keep the source grid).
    chunk_time: time steps per chunk. region_mb: decoded MB written per region (a whole number of chunks).
    load_mb: sources whose canonical data is at most this many MB are read into memory once; larger ones are
    written region by region along their own (file/chunk) boundaries so each source chunk is read once.
    stats_start/stats_end: period of the statistics and climatology (None: all times).
    climatology_window: smoothing window (days, odd). climatology_hour_step: keep the hours of day that are
    multiples of this (1: every hour present, WeatherBench2's default; 6: 0/6/12/18 UTC, 1/6 of the size).
    climatology_pass: how the climatology is made (same numbers either way): "memory" (its bins kept in this
    process while the data are written: one pass), "store" (after the data are written, read back from the store
    by tasks of contiguous days: bounded memory, on the cluster's workers), "auto" (memory when no cluster is used
    and the bins fit in half the available memory, else store).
    time_from/mapping/units/member/fmt: passed to the reader and the canonical mapping. allow_nan: accept NaN
    values (otherwise every region is checked as it is written, and the error names the file and the time).
    """

    sources: tuple[str, ...]
    out: str
    variables: tuple[str, ...] | None = None
    levels: tuple[int, ...] | None = None
    start: str | None = None
    end: str | None = None
    grid: float | None = None
    chunk_time: int = 1
    region_mb: float = 64.0
    load_mb: float = 64.0
    stats_start: str | None = None
    stats_end: str | None = None
    climatology_window: int = 61
    climatology_hour_step: int = 1
    climatology_pass: str = "auto"
    time_from: tuple[tuple[str, str], ...] | None = None
    mapping: tuple[tuple[str, str], ...] | None = None
    units: tuple[tuple[str, str], ...] | None = None
    member: int | None = None
    fmt: str | None = None
    allow_nan: bool = False
    storage_options: tuple[tuple[str, Any], ...] | None = None
    # how to run (not part of the recipe)
    append: bool = False
    overwrite: bool = False
    scheduler: str | None = None
    workers: int | None = None
    threads: int = 2
    cluster_processes: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("ingest: no SOURCE given")
        if self.chunk_time < 1:
            raise ConfigError(f"ingest: --chunk-time must be >= 1, got {self.chunk_time}")
        if self.grid is not None and self.grid <= 0:
            raise ConfigError(f"ingest: --grid must be a positive resolution in degrees, got {self.grid}")
        if self.append and self.overwrite:
            raise ConfigError("ingest: --append and --overwrite exclude each other")
        if self.scheduler and self.workers:
            raise ConfigError("ingest: give --scheduler (an existing cluster) or --workers (a local one), not both")
        if not 1 <= self.climatology_hour_step <= 24:
            raise ConfigError(f"ingest: --climatology-hour-step must be 1..24, got {self.climatology_hour_step}")
        if self.climatology_pass not in CLIMATOLOGY_PASSES:
            raise ConfigError(
                f"ingest: --climatology-pass must be one of {', '.join(CLIMATOLOGY_PASSES)}, "
                f"got {self.climatology_pass!r}"
            )
        if self.climatology_window < 1 or self.climatology_window % 2 == 0:
            raise ConfigError(
                f"ingest: --climatology-window must be a positive odd number of days, got {self.climatology_window}"
            )

    def recipe(self) -> dict[str, Any]:
        """The fields that determine the data (JSON-able), with the equivalent command line."""
        keys = (
            "sources",
            "variables",
            "levels",
            "start",
            "end",
            "grid",
            "chunk_time",
            "stats_start",
            "stats_end",
            "climatology_window",
            "climatology_hour_step",
            "time_from",
            "mapping",
            "units",
            "member",
            "fmt",
            "allow_nan",
        )
        out = {k: _jsonable(getattr(self, k)) for k in keys}
        out["command"] = self.command()
        return out

    def command(self) -> str:
        """An equivalent ``wxemu ingest`` command line."""
        argv = ["wxemu", "ingest", *self.sources, "--out", self.out]
        flag = {
            "variables": "--variables",
            "levels": "--levels",
            "start": "--start",
            "end": "--end",
            "grid": "--grid",
            "stats_start": "--stats-start",
            "stats_end": "--stats-end",
            "member": "--member",
            "fmt": "--format",
        }
        for key, opt in flag.items():
            value = getattr(self, key)
            if value is None:
                continue
            argv += [opt, ",".join(map(str, value)) if isinstance(value, tuple) else str(value)]
        for key, opt in (("time_from", "--time-from"), ("mapping", "--mapping"), ("units", "--units")):
            for k, v in getattr(self, key) or ():
                argv += [opt, f"{k}={v}"]
        if self.chunk_time != 1:
            argv += ["--chunk-time", str(self.chunk_time)]
        if self.climatology_window != 61:
            argv += ["--climatology-window", str(self.climatology_window)]
        if self.climatology_hour_step != 1:
            argv += ["--climatology-hour-step", str(self.climatology_hour_step)]
        if self.allow_nan:
            argv.append("--allow-nan")
        if self.append:
            argv.append("--append")
        return shlex.join(argv)

    @property
    def options(self) -> dict[str, Any] | None:
        return dict(self.storage_options) if self.storage_options else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): v for k, v in value}
        return list(value)
    return value


@dataclass
class IngestResult:
    """What an ingest did: the store, how many regions it wrote now, and how many were already there."""

    out: str
    n_times: int
    regions_written: int
    regions_skipped: int
    sources: list[dict[str, Any]] = field(default_factory=list)
    status: str = "written"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (fingerprint, open, write, ...)


# ------------------------------------------------------------------------------------------------- sources
def file_fingerprint(path: str, storage_options: dict | None = None) -> dict[str, Any]:
    """{path, sha256, bytes} of a file; of a local directory (a Zarr store): sha256 over its sorted
    (relative path, size, sha256 of metadata files) listing, and the total bytes. A remote Zarr store is not
    listed (ARCO-ERA5 holds millions of chunks: a listing, and a size request per key, would take hours): its
    sha256 is that of its consolidated metadata (``.zmetadata``, else the v3 root ``zarr.json``; named under
    ``hashed``) and ``bytes`` is None."""
    fs, fpath = fsspec.core.url_to_fs(path, **(storage_options or {}))
    if "://" in path and not path.startswith("file://"):
        for meta in (".zmetadata", "zarr.json"):  # v2 consolidated metadata, else the v3 root (consolidated)
            key = f"{fpath.rstrip('/')}/{meta}"
            if fs.exists(key):
                return {
                    "path": path,
                    "sha256": hashlib.sha256(fs.cat_file(key)).hexdigest(),
                    "bytes": None,
                    "hashed": meta,
                }
    try:
        if fs.isdir(fpath):
            h = hashlib.sha256()
            total = 0
            for key in sorted(fs.find(fpath)):
                size = int(fs.size(key))
                rel = key[len(fpath) :].lstrip("/")
                h.update(f"{rel}\0{size}\0".encode())
                if rel.rsplit("/", 1)[-1] in ("zarr.json", ".zarray", ".zattrs", ".zgroup", ".zmetadata"):
                    h.update(fs.cat_file(key))
                total += size
            return {"path": path, "sha256": h.hexdigest(), "bytes": total}
        with fs.open(fpath, "rb") as f:
            if hasattr(hashlib, "file_digest"):  # Python >= 3.11: reads into one buffer, hashes without the GIL
                h = hashlib.file_digest(f, "sha256")
            else:  # pragma: no cover - Python 3.10
                h = hashlib.sha256()
                while block := f.read(8 * 2**20):
                    h.update(block)
            total = f.tell()
        return {"path": path, "sha256": h.hexdigest(), "bytes": total}
    except FileNotFoundError:
        raise InputDataError(f"{path}: no such file") from None


def stat_fingerprint(path: str) -> dict[str, Any] | None:
    """{path, bytes, mtime_ns} of a local regular file (one stat, nothing read); None for anything else (a
    directory such as a Zarr store, a remote object, a missing file)."""
    local = path[len("file://") :] if path.startswith("file://") else path
    if "://" in local:
        return None
    try:
        info = os.stat(local)
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return {"path": path, "bytes": info.st_size, "mtime_ns": info.st_mtime_ns}


class _Cancelled(Exception):
    """The background checksums were stopped (the ingest failed before needing them)."""


class SourceChecksums:
    """The sources' fingerprints (provenance, resume checks), computed beside the ingest instead of before it.

    Every source is hashed (sha256) in the background from the start, on ``cfg.threads - 1`` threads or as tasks
    on the cluster (:func:`_fingerprint`), while the sources are opened and validated and then while the regions
    are written: an archive that takes hours to hash no longer delays the first write by hours. Until its sha256
    is known, a local file is identified in the plan by its size and modification time (:meth:`for_plan`, what
    make and rsync go by); the plan is rewritten with the checksums as soon as they are known
    (:meth:`update_plan`), so a resume after that compares checksums. When a source is not a local file (a
    directory, a remote object), every fingerprint is waited for before the plan is written. :meth:`result` waits for
    every checksum and refuses a local file whose size or modification time changed meanwhile (rewritten while it
    was being read: the store could hold parts of both versions)."""

    def __init__(
        self, cfg: IngestConfig, paths: Sequence[str], on_done: Callable[[], None], client: Any = None
    ) -> None:
        self.cfg, self.paths = cfg, list(paths)
        self.stats = [stat_fingerprint(p) for p in self.paths]
        self._stop = False
        self._planned = False  # the plan holds the checksums

        def done_one() -> None:
            if self._stop:
                raise _Cancelled()
            on_done()

        def run() -> list[dict[str, Any]]:
            t0 = time.perf_counter()
            try:
                return _fingerprint(cfg, self.paths, done_one, client)
            finally:
                self.seconds = time.perf_counter() - t0

        self.seconds: float | None = None  # how long the hashing took, once done
        pool = ThreadPoolExecutor(max_workers=1)
        self._future = pool.submit(run)
        pool.shutdown(wait=False)

    def done(self) -> bool:
        return self._future.done()

    def stop(self) -> None:
        """Stop hashing after the current file (nothing will need the checksums: the ingest failed)."""
        self._stop = True

    def for_plan(self) -> list[dict[str, Any]]:
        """What the plan records before the first write: the checksums if they are known (or a source is not a
        local file), else each file's size and modification time."""
        if self.done() or any(s is None for s in self.stats):
            self._planned = True
            return self.result()
        return [dict(s) for s in self.stats]

    def update_plan(self, plan: dict[str, Any]) -> None:
        """Rewrite the plan (of the store being written) with the checksums once they are known; once."""
        if not self._planned and self.done() and self._future.exception() is None:
            st.write_plan(self.cfg.out, {**plan, "sources": self.result()}, storage_options=self.cfg.options)
            self._planned = True

    def region_hook(self, plan: dict[str, Any], after_region: Callable[[int], None] | None) -> Callable[[int], None]:
        """The callback after each region written (in this process): :meth:`update_plan` with ``plan``, then
        ``after_region(n_done)`` (the resume tests' crash hook)."""

        def hook(n_done: int) -> None:
            self.update_plan(plan)
            if after_region:
                after_region(n_done)

        return hook

    def matching(self, planned: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """This run's fingerprints in the form of ``planned`` (an interrupted run's plan): checksums when it holds
        them (waited for), else sizes and modification times."""
        if planned and all("sha256" in s for s in planned):
            return self.result()
        return [dict(s) if s is not None else {"path": p} for p, s in zip(self.paths, self.stats)]

    def result(self) -> list[dict[str, Any]]:
        sources = self._future.result()
        for before in self.stats:
            if before is not None and stat_fingerprint(before["path"]) != before:
                raise InputDataError(
                    f"{before['path']}: changed while it was being ingested (its size or "
                    "modification time differs); run the command again"
                )
        return sources


def resolve_sources(cfg: IngestConfig) -> list[str]:
    """The concrete files/stores behind the SOURCE arguments (catalog entries resolved, globs expanded)."""
    from data_catalog.readers import apply_url_map, expand_paths

    paths: list[str] = []
    for source in cfg.sources:
        if is_catalog_name(source):
            from data_catalog.catalog import load_catalog

            catalog = load_catalog()
            location = catalog.location(source)
            entry = catalog.get(source)
            if "{date" in location:
                t0 = cfg.start or (entry.time.start if entry.time else None)
                t1 = cfg.end or (entry.time.end if entry.time else None)
                freq = entry.time.file_frequency if entry.time and entry.time.file_frequency else "D"
                paths += expand_paths(
                    [location],
                    start=t0,
                    end=t1,
                    freq=freq,
                    storage_options={**entry.storage_options, **(cfg.options or {})} or None,
                )
            else:
                paths.append(apply_url_map(location))
        else:
            paths += expand_paths([source], storage_options=cfg.options)
    return list(dict.fromkeys(paths))


def _open_one(cfg: IngestConfig, path: str) -> xr.Dataset:
    from data_catalog.canonical import to_canonical
    from data_catalog.readers import open_source

    raw = open_source(path, cfg.fmt, storage_options=cfg.options)
    ds = to_canonical(
        raw,
        source=path,
        mapping=dict(cfg.mapping) if cfg.mapping else None,
        variables=list(cfg.variables) if cfg.variables else None,
        levels=list(cfg.levels) if cfg.levels else None,
        start=None,
        end=None,
        allow_nan=True,  # NaNs are checked on the values as they are written (one read)
        time_from=dict(cfg.time_from) if cfg.time_from else None,
        units=dict(cfg.units) if cfg.units else None,
        ensemble=cfg.member is not None,
    )
    return _select_member(ds, cfg.member, path)


def _select_member(ds: xr.Dataset, member: int | None, source: str) -> xr.Dataset:
    if member is None:
        return ds
    if "number" not in ds.dims:
        raise InputDataError(f"{source}: --member {member} given but the source is not an ensemble")
    members = ds["number"].values.tolist()
    if member not in members:
        raise InputDataError(f"{source}: member {member} not found; the source has members {members}")
    return ds.sel(number=member, drop=True)


def _open_entry(cfg: IngestConfig, name: str) -> xr.Dataset:
    from data_catalog.catalog import get_entry, open_dataset

    entry = get_entry(name)
    if entry.kind == "forecast":
        raise InputDataError(f"catalog entry {name!r} is a forecast; `wxemu ingest` writes analysis stores")
    ds = open_dataset(
        name,
        variables=list(cfg.variables) if cfg.variables else None,
        levels=list(cfg.levels) if cfg.levels else None,
        start=cfg.start,
        end=cfg.end,
        storage_options=cfg.options,
        allow_nan=True,
    )  # NaNs checked while writing
    if "number" in ds.dims and cfg.member is None:
        raise InputDataError(
            f"catalog entry {name!r}: an ensemble of {ds.sizes['number']} members; "
            "choose one with --member N (the canonical analysis store holds one member)"
        )
    return _select_member(ds, cfg.member, f"catalog entry {name!r}")


def _check_same_grid(a: xr.Dataset, b: xr.Dataset, name_a: str, name_b: str) -> None:
    for coord in ("latitude", "longitude", "level"):
        in_a, in_b = coord in a.coords, coord in b.coords
        if in_a != in_b or (
            in_a and (a[coord].size != b[coord].size or not np.allclose(a[coord].values, b[coord].values))
        ):
            raise InputDataError(
                f"{name_b}: its {coord} axis differs from that of {name_a}; all sources must "
                "share one grid and level set (use --grid/--levels)"
            )


def combine_sources(parts: Sequence[tuple[str, xr.Dataset]], cfg: IngestConfig) -> xr.Dataset:
    """Combine canonical datasets: files with the same variables are concatenated along time (sorted by their
    first time), groups of different variables merged; then select start..end and require one regular time axis
    without duplicates (naming the files involved)."""
    from data_catalog.canonical import check_time_axis

    groups: dict[tuple[str, ...], list[tuple[str, xr.Dataset]]] = {}
    for name, ds in parts:
        groups.setdefault(tuple(sorted(map(str, ds.data_vars))), []).append((name, ds))
    first_name, first = parts[0]
    merged: list[xr.Dataset] = []
    for members in groups.values():
        for name, ds in members:
            _check_same_grid(first, ds, first_name, name)
        timed = [m for m in members if "time" in m[1].dims]
        if len(timed) > 1:
            timed.sort(key=lambda m: m[1]["time"].values[0])
            all_times = np.concatenate([m[1]["time"].values for m in timed])
            owners = np.concatenate([[i] * m[1].sizes["time"] for i, m in enumerate(timed)])
            uniq, counts = np.unique(all_times, return_counts=True)
            if (counts > 1).any():
                t = uniq[counts > 1][0]
                who = sorted({timed[o][0] for o in owners[all_times == t]})
                raise InputDataError(f"{', '.join(who)}: duplicated time {pd.Timestamp(t)} in more than one file")
            ds = xr.concat(
                [m[1] for m in timed],
                dim="time",
                data_vars="minimal",
                coords="minimal",
                compat="override",
                join="override",
                combine_attrs="override",
            )
        else:
            ds = members[0][1]
        merged.append(ds)
    try:
        ds = (
            xr.merge(merged, join="outer", compat="override", combine_attrs="override")
            if len(merged) > 1
            else merged[0]
        )
    except ValueError as exc:
        raise InputDataError(f"{', '.join(n for n, _ in parts)}: the sources cannot be merged ({exc})") from None
    names = ", ".join(n for n, _ in parts)
    if "time" not in ds.dims:
        raise InputDataError(f"{names}: no time axis; an analysis store needs times")
    if cfg.start is not None or cfg.end is not None:
        ds = ds.sel(
            time=slice(pd.Timestamp(cfg.start) if cfg.start else None, pd.Timestamp(cfg.end) if cfg.end else None)
        )
        if ds.sizes["time"] == 0:
            raise InputDataError(f"{names}: no times between {cfg.start} and {cfg.end}")
    if len(merged) > 1 and any(ds[v].isnull().any() for v in st.time_variables(ds) if ds[v].size < 2**24):
        raise InputDataError(f"{names}: the sources' variables cover different times (NaN after merging)")
    check_time_axis(pd.DatetimeIndex(ds["time"].values), names, regular=True)
    return ds


def _dims_ok(ds: xr.Dataset, names: str) -> None:
    for v in ds.data_vars:
        extra = [d for d in ds[v].dims if d not in ("time", "level", "latitude", "longitude")]
        if extra:
            raise InputDataError(
                f"{names}: variable {v!r} has dimensions {extra} that the canonical analysis store "
                "lacks (an ensemble: choose --member N)"
            )


#: {config JSON: [(source name, first time, last time)]}: which file a time came from, for error messages
_SPANS: dict[str, list[tuple[str, np.datetime64, np.datetime64]]] = {}
#: {config JSON: [(source name, its variables, has a time axis)]}: which files a region on a worker needs
_PARTS: dict[str, list[tuple[str, tuple[str, ...], bool]]] = {}


#: Called with each source's name as :func:`build_dataset` opens it (the ingest's progress display), in this context
_ON_OPEN: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("wxemu_on_open", default=None)


@lru_cache(maxsize=4)
def _build_dataset_cached(cfg_json: str) -> xr.Dataset:
    return build_dataset(config_from_json(cfg_json))


def build_dataset(cfg: IngestConfig) -> xr.Dataset:
    """The lazy canonical dataset the store will hold (validated; regridded when ``cfg.grid``)."""
    parts: list[tuple[str, xr.Dataset]] = []
    on_open = _ON_OPEN.get() or (lambda name: None)
    for source in cfg.sources:
        if is_catalog_name(source):
            parts.append((f"catalog entry {source!r}", _open_entry(cfg, source)))
            on_open(source)
        else:
            from data_catalog.readers import expand_paths

            for path in expand_paths([source], storage_options=cfg.options):
                parts.append((path, _open_one(cfg, path)))
                on_open(path)
    ds = combine_sources(parts, cfg)
    names = ", ".join(n for n, _ in parts)
    _SPANS[config_to_json(cfg)] = [(n, p["time"].values[0], p["time"].values[-1]) for n, p in parts if "time" in p.dims]
    _PARTS[config_to_json(cfg)] = [(n, tuple(sorted(map(str, p.data_vars))), "time" in p.dims) for n, p in parts]
    _dims_ok(ds, names)
    if cfg.grid is not None:
        from data_catalog.regrid import regrid_dataset

        ds = regrid_dataset(ds, cfg.grid)
    ds.attrs = {k: v for k, v in ds.attrs.items() if k in ("Conventions", "licence", "attribution", "regridding")}
    if ds.nbytes <= cfg.load_mb * 1e6:
        ds = ds.load()  # small: read every source once (a GRIB file is one dask chunk: re-reading it is slow)
    return ds


def config_to_json(cfg: IngestConfig) -> str:
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)


def config_from_json(text: str) -> IngestConfig:
    raw = json.loads(text)
    for key in ("sources", "variables", "levels"):
        if raw.get(key) is not None:
            raw[key] = tuple(raw[key])
    for key in ("time_from", "mapping", "units", "storage_options"):
        if raw.get(key) is not None:
            raw[key] = tuple(tuple(kv) for kv in raw[key])
    return IngestConfig(**raw)


# ------------------------------------------------------------------------------------------------- regions
def plan_regions(
    start: int, stop: int, chunk_time: int, steps_per_region: int, source_bounds: Sequence[int] | None = None
) -> list[tuple[int, int]]:
    """[(a, b), ...] store time-index regions covering start..stop.

    Boundaries fall on multiples of ``chunk_time`` (so concurrent regions never share a chunk). With
    ``source_bounds`` (store indices where a source chunk or file begins, rounded down to a chunk boundary),
    consecutive source chunks are grouped into regions of at most ``steps_per_region`` steps, cut only where a
    source chunk begins, so each lazily read source chunk is read by one region (daily files of 24 steps and
    150-step regions: six files a region, not one); a source chunk longer than that is cut every
    ``steps_per_region`` steps. Without them, regions are ``steps_per_region`` steps long.
    """
    per = max(chunk_time, steps_per_region - steps_per_region % chunk_time)
    seams = sorted({b - b % chunk_time for b in source_bounds or () if start < b - b % chunk_time < stop})
    edges = [start]
    for seg_start, seg_stop in itertools.pairwise([start, *seams, stop]):
        if seg_stop - edges[-1] > per and edges[-1] < seg_start:  # this source chunk does not fit: cut before it
            edges.append(seg_start)
        while seg_stop - edges[-1] > per:  # a source chunk longer than a region: cut it (on the chunk grid)
            cut = edges[-1] + per
            edges.append(cut - cut % chunk_time)
    edges.append(stop)
    return [(a, b) for a, b in itertools.pairwise(edges) if b > a]


def _source_bounds(ds: xr.Dataset, offset: int) -> list[int] | None:
    """Store indices where the lazy dataset's time chunks begin (None when it is in memory)."""
    names = st.time_variables(ds)
    if not names or ds[names[0]].chunks is None:
        return None
    return [offset + int(b) for b in np.cumsum((0,) + ds[names[0]].chunks[0])[1:-1]]


def _nan_error(cfg_json: str, part: xr.Dataset, name: str, values: np.ndarray) -> InputDataError:
    idx = np.argwhere(np.isnan(values))[0]
    dims = part[name].dims
    where = ", ".join(
        f"{d}={part[d].values[i] if d != 'time' else pd.Timestamp(part[d].values[i])}" for d, i in zip(dims, idx)
    )
    t = part["time"].values[idx[0]]
    files = [n for n, a, b in _SPANS.get(cfg_json, []) if a <= t <= b] or ["the sources"]
    return InputDataError(
        f"{', '.join(files)}: NaN values in {name} (first at {where}); fix the data or pass --allow-nan"
    )


def _steps_per_region(ds: xr.Dataset, region_mb: float, chunk_time: int) -> int:
    per_step = sum(ds[v].dtype.itemsize * ds[v].size // max(1, ds.sizes["time"]) for v in st.time_variables(ds))
    n = max(1, int(region_mb * 1e6 // max(1, per_step)))
    return max(chunk_time, n - n % chunk_time)


def region_config(cfg_json: str, a: int, b: int, offset: int = 0) -> tuple[str, np.datetime64 | None]:
    """(config JSON, time of store step ``a``) for writing region a..b on a cluster worker: the sources narrowed to
    the files whose times meet the region (plus any without time), so that a worker opens the one or two files
    of its regions rather than every source (each worker rebuilds its dataset: with thousands of files that was
    every worker opening all of them). The full config (and None) when that is not safe: catalog entries, or
    sources of different variables (their files need not share boundaries), or when every file is needed."""
    narrowable = _narrowable_sources(cfg_json)
    if narrowable is None:
        return cfg_json, None
    cfg, parts, spans, times = narrowable
    t_a, t_b = times[a - offset], times[b - 1 - offset]
    keep = [
        name
        for name, _, timed in parts
        if not timed or (name in spans and spans[name][0] <= t_b and spans[name][1] >= t_a)
    ]
    if len(keep) == len(parts):
        return cfg_json, None
    return config_to_json(dataclasses.replace(cfg, sources=tuple(keep))), t_a


@lru_cache(maxsize=4)
def _narrowable_sources(cfg_json: str) -> tuple[IngestConfig, list, dict, np.ndarray] | None:
    """(config, parts, {source: (first, last time)}, times) for :func:`region_config`, once per config (not per
    region); None when its sources cannot be narrowed (catalog entries, several variable groups)."""
    cfg = config_from_json(cfg_json)
    parts = _PARTS.get(cfg_json)
    if not parts or any(is_catalog_name(s) for s in cfg.sources):
        return None
    if len({variables for _, variables, timed in parts if timed}) != 1:
        return None
    spans = {name: (t0, t1) for name, t0, t1 in _SPANS.get(cfg_json, [])}
    return cfg, parts, spans, _build_dataset_cached(cfg_json)["time"].values


def write_one_region(
    cfg_json: str,
    index: int,
    a: int,
    b: int,
    offset: int = 0,
    plan: StatsPlan | None = None,
    first_time: np.datetime64 | None = None,
) -> tuple[int, BlockPartial | None]:
    """Load store time steps a..b (dataset steps a-offset..b-offset) of the canonical dataset and write them;
    then record the region (with its moment sums, for a resume). Runs in a thread or on a dask worker (the lazy
    dataset is rebuilt from the config, cached per process). Returns the decoded bytes written and, with a
    ``plan``, the region's partial statistics and climatology sums (from the float32 values as written; None when
    the region is outside the stats period).
    ``first_time``: the time of step ``a`` when ``cfg_json`` holds only the region's files (:func:`region_config`).
    """
    cfg = config_from_json(cfg_json)
    ds = _build_dataset_cached(cfg_json)
    names = st.time_variables(ds)
    start = a - offset
    if first_time is not None:  # a config narrowed to the region's files: find step a in its own time axis
        start = int(np.searchsorted(ds["time"].values, first_time))
        if start >= ds.sizes["time"] or ds["time"].values[start] != first_time:
            raise WxemuError(f"internal error: {first_time} not found in the sources narrowed to region {index}")
    # no graph optimisation: a region's graph is a slice of one source chunk or two; fusing it cost more than it
    # saved (0.27 vs 0.30-0.42 s for the benchmark's 35 regions)
    part = ds[names].isel(time=slice(start, start + b - a)).compute(scheduler=get_sync, optimize_graph=False)
    arrays = {n: np.asarray(part[n].values, dtype="f4") for n in names}  # what the store holds
    if not cfg.allow_nan:
        for n, values in arrays.items():
            if values.size and np.isnan(values.min()):  # min is NaN if any value is (one pass, no mask)
                raise _nan_error(cfg_json, part, n, values)
    st.write_region(cfg.out, arrays, a, storage_options=cfg.options)
    partial = block_partial(plan, arrays, part["time"].values, a) if plan is not None else None
    st.mark_region_done(cfg.out, index, _region_record(plan, partial), storage_options=cfg.options)
    return int(sum(v.nbytes for v in arrays.values())), partial


# ------------------------------------------------------------------------------------------------- statistics
@dataclass(frozen=True)
class StatsPlan:
    """What the region writers accumulate for the statistics and the climatology (picklable: sent to workers).

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
    from data_catalog.climatology import ClimatologyAccumulator
    from data_catalog.stats import block_sums

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
    from data_catalog.stats import first_step_shift

    p0, p1 = _period_indices(cfg, times, source)
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


def _period_indices(cfg: IngestConfig, times: np.ndarray, source: str) -> tuple[int, int]:
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
    p0, p1 = _period_indices(cfg, times, source)
    index = pd.DatetimeIndex(times[p0:p1])
    hours = np.asarray(index.hour)
    keep = hours % cfg.climatology_hour_step == 0
    _, counts = np.unique(np.asarray(index.day_of_year)[keep] * 24 + hours[keep], return_counts=True)
    return int(bytes_per_step * ((counts == 1).sum() + 2 * (counts > 1).sum()))


def _available_memory() -> int:
    import psutil

    return int(psutil.virtual_memory().available)


def climatology_in_memory(
    cfg: IngestConfig, times: np.ndarray, bytes_per_step: int, source: str, *, clustered: bool
) -> bool:
    """Whether the region writers keep the climatology's bins in memory (one pass) or the climatology is made
    from the store afterwards (``cfg.climatology_pass``; see the module docstring). "auto" keeps them in memory
    when no cluster is used and they fit in half the memory available now; "memory" is refused, before
    anything is written, when they do not."""
    if cfg.climatology_pass == "store":
        return False
    need = climatology_bins_bytes(cfg, times, bytes_per_step, source)
    have = _available_memory()
    fits = need <= 0.5 * have
    if cfg.climatology_pass == "memory" and not fits:
        raise WxemuError(
            f"{cfg.out}: --climatology-pass memory would keep {need / 1e9:.1f} GB of (day of year, "
            f"hour) sums in memory and {have / 1e9:.1f} GB are available (at most half is used); use "
            "--climatology-pass store (or auto), a coarser --climatology-hour-step or a shorter "
            "--stats-start/--stats-end period"
        )
    return fits and (cfg.climatology_pass == "memory" or not clustered)


def _bytes_per_step(ds: xr.Dataset) -> int:
    """Float32 bytes of one time step of every time-dependent variable (as the store holds them)."""
    return int(sum(4 * ds[v].size // max(1, ds.sizes["time"]) for v in st.time_variables(ds)))


class PartialCombiner:
    """Adds block partials in store time order (so the float64 sums do not depend on which region finished first,
    and a resumed run gives the same numbers as an uninterrupted one). ``units``: the starts of every block
    that will be offered (regions and read-back blocks); :meth:`offer` may be called in any order."""

    def __init__(self, plan: StatsPlan, units: Sequence[int]) -> None:
        from data_catalog.climatology import ClimatologyAccumulator

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
        from data_catalog.stats import boundary_sums

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
) -> None:
    """Feed the combiner the partials of store blocks already on disk (regions written by an interrupted run,
    the existing part of an appended store's stats period): read back once with zarr, never re-written."""
    for a, b in units:
        lo, hi = max(a, combiner.plan.p0), min(b, combiner.plan.p1)
        if lo >= hi:
            combiner.offer(a, None)
            continue
        arrays = st.read_region(cfg.out, names, lo, hi, storage_options=cfg.options)
        combiner.offer(a, block_partial(combiner.plan, arrays, times[lo:hi], lo))


def _region_record(plan: StatsPlan | None, partial: BlockPartial | None) -> dict[str, Any]:
    """What a region's done-marker keeps: its partial's moment sums and extent (a resume needs nothing else of it
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
    cfg: IngestConfig, plan: StatsPlan, units: Sequence[tuple[int, int, int]], times: np.ndarray, names: Sequence[str]
) -> list[tuple[int, BlockPartial | None]] | None:
    """[(a, partial)] of the regions ``units`` [(index, a, b)] already written, from their done-markers' moment sums
    and their first and last steps (two steps read per region, not the region); None when a marker lacks the sums
    (written by an older wxemu): then the regions are read back. Their climatology bins are not kept: a run that
    uses these makes the climatology from the store."""
    from data_catalog.climatology import ClimatologyAccumulator
    from data_catalog.stats import MomentSums

    records = [(a, st.region_record(cfg.out, i, storage_options=cfg.options)) for i, a, _ in units]
    if any(rec is None or "partial" not in rec for _, rec in records):
        return None
    out = []
    for a, rec in records:
        p = rec["partial"]
        if p is None:
            out.append((a, None))
            continue
        lo, hi = int(p["start"]), int(p["stop"])
        first = st.read_region(cfg.out, names, lo, lo + 1, storage_options=cfg.options)
        last = first if hi - lo == 1 else st.read_region(cfg.out, names, hi - 1, hi, storage_options=cfg.options)
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


# ------------------------------------------------------------------------------------------------- running
def _crash_hook_from_env() -> Callable[[int], None] | None:
    value = os.environ.get(CRASH_ENV)
    if not value:
        return None
    limit = int(value)

    def hook(done: int) -> None:
        if done >= limit:
            raise SimulatedCrash(f"simulated crash after {done} regions (${CRASH_ENV}={limit})")

    return hook


def _progress(enabled: bool, total: int, description: str, unit: str = "regions"):
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=False,
    )
    task = progress.add_task(description, total=total)
    return progress, task


@contextlib.contextmanager
def _dask_client(cfg: IngestConfig):
    """A dask.distributed Client for ``--scheduler``/``--workers`` (a LocalCluster of single-threaded worker
    processes), None for the default thread pool; closed (and the local cluster stopped) on exit."""
    if not (cfg.scheduler or cfg.workers):
        yield None
        return
    import dask
    from dask.distributed import Client, LocalCluster

    cluster = None
    if cfg.scheduler:
        client = Client(cfg.scheduler)
    else:
        # dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers: every region- or field-sized buffer is
        # then handed back to the OS when freed and faulted in again when the next is made, which measured 1.8x
        # slower per climatology task here; the ingest's buffers are short-lived, so glibc's default is kept
        with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            cluster = LocalCluster(
                n_workers=cfg.workers, threads_per_worker=1, processes=cfg.cluster_processes, dashboard_address=None
            )
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _parallelism(cfg: IngestConfig, client: Any) -> int:
    return max(1, sum(client.nthreads().values())) if client is not None else max(1, cfg.threads)


def _run_tasks(
    cfg: IngestConfig,
    client: Any,
    calls: Sequence[tuple[Any, Callable, tuple]],
    on_result: Callable[[Any, Any], None],
    description: str,
    unit: str,
) -> int:
    """Run ``calls`` [(key, fn, args)] on the cluster (``client``) or on ``cfg.threads`` threads, at most two per
    thread queued at once; ``on_result(key, result)`` in this process as each finishes. Returns how many ran.
    The first failure cancels the rest and is raised."""
    if not calls:
        return 0
    progress, task = _progress(cfg.progress, len(calls), description, unit)
    done = 0
    with progress:
        if client is not None:
            from dask.distributed import as_completed

            futures = {client.submit(fn, *args, pure=False): key for key, fn, args in calls}
            try:
                for fut in as_completed(futures):
                    on_result(futures[fut], fut.result())
                    done += 1
                    progress.advance(task)
            except BaseException:
                client.cancel(list(futures))
                raise
            return done
        threads = max(1, cfg.threads)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            pending: set = set()
            keys: dict[Any, Any] = {}
            queue = list(calls)
            try:
                while queue or pending:
                    while queue and len(pending) < 2 * threads:
                        key, fn, args = queue.pop(0)
                        fut = pool.submit(fn, *args)
                        keys[fut] = key
                        pending.add(fut)
                    finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for fut in finished:
                        on_result(keys.pop(fut), fut.result())
                        done += 1
                        progress.advance(task)
            except BaseException:
                for fut in pending:
                    fut.cancel()
                raise
    return done


def _run_regions(
    cfg: IngestConfig,
    cfg_json: str,
    todo: list[tuple[int, int, int]],
    after_region: Callable[[int], None] | None,
    offset: int = 0,
    combiner: PartialCombiner | None = None,
    client: Any = None,
) -> int:
    """Write the regions ``todo`` [(index, a, b)]; return how many were written. ``after_region(n_done)`` is
    called after each (the crash hook of the resume tests). Each region's partial sums (computed by the writer
    from the block it holds) go to ``combiner``, keyed by the region's start."""
    plan = combiner.plan if combiner is not None else None
    done = 0

    def on_result(a: int, result: tuple[int, BlockPartial | None]) -> None:
        nonlocal done
        if combiner is not None:
            combiner.offer(a, result[1])
        done += 1
        if after_region:
            after_region(done)

    calls = []
    for i, a, b in todo:  # on a cluster each task names only its region's files (each worker opens its own)
        job, first_time = region_config(cfg_json, a, b, offset) if client is not None else (cfg_json, None)
        calls.append((a, write_one_region, (job, i, a, b, offset, plan, first_time)))
    return _run_tasks(cfg, client, calls, on_result, "write", "regions")


def _fingerprint(
    cfg: IngestConfig, paths: Sequence[str] | None = None, on_done: Callable[[], None] | None = None, client: Any = None
) -> list[dict[str, Any]]:
    """The fingerprints of ``paths`` (default: the sources), in order: on the cluster's workers when there is a
    ``client`` (a TB-scale archive is hashed by every node at once), else on ``cfg.threads - 1`` threads (sha256
    releases the GIL; one core is left to the opening, validation and writes that run meanwhile: on 2 cores a
    second hashing thread only slowed the opening; a node with more cores and a parallel file system hashes a
    large archive that many times faster). ``on_done()`` after each file (progress)."""
    paths = resolve_sources(cfg) if paths is None else paths
    if client is not None and paths:
        from dask.distributed import as_completed

        futures = client.map(file_fingerprint, list(paths), storage_options=cfg.options, pure=False)
        for _ in as_completed(futures):
            if on_done is not None:
                on_done()
        return client.gather(futures)

    def one(path: str) -> dict[str, Any]:
        fp = file_fingerprint(path, cfg.options)
        if on_done is not None:
            on_done()
        return fp

    threads = min(len(paths), cfg.threads - 1)
    if threads <= 1:
        return [one(p) for p in paths]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(one, paths))  # a failure (or a stop) cancels the files not started


class _HashProgress:
    """Counts the files hashed (called by the hashing thread) and advances the progress display attached at the
    time: the opening's, then, if the hashing outlasts it, one of its own (:func:`_await_checksums`)."""

    def __init__(self) -> None:
        self.done = 0
        self.shown = 0  # files the last display had shown when it was detached
        self._show: Callable[[], None] | None = None
        self._lock = threading.Lock()  # counting and showing move together

    def __call__(self) -> None:
        with self._lock:
            self.done += 1
            if self._show is not None:
                self._show()

    @contextlib.contextmanager
    def attached(self, progress: Any, task: Any):
        with self._lock:
            progress.update(task, completed=self.done)
            self._show = lambda: progress.advance(task)
        try:
            yield
        finally:
            with self._lock:
                self._show, self.shown = None, self.done


@contextlib.contextmanager
def _source_progress(cfg: IngestConfig, n_files: int, hashed: _HashProgress):
    """Progress of the two steps that begin before anything is written, which take minutes for a large archive:
    the checksums (``hashed``, called by the hashing threads per file) and opening + validating the sources
    (:func:`build_dataset` reports each through :data:`_ON_OPEN`)."""
    progress, task = _progress(cfg.progress, n_files, "checksums", "files")
    opened = progress.add_task(
        "open + validate", total=None if any(is_catalog_name(s) for s in cfg.sources) else n_files
    )
    with progress, hashed.attached(progress, task):
        token = _ON_OPEN.set(lambda name: progress.advance(opened))
        try:
            yield
        finally:
            _ON_OPEN.reset(token)


def _await_checksums(cfg: IngestConfig, checksums: SourceChecksums, hashed: _HashProgress) -> list[dict[str, Any]]:
    """The sources' fingerprints, showing the progress of the hashing that went on after the opening's display
    closed (and may outlast the writes)."""
    if checksums.done() and hashed.shown == len(checksums.paths):
        return checksums.result()
    progress, task = _progress(cfg.progress, len(checksums.paths), "checksums", "files")
    with progress, hashed.attached(progress, task):
        return checksums.result()


def _finish(
    cfg: IngestConfig,
    sources: list[dict[str, Any]],
    recipe: dict[str, Any] | None = None,
    timings: dict[str, float] | None = None,
    *,
    combiner: PartialCombiner | None = None,
    times: np.ndarray | None = None,
    client: Any = None,
    clim_days: np.ndarray | None = None,
) -> None:
    """Statistics and climatology from the partial sums gathered while writing (``combiner``; None: leave the
    stats and climatology groups as they are; a plan without in-memory bins: the climatology is made from the
    store, on ``client`` or the thread pool: every day, or only ``clim_days`` into the existing group), the
    period's moment sums (kept for later appends), provenance, complete."""
    timings = timings if timings is not None else {}
    if combiner is not None:
        if not combiner.complete:
            raise WxemuError(f"{cfg.out}: internal error: partial statistics missing for some regions")
        plan = combiner.plan
        lazy = st.open_store(cfg.out, storage_options=cfg.options, check_complete=False)
        names = st.time_variables(lazy)
        with _timed(timings, "stats"):
            from data_catalog.stats import stats_dataset, stats_from_sums

            values = {n: stats_from_sums(combiner.sums[n], plan.shifts[n]) for n in names}
            st.write_group(cfg.out, st.STATS_GROUP, stats_dataset(lazy, values), storage_options=cfg.options)
        with _timed(timings, "climatology"):
            dims = {n: lazy[n].dims[1:] for n in names}
            if plan.clim_in_memory:
                write_climatology(cfg, lazy, (combiner.clim, dims))
            else:
                write_climatology_from_store(cfg, lazy, plan, times, client, days=clim_days)
        stats_period = [_iso(times[plan.p0]), _iso(times[plan.p1 - 1])]
        kept = _kept_sums_attr(plan, combiner.sums, times)
    else:
        old = st.root_attrs(cfg.out, storage_options=cfg.options)
        stats_period, kept = old.get("wxemu_stats_period"), old.get(KEPT_SUMS_ATTR)
    attrs = {
        KEPT_SUMS_ATTR: kept,
        "wxemu_version": wxemu_version(),
        "wxemu_recipe": recipe if recipe is not None else cfg.recipe(),
        "wxemu_sources": sources,
        "wxemu_stats_period": stats_period,
    }
    with _timed(timings, "complete"):
        st.set_attrs(cfg.out, attrs, storage_options=cfg.options)
        st.mark_complete(cfg.out, storage_options=cfg.options)


def write_climatology(cfg: IngestConfig, ds: xr.Dataset, clim, *, days_per_block: int | None = None) -> None:
    """Write the climatology group: only the days whose window holds data (the other chunks are never written
    and read as NaN), ``days_per_block`` days per write (default: about ``cfg.region_mb`` of float32). The blocks
    are computed in order here while earlier ones are written on ``cfg.threads`` threads (the writes release
    the GIL). ``clim``: (accumulator, {name: dims after time})."""
    from data_catalog.climatology import day_runs

    acc, dims = clim
    _create_climatology_group(cfg, ds, acc.hours, acc.window, dims)
    runs = day_runs(acc.days(), days_per_block or _days_per_block(cfg, ds, len(acc.hours), dims))
    free: dict[tuple, list[np.ndarray]] = {}  # output buffers whose write has finished, by shape

    def alloc(shape: tuple[int, ...], dtype: str) -> np.ndarray:
        spare = free.get((shape, dtype))
        return spare.pop() if spare else np.empty(shape, dtype=dtype)

    blocks = {n: acc.blocks(n, runs, dtype="f4", alloc=alloc) for n in dims}
    threads = max(1, cfg.threads)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        pending: list[tuple[Any, dict[str, np.ndarray]]] = []

        def retire() -> None:
            fut, arrays = pending.pop(0)
            fut.result()
            for a in arrays.values():
                free.setdefault((a.shape, a.dtype.str[1:]), []).append(a)

        for run in runs:
            arrays = {n: next(blocks[n]) for n in dims}
            pending.append(
                (
                    pool.submit(
                        st.write_region,
                        cfg.out,
                        arrays,
                        int(run[0]) - 1,
                        storage_options=cfg.options,
                        group=st.CLIMATOLOGY_GROUP,
                    ),
                    arrays,
                )
            )
            while len(pending) > threads:  # bounded memory: at most a few blocks in flight
                retire()
        while pending:
            retire()


def _days_per_block(cfg: IngestConfig, ds: xr.Dataset, n_hours: int, dims: dict) -> int:
    """Days of climatology per write: about ``cfg.region_mb`` of float32 over every variable."""
    day_bytes = 4 * n_hours * sum(int(np.prod([ds.sizes[d] for d in trailing])) for trailing in dims.values())
    return int(np.clip(cfg.region_mb * 1e6 // max(1, day_bytes), 1, 366))


def _create_climatology_group(cfg: IngestConfig, ds: xr.Dataset, hours: np.ndarray, window: int, dims: dict) -> None:
    """(Re)create the climatology group, all NaN (metadata only: chunks of one day of year, every hour)."""
    from data_catalog.climatology import N_DAYS, climatology_template

    template = climatology_template(ds, hours, window, dims, chunk_days=N_DAYS)
    st.write_group(
        cfg.out, st.CLIMATOLOGY_GROUP, template, storage_options=cfg.options, compute=False, chunks={"dayofyear": 1}
    )


def write_climatology_from_store(
    cfg: IngestConfig,
    ds: xr.Dataset,
    plan: StatsPlan,
    times: np.ndarray,
    client: Any = None,
    *,
    days: np.ndarray | None = None,
) -> None:
    """Write the climatology group from the data already in the store (``data_catalog.store_climatology``):
    tasks of contiguous days per variable, on ``client``'s workers or on ``cfg.threads`` threads. ``days``:
    only these days of year, into the existing group (an append's); default: the group is made anew."""
    from data_catalog import store_climatology as sc
    from data_catalog.climatology import climatology_days, day_runs

    names = st.time_variables(ds)
    dims = {n: ds[n].dims[1:] for n in names}
    if days is None:
        _create_climatology_group(cfg, ds, plan.hours, plan.window, dims)
        days = climatology_days(times[plan.p0 : plan.p1], plan.hour_step, plan.window)
    runs = day_runs(days, _days_per_block(cfg, ds, len(plan.hours), dims))
    tasks = sc.plan_tasks(
        cfg.out,
        cfg.options,
        names,
        times,
        plan.p0,
        plan.p1,
        plan.hours,
        plan.hour_step,
        plan.window,
        runs,
        _parallelism(cfg, client),
        per_point=cfg.allow_nan,
    )
    _run_tasks(
        cfg,
        client,
        [(i, sc.run_task, (t,)) for i, t in enumerate(tasks)],
        lambda key, days: None,
        "climatology",
        "tasks",
    )


@contextlib.contextmanager
def _timed(timings: dict[str, float], name: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0


def _same_recipe(a: dict[str, Any], b: dict[str, Any]) -> bool:
    skip = {"command"}
    return {k: v for k, v in a.items() if k not in skip} == {k: v for k, v in b.items() if k not in skip}


def ingest(cfg: IngestConfig, *, after_region: Callable[[int], None] | None = None) -> IngestResult:
    """Run the ingest described by ``cfg`` (see the module docstring). Raises WxemuError subclasses for user
    errors. ``after_region(n)`` is called after each region written (tests inject crashes through it; the
    environment variable ``WXEMU_INGEST_CRASH_AFTER`` does the same from the command line)."""
    after_region = after_region or _crash_hook_from_env()
    with _dask_client(cfg) as client:  # one cluster (or none) for the checksums, the regions and the climatology
        if cfg.append:
            return _append(cfg, after_region, client)
        return _create(cfg, after_region, client)


def _create(cfg: IngestConfig, after_region: Callable[[int], None] | None, client: Any) -> IngestResult:
    """A new store, or the resumption of an interrupted ingest into one."""
    timings: dict[str, float] = {}
    exists = st.store_exists(cfg.out, storage_options=cfg.options)

    paths = resolve_sources(cfg)
    hashed = _HashProgress()
    # the checksums (sha256 releases the GIL) are computed while the sources are opened and validated, and on
    # while the regions are written (SourceChecksums)
    checksums = SourceChecksums(cfg, paths, hashed, client)
    try:
        with _source_progress(cfg, len(paths), hashed):
            recipe = cfg.recipe()
            if exists and not cfg.overwrite:
                attrs = st.root_attrs(cfg.out, storage_options=cfg.options)
                plan = st.read_plan(cfg.out, storage_options=cfg.options)
                if attrs.get(st.COMPLETE_ATTR):
                    sources = checksums.result()
                    if _same_recipe(attrs.get("wxemu_recipe") or {}, recipe) and attrs.get("wxemu_sources") == sources:
                        n = int(st.open_store(cfg.out, storage_options=cfg.options).sizes["time"])
                        return IngestResult(cfg.out, n, 0, 0, sources, status="already complete")
                    made_by = (attrs.get("wxemu_recipe") or {}).get("command")
                    raise WxemuError(
                        f"{cfg.out}: a complete store exists (made by {made_by!r}); use --overwrite "
                        "to replace it or --append to add later times"
                    )
                if plan is not None and plan.get("mode") == "append":
                    raise WxemuError(
                        f"{cfg.out}: an --append into this store was interrupted; complete it by "
                        f"re-running {(plan.get('recipe') or {}).get('command')!r}"
                    )
                if plan is None or plan.get("mode") != "create":
                    raise WxemuError(
                        f"{cfg.out}: an incomplete store without an ingest plan (not resumable); "
                        "use --overwrite to replace it"
                    )
                current = checksums.matching(plan.get("sources") or [])
                if plan.get("sources") != current:
                    changed = _changed(plan.get("sources") or [], current)
                    raise WxemuError(
                        f"{cfg.out}: cannot resume: the inputs changed since the interrupted ingest "
                        f"({changed}); use --overwrite to start again"
                    )
                if not _same_recipe(plan.get("recipe") or {}, recipe):
                    raise WxemuError(
                        f"{cfg.out}: cannot resume: this command differs from the interrupted one "
                        f"({(plan.get('recipe') or {}).get('command')!r}); re-run that, or use "
                        "--overwrite"
                    )
                resuming = True
            else:
                resuming = False
            cfg_json = config_to_json(cfg)
            _build_dataset_cached.cache_clear()
            _narrowable_sources.cache_clear()
            with _timed(timings, "open"):
                ds = _build_dataset_cached(cfg_json)  # validates all sources' metadata: nothing written before this
    except BaseException:
        checksums.stop()  # a bad source fails at once, the hashing of the rest stopped
        raise
    created = False
    try:
        n = ds.sizes["time"]
        regions = plan_regions(
            0, n, cfg.chunk_time, _steps_per_region(ds, cfg.region_mb, cfg.chunk_time), _source_bounds(ds, 0)
        )
        names = st.time_variables(ds)
        times = ds["time"].values
        # before anything is written: an empty stats period writes nothing
        with _timed(timings, "create"):
            in_memory = climatology_in_memory(
                cfg, times, _bytes_per_step(ds), ", ".join(cfg.sources), clustered=bool(cfg.scheduler or cfg.workers)
            )
            stats_plan = make_stats_plan(
                cfg,
                times,
                lambda p0: _first_step(ds, names, p0),
                {v: ds[v].dims for v in names},
                ", ".join(cfg.sources),
                clim_in_memory=in_memory,
            )
            if not resuming:
                if exists:
                    st.remove_store(cfg.out, storage_options=cfg.options)
                st.create_store(
                    cfg.out,
                    ds,
                    attrs={
                        "wxemu_recipe": recipe,
                        "wxemu_version": wxemu_version(),
                        **{k: ds.attrs[k] for k in ("regridding",) if k in ds.attrs},  # metoffice: provenance
                    },
                    chunk_time=cfg.chunk_time,
                    storage_options=cfg.options,
                )
                created = True
                st.write_plan(
                    cfg.out,
                    {"mode": "create", "sources": checksums.for_plan(), "recipe": recipe, "regions": regions},
                    storage_options=cfg.options,
                )
            else:
                plan = st.read_plan(cfg.out, storage_options=cfg.options) or {}
                if [tuple(r) for r in plan.get("regions", [])] != regions:
                    raise WxemuError(f"{cfg.out}: cannot resume: the planned regions differ; use --overwrite")
        done = st.regions_done(cfg.out, storage_options=cfg.options)
        todo = [(i, a, b) for i, (a, b) in enumerate(regions) if i not in done]
        units_done = [(i, a, b) for i, (a, b) in enumerate(regions) if i in done]
        recorded = recorded_partials(cfg, stats_plan, units_done, times, names) if done else None
        if recorded is not None:  # resumed: the done regions' kept sums; the climatology from the store
            stats_plan = dataclasses.replace(stats_plan, clim_in_memory=False)
        combiner = PartialCombiner(stats_plan, [a for a, _ in regions])
        for a, partial in recorded or ():
            combiner.offer(a, partial)
        if done and recorded is None:  # resumed from markers without sums: those regions are read back
            with _timed(timings, "read back"):
                read_back(cfg, combiner, [(a, b) for _, a, b in units_done], times, names)
        after_each = checksums.region_hook({"mode": "create", "recipe": recipe, "regions": regions}, after_region)
        with _timed(timings, "write"):
            written = _run_regions(cfg, cfg_json, todo, after_each, combiner=combiner, client=client)
        with _timed(timings, "checksums wait"):  # only what the hashing outlasted the writes by
            sources = _await_checksums(cfg, checksums, hashed)
        timings["fingerprint"] = checksums.seconds  # beside the opening and the writes
        _finish(cfg, sources, timings=timings, combiner=combiner, times=times, client=client)
    except BaseException as exc:
        checksums.stop()
        if created and isinstance(exc, WxemuError):  # bad data found while writing a store this run created:
            st.remove_store(cfg.out, storage_options=cfg.options)  # leave nothing behind
        raise
    return IngestResult(
        cfg.out,
        n,
        written,
        len(regions) - len(todo),
        sources,
        status="resumed" if resuming else "written",
        timings=timings,
    )


def _first_step(ds: xr.Dataset, names: Sequence[str], index: int) -> dict[str, np.ndarray]:
    """{name: time step ``index`` of ``ds`` as the store holds it (float32)}."""
    step = ds[list(names)].isel(time=index).compute(scheduler=get_sync)
    return {n: np.asarray(step[n].values, dtype="f4") for n in names}


def _changed(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> str:
    old_by = {s["path"]: s for s in old}
    new_by = {s["path"]: s for s in new}
    parts = [f"{p} removed" for p in old_by if p not in new_by] + [f"{p} added" for p in new_by if p not in old_by]
    for p in (p for p in new_by if p in old_by and old_by[p] != new_by[p]):
        a, b = old_by[p], new_by[p]
        if "sha256" in a and "sha256" in b:
            parts.append(f"{p} checksum {a['sha256'][:12]} -> {b['sha256'][:12]}")
        elif set(b) == {"path"}:
            parts.append(f"{p} missing (or no longer a file)")
        else:
            parts.append(
                f"{p} modified (size {a.get('bytes')} -> {b.get('bytes')}, modification time "
                f"{'changed' if a.get('mtime_ns') != b.get('mtime_ns') else 'the same'})"
            )
    return "; ".join(parts) or "source list changed"


def _append(cfg: IngestConfig, after_region: Callable[[int], None] | None, client: Any = None) -> IngestResult:
    if not st.store_exists(cfg.out, storage_options=cfg.options):
        raise WxemuError(f"{cfg.out}: --append needs an existing store; run without --append to create it")
    checksums = SourceChecksums(cfg, resolve_sources(cfg), lambda: None, client)  # hashed beside the writes
    try:
        return _append_to(cfg, after_region, client, checksums)
    except BaseException:
        checksums.stop()
        raise


def _append_to(
    cfg: IngestConfig, after_region: Callable[[int], None] | None, client: Any, checksums: SourceChecksums
) -> IngestResult:
    attrs = st.root_attrs(cfg.out, storage_options=cfg.options)
    plan = st.read_plan(cfg.out, storage_options=cfg.options)
    new_recipe = cfg.recipe()
    resuming = not attrs.get(st.COMPLETE_ATTR)
    if resuming:
        if plan is None or plan.get("mode") != "append":
            raise IncompleteAppend(cfg.out)
        current = checksums.matching(plan.get("sources") or [])
        if plan.get("sources") != current or not _same_recipe(plan.get("recipe") or {}, new_recipe):
            raise WxemuError(
                f"{cfg.out}: cannot resume the interrupted append: the inputs or the command differ "
                f"({_changed(plan.get('sources') or [], current)}); re-run "
                f"{(plan.get('recipe') or {}).get('command')!r}"
            )
    old_recipe = attrs.get("wxemu_recipe") or {}
    existing = st.open_store(cfg.out, storage_options=cfg.options, check_complete=False)
    cfg_json = config_to_json(cfg)
    _build_dataset_cached.cache_clear()
    _narrowable_sources.cache_clear()
    new = _build_dataset_cached(cfg_json)
    _check_append_compatible(existing, new, cfg, old_recipe, plan if resuming else None)
    if resuming:
        offset = int(plan["time_offset"])
    else:
        offset = existing.sizes["time"]
    n_new = new.sizes["time"]
    regions = plan_regions(
        offset,
        offset + n_new,
        cfg.chunk_time,
        _steps_per_region(new, cfg.region_mb, cfg.chunk_time),
        _source_bounds(new, offset),
    )
    old_sources = list(attrs.get("wxemu_sources") or [])
    # the stats period of the original recipe applies (default: every time, including the appended ones)
    base = {k: v for k, v in old_recipe.items() if k != "appended"}
    stats_cfg = dataclasses.replace(
        cfg,
        stats_start=base.get("stats_start"),
        stats_end=base.get("stats_end"),
        climatology_window=int(base.get("climatology_window", 61)),
        climatology_hour_step=int(base.get("climatology_hour_step", 1)),
    )
    times = np.concatenate([existing["time"].values[:offset], new["time"].values])
    names = st.time_variables(new)

    @lru_cache(maxsize=1)
    def first(p0: int) -> dict[str, np.ndarray]:
        if p0 < offset:
            return {k: v[0] for k, v in st.read_region(cfg.out, names, p0, p0 + 1, storage_options=cfg.options).items()}
        return _first_step(new, names, p0 - offset)

    # before anything is written: the stats plan, and how the sums are redone when the period reaches the new times
    plan = make_stats_plan(stats_cfg, times, first, {v: new[v].dims for v in names}, cfg.out, clim_in_memory=False)
    kept = _kept_partial(cfg, attrs, plan, times, offset, first(plan.p0)) if plan.p0 < offset < plan.p1 else None
    if plan.p1 > offset and kept is None:
        plan = dataclasses.replace(
            plan,
            clim_in_memory=climatology_in_memory(
                stats_cfg, times, _bytes_per_step(new), cfg.out, clustered=bool(cfg.scheduler or cfg.workers)
            ),
        )
    plan_record = {"mode": "append", "recipe": new_recipe, "regions": regions, "time_offset": offset}
    if not resuming:
        st.mark_incomplete(cfg.out, storage_options=cfg.options)
        st.write_plan(cfg.out, {**plan_record, "sources": checksums.for_plan()}, storage_options=cfg.options)
        st.extend_time(cfg.out, new["time"].values, storage_options=cfg.options)
        st.consolidate(cfg.out, storage_options=cfg.options)
    done = st.regions_done(cfg.out, storage_options=cfg.options)
    todo = [(i, a, b) for i, (a, b) in enumerate(regions) if i not in done]
    combiner, clim_days = None, None
    if kept is not None:
        # the sums of the existing part of the period were kept by the ingest that wrote it: nothing of it is read
        # back, and the climatology is redone from the store for the days whose window holds a new day only
        combiner = PartialCombiner(plan, [plan.p0] + [a for a, _ in regions])
        combiner.offer(plan.p0, kept)
        units_done = [(i, a, b) for i, (a, b) in enumerate(regions) if i in done]
        recorded = recorded_partials(cfg, plan, units_done, times, names)
        if recorded is None:
            read_back(cfg, combiner, [(a, b) for _, a, b in units_done], times, names)
        for a, partial in recorded or ():
            combiner.offer(a, partial)
        clim_days = _climatology_days_to_redo(stats_cfg, plan, times, offset)
    elif plan.p1 > offset:  # the period reaches into the new times: the existing part is read back once
        old_blocks = (
            plan_regions(plan.p0, offset, cfg.chunk_time, _steps_per_region(new, cfg.region_mb, cfg.chunk_time))
            if plan.p0 < offset
            else []
        )
        combiner = PartialCombiner(plan, [a for a, _ in old_blocks] + [a for a, _ in regions])
        read_back(cfg, combiner, old_blocks + [r for i, r in enumerate(regions) if i in done], times, names)
    appended = list(old_recipe.get("appended", [])) + [new_recipe]
    after_each = checksums.region_hook(plan_record, after_region)
    try:
        written = _run_regions(cfg, cfg_json, todo, after_each, offset, combiner=combiner, client=client)
        sources = checksums.result()
    except WxemuError:
        # bad new data (or a source rewritten meanwhile): roll the store back to its old extent, complete again
        st.truncate_time(cfg.out, offset, storage_options=cfg.options)
        st.mark_complete(cfg.out, storage_options=cfg.options)
        raise
    merged_sources = old_sources + [s for s in sources if s not in old_sources]
    # a period that ends before the new times (bounded --stats-end) keeps its statistics and climatology
    _finish(
        stats_cfg,
        merged_sources,
        {**base, "appended": appended},
        combiner=combiner,
        times=times,
        client=client,
        clim_days=clim_days,
    )
    return IngestResult(
        cfg.out,
        offset + n_new,
        written,
        len(regions) - len(todo),
        sources,
        status="appended (resumed)" if resuming else "appended",
    )


#: Root attribute: the moment sums of the stats period as last finished, so that an append adds to them
KEPT_SUMS_ATTR = "wxemu_stats_sums"


def _kept_sums_attr(plan: StatsPlan, sums: dict[str, Any], times: np.ndarray) -> dict[str, Any]:
    """The stats period's combined moment sums and conditioning shifts as JSON (float64 round-trips exactly)."""
    return {
        "start": _iso(times[plan.p0]),
        "end": _iso(times[plan.p1 - 1]),
        "variables": {n: {"shift": np.asarray(plan.shifts[n]).tolist(), **m.to_json()} for n, m in sums.items()},
    }


def _iso(t: np.datetime64) -> str:
    return pd.Timestamp(t).isoformat()


def _kept_partial(
    cfg: IngestConfig,
    attrs: dict[str, Any],
    plan: StatsPlan,
    times: np.ndarray,
    offset: int,
    first: dict[str, np.ndarray],
) -> BlockPartial | None:
    """The existing part [p0, offset) of the stats period as one block partial, from the sums the last ingest or
    append kept (:data:`KEPT_SUMS_ATTR`), the part's ``first`` step ({variable: values without time}) and its
    last step (read); None when the sums are missing (a store written before they were kept) or describe another
    period or conditioning."""
    from data_catalog.climatology import ClimatologyAccumulator
    from data_catalog.stats import MomentSums

    kept = attrs.get(KEPT_SUMS_ATTR) or {}
    if kept.get("start") != _iso(times[plan.p0]) or kept.get("end") != _iso(times[offset - 1]):
        return None
    sums = {}
    for n in first:
        v = (kept.get("variables") or {}).get(n)
        if v is None or not np.array_equal(np.asarray(v["shift"], dtype="f8"), np.asarray(plan.shifts[n])):
            return None
        sums[n] = MomentSums.from_json(v)
    last = st.read_region(cfg.out, list(first), offset - 1, offset, storage_options=cfg.options)
    return BlockPartial(
        plan.p0,
        offset,
        sums,
        ClimatologyAccumulator(plan.hours, plan.window),
        {n: v[None] for n, v in first.items()},
        last,
        np.datetime64(times[plan.p0], "ns"),
        np.datetime64(times[offset - 1], "ns"),
    )


def _climatology_days_to_redo(cfg: IngestConfig, plan: StatsPlan, times: np.ndarray, offset: int) -> np.ndarray | None:
    """Days of year whose climatology an append changes: those whose window holds a new time at the
    climatology's hours; None (redo every day) when the existing group has other hours or another window."""
    from data_catalog.climatology import climatology_days

    try:
        existing = st.open_climatology(cfg.out, storage_options=cfg.options, check_complete=False)
    except WxemuError:
        return None
    if (
        not np.array_equal(existing["hour"].values, plan.hours)
        or int(existing.attrs.get("window_days", -1)) != plan.window
    ):
        return None
    return climatology_days(times[max(plan.p0, offset) : plan.p1], plan.hour_step, plan.window)


class IncompleteAppend(WxemuError):
    def __init__(self, out: str) -> None:
        super().__init__(
            f"{out}: the store is incomplete (an interrupted ingest); complete it first by re-running "
            "the command that created it"
        )


def _check_append_compatible(
    existing: xr.Dataset, new: xr.Dataset, cfg: IngestConfig, old_recipe: dict, plan: dict | None
) -> None:
    names = ", ".join(cfg.sources)
    if sorted(st.time_variables(existing)) != sorted(st.time_variables(new)):
        raise InputDataError(
            f"{names}: variables {sorted(st.time_variables(new))} differ from the store's "
            f"{sorted(st.time_variables(existing))} ({cfg.out}); select them with --variables"
        )
    for coord in ("latitude", "longitude", "level"):
        a, b = coord in existing.coords, coord in new.coords
        if a != b or (
            a
            and (existing[coord].size != new[coord].size or not np.allclose(existing[coord].values, new[coord].values))
        ):
            raise InputDataError(
                f"{names}: {coord} axis differs from the store's ({cfg.out}); the grid and levels "
                "of appended data must match (see --grid/--levels)"
            )
    if int(old_recipe.get("chunk_time", 1)) != cfg.chunk_time:
        raise InputDataError(
            f"{cfg.out}: was written with --chunk-time {old_recipe.get('chunk_time')}, not {cfg.chunk_time}"
        )
    t_old = existing["time"].values
    if plan is not None:  # resuming: the store already holds the extended time axis
        t_old = t_old[: int(plan["time_offset"])]
    t_new = new["time"].values
    step = np.diff(t_old).min() if t_old.size > 1 else (np.diff(t_new).min() if t_new.size > 1 else None)
    if t_new[0] <= t_old[-1]:
        raise InputDataError(
            f"{names}: times {pd.Timestamp(t_new[0])} .. {pd.Timestamp(t_new[-1])} overlap the store "
            f"{cfg.out} (which ends at {pd.Timestamp(t_old[-1])}); append only later times "
            "(use --start)"
        )
    if step is not None and t_new[0] - t_old[-1] != step:
        raise InputDataError(
            f"{names}: first new time {pd.Timestamp(t_new[0])} does not follow the store's last "
            f"{pd.Timestamp(t_old[-1])} by its step {pd.Timedelta(step)} (non-contiguous append)"
        )
    if t_new.size > 1 and step is not None and np.diff(t_new).min() != step:
        raise InputDataError(
            f"{names}: time step {pd.Timedelta(np.diff(t_new).min())} differs from the store's {pd.Timedelta(step)}"
        )
