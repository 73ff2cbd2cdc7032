"""Ingest physics-model forecasts (ECMWF / Met Office GRIB, NetCDF, WeatherBench2 Zarr, catalog entries) into a
forecast store that ``wxemu verify`` scores.

The store (docs/architecture.md, "Forecast store"; docs/forecast-ingest.md) is a Zarr v3 store with consolidated
metadata in the WeatherBench2 forecast layout: dims ``time`` (initialisation), ``prediction_timedelta`` (lead,
timedelta64), [``number``], [``level``], ``latitude``, ``longitude``; float32 data, Blosc LZ4 (the analysis
stores' codec, :func:`data_catalog.store.default_compressor`), ``time`` as int64 seconds since 1970.

Chunks: one initial time x a group of consecutive leads x all members, levels and the whole grid, the group as
large as fits :data:`CHUNK_MB` decoded (all leads in one chunk for the sample files and for WeatherBench2's
64 x 32 HRES; one lead per chunk on a 0.25 deg grid). ``wxemu verify`` reads a block of initial times with all
their leads, so all leads in one chunk is one read per (init, variable); the cap keeps a chunk (and the memory of
one write) bounded on fine grids.

Root attributes: ``wxemu_model`` (the name verify reports: ``model_name``, else the GRIB centre - ``ecmwf``,
``ukmo`` - else the catalog entry name, else the file stem), ``wxemu_kind = "forecast"``, ``wxemu_version``,
``wxemu_sources`` (path, sha256, bytes of each file), ``wxemu_recipe`` (the arguments and an equivalent command
line) and ``wxemu_complete``. The store is written under a temporary sibling name, renamed into place and only then
marked complete, so a failure leaves nothing that looks complete.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import xarray as xr

from data_catalog import store as st
from data_catalog import store_protocol as sp
from data_catalog.canonical_coords import crop_to_region
from data_catalog.catalog import get_entry, is_catalog_name, load_catalog, open_dataset
from data_catalog.errors import InputDataError, WxemuError
from data_catalog.forecasts import to_canonical_forecast
from data_catalog.ingestion import file_fingerprint
from data_catalog.plausibility import guard_plausible
from data_catalog.readers import expand_paths, open_source
from data_catalog.regions import parse_box
from data_catalog.um_forecasts import open_pp_forecast, pp_group  # metoffice

KIND = "forecast"
CHUNK_MB = 64.0
FORECAST_DIMS = ("time", "prediction_timedelta")
# GRIB centre abbreviations (eccodes ``centre``) -> model names used in scores
CENTRE_NAMES = {
    "ecmf": "ecmwf",
    "egrr": "ukmo",
    "kwbc": "ncep",
    "lfpw": "meteo-france",
    "cwao": "cmc",
    "rjtd": "jma",
    "babj": "cma",
    "edzw": "dwd",
    "ammc": "bom",
    "sbsj": "cptec",
}


class ForecastIngestError(InputDataError):
    """The forecast sources cannot be combined into one forecast store (or the output is in the way)."""


# ------------------------------------------------------------------------------------------------- sources
def fingerprint(path: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``{path, sha256, bytes}`` of a source (``ingest.file_fingerprint``: a remote Zarr store by its consolidated
    metadata, never listed)."""
    return file_fingerprint(path, dict(storage_options) if storage_options else None)


def model_from_attrs(attrs: Mapping[str, Any]) -> str | None:
    """The model name a source's attributes imply: its GRIB centre (``ecmf`` -> ``ecmwf``, ``egrr`` -> ``ukmo``;
    other centres by their abbreviation), else None."""
    centre = attrs.get("GRIB_centre")
    if isinstance(centre, str) and centre and centre != "consensus":
        return CENTRE_NAMES.get(centre, centre)
    return None


def _open_part(
    source: str,
    *,
    variables,
    levels,
    start,
    end,
    lead_times,
    allow_nan,
    storage_options,
    grib_filter,
    fmt,
    mapping,
    units,
) -> list[tuple[str, xr.Dataset, str | None]]:
    """[(path or entry label, canonical forecast, implied model name)] for one SOURCE argument."""
    common = {
        "variables": list(variables) if variables else None,
        "levels": list(levels) if levels else None,
        "allow_nan": allow_nan,
    }
    if is_catalog_name(source):
        entry = get_entry(source)
        if entry.kind != KIND:
            raise ForecastIngestError(
                f"catalog entry {source!r} is an analysis ({entry.kind}), not a forecast; ingest it without --forecast"
            )
        ds = open_dataset(source, start=start, end=end, storage_options=dict(storage_options or {}) or None, **common)
        if lead_times is not None:
            ds = _select_leads(ds, lead_times, f"catalog entry {source!r}")
        return [(f"catalog entry {source!r}", ds, source)]
    out = []
    for path in expand_paths([source], storage_options=dict(storage_options or {}) or None):
        raw = open_source(
            path,
            fmt,
            storage_options=dict(storage_options or {}) or None,
            grib_filter=dict(grib_filter) if grib_filter else None,
        )
        model = model_from_attrs(raw.attrs)
        ds = to_canonical_forecast(
            raw,
            source=path,
            mapping=dict(mapping) if mapping else None,
            start=start,
            end=end,
            lead_times=lead_times,
            units=dict(units) if units else None,
            **common,
        )
        out.append((path, ds, model))
    return out


