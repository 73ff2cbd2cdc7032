"""The ingest's config (what determines the store, plus how to run it), its result, and their JSON forms."""

from __future__ import annotations

import dataclasses
import json
import math
import shlex
from dataclasses import dataclass, field
from typing import Any

from data_catalog.config_files import read_mapping
from data_catalog.errors import ConfigError
from data_catalog.regions import Region, RegionError, parse_box

#: How the climatology is made (IngestConfig.climatology_pass).
CLIMATOLOGY_PASSES = ("auto", "memory", "store")
#: Default decoded MB per written block.
DEFAULT_BLOCK_MB = 64.0


@dataclass(frozen=True)
class IngestConfig:
    """Everything that determines the store's contents (the recipe) plus how to run it.

    sources: catalog entry names or file paths/globs/URLs (NetCDF, GRIB, Zarr). out: store path or URL.
    variables/levels/start/end: selection (canonical or source variable names; hPa; inclusive times).
    region: cut every source to this box before anything else (a named region of :mod:`data_catalog.regions`,
    e.g. ``uk``, or ``lat0,lat1,lon0,lon1`` in degrees; None: the whole grid).
    grid: target resolution in degrees for conservative regridding (None: keep the source grid).
    chunk_time: time steps per chunk. block_mb: decoded MB written per time block (a whole number of chunks; the
    unit of progress and resume). load_mb: sources whose canonical data is at most this many MB are read into
    memory once; larger ones are written block by block along their own (file/chunk) boundaries so each source
    chunk is read once.
    stats_start/stats_end: period of the statistics and climatology (None: all times).
    climatology_window: smoothing window (days, odd). climatology_hour_step: keep the hours of day that are
    multiples of this (1: every hour present, WeatherBench2's default; 6: 0/6/12/18 UTC, 1/6 of the size).
    climatology_pass: how the climatology is made (same numbers either way): "memory" (its bins kept in this
    process while the data are written: one pass), "store" (after the data are written, read back from the store
    by tasks of contiguous days: bounded memory, on the cluster's workers), "auto" (memory when no cluster is used
    and the bins fit in half the available memory, else store).
    time_from/mapping/units/member/fmt: passed to the reader and the canonical mapping. allow_nan: accept NaN
    values (otherwise every block is checked as it is written, and the error names the file and the time).
    storage_options: fsspec options for the sources and ``out``. append: add the times after the end of an
    existing complete store; overwrite: replace an existing store. How the ingest runs is :class:`RunOptions`.
    """

    sources: tuple[str, ...]
    out: str
    variables: tuple[str, ...] | None = None
    levels: tuple[int, ...] | None = None
    start: str | None = None
    end: str | None = None
    region: str | None = None
    grid: float | None = None
    chunk_time: int = 1
    block_mb: float = DEFAULT_BLOCK_MB
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
    allow_implausible: bool = False  # reliability: store values outside data_catalog.plausibility.BOUNDS
    storage_options: tuple[tuple[str, Any], ...] | None = None
    # what to do with an existing store (not part of the recipe)
    append: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        if not self.sources:
            raise ConfigError("ingest: no SOURCE given")
        if self.chunk_time < 1:
            raise ConfigError(f"ingest: --chunk-time must be >= 1, got {self.chunk_time}")
        if self.region is not None:
            self.box  # noqa: B018 (validates the spec)
        if self.grid is not None and not (math.isfinite(self.grid) and self.grid > 0):
            raise ConfigError(f"ingest: --grid must be a positive resolution in degrees, got {self.grid}")
        if not (math.isfinite(self.block_mb) and self.block_mb > 0):
            raise ConfigError(f"ingest: --block-mb must be a positive number of MB, got {self.block_mb}")
        if self.append and self.overwrite:
            raise ConfigError("ingest: --append and --overwrite exclude each other")
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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IngestConfig:
        """A config from a flat mapping (YAML): lists become tuples, mappings (``mapping``, ``units``,
        ``time_from``, ``storage_options``) become (key, value) pairs; unknown keys are a ConfigError."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - fields)
        if unknown:
            raise ConfigError(
                f"ingest config: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
            )
        raw = dict(d)
        if isinstance(raw.get("sources"), str):
            raw["sources"] = [raw["sources"]]
        for key in ("sources", "variables", "levels"):
            if isinstance(raw.get(key), list):
                raw[key] = tuple(raw[key])
        for key in ("time_from", "mapping", "units", "storage_options"):
            if isinstance(raw.get(key), dict):
                raw[key] = tuple(sorted(raw[key].items()))
        try:
            return cls(**raw)
        except TypeError as exc:
            raise ConfigError(f"ingest config: {exc}") from None

    @classmethod
    def from_yaml(cls, path: str) -> IngestConfig:
        """A config from a flat YAML file (the fields of this class)."""
        return cls.from_dict(read_mapping(path, "ingest config"))

    def recipe(self) -> dict[str, Any]:
        """The fields that determine the data (JSON-able), with the equivalent command line."""
        keys = (
            "sources",
            "variables",
            "levels",
            "start",
            "end",
            "region",
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
        """An equivalent ``wxemu ingest`` command line: every option that the data or a resume depend on (the
        block size sets the blocks a resume expects); not ``--storage-options`` (it may hold credentials)."""
        argv = ["wxemu", "ingest", *self.sources, "--out", self.out]
        flag = {
            "variables": "--variables",
            "levels": "--levels",
            "start": "--start",
            "end": "--end",
            "region": "--region",
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
        if self.block_mb != DEFAULT_BLOCK_MB:
            argv += ["--block-mb", repr(float(self.block_mb))]
        if self.climatology_window != 61:
            argv += ["--climatology-window", str(self.climatology_window)]
        if self.climatology_hour_step != 1:
            argv += ["--climatology-hour-step", str(self.climatology_hour_step)]
        if self.allow_nan:
            argv.append("--allow-nan")
        if self.allow_implausible:  # reliability
            argv.append("--allow-implausible")
        if self.append:
            argv.append("--append")
        return shlex.join(argv)

    @property
    def box(self) -> Region | None:
        """The box of ``region`` (None: the whole grid); ConfigError when it is malformed or not one box."""
        try:
            return parse_box(self.region) if self.region is not None else None
        except RegionError as exc:
            raise ConfigError(f"ingest: --region: {exc}") from None

    @property
    def options(self) -> dict[str, Any] | None:
        return dict(self.storage_options) if self.storage_options else None


@dataclass(frozen=True)
class RunOptions:
    """How an ingest runs (the same store either way): ``threads`` of the default path (block writes,
    climatology tasks, and one fewer for the checksums); ``workers``: a local dask cluster of that many worker
    processes (``cluster_processes=False``: threads, for tests), or ``scheduler``: the address of an existing
    dask.distributed scheduler (e.g. a SLURMCluster); ``progress``: rich progress displays on stderr."""

    threads: int = 2
    workers: int | None = None
    scheduler: str | None = None
    cluster_processes: bool = True
    progress: bool = False

    def __post_init__(self) -> None:
        if self.threads < 1:
            raise ConfigError(f"ingest: --threads must be >= 1, got {self.threads}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"ingest: --workers must be >= 1, got {self.workers}")
        if self.scheduler and self.workers:
            raise ConfigError("ingest: give --scheduler (an existing cluster) or --workers (a local one), not both")

    @property
    def clustered(self) -> bool:
        """The tasks run on a dask cluster."""
        return bool(self.scheduler or self.workers)


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return {str(k): v for k, v in value}
        return list(value)
    return value


def same_recipe(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two recipes describe the same data (their command lines may be spelled differently; a field that one
    recipe lacks, as in a store written before the field existed, is its default None)."""
    keys = (set(a) | set(b)) - {"command"}
    return all(a.get(k) == b.get(k) for k in keys)


