"""Cycle stages `dashboard` (rebuild the site from the scores stores) and `housekeep` (retention)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pandas as pd

from data_catalog.errors import WxemuError
from workflows.cycle import dashboard_adapter as adapters
from workflows.cycle.config import CycleConfig
from workflows.cycle.layout import (
    StageResult,
    parse_point,
    point_label,
    site_dir,
)

log = logging.getLogger(__name__)


def dashboard_stage(config: CycleConfig, point: pd.Timestamp) -> StageResult:
    """Rebuild the dashboard site from every scores store (when the dashboard module is installed)."""
    label = point_label(point)
    if not adapters.dashboard_available():
        msg = "pipeline.dashboard is not installed: the dashboard is not built (scores are in work_dir/scores)"
        log.warning(msg)
        return StageResult("dashboard", label, "skipped", (), msg)
    scores = sorted(str(p) for p in (Path(config.work_dir) / "scores").glob("*.zarr"))
    adapters.build_site(scores=scores, out=str(site_dir(config)))
    return StageResult("dashboard", label, "done", (str(site_dir(config)),), f"{len(scores)} scores stores")


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
