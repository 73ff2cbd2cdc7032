"""Open one NetCDF / GRIB / Zarr source (local path or fsspec URL) lazily, with clear errors for bad input.

``open_source`` returns the dataset as the source spells it (source variable and coordinate names); mapping onto
the canonical convention is ``data_catalog.canonical.to_canonical``'s job.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import warnings
from collections.abc import Iterable
from typing import Any

import fsspec
import pandas as pd
import xarray as xr

from data_catalog.errors import InputDataError
from data_catalog.integrity import check_file_size, guard_reads
from data_catalog.um import PP_SUFFIXES, is_um_magic, open_um  # metoffice: PP/fieldsfiles via iris

log = logging.getLogger(__name__)

FORMATS = ("netcdf", "grib", "zarr", "pp")  # metoffice: "pp" = Met Office PP/fieldsfiles
_SUFFIXES = {
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".netcdf": "netcdf",
    ".cdf": "netcdf",
    ".h5": "netcdf",
    ".grib": "grib",
    ".grb": "grib",
    ".grib1": "grib",
    ".grib2": "grib",
    ".grb2": "grib",
    ".zarr": "zarr",
    **{suffix: "pp" for suffix in PP_SUFFIXES},  # metoffice
}
# GRIB scalar coordinates naming a level type; dropped before hypercubes are merged (kept in the attrs).
_GRIB_SCALAR_LEVEL_COORDS = (
    "surface",
    "heightAboveGround",
    "meanSea",
    "depthBelowLandLayer",
    "entireAtmosphere",
    "nominalTop",
    "heightAboveSea",
    "depthBelowLand",
    "cloudBase",
    "cloudTop",
    "sigma",
)


def parse_url_map(text: str) -> dict[str, str]:
    """``"gs://weatherbench2/=http://127.0.0.1:8123/;gs://x/=/data/x/"`` (or a JSON object) -> {prefix: target}."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        import json

        return {str(k): str(v) for k, v in json.loads(text).items()}
    pairs = [p for p in text.replace("\n", ";").split(";") if p.strip()]
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise InputDataError(f"$WXEMU_URL_MAP: {pair!r} is not PREFIX=TARGET")
        prefix, target = pair.split("=", 1)
        out[prefix.strip()] = target.strip()
    return out


def apply_url_map(url: str, mirrors: dict[str, str] | None = None) -> str:
    """Rewrite ``url`` by the longest matching prefix of ``mirrors`` and of ``$WXEMU_URL_MAP`` (the environment
    wins), so that sites with local mirrors (and the tests) read cloud data from a local copy."""
    table = {**(mirrors or {}), **parse_url_map(os.environ.get("WXEMU_URL_MAP", ""))}
    for prefix in sorted(table, key=len, reverse=True):
        if url.startswith(prefix):
            return table[prefix] + url[len(prefix) :]
    return url


def _is_remote(path: str) -> bool:
    protocol = fsspec.utils.get_protocol(path)
    return protocol not in ("file", "local")


_DEFAULT_HOSTS = {"gs": "storage.googleapis.com", "gcs": "storage.googleapis.com", "s3": "s3.amazonaws.com"}
#: Seconds to wait for a TCP connection to a remote source's host before calling it unreachable.
CONNECT_TIMEOUT_S = 5.0


