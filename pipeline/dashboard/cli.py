"""``wxemu dashboard``: flags -> :class:`DashboardConfig` -> :func:`build_dashboard`, then print (and serve)."""

from __future__ import annotations

import argparse
import dataclasses

from pipeline.dashboard.build import build_dashboard
from pipeline.dashboard.config import DashboardConfig
from pipeline.dashboard.serve import make_server

HELP = "build the static skill-score dashboard (HTML) of scores, forecast and explanation stores"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="a flat YAML DashboardConfig (flags override it)")
    parser.add_argument("--scores", nargs="+", metavar="SCORES.zarr", help="scores stores written by wxemu verify")
    parser.add_argument("--forecasts", nargs="+", metavar="STORE", help="forecast stores (maps and provenance)")
    parser.add_argument("--truth", metavar="STORE", help="truth store of the maps")
    parser.add_argument(
        "--explanations", nargs="+", metavar="EXPLAIN.zarr", help="explanation stores (wxemu explain) or globs"
    )
    parser.add_argument("--out", metavar="SITE_DIR", help="site directory to write (default: dashboard)")
    parser.add_argument("--reference", metavar="NAME", help="forecast the scorecards compare against")
    parser.add_argument("--metric", help="scorecard metric (default rmse)")
    parser.add_argument("--headline", nargs="+", metavar="VAR[/LEVEL]", help="scorecard panels")
    parser.add_argument("--leads", nargs="+", metavar="LEAD", help="leads of the maps and timeline, e.g. 24h 72h")
    parser.add_argument("--map-init", metavar="TIME", help="initial time of the forecast/truth/error maps")
    parser.add_argument("--title", help="site title")
    parser.add_argument("--serve", action="store_true", help="serve the site on 127.0.0.1 after building it")
    parser.add_argument("--port", type=int, default=8000, help="port of --serve (default 8000)")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    options = {} if not args.config else dataclasses.asdict(DashboardConfig.from_yaml(args.config))
    for flag, field in [
        ("scores", "scores"),
        ("forecasts", "forecasts"),
        ("truth", "truth"),
        ("explanations", "explanations"),
        ("out", "out"),
        ("reference", "reference"),
        ("metric", "metric"),
        ("headline", "headline"),
        ("leads", "leads"),
        ("map_init", "map_init"),
        ("title", "title"),
    ]:
        value = getattr(args, flag)
        if value is not None:
            options[field] = value
    result = build_dashboard(DashboardConfig.from_dict(options), progress=not args.quiet)
    print(
        f"wrote {result.out}: {len(result.pages)} pages, {len(result.drawn)} files drawn, "
        f"{len(result.reused)} reused; open file://{result.index}"
    )
    if args.serve:
        server = make_server(result.out, args.port)
        print(f"serving {result.out} on http://127.0.0.1:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
    return 0