def _select_leads(ds: xr.Dataset, lead_times: Sequence, source: str) -> xr.Dataset:
    wanted = pd.to_timedelta(list(lead_times))
    have = pd.TimedeltaIndex(ds["prediction_timedelta"].values)
    missing = [str(w) for w in wanted if w not in have]
    if missing:
        raise InputDataError(f"{source}: lead times {missing} not found; the forecast has {[str(h) for h in have]}")
    return ds.sel(prediction_timedelta=wanted.values)


# ------------------------------------------------------------------------------------------------- combining
def _axis_differs(a: xr.Dataset, b: xr.Dataset, coord: str) -> bool:
    in_a, in_b = coord in a.coords, coord in b.coords
    if in_a != in_b:
        return True
    if not in_a:
        return False
    va, vb = a[coord].values, b[coord].values
    if va.shape != vb.shape:
        return True
    if va.dtype.kind in "fc":
        return not np.allclose(va, vb)
    return not np.array_equal(va, vb)


def combine_forecasts(parts: Sequence[tuple[str, xr.Dataset]]) -> xr.Dataset:
    """Concatenate canonical forecasts on ``time`` (sorted), after checking that they share variables, grid,
    levels, members and leads; an initial time present in two parts is refused. Errors name both sources."""
    first_name, first = parts[0]
    seen: dict[np.datetime64, str] = {}
    for name, ds in parts:
        if set(ds.data_vars) != set(first.data_vars):
            raise ForecastIngestError(
                f"{name}: variables {sorted(ds.data_vars)} differ from those of {first_name} "
                f"{sorted(first.data_vars)}; select common ones with --variables"
            )
        for coord in ("latitude", "longitude", "level", "number", "prediction_timedelta"):
            if _axis_differs(first, ds, coord):
                what = "lead times" if coord == "prediction_timedelta" else f"{coord} axis"
                raise ForecastIngestError(
                    f"{name}: its {what} differs from that of {first_name}; all sources "
                    "must share one grid, level set, members and leads (use --levels, "
                    "--lead-times)"
                )
        for t in ds["time"].values:
            if t in seen:
                raise ForecastIngestError(
                    f"{name}: initial time {pd.Timestamp(t)} is also in {seen[t]}; "
                    "each initial time must come from one source"
                )
            seen[t] = name
    if len(parts) == 1:
        return first
    combined = xr.concat(
        [ds for _, ds in parts],
        dim="time",
        data_vars="all",
        coords="minimal",
        compat="override",
        join="override",
        combine_attrs="drop_conflicts",
    )
    return combined.sortby("time")


