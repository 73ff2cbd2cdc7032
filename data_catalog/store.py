"""The canonical analysis store: opening it, and the low-level writing helpers the ingest uses.

Layout (docs/architecture.md): a Zarr v3 store with consolidated metadata; the root group is the canonical
dataset (dims ``time``, [``level``], ``latitude``, ``longitude``), group ``stats`` holds per-variable/level
mean/std of the fields and of their one-step differences, group ``climatology`` a smoothed climatology by day of
year and hour. Completeness, resume records, provenance and the writer lock are
:mod:`data_catalog.store_protocol`'s (re-exported here for the readers): every reader here refuses a store whose
``wxemu_complete`` is not True with :class:`~data_catalog.errors.IncompleteStoreError`.

On-disk encoding (measured, see docs/ingest.md): float32, Blosc LZ4 with byte shuffle, time chunks of
``chunk_time`` steps (default 1) holding every level and the whole latitude/longitude grid, so a training sample
(t, t+1) of all channels is two chunk reads per variable.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import xarray as xr
import zarr
from zarr.codecs import BloscCodec

from data_catalog.errors import WxemuError
from data_catalog.store_protocol import (  # noqa: F401 - re-exported for the readers
    COMPLETE_ATTR,
    consolidate,
    discard,
    is_complete,
    mark_complete,
    mark_incomplete,
    require_complete,
    root_attrs,
    store_exists,
    zarr_store,
)
from data_catalog.store_protocol import set_root_attrs as set_attrs  # noqa: F401

STATS_GROUP = "stats"
CLIMATOLOGY_GROUP = "climatology"
STAT_NAMES = ("mean", "std", "diff_mean", "diff_std")
STATIC_VARIABLES = ("land_sea_mask", "geopotential_at_surface")
TIME_UNITS = "seconds since 1970-01-01 00:00:00"
TIME_CALENDAR = "proleptic_gregorian"


#: zarr-python's codec pipeline implemented in Rust (zarrs-python): the same codecs and the same bytes on disk,
#: with encoding and file writes run in parallel outside the GIL (measured: the ingest's block writes 2-4x faster
#: than through zarr-python's own pipeline, docs/ingest.md). Used for the ingest's writes (:func:`write_steps`)
#: only: readers keep zarr-python's pipeline, as training reads run in DataLoader worker processes and a process
#: that forks must not have zarrs' thread pool running (docs/conventions.md; wxemu's workers are spawned).
FAST_CODEC_PIPELINE = "zarrs.ZarrsCodecPipeline"
_PIPELINE_LOCK = threading.Lock()


def _fast_pipeline_available() -> bool:
    try:
        import zarrs  # noqa: F401
    except ImportError:  # pragma: no cover - zarrs is a dependency; a source build without it still works
        return False
    return True


def default_compressor() -> BloscCodec:
    """The codec for data variables: Blosc LZ4, clevel 5, byte shuffle (chosen by measurement, docs/ingest.md)."""
    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle", typesize=4)


class _Quiet:
    def __enter__(self) -> None:
        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        warnings.filterwarnings("ignore", category=UserWarning, module="zarr.*")

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


# --------------------------------------------------------------------------------------------------- opening
def _open(
    path_or_url: str,
    group: str | None,
    storage_options: Mapping[str, Any] | None,
    check_complete: bool,
    chunks: Mapping[str, int] | None = None,
    role: str = "analysis",
) -> xr.Dataset:
    if check_complete:
        require_complete(path_or_url, role, storage_options=storage_options)
    with _Quiet():
        try:
            return xr.open_zarr(
                str(path_or_url),
                group=group,
                consolidated=True,
                zarr_format=3,
                chunks=dict(chunks) if chunks else {},
                storage_options=dict(storage_options) if storage_options else None,
            )
        except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError) as exc:
            where = f"group {group!r} of " if group else ""
            raise WxemuError(f"{path_or_url}: cannot open {where}the store: {exc}") from exc


def open_store(
    path_or_url: str,
    *,
    storage_options: Mapping[str, Any] | None = None,
    check_complete: bool = True,
    chunks: Mapping[str, int] | None = None,
    role: str = "analysis",
) -> xr.Dataset:
    """Open the root group lazily (dask arrays, one dask chunk per Zarr chunk unless ``chunks`` asks for larger
    ones, e.g. ``{"time": 48}``).

    Raises IncompleteStoreError when ``wxemu_complete`` is not True (pass ``check_complete=False`` only to inspect
    a store being written); ``role`` ("analysis", "forecast", "scores") names the writer to re-run.
    """
    return _open(path_or_url, None, storage_options, check_complete, chunks, role)


def open_stats(
    path_or_url: str, *, storage_options: Mapping[str, Any] | None = None, check_complete: bool = True
) -> xr.Dataset:
    """Open group ``stats``: one float64 variable per data variable, dims (``stat``, [``level``]).

    ``stat`` = mean, std, diff_mean, diff_std (units of the variable); loaded into memory (it is small).
    """
    return _open(path_or_url, STATS_GROUP, storage_options, check_complete).load()


def open_climatology(
    path_or_url: str, *, storage_options: Mapping[str, Any] | None = None, check_complete: bool = True
) -> xr.Dataset:
    """Open group ``climatology`` lazily: dims (``dayofyear`` 1..366, ``hour``, [``level``], lat, lon)."""
    return _open(path_or_url, CLIMATOLOGY_GROUP, storage_options, check_complete)


# --------------------------------------------------------------------------------------------------- channels
def time_variables(ds: xr.Dataset) -> list[str]:
    """Data variables with a ``time`` dimension, in dataset order."""
    return [str(v) for v in ds.data_vars if "time" in ds[v].dims]


def static_variables(ds: xr.Dataset) -> list[str]:
    """Data variables without a ``time`` dimension (static forcings such as land_sea_mask)."""
    return [str(v) for v in ds.data_vars if "time" not in ds[v].dims]


def channel_names(ds: xr.Dataset) -> list[str]:
    """The model's state channels: time-dependent data variables in dataset order, each expanded over ``level``
    ascending, named ``"temperature/850"`` (level variables) or ``"2m_temperature"`` (single-level)."""
    names: list[str] = []
    for var in time_variables(ds):
        if "level" in ds[var].dims:
            levels = np.sort(np.asarray(ds[var]["level"].values))
            names.extend(f"{var}/{int(lev) if float(lev).is_integer() else lev}" for lev in levels)
        else:
            names.append(var)
    return names


# --------------------------------------------------------------------------------------------------- writing
def data_encoding(
    ds: xr.Dataset, chunk_time: int = 1, compressor: BloscCodec | None = None
) -> dict[str, dict[str, Any]]:
    """xarray ``to_zarr`` encoding for every variable of the canonical dataset ``ds``.

    Data variables: float32, ``compressor`` (default :func:`default_compressor`), chunks of ``chunk_time`` time
    steps x all levels x the whole grid (static fields: one chunk). ``time`` is int64 seconds since 1970 so
    appended times are encoded without looking at the existing store.
    """
    comp = compressor or default_compressor()
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if name == "time":
            enc["time"] = {
                "units": TIME_UNITS,
                "calendar": TIME_CALENDAR,
                "dtype": "int64",
                "chunks": (max(1, var.size),),
            }
        elif name in ds.data_vars:
            chunks = tuple(min(chunk_time, n) if d == "time" else n for d, n in zip(var.dims, var.shape))
            enc[str(name)] = {"dtype": "float32", "chunks": chunks, "compressors": [comp], "_FillValue": np.nan}
    return enc


def encode_times(times: np.ndarray) -> np.ndarray:
    """datetime64 -> int64 seconds since 1970-01-01 (the store's ``time`` encoding)."""
    t = np.asarray(times, dtype="datetime64[ns]")
    return ((t - np.datetime64("1970-01-01T00:00:00", "ns")) // np.timedelta64(1, "s")).astype("int64")


def create_store(
    path_or_url: str,
    template: xr.Dataset,
    *,
    attrs: Mapping[str, Any],
    chunk_time: int = 1,
    storage_options: Mapping[str, Any] | None = None,
    compressor: BloscCodec | None = None,
) -> None:
    """Create (overwrite) the store's metadata and coordinates from ``template``, marked incomplete.

    ``template`` is the full canonical dataset with lazy (dask) data variables: only coordinates and static
    fields are written now; time-dependent data are written later, block by block, with :func:`write_steps`.
    """
    import dask.array as da

    lazy = template.copy()
    for name in time_variables(template):
        # a placeholder of one dask chunk (aligned with any Zarr chunking; never computed): chunked like the store,
        # xarray built a write graph of one task per chunk even with compute=False (4 s for a year of hourly steps)
        var = template[name]
        lazy[name] = (var.dims, da.zeros(var.shape, dtype="float32", chunks=var.shape), var.attrs)
    lazy.attrs = {**dict(attrs), COMPLETE_ATTR: False}
    enc = data_encoding(lazy, chunk_time, compressor)
    with _Quiet():
        lazy.to_zarr(
            str(path_or_url),
            mode="w",
            compute=False,
            zarr_format=3,
            consolidated=True,
            encoding=enc,
            storage_options=dict(storage_options) if storage_options else None,
        )
        static = static_variables(template)
        if static:
            template[static].to_zarr(
                str(path_or_url),
                mode="r+",
                zarr_format=3,
                consolidated=False,
                storage_options=dict(storage_options) if storage_options else None,
            )


def _open_group(path_or_url: str, storage_options: Mapping[str, Any] | None, mode: str = "r+") -> zarr.Group:
    with _Quiet():
        return zarr.open_group(
            zarr_store(path_or_url, storage_options), mode=mode, zarr_format=3, use_consolidated=False
        )


def write_steps(
    path_or_url: str,
    arrays: Mapping[str, np.ndarray],
    start: int,
    *,
    storage_options: Mapping[str, Any] | None = None,
    group: str | None = None,
) -> None:
    """Write ``arrays`` (name -> array with time first, canonical dim order) at time index ``start`` (of the
    root group, or of child ``group`` along its first dimension).

    zarr-python writes (no xarray/dask overhead) through the zarrs codec pipeline when installed (same bytes).
    Chunk-aligned ``start`` keeps concurrent block writers from touching the same chunk.
    """
    targets = _writable_arrays(path_or_url, storage_options, group, tuple(arrays))
    for name, values in arrays.items():
        arr = targets[name]
        arr[start : start + values.shape[0]] = np.asarray(values, dtype=arr.dtype)


@contextlib.contextmanager
def _fast_pipeline(fast: bool = True) -> Iterator[None]:
    """Arrays opened inside get the zarrs codec pipeline (when ``fast`` and installed). zarr picks an array's
    pipeline from its global config when the array object is made, so the config is switched only around that,
    under a lock (the switch is process-wide for that moment: an array another thread opens meanwhile may get the
    fast pipeline too, which changes only its speed)."""
    if not (fast and _fast_pipeline_available()):
        yield
        return
    with _PIPELINE_LOCK, zarr.config.set({"codec_pipeline.path": FAST_CODEC_PIPELINE}):
        yield


def _writable_arrays(
    path_or_url: str, storage_options: Mapping[str, Any] | None, group: str | None, names: tuple[str, ...]
) -> dict[str, zarr.Array]:
    """The arrays ``names`` of the root group (or child ``group``), opened for writing with the fast codec
    pipeline when it is installed."""
    with _fast_pipeline():
        root = _open_group(path_or_url, storage_options)
        node = root[group] if group else root
        return {name: node[name] for name in names}


def open_array(
    path_or_url: str, name: str, *, storage_options: Mapping[str, Any] | None = None, fast: bool = False
) -> zarr.Array:
    """The root group's array ``name``, read-only (works on incomplete stores); ``fast``: decoded through the
    zarrs codec pipeline when installed (as the ingest's writes; not in a process that forks afterwards)."""
    with _Quiet(), _fast_pipeline(fast):
        return _open_group(path_or_url, storage_options, mode="r")[name]


def read_steps(
    path_or_url: str, names: Iterable[str], start: int, stop: int, *, storage_options: Mapping[str, Any] | None = None
) -> dict[str, np.ndarray]:
    """Time steps ``start``..``stop`` (exclusive) of the root group's arrays ``names`` as stored (float32, canonical
    dim order), with plain zarr-python reads (the mirror of :func:`write_steps`; works on incomplete stores)."""
    root = _open_group(path_or_url, storage_options, mode="r")
    return {name: root[name][start:stop] for name in names}


def extend_time(path_or_url: str, new_times: np.ndarray, *, storage_options: Mapping[str, Any] | None = None) -> int:
    """Grow every time-dependent array by ``len(new_times)`` steps (metadata only; no chunk rewritten) and write
    the new ``time`` values. Returns the old length (the time index the new data starts at)."""
    group = _open_group(path_or_url, storage_options)
    old = group["time"].shape[0]
    new = old + len(new_times)
    with _Quiet():  # zarr warns of the resume record (wxemu_progress/), which is no zarr node
        arrays = list(group.arrays())
    for name, arr in arrays:
        if name == "time":
            continue
        dims = arr.metadata.dimension_names or ()
        if dims and dims[0] == "time":
            arr.resize((new, *arr.shape[1:]))
    tarr = group["time"]
    tarr.resize((new,))
    tarr[old:new] = encode_times(new_times)
    return old


def truncate_time(path_or_url: str, n: int, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Shrink every time-dependent array to its first ``n`` steps (undo an :func:`extend_time`)."""
    group = _open_group(path_or_url, storage_options)
    for name, arr in group.arrays():
        dims = arr.metadata.dimension_names or ()
        if dims and dims[0] == "time":
            arr.resize((n, *arr.shape[1:]))


def write_group(
    path_or_url: str,
    group: str,
    ds: xr.Dataset,
    *,
    storage_options: Mapping[str, Any] | None = None,
    chunks: Mapping[str, int] | None = None,
    dtype: str | None = None,
    compute: bool = True,
) -> None:
    """(Over)write a child group (``stats``, ``climatology``) from a dataset, compressed.

    ``compute=False`` writes only the metadata and coordinates (for a lazy template whose data are written
    later with :func:`write_steps` ``(..., group=group)``; unwritten chunks read as the fill value, NaN).
    """
    comp = default_compressor()
    ds = ds.copy()
    for name, coord in ds.coords.items():  # fixed-width unicode has no stable zarr v3 dtype: use vlen strings
        if coord.dtype.kind == "U":
            ds = ds.assign_coords({name: coord.astype(object)})
    enc = {}
    for name in ds.data_vars:
        e: dict[str, Any] = {"compressors": [comp], "_FillValue": np.nan}
        if dtype:
            e["dtype"] = dtype
        if chunks:
            e["chunks"] = tuple(min(chunks.get(d, n), n) for d, n in zip(ds[name].dims, ds[name].shape))
        enc[str(name)] = e
    with _Quiet():
        ds.to_zarr(
            str(path_or_url),
            group=group,
            mode="w",
            zarr_format=3,
            consolidated=False,
            encoding=enc,
            compute=compute,
            storage_options=dict(storage_options) if storage_options else None,
        )


def remove_store(path_or_url: str, *, storage_options: Mapping[str, Any] | None = None) -> None:
    """Delete the whole store (used when an ingest that created it fails before writing data)."""
    discard(path_or_url, storage_options=storage_options)
