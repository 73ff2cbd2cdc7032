"""Cycle stages `dashboard` (rebuild the site from the scores stores) and `housekeep` (retention)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from data_catalog.errors import WxemuError
from pipeline.dashboard import DashboardConfig, build_dashboard
from workflows.cycle.config import CycleConfig
from workflows.cycle.layout import (
    StageResult,
    parse_point,
    point_label,
    site_dir,
)

log = logging.getLogger(__name__)


def dashboard_stage(config: CycleConfig, point: pd.Timestamp) -> StageResult:
    """Rebuild the dashboard site from every scores store; "skipped" when nothing in it changed."""
    label = point_label(point)
    scores = sorted(str(p) for p in (Path(config.work_dir) / "scores").glob("*.zarr"))
    built = build_dashboard(DashboardConfig(scores=tuple(scores), out=str(site_dir(config))))
    status = "done" if built.drawn else "skipped"
    return StageResult("dashboard", label, status, (str(site_dir(config)),), f"{len(scores)} scores stores")


# ------------------------------------------------------------------------------------------------- housekeep
def housekeep_stage(config: CycleConfig, point: pd.Timestamp) -> StageResult:
    """Remove the forecasts initialised more than ``retention_hours`` before ``point`` (scores are kept)."""
    label = point_label(point)
    root = Path(config.work_dir) / "forecasts"
    if not config.retention_hours or not root.is_dir():
        return StageResult("housekeep", label, "skipped", (), "nothing to remove")
    cutoff = point - pd.Timedelta(hours=config.retention_hours)
    removed = []
    for d in sorted(root.iterdir()):
        try:
            init = parse_point(d.name)
        except WxemuError:
            continue
        if init < cutoff:
            shutil.rmtree(d)
            removed.append(str(d))
    return StageResult("housekeep", label, "done" if removed else "skipped", tuple(removed), f"removed {len(removed)}")
