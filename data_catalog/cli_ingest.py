"""`wxemu ingest SOURCE... --out STORE.zarr`: the command-line face of ``data_catalog.ingestion``."""

from __future__ import annotations

import argparse
import json
import sys

from data_catalog.errors import ConfigError

HELP = "ingest NetCDF/GRIB/Zarr sources into a canonical Zarr store"


class _Deprecated(argparse.Action):
    """An old spelling of an option: stored like the new one (``dest``), with a note on stderr."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        new = "--" + self.dest.replace("_", "-")
        print(f"wxemu ingest: {option_string} is deprecated; use {new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def _list(values: str | list[str] | None) -> tuple[str, ...] | None:
    """Items of a list flag: values separated by spaces (``nargs="+"``); commas are read as separators too."""
    if values is None:
        return None
    text = values if isinstance(values, str) else ",".join(values)
    items = tuple(t.strip() for t in text.replace(" ", ",").split(",") if t.strip())
    return items or None


def _pairs(values: list[str] | None, option: str) -> tuple[tuple[str, str], ...] | None:
    if not values:
        return None
    out = []
    for value in values:
        if "=" not in value:
            raise ConfigError(f"{option} {value!r}: expected KEY=VALUE")
        key, val = value.split("=", 1)
        out.append((key.strip(), val.strip()))
    return tuple(out)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "sources", nargs="+", metavar="SOURCE", help="catalog entry name(s) or NetCDF/GRIB/Zarr paths, globs or URLs"
    )
    parser.add_argument("--out", required=True, metavar="STORE.zarr", help="output store (path or fsspec URL)")
    parser.add_argument(
        "--variables", nargs="+", metavar="VAR", help="canonical (or source) variable names (default: all)"
    )
    parser.add_argument(
        "--levels", nargs="+", metavar="HPA", help="pressure levels in hPa, e.g. 500 850 (default: all)"
    )
    parser.add_argument("--start", help="first time to ingest (inclusive, e.g. 2019-03-01T00)")
    parser.add_argument("--end", help="last time to ingest (inclusive)")
    parser.add_argument(
        "--region",
        metavar="REGION",
        help="cut the sources to a named region (e.g. uk; `wxemu verify --help` lists them) or a box "
        "lat0,lat1,lon0,lon1 in degrees, e.g. 50,58,-10,2 (default: the whole grid)",
    )
    parser.add_argument(
        "--grid",
        type=float,
        metavar="DEG",
        help="conservatively regrid to this resolution in degrees (coarser than the source)",
    )
    parser.add_argument(
        "--append",
        action="store_true",
        help="add the times after the end of an existing complete store (old chunks untouched)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run the block writes and the climatology on an existing dask.distributed scheduler (e.g. a SLURMCluster)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="run the block writes and the climatology on a local dask cluster of N worker processes",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=2,
        help="threads of the default (no cluster) path: block writes, climatology tasks, and "
        "(one fewer) checksums (default 2)",
    )
    parser.add_argument("--stats-start", help="first time of the statistics/climatology period (default: all)")
    parser.add_argument("--stats-end", help="last time of the statistics/climatology period (default: all)")
    parser.add_argument("--chunk-time", type=int, default=1, metavar="N", help="time steps per chunk (default 1)")
    parser.add_argument(
        "--block-mb",
        type=float,
        default=64.0,
        help="decoded MB per written time block, the unit of progress and resume (default 64)",
    )
    parser.add_argument("--region-mb", type=float, dest="block_mb", action=_Deprecated, help=argparse.SUPPRESS)
    parser.add_argument(
        "--climatology-window",
        type=int,
        default=61,
        metavar="DAYS",
        help="day-of-year smoothing window of the climatology (odd, default 61)",
    )
    parser.add_argument(
        "--climatology-hour-step",
        type=int,
        default=1,
        metavar="H",
        help="climatology hours of day: multiples of H (default 1: every hour present)",
    )
    parser.add_argument(
        "--climatology-pass",
        choices=("auto", "memory", "store"),
        default="auto",
        help="how the climatology is made (same numbers): 'memory' keeps its (day of year, hour) "
        "bins in this process while writing (one pass), 'store' reads the written data back "
        "by blocks of days (bounded memory; on the cluster's workers); default 'auto': memory "
        "when no cluster is used and the bins fit in half the available memory",
    )
    parser.add_argument(
        "--time-from",
        action="append",
        metavar="DIM=TEMPLATE",
        help="turn a date-less dimension into time, e.g. 'month=2000-{month:02d}-01'",
    )
    parser.add_argument(
        "--mapping",
        action="append",
        metavar="SOURCE=CANONICAL",
        help="map a source variable/coordinate name onto a canonical one (repeatable)",
    )
    parser.add_argument(
        "--units",
        action="append",
        metavar="NAME=UNITS",
        help="declare the units of a variable that lacks (or misstates) them (repeatable)",
    )
    parser.add_argument("--member", type=int, help="ensemble member to ingest from an ensemble source")
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=("netcdf", "grib", "zarr", "pp"),  # metoffice: pp = Met Office PP/fieldsfiles (iris)
        help="source format (default: from the suffix or the file's first bytes)",
    )
    parser.add_argument("--allow-nan", action="store_true", help="accept NaN values in the sources")
    parser.add_argument(  # reliability
        "--allow-implausible",
        action="store_true",
        help="store values outside the physical bounds of their variable (default: refused, naming the first)",
    )
    parser.add_argument("--storage-options", metavar="JSON", help="fsspec options (JSON) for the sources and STORE")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    group = parser.add_argument_group("forecast stores (--forecast)")
    group.add_argument(
        "--forecast",
        action="store_true",
        help="the SOURCEs are physics-model forecasts (GRIB/NetCDF/Zarr or catalog forecast entries): "
        "write a forecast store in the WeatherBench2 layout for `wxemu verify`",
    )
    group.add_argument(
        "--model-name",
        metavar="NAME",
        help="forecast name recorded in the store (default: GRIB centre, e.g. ecmwf, ukmo, or the catalog entry name)",
    )
    group.add_argument(
        "--leads", nargs="+", dest="lead_times", metavar="LEAD", help="leads to keep, e.g. 6h 12h (default: all)"
    )
    group.add_argument("--lead-times", dest="lead_times", action=_Deprecated, help=argparse.SUPPRESS)
    group.add_argument(
        "--grib-filter",
        action="append",
        metavar="KEY=VALUE",
        help="cfgrib filter_by_keys for every GRIB source, e.g. dataType=fc (repeatable)",
    )


def _storage_options(args: argparse.Namespace) -> dict | None:
    try:
        return json.loads(args.storage_options) if args.storage_options else None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--storage-options: not JSON ({exc})") from None


def _levels(args: argparse.Namespace) -> list[int] | None:
    levels = _list(args.levels)
    try:
        return [int(v) for v in levels] if levels else None
    except ValueError:
        raise ConfigError(f"--levels {' '.join(levels)!r}: expected integers (hPa)") from None


def config_from_args(args: argparse.Namespace):
    """An IngestConfig from parsed arguments."""
    from data_catalog.ingestion import IngestConfig

    options, levels = _storage_options(args), _levels(args)
    levels_int = tuple(levels) if levels else None
    return IngestConfig(
        sources=tuple(args.sources),
        out=args.out,
        variables=_list(args.variables),
        levels=levels_int,
        start=args.start,
        end=args.end,
        region=args.region,
        grid=args.grid,
        chunk_time=args.chunk_time,
        block_mb=args.block_mb,
        stats_start=args.stats_start,
        stats_end=args.stats_end,
        climatology_window=args.climatology_window,
        climatology_hour_step=args.climatology_hour_step,
        climatology_pass=args.climatology_pass,
        time_from=_pairs(args.time_from, "--time-from"),
        mapping=_pairs(args.mapping, "--mapping"),
        units=_pairs(args.units, "--units"),
        member=args.member,
        fmt=args.fmt,
        allow_nan=args.allow_nan,
        allow_implausible=args.allow_implausible,  # reliability
        storage_options=tuple(sorted(options.items())) if options else None,
        append=args.append,
        overwrite=args.overwrite,
    )


def _filter_value(text: str) -> int | str:
    return int(text) if text.lstrip("-").isdigit() else text


def run_forecast(args: argparse.Namespace) -> int:
    """``wxemu ingest --forecast``: :func:`data_catalog.forecast_ingest.ingest_forecast` with the shared options."""
    from data_catalog.forecast_ingest import ingest_forecast

    unsupported = [
        opt
        for opt, given in (
            ("--grid", args.grid is not None),
            ("--append", args.append),
            ("--member", args.member is not None),
            ("--time-from", args.time_from),
            ("--scheduler", args.scheduler),
            ("--workers", args.workers),
            ("--stats-start", args.stats_start),
            ("--stats-end", args.stats_end),
        )
        if given
    ]
    if unsupported:
        raise ConfigError(f"ingest --forecast: {', '.join(unsupported)} apply to analysis stores only")
    options, levels_int = _storage_options(args), _levels(args)
    grib_filter = {k: _filter_value(v) for k, v in _pairs(args.grib_filter, "--grib-filter") or ()} or None
    variables, leads = _list(args.variables), _list(args.lead_times)
    ds = ingest_forecast(
        list(args.sources),
        args.out,
        variables=list(variables) if variables else None,
        levels=levels_int,
        start=args.start,
        end=args.end,
        lead_times=list(leads) if leads else None,
        model_name=args.model_name,
        allow_nan=args.allow_nan,
        allow_implausible=args.allow_implausible,  # reliability
        overwrite=args.overwrite,
        storage_options=options,
        grib_filter=grib_filter,
        fmt=args.fmt,
        mapping=dict(_pairs(args.mapping, "--mapping") or ()) or None,
        units=dict(_pairs(args.units, "--units") or ()) or None,
        region=args.region,
    )
    print(
        f"{args.out}: forecast store of {ds.attrs['wxemu_model']!r}: {ds.sizes['time']} initial times x "
        f"{ds.sizes['prediction_timedelta']} leads, variables {', '.join(map(str, ds.data_vars))}"
    )
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "forecast", False):
        return run_forecast(args)
    if args.grib_filter:  # reliability: never silently ignored
        raise ConfigError(
            "ingest: --grib-filter applies to --forecast only; for an analysis store give a catalog entry with "
            "`grib_filter: {KEY: VALUE}` in a catalog file named by $WXEMU_CATALOG"
        )
    from data_catalog.ingestion import ingest

    result = ingest(
        config_from_args(args),
        threads=args.threads,
        workers=args.workers,
        scheduler=args.scheduler,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    mb = sum(s["bytes"] or 0 for s in result.sources) / 1e6  # None: a remote Zarr store (not listed)
    print(
        f"{result.out}: {result.status}: {result.n_times} times, {result.blocks_written} blocks written, "
        f"{result.blocks_skipped} already there; sources {len(result.sources)} files ({mb:.1f} MB)"
    )
    return 0
