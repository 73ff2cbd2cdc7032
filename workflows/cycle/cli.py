"""`wxemu cycle STAGE --point CYCLE_POINT --config CYCLE.yaml`: one stage of one forecast cycle."""

from __future__ import annotations

import argparse
import logging

from workflows.cycle.config import CycleConfig
from workflows.cycle.stages import STAGES, run_stage

HELP = "run one stage of a forecast cycle (ingest, forecast, verify, dashboard, housekeep)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("cycle_stage", choices=list(STAGES), metavar="STAGE", help=f"one of {', '.join(STAGES)}")
    parser.add_argument("--point", required=True, help="cycle point, e.g. 20190315T0600Z ($CYLC_TASK_CYCLE_POINT)")
    parser.add_argument("--config", required=True, metavar="CYCLE.yaml", help="the cycle configuration")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = CycleConfig.from_yaml(args.config)
    result = run_stage(args.cycle_stage, config, args.point)
    print(f"wxemu cycle {result.stage} {result.point}: {result.status}: {result.message}")
    return 0
