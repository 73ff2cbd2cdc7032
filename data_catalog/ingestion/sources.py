"""Opening the sources: resolving catalog entries and globs, mapping each file onto the canonical convention,
combining files along time, validating the result (before anything is written)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr
from dask.local import get_sync  # the synchronous scheduler as a function: no dask.distributed import

from data_catalog import store as st
from data_catalog.canonical import to_canonical
from data_catalog.canonical_coords import check_time_axis, crop_to_region
from data_catalog.catalog import get_entry, is_catalog_name, load_catalog, open_dataset
from data_catalog.errors import InputDataError
from data_catalog.ingestion.config import IngestConfig
from data_catalog.readers import apply_url_map, check_reachable, expand_paths, open_source
from data_catalog.regrid import regrid_dataset


def resolve_sources(cfg: IngestConfig) -> list[str]:
    """The concrete files/stores behind the SOURCE arguments (catalog entries resolved, globs expanded)."""
    paths: list[str] = []
    for source in cfg.sources:
        if is_catalog_name(source):
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
    for path in dict.fromkeys(paths):  # reliability: an unreachable cloud host fails at once (not after retries)
        check_reachable(path, cfg.options)
    return list(dict.fromkeys(paths))


def open_one(cfg: IngestConfig, path: str) -> xr.Dataset:
    """One source file opened lazily and mapped onto the canonical convention (member selected)."""
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
    return select_member(ds, cfg.member, path)


def select_member(ds: xr.Dataset, member: int | None, source: str) -> xr.Dataset:
    """``ds`` without its ``number`` axis: the ensemble member ``member`` (None: ``ds`` unchanged)."""
    if member is None:
        return ds
    if "number" not in ds.dims:
        raise InputDataError(f"{source}: --member {member} given but the source is not an ensemble")
    members = ds["number"].values.tolist()
    if member not in members:
        raise InputDataError(f"{source}: member {member} not found; the source has members {members}")
    return ds.sel(number=member, drop=True)


def open_entry(cfg: IngestConfig, name: str) -> xr.Dataset:
    """A catalog analysis entry opened lazily in the canonical convention (one member)."""
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
    return select_member(ds, cfg.member, f"catalog entry {name!r}")


def check_same_grid(a: xr.Dataset, b: xr.Dataset, name_a: str, name_b: str) -> None:
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
    groups: dict[tuple[str, ...], list[tuple[str, xr.Dataset]]] = {}
    for name, ds in parts:
        groups.setdefault(tuple(sorted(map(str, ds.data_vars))), []).append((name, ds))
    first_name, first = parts[0]
    merged: list[xr.Dataset] = []
    for members in groups.values():
        for name, ds in members:
            check_same_grid(first, ds, first_name, name)
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


def check_dims(ds: xr.Dataset, names: str) -> None:
    for v in ds.data_vars:
        extra = [d for d in ds[v].dims if d not in ("time", "level", "latitude", "longitude")]
        if extra:
            raise InputDataError(
                f"{names}: variable {v!r} has dimensions {extra} that the canonical analysis store "
                "lacks (an ensemble: choose --member N)"
            )


@dataclass
class OpenedSources:
    """The lazy canonical dataset the store will hold (validated; cut to ``cfg.region``, regridded when
    ``cfg.grid``) and where its parts came from. spans: [(source name, first time, last time)] (which file a time
    came from, for error messages); parts: [(source name, its variables, has a time axis)] (which files a block
    needs, on a cluster)."""

    cfg: IngestConfig
    ds: xr.Dataset
    spans: list[tuple[str, np.datetime64, np.datetime64]]
    parts: list[tuple[str, tuple[str, ...], bool]]

    def files_at(self, t: np.datetime64) -> list[str]:
        """The sources holding time ``t``."""
        return [n for n, a, b in self.spans if a <= t <= b]


def open_sources(cfg: IngestConfig, on_open: Callable[[str], None] | None = None) -> OpenedSources:
    """Open, map, combine and validate the sources of ``cfg``; ``on_open(name)`` after each source (progress)."""
    parts: list[tuple[str, xr.Dataset]] = []
    for source in cfg.sources:
        if is_catalog_name(source):
            parts.append((f"catalog entry {source!r}", open_entry(cfg, source)))
            if on_open:
                on_open(source)
        else:
            for path in expand_paths([source], storage_options=cfg.options):
                parts.append((path, open_one(cfg, path)))
                if on_open:
                    on_open(path)
    box = cfg.box
    if box is not None:  # before anything is read: only the chunks that overlap the box are fetched
        parts = [(name, crop_to_region(part, box, name)) for name, part in parts]
    ds = combine_sources(parts, cfg)
    names = ", ".join(n for n, _ in parts)
    spans = [(n, p["time"].values[0], p["time"].values[-1]) for n, p in parts if "time" in p.dims]
    kinds = [(n, tuple(sorted(map(str, p.data_vars))), "time" in p.dims) for n, p in parts]
    check_dims(ds, names)
    if cfg.grid is not None:
        ds = regrid_dataset(ds, cfg.grid)
    ds.attrs = {k: v for k, v in ds.attrs.items() if k in ("Conventions", "licence", "attribution", "regridding")}
    if ds.nbytes <= cfg.load_mb * 1e6:
        ds = ds.load()  # small: read every source once (a GRIB file is one dask chunk: re-reading it is slow)
    return OpenedSources(cfg, ds, spans, kinds)


def first_step(ds: xr.Dataset, names: Sequence[str], index: int) -> dict[str, np.ndarray]:
    """{name: time step ``index`` of ``ds`` as the store holds it (float32)}."""
    step = ds[list(names)].isel(time=index).compute(scheduler=get_sync)
    return {n: np.asarray(step[n].values, dtype="f4") for n in names}
