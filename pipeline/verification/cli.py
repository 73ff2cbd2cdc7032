"""The ``wxemu verify`` command line: flags -> :class:`VerifyConfig` -> :func:`verify` -> a summary."""

from __future__ import annotations

import argparse
import sys

from data_catalog.regions import NAMED_REGIONS
from pipeline import metrics as M

HELP = "score forecast stores against the truth (WeatherBench2 metrics)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--forecast", nargs="+", required=True, metavar="STORE", help="forecast Zarr store(s), WeatherBench2 layout"
    )
    parser.add_argument("--truth", required=True, metavar="STORE", help="analysis / truth Zarr store")
    parser.add_argument(
        "--out",
        required=True,
        metavar="SCORES.zarr",
        help="scores store to write (with --format wb2: a directory of WeatherBench2 results NetCDF files)",
    )
    parser.add_argument(
        "--format",
        choices=["zarr", "wb2"],
        default="zarr",
        help="zarr: wxemu's scores store (default); wb2: WeatherBench2's results layout "
        "({forecast}_deterministic.nc, dims metric, region, lead_time, [level])",
    )
    parser.add_argument(
        "--regions",
        nargs="+",
        default=["global"],
        metavar="REGION",
        help=f"region names ({' '.join(NAMED_REGIONS)}; WeatherBench2's names mean what they mean there) "
        "or boxes lat0,lat1,lon0,lon1 (default: global)",
    )
    parser.add_argument("--variables", nargs="+", metavar="VAR", help="variables to score (default: all shared)")
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help=f"metrics: {', '.join(M.METRICS)}, or the set 'wb2' (WeatherBench2's deterministic metrics) "
        f"(default: rmse mae bias [acc when there is a climatology]; plus crps ens_mean_rmse spread spread_skill "
        f"for ensembles)",
    )
    parser.add_argument(
        "--leads",
        nargs="+",
        metavar="LEAD",
        help="lead times to score, e.g. 24h 48h 5d (bare numbers are hours; default: all)",
    )
    parser.add_argument(
        "--climatology",
        metavar="STORE",
        help="climatology store for ACC (default: group 'climatology' of the truth store)",
    )
    parser.add_argument("--reference", metavar="NAME", help="print a scorecard of every forecast against NAME")
    parser.add_argument("--scorecard-metric", default="rmse", help="metric of the scorecard (default rmse)")
    parser.add_argument(
        "--block-mb",
        type=float,
        default=64.0,
        help="memory budget in MiB of the forecast, truth and climatology data held at once (per worker; default 64)",
    )
    parser.add_argument("--no-spectra", action="store_true", help="do not compute power spectra (group 'spectra')")
    parser.add_argument(
        "--allow-nan", action="store_true", help="write the scores even where NaN/Inf in the data make them non-finite"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="score blocks of initial times on a local dask cluster of N processes"
    )
    parser.add_argument(
        "--scheduler", metavar="ADDRESS", help="score on the dask.distributed scheduler at ADDRESS (tcp://host:8786)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing scores store")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    from pipeline.verification.config import VerifyConfig
    from pipeline.verification.stage import verify

    config = VerifyConfig(
        forecasts=list(args.forecast),
        truth=args.truth,
        out=args.out,
        regions=args.regions,
        variables=args.variables,
        metrics=args.metrics,
        leads=args.leads,
        climatology=args.climatology,
        reference=args.reference,
        block_mb=args.block_mb,
        overwrite=args.overwrite,
        spectra=not args.no_spectra,
        allow_nan=args.allow_nan,
        out_format=args.format,
    )
    result = verify(config, progress=not args.quiet, workers=args.workers, scheduler=args.scheduler)
    scores = result.scores
    for note in result.notes:
        print(f"wxemu verify: {note}", file=sys.stderr)

    def plain(values) -> str:
        return ", ".join(str(v) for v in values)

    print(
        f"wrote {args.out}: {plain(scores.data_vars)} x metrics {plain(scores.metric.values)} x forecasts "
        f"{plain(scores.forecast.values)} x regions {plain(scores.region.values)}"
    )
    if config.reference is not None:
        from pipeline.scorecard import print_scorecards

        print_scorecards(scores, result.per_init, reference=config.reference, metric=args.scorecard_metric)
    return 0
