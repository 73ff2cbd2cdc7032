"""The `wxemu` command: one sub-command per pipeline stage (``wxemu = "workflows.cli:main"``).

``STAGES`` maps a stage name to (module, help). Each stage module exposes ``add_arguments(parser)`` and
``run(args) -> int``, which parse flags, build the stage's config, call its library function and print; the
module is imported only when its stage runs (or its ``--help`` is asked for), so ``wxemu --help`` stays fast.
A WxemuError becomes ``wxemu STAGE: error: ...`` on stderr and exit code 2. Flag conventions: docs/cli.md.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from data_catalog.errors import WxemuError
from data_catalog.version import wxemu_version

STAGES: dict[str, tuple[str, str]] = {
    "catalog": ("data_catalog.cli_catalog", "list and show the named datasets of the catalog"),
    "ingest": ("data_catalog.cli_ingest", "ingest NetCDF/GRIB/Zarr sources into a canonical Zarr store"),
    "train": ("pipeline.training", "train a graph or transformer emulator on a canonical store"),
    "forecast": ("pipeline.forecasting", "roll a checkpoint (or a baseline) forward into a forecast store"),
    "verify": ("pipeline.verification", "score forecast stores against the truth (WeatherBench2 metrics)"),
    "explain": ("pipeline.explain.cli", "attribute a region-mean forecast to its inputs, with faithfulness checks"),
    "dashboard": ("pipeline.dashboard.cli", "build the static skill-score dashboard (HTML) of scores stores"),
    "cycle": ("workflows.cycle.cli", "run one stage of a forecast cycle (ingest, forecast, verify, dashboard, ...)"),
    "study": ("workflows.study", "run a comparison study (STUDY.yaml) into scores, scorecards and a site"),
    "demo": ("workflows.demo", "run ingest -> train -> forecast -> verify on the bundled sample data"),
}


def build_parser(stage: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wxemu",
        description="wxemu: weather emulation pipeline (ingest -> train -> forecast -> verify).",
    )
    parser.add_argument("--version", action="version", version=f"wxemu {wxemu_version()}")
    sub = parser.add_subparsers(dest="stage", metavar="<stage>", required=True)
    for name, (module, help_text) in STAGES.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        if name == stage:
            importlib.import_module(module).add_arguments(sp)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    stage = next((a for a in argv if not a.startswith("-")), None)
    stage = stage if stage in STAGES else None
    args = build_parser(stage).parse_args(argv)
    module = importlib.import_module(STAGES[args.stage][0])
    try:
        return int(module.run(args) or 0)
    except WxemuError as exc:
        print(f"wxemu {args.stage}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print(f"wxemu {args.stage}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
