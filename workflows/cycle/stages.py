"""The stages of one forecast cycle, each a function ``(config, point) -> StageResult``, by name.

Every stage is idempotent: a stage whose work is already done returns ``status="skipped"`` and writes nothing,
so re-running a cycle, or a restarted scheduler re-submitting a task, changes no byte. Each stage's module is
imported only when it runs, so a task pays only for its own imports (the forecast's torch, the verify's
metrics), which is most of a short task's time.
"""

from __future__ import annotations

import importlib

import pandas as pd

from data_catalog.errors import WxemuError
from workflows.cycle.config import CycleConfig
from workflows.cycle.layout import StageResult, parse_point

#: stage name -> (module, function)
STAGES: dict[str, tuple[str, str]] = {
    "available": ("workflows.cycle.ingest_stage", "available_stage"),
    "ingest": ("workflows.cycle.ingest_stage", "ingest_stage"),
    "forecast": ("workflows.cycle.forecast_stage", "forecast_stage"),
    "verify": ("workflows.cycle.verify_stage", "verify_stage"),
    "dashboard": ("workflows.cycle.site_stages", "dashboard_stage"),
    "housekeep": ("workflows.cycle.site_stages", "housekeep_stage"),
}


def run_stage(stage: str, config: CycleConfig, point: str | pd.Timestamp) -> StageResult:
    """Run ``stage`` of the cycle at ``point`` (a string is parsed as a cycle point, e.g. ``20190315T0600Z``)."""
    if stage not in STAGES:
        raise WxemuError(f"unknown cycle stage {stage!r}; one of {', '.join(STAGES)}")
    module, function = STAGES[stage]
    ts = parse_point(point) if isinstance(point, str) else point
    return getattr(importlib.import_module(module), function)(config, ts)