def config_to_json(cfg: IngestConfig) -> str:
    """The config as JSON (what a cluster task receives)."""
    return json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)


def config_from_json(text: str) -> IngestConfig:
    """The inverse of :func:`config_to_json`."""
    raw = json.loads(text)
    for key in ("sources", "variables", "levels"):
        if raw.get(key) is not None:
            raw[key] = tuple(raw[key])
    for key in ("time_from", "mapping", "units", "storage_options"):
        if raw.get(key) is not None:
            raw[key] = tuple(tuple(kv) for kv in raw[key])
    return IngestConfig(**raw)


@dataclass
class IngestResult:
    """What an ingest did.

    out: the store. n_times: its time steps. blocks_written/blocks_skipped: time blocks written now / found
    already written (a resume). sources: the sources' fingerprints. status: "written", "resumed", "already
    complete", "appended", "appended (resumed)". timings: seconds per phase. read_back: the store time ranges
    [(start, stop)] read back for the statistics (edges of kept blocks, or whole blocks without kept sums).
    climatology: how the climatology was made: "bins" (in memory, one pass), "store" (from the store afterwards),
    "kept" (unchanged) or "" (none made). climatology_days: the days of year redone (None: all of them).
    """

    out: str
    n_times: int
    blocks_written: int
    blocks_skipped: int
    sources: list[dict[str, Any]] = field(default_factory=list)
    status: str = "written"
    timings: dict[str, float] = field(default_factory=dict)
    read_back: list[tuple[int, int]] = field(default_factory=list)
    climatology: str = ""
    climatology_days: list[int] | None = None