# ------------------------------------------------------------------------------------------------- writing
def lead_chunk(ds: xr.Dataset, chunk_mb: float = CHUNK_MB) -> int:
    """Leads per chunk: as many as keep one (init, variable) chunk of float32 under ``chunk_mb`` decoded MB (at
    least 1). The largest variable decides, so every variable shares the chunking."""
    per_lead = 0
    for name in ds.data_vars:
        var = ds[name]
        if "prediction_timedelta" not in var.dims:
            continue
        n = 4
        for dim, size in var.sizes.items():
            if dim not in FORECAST_DIMS:
                n *= size
        per_lead = max(per_lead, n)
    if per_lead == 0:
        return max(1, ds.sizes.get("prediction_timedelta", 1))
    return int(max(1, min(ds.sizes["prediction_timedelta"], (chunk_mb * 1e6) // per_lead)))


def forecast_encoding(ds: xr.Dataset, leads_per_chunk: int) -> dict[str, dict[str, Any]]:
    """``to_zarr`` encoding: the analysis stores' (``store.data_encoding``: float32, Blosc LZ4, int64 seconds for
    ``time``) with data chunks of one init x ``leads_per_chunk`` leads x everything else."""
    enc = st.data_encoding(ds, chunk_time=1)
    for name in ds.data_vars:
        var = ds[name]
        enc[str(name)]["chunks"] = tuple(
            1 if d == "time" else min(leads_per_chunk, n) if d == "prediction_timedelta" else n
            for d, n in zip(var.dims, var.shape)
        )
    return enc


def _fs(path: str, storage_options: Mapping[str, Any] | None) -> tuple[fsspec.AbstractFileSystem, str]:
    return fsspec.core.url_to_fs(path, **dict(storage_options or {}))


def _command(sources: Sequence[str], out: str, recipe: Mapping[str, Any]) -> str:
    argv = ["wxemu", "ingest", "--forecast", *sources, "--out", out]
    for key, opt in (("variables", "--variables"), ("levels", "--levels"), ("lead_times", "--lead-times")):
        if recipe.get(key):
            argv += [opt, ",".join(map(str, recipe[key]))]
    for key, opt in (
        ("start", "--start"),
        ("end", "--end"),
        ("region", "--region"),
        ("model_name", "--model-name"),
        ("fmt", "--format"),
    ):
        if recipe.get(key) is not None:
            argv += [opt, str(recipe[key])]
    for key, opt in (("grib_filter", "--grib-filter"), ("mapping", "--mapping"), ("units", "--units")):
        for k, v in (recipe.get(key) or {}).items():
            argv += [opt, f"{k}={v}"]
    if recipe.get("allow_nan"):
        argv.append("--allow-nan")
    if recipe.get("allow_implausible"):
        argv.append("--allow-implausible")
    return shlex.join(argv)


def _write_tmp(ds: xr.Dataset, tmp: str, leads_per_chunk: int, options: Mapping[str, Any] | None) -> None:
    """Write ``ds`` (marked incomplete) as a consolidated Zarr v3 store at ``tmp``, chunk by chunk (dask)."""
    with st._Quiet():
        ds.to_zarr(
            tmp,
            mode="w",
            zarr_format=3,
            consolidated=True,
            encoding=forecast_encoding(ds, leads_per_chunk),
            storage_options=dict(options) if options else None,
        )


def ingest_forecast(
    sources: list[str],
    out: str,
    *,
    variables: Sequence[str] | None = None,
    levels: Sequence[int] | None = None,
    start=None,
    end=None,
    lead_times: Sequence | None = None,
    model_name: str | None = None,
    allow_nan: bool = False,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    grib_filter: Mapping[str, Any] | None = None,
    fmt: str | None = None,
    mapping: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    chunk_mb: float = CHUNK_MB,
    allow_implausible: bool = False,
    region: str | None = None,
) -> xr.Dataset:
    """Ingest forecast ``sources`` (catalog entry names, or paths / globs / URLs of GRIB, NetCDF, Zarr) into the
    forecast store ``out`` (path or fsspec URL); returns the store opened lazily.

    variables, levels, start/end (inclusive initial times), lead_times (``"6h"``, timedelta64, ...), allow_nan,
    mapping, units: as ``forecasts.to_canonical_forecast``. grib_filter: cfgrib ``filter_by_keys`` applied to every
    GRIB file (e.g. ``{"dataType": "fc"}``). region: cut every source to this box first (a named region of
    :mod:`data_catalog.regions` or ``"lat0,lat1,lon0,lon1"``). allow_implausible: store values outside the
    physical bounds of their variable (``plausibility.BOUNDS``; otherwise refused while writing, naming the
    first). model_name: the ``wxemu_model`` attribute (default: GRIB centre, else catalog entry name, else the
    file stem).
    chunk_mb: decoded MB cap of a chunk (see module docstring).

    Raises InputDataError (naming the file) for unreadable or unmappable input, mismatched grids/leads or
    duplicated initial times between sources, and WxemuError when ``out`` exists and ``overwrite`` is False.
    """
    if not sources:
        raise ForecastIngestError("ingest --forecast: no SOURCE given")
    out = str(out)
    options = dict(storage_options or {}) or None
    box = parse_box(region) if region is not None else None  # a bad spec is refused before anything is opened
    with sp.writer_lock(out, stage="ingest --forecast", storage_options=options):
        return _ingest_forecast_locked(
            sources,
            out,
            options,
            dict(
                variables=variables,
                levels=levels,
                start=start,
                end=end,
                lead_times=lead_times,
                model_name=model_name,
                allow_nan=allow_nan,
                overwrite=overwrite,
                grib_filter=grib_filter,
                fmt=fmt,
                mapping=mapping,
                units=units,
                chunk_mb=chunk_mb,
                allow_implausible=allow_implausible,
                region=region,
                box=box,
            ),
        )


def _ingest_forecast_locked(sources: list[str], out: str, options: dict | None, kw: dict[str, Any]) -> xr.Dataset:
    """:func:`ingest_forecast`'s work (keyword arguments ``kw``), under the writer lock of ``out``."""
    variables, levels, start, end = kw["variables"], kw["levels"], kw["start"], kw["end"]
    lead_times, model_name, allow_nan, overwrite = kw["lead_times"], kw["model_name"], kw["allow_nan"], kw["overwrite"]
    grib_filter, fmt, mapping, units, chunk_mb = (
        kw["grib_filter"],
        kw["fmt"],
        kw["mapping"],
        kw["units"],
        kw["chunk_mb"],
    )
    allow_implausible = kw["allow_implausible"]
    fs, out_path = _fs(out, options)
    if fs.exists(out_path) and not overwrite:
        raise WxemuError(f"{out}: exists; pass --overwrite (overwrite=True) to replace it")
    lead_list = [str(pd.Timedelta(v)) if not isinstance(v, str) else v for v in lead_times] if lead_times else None
    found: list[tuple[str, xr.Dataset, str | None]] = []
    pp = pp_group(sources, fmt, options)  # metoffice: all-PP SOURCEs are read together (data_catalog.um_forecasts)
    if pp:
        sel = {"variables": list(variables) if variables else None, "levels": list(levels) if levels else None}
        sel.update(start=start, end=end, lead_times=lead_list, allow_nan=allow_nan)
        found.append(open_pp_forecast(pp, storage_options=options, mapping=mapping, units=units, **sel))
    for source in [] if pp else sources:
        found += _open_part(
            source,
            variables=variables,
            levels=levels,
            start=start,
            end=end,
            lead_times=lead_list,
            allow_nan=allow_nan,
            storage_options=options,
            grib_filter=grib_filter,
            fmt=fmt,
            mapping=mapping,
            units=units,
        )
    if kw["box"] is not None:
        found = [(name, crop_to_region(d, kw["box"], name), model) for name, d, model in found]
    ds = combine_forecasts([(name, d) for name, d, _ in found])
    implied = [m for _, _, m in found if m]
    name = model_name or (implied[0] if implied and len(set(implied)) == 1 else None)
    if name is None:
        name = Path(str(found[0][0]).rstrip("/")).stem if not implied else "+".join(dict.fromkeys(implied))
    fingerprints = []
    for label, d, _ in found:
        if label.startswith("catalog entry"):
            entry = d.attrs.get("wxemu_catalog_entry")
            location = load_catalog().location(entry)
            fingerprints.append({**fingerprint(location, options), "catalog_entry": entry})
        else:  # metoffice: PP files read together list their files
            fingerprints += [fingerprint(p, options) for p in d.attrs.get("source_files") or [label]]
    recipe: dict[str, Any] = {
        "sources": list(sources),
        "variables": list(variables) if variables else None,
        "levels": [int(v) for v in levels] if levels else None,
        "start": str(pd.Timestamp(start).isoformat()) if start is not None else None,
        "end": str(pd.Timestamp(end).isoformat()) if end is not None else None,
        "lead_times": lead_list,
        "region": kw["region"],
        "model_name": model_name,
        "allow_nan": bool(allow_nan),
        "allow_implausible": bool(allow_implausible),
        "grib_filter": {str(k): v for k, v in grib_filter.items()} if grib_filter else None,
        "fmt": fmt,
        "mapping": dict(mapping) if mapping else None,
        "units": dict(units) if units else None,
    }
    recipe["command"] = _command(sources, out, recipe)
    attrs = {
        k: ds.attrs[k]
        for k in ("licence", "attribution", "wxemu_catalog_entry", "institution", "regridding", "um_lagged_ensemble")
        if isinstance(ds.attrs.get(k), str)
    }
    attrs.update(
        {
            "wxemu_model": name,
            "wxemu_kind": KIND,
            **sp.provenance(command=recipe["command"], sources=fingerprints),
            "wxemu_recipe": recipe,
            st.COMPLETE_ATTR: False,
        }
    )
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims])  # e.g. valid_time: time + lead
    ds.attrs = attrs
    leads_per_chunk = lead_chunk(ds, chunk_mb)
    ds = ds.chunk({d: (1 if d == "time" else leads_per_chunk if d == "prediction_timedelta" else -1) for d in ds.dims})
    if not allow_implausible:
        for var in list(ds.data_vars):
            ds[var] = guard_plausible(ds[var], str(var), ", ".join(label for label, _, _ in found))
    tmp = sp.tmp_sibling(out)
    try:
        _write_tmp(ds, tmp, leads_per_chunk, options)  # NaNs (unless allowed) raise from inside this compute
        sp.move_into_place(tmp, out, storage_options=options)  # the old store goes only once the new one is written
        st.mark_complete(out, storage_options=options)
    except BaseException:
        sp.discard(tmp, storage_options=options)
        raise
    return st.open_store(out, storage_options=options)