def _endpoint(url: str, storage_options: dict | None) -> tuple[str, int] | None:
    """(host, port) a remote URL is fetched from (cloud endpoints and emulators included), or None when that
    cannot be told (unknown protocol, or a proxy in the way)."""
    from urllib.parse import urlsplit

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY")):
        return None
    protocol = fsspec.utils.get_protocol(url)
    options = storage_options or {}
    endpoint = None
    if protocol in ("gs", "gcs"):
        endpoint = options.get("endpoint_url") or os.environ.get("STORAGE_EMULATOR_HOST")
    elif protocol == "s3":
        endpoint = (
            options.get("endpoint_url")
            or (options.get("client_kwargs") or {}).get("endpoint_url")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
    elif protocol in ("http", "https"):
        endpoint = url
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if not parts.hostname:
            return None
        return parts.hostname, parts.port or (80 if parts.scheme == "http" else 443)
    host = _DEFAULT_HOSTS.get(protocol)
    return (host, 443) if host else None


@functools.lru_cache(maxsize=64)  # successes only (a failure raises): one probe per host and process
def _probe(host: str, port: int) -> None:
    with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
        pass


def check_reachable(url: str, storage_options: dict | None = None) -> None:
    """Raise InputDataError at once (within ``CONNECT_TIMEOUT_S``) when the host serving remote ``url`` cannot be
    reached: without it fsspec's cloud clients retry for about a minute and log a traceback per attempt."""
    where = _endpoint(url, storage_options)
    if where is None:
        return
    try:
        _probe(*where)
    except OSError as exc:
        reason = "no network or DNS" if isinstance(exc, socket.gaierror) else (str(exc) or type(exc).__name__)
        raise InputDataError(
            f"{url}: cannot reach {where[0]}:{where[1]} ({reason}); check the network connection, or read a local "
            "mirror ($WXEMU_URL_MAP, or `mirrors` in a catalog file)"
        ) from None


def _strip_local(path: str) -> str:
    return path[len("file://") :] if path.startswith("file://") else path


def detect_format(path: str, storage_options: dict | None = None) -> str:
    """``"netcdf"``, ``"grib"`` or ``"zarr"`` from the suffix, else from the magic bytes (or a Zarr directory).

    Raises InputDataError for a missing path or an unknown format.
    """
    stripped = path.rstrip("/")
    suffix = os.path.splitext(stripped)[1].lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    fs, fs_path = fsspec.core.url_to_fs(path, **(storage_options or {}))
    try:
        if fs.isdir(fs_path):
            for marker in ("zarr.json", ".zgroup", ".zarray", ".zmetadata"):
                if fs.exists(f"{fs_path.rstrip('/')}/{marker}"):
                    return "zarr"
            raise InputDataError(f"{path}: a directory that is not a Zarr store (no zarr.json/.zgroup/.zarray)")
        with fs.open(fs_path, "rb") as f:
            magic = f.read(8)
    except FileNotFoundError as exc:
        raise InputDataError(f"{path}: no such file or store") from exc
    except InputDataError:
        raise
    except Exception as exc:  # network errors, permissions
        raise InputDataError(f"{path}: cannot read ({type(exc).__name__}: {exc})") from exc
    if magic.startswith(b"GRIB"):
        return "grib"
    if magic.startswith(b"\x89HDF") or magic[:3] == b"CDF":
        return "netcdf"
    if is_um_magic(magic):  # metoffice
        return "pp"
    raise InputDataError(
        f"{path}: unknown format (not NetCDF, GRIB or Zarr; first bytes {magic!r}); give the format explicitly"
    )


def _local_copy(path: str, storage_options: dict | None) -> str:
    """A local file path for ``path``: itself when local, else a cached download (fsspec simplecache)."""
    if not _is_remote(path):
        local = _strip_local(path)
        if not os.path.exists(local):
            raise InputDataError(f"{path}: no such file")
        return local
    cache_dir = os.path.join(os.environ.get("WXEMU_CACHE_DIR", os.path.expanduser("~/.cache/wxemu")), "remote")
    protocol = fsspec.utils.get_protocol(path)
    try:
        return fsspec.open_local(
            f"simplecache::{path}", simplecache={"cache_storage": cache_dir}, **{protocol: storage_options or {}}
        )
    except FileNotFoundError as exc:
        raise InputDataError(f"{path}: no such file") from exc
    except Exception as exc:
        raise InputDataError(f"{path}: cannot download ({type(exc).__name__}: {exc})") from exc


def _check_gap(path: str, begin: int, end: int, source: str, where: str) -> None:
    """Raise when bytes ``begin:end`` of ``path`` (between GRIB messages) are not zero padding."""
    if end <= begin:
        return
    with open(path, "rb") as g:  # a second handle: eccodes owns the position of the first
        g.seek(begin)
        gap = g.read(end - begin)
    if gap.strip(b"\0"):
        raise InputDataError(
            f"{source}: corrupt or truncated GRIB: {end - begin} trailing bytes {where} are not a GRIB message"
        )


def check_grib_messages(path: str, source: str | None = None) -> int:
    """Scan every message of a local GRIB file with eccodes; return the count.

    Raises InputDataError naming the file and the offset of the first unreadable message, or trailing bytes
    that are no message (a truncated or corrupted file). cfgrib alone skips such messages with a log line.
    """
    import eccodes

    source = source or path
    size = os.path.getsize(path)
    count = 0
    expected = 0  # where the next message should start
    with open(path, "rb") as f:
        while True:
            offset = f.tell()
            try:
                handle = eccodes.codes_new_from_file(f, eccodes.CODES_PRODUCT_GRIB, headers_only=True)
            except Exception as exc:
                raise InputDataError(
                    f"{source}: corrupt or truncated GRIB: message {count + 1} after byte {offset} "
                    f"of {size} cannot be decoded ({exc})"
                ) from None
            if handle is None:
                break
            try:
                start = int(eccodes.codes_get(handle, "offset", ktype=int))
                length = int(eccodes.codes_get(handle, "totalLength", ktype=int))
            finally:
                eccodes.codes_release(handle)
            _check_gap(path, expected, start, source, f"before message {count + 1}")
            count += 1
            expected = start + length
        if count == 0:
            raise InputDataError(f"{source}: no GRIB messages in the file ({size} bytes)")
        _check_gap(path, expected, size, source, f"after message {count}")
    return count


def _prepare_hypercube(ds: xr.Dataset) -> xr.Dataset:
    """Make one cfgrib hypercube mergeable: a scalar ``isobaricInhPa`` becomes a length-1 dimension and scalar
    level-type coordinates (``surface``, ``heightAboveGround``, ...) move into the variables' attributes."""
    for name in _GRIB_SCALAR_LEVEL_COORDS:
        if name in ds.coords and ds[name].ndim == 0:
            value = ds[name].item()
            ds = ds.drop_vars(name)
            for var in ds.data_vars.values():
                var.attrs[f"GRIB_{name}"] = value
    for name in ("isobaricInhPa", "isobaricInPa"):
        if name in ds.coords and ds[name].ndim == 0:
            ds = ds.expand_dims(name)
    return ds


def _merge_hypercubes(datasets: list[xr.Dataset], path: str) -> xr.Dataset:
    """Merge what merges (outer join on coordinates); warn about hypercubes that conflict and were left out."""
    merged = _prepare_hypercube(datasets[0])
    skipped: list[str] = []
    for ds in datasets[1:]:
        ds = _prepare_hypercube(ds)
        try:
            merged = xr.merge([merged, ds], compat="no_conflicts", join="outer", combine_attrs="drop_conflicts")
        except Exception as exc:
            skipped.append(f"{sorted(ds.data_vars)} ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})")
    if skipped:
        warnings.warn(
            f"{path}: GRIB hypercubes left out because they conflict with the first ones: "
            f"{'; '.join(skipped)}; open them with grib_filter (cfgrib filter_by_keys)",
            stacklevel=3,
        )
    return merged


def _open_grib(path: str, local: str, variables: list[str] | None, grib_filter: dict | None) -> xr.Dataset:
    import cfgrib

    check_grib_messages(local, source=path)
    kwargs: dict[str, Any] = {"indexpath": ""}
    if grib_filter:
        kwargs["filter_by_keys"] = dict(grib_filter)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            try:  # one hypercube (the common case): a single index pass
                datasets = [
                    xr.open_dataset(local, engine="cfgrib", backend_kwargs={**kwargs, "errors": "raise"}, chunks={})
                ]
            except cfgrib.dataset.DatasetBuildError:  # several: one dataset per hypercube
                datasets = cfgrib.open_datasets(local, backend_kwargs=kwargs, chunks={})
    except KeyError as exc:
        if grib_filter:  # cfgrib's index is empty: nothing matched the filter
            raise InputDataError(f"{path}: no GRIB fields matching {grib_filter}") from None
        raise InputDataError(f"{path}: cannot read GRIB (missing key {exc})") from None
    except Exception as exc:
        raise InputDataError(f"{path}: cannot read GRIB ({type(exc).__name__}: {exc})") from None
    if variables:
        datasets = [d[[v for v in d.data_vars if v in variables]] for d in datasets]
    datasets = [d for d in datasets if d.data_vars]
    if not datasets:
        what = f" matching {grib_filter}" if grib_filter else ""
        what += f" with variables {variables}" if variables else ""
        raise InputDataError(f"{path}: no GRIB fields{what}")
    return _merge_hypercubes(datasets, path)


def _open_netcdf(path: str, local: str) -> xr.Dataset:
    check_file_size(local, path)  # NetCDF3 reads past the end as zeros: compare with what the header promises
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CF decoding chatter about int attributes
            lazy = xr.open_dataset(local, chunks=None)
    except Exception as exc:
        raise InputDataError(
            f"{path}: cannot read NetCDF: corrupt or not NetCDF ({type(exc).__name__}: {exc})"
        ) from None
    return guard_reads(lazy, path, "NetCDF data")


def _open_zarr(path: str, storage_options: dict | None) -> xr.Dataset:
    try:
        lazy = xr.open_zarr(
            path, storage_options=storage_options or None, chunks=None, consolidated=None, decode_timedelta=True
        )
    except FileNotFoundError as exc:
        raise InputDataError(f"{path}: no such Zarr store") from exc
    except Exception as exc:
        raise InputDataError(f"{path}: cannot open Zarr store ({type(exc).__name__}: {exc})") from None
    return guard_reads(lazy, path, "Zarr chunk")


def open_source(
    path: str,
    fmt: str | None = None,
    *,
    variables: list[str] | None = None,
    storage_options: dict | None = None,
    grib_filter: dict | None = None,
) -> xr.Dataset:
    """Open ONE NetCDF / GRIB / Zarr file or store lazily (dask-backed), as the source names things.

    path: local path or fsspec URL (``gs://``, ``s3://``, ``https://``, ``memory://``, ``file://``). Remote
    NetCDF/GRIB files are downloaded once into ``$WXEMU_CACHE_DIR/remote`` (cfgrib and netCDF4 need a local
    file); Zarr stores are read in place.
    fmt: ``"netcdf"``, ``"grib"`` or ``"zarr"``; None detects it from the suffix or the magic bytes.
    variables: source variable names to keep (others dropped; a missing one is an error).
    The path is first rewritten by ``$WXEMU_URL_MAP`` (see ``apply_url_map``); an unreachable remote host fails
    at once (``check_reachable``).
    grib_filter: cfgrib ``filter_by_keys`` (e.g. ``{"shortName": "v"}``). A GRIB file with several hypercubes
    (e.g. u and v on different levels) is opened with ``cfgrib.open_datasets`` and the hypercubes merged with an
    outer join on coordinates (so a variable absent on some levels is NaN there; ``to_canonical`` reports it).

    Raises InputDataError (naming the path and the problem) for a missing file, unknown format, corrupt or
    truncated file, or missing variables.
    """
    path = apply_url_map(path)
    if _is_remote(path):
        check_reachable(path, storage_options)
    if fmt is not None and fmt not in FORMATS:
        raise InputDataError(f"{path}: unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    fmt = fmt or detect_format(path, storage_options)
    if fmt == "zarr":
        ds = _open_zarr(path, storage_options)
    else:
        local = _local_copy(path, storage_options)
        if fmt == "pp":  # metoffice: read through iris, regridded onto a regular grid (data_catalog.um)
            ds = open_um(local, sources=[path])
        else:
            ds = _open_grib(path, local, variables, grib_filter) if fmt == "grib" else _open_netcdf(path, local)
    if variables:
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            raise InputDataError(f"{path}: variables {missing} not found; the source has {sorted(ds.data_vars)}")
        ds = ds[list(variables)]
    ds.attrs.setdefault("wxemu_source_path", path)
    ds.attrs["wxemu_source_format"] = fmt
    return ds


def open_pp_group(paths: list[str], *, storage_options: dict | None = None) -> xr.Dataset:
    """metoffice: Met Office PP files / fieldsfiles read together through iris (``data_catalog.um.open_um``), so
    that the members and leads of an ensemble spread over files merge into one dataset."""
    paths = [apply_url_map(p) for p in paths]
    ds = open_um([_local_copy(p, storage_options) for p in paths], sources=paths)
    ds.attrs.setdefault("wxemu_source_path", paths[0])
    ds.attrs["wxemu_source_format"] = "pp"
    return ds


def expand_paths(
    paths_or_globs: Iterable[str], *, start=None, end=None, freq: str | None = None, storage_options: dict | None = None
) -> list[str]:
    """Expand date templates and globs into a sorted, de-duplicated list of paths/URLs.

    A ``{date:%Y%m%d}``-style template is expanded over the periods of ``pandas.period_range(start, end, freq)``
    (``freq`` a period alias, default ``"D"``; ``"M"`` monthly files; ``start``/``end`` are required then).
    Globs (``*``, ``?``, ``[``) are expanded with fsspec;
    a glob that matches nothing is an InputDataError. Plain paths pass unchanged (checked when opened).
    """
    out: list[str] = []
    for item in paths_or_globs:
        candidates = [item]
        if "{date" in item:
            if start is None or end is None:
                raise InputDataError(f"{item}: a date template needs a start and an end time")
            periods = pd.period_range(pd.Timestamp(start), pd.Timestamp(end), freq=freq or "D")
            dates = periods.to_timestamp()
            candidates = list(dict.fromkeys(item.format(date=d) for d in dates))
        for cand in candidates:
            if any(ch in cand for ch in "*?["):
                fs, _ = fsspec.core.url_to_fs(cand, **(storage_options or {}))
                matches = sorted(fs.glob(cand))
                if not matches:
                    raise InputDataError(f"{cand}: the pattern matches no file")
                out.extend(m if not _is_remote(cand) else fs.unstrip_protocol(m) for m in matches)
            else:
                out.append(cand)
    return list(dict.fromkeys(out))


def open_sources(
    paths_or_globs: list[str],
    fmt: str | None = None,
    *,
    variables: list[str] | None = None,
    storage_options: dict | None = None,
    grib_filter: dict | None = None,
    start=None,
    end=None,
    freq: str | None = None,
) -> list[tuple[str, xr.Dataset]]:
    """Expand globs and date templates (see ``expand_paths``) and open each source: ``[(path, dataset), ...]``."""
    paths = expand_paths(paths_or_globs, start=start, end=end, freq=freq, storage_options=storage_options)
    return [
        (p, open_source(p, fmt, variables=variables, storage_options=storage_options, grib_filter=grib_filter))
        for p in paths
    ]
