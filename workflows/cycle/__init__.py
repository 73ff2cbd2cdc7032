"""Forecast cycles: the stages one Cylc cycle runs (ingest => forecast => verify => dashboard, housekeep).

``wxemu cycle STAGE --point CYCLE_POINT --config CYCLE.yaml`` runs one stage of one cycle, from Cylc, cron or by
hand; :func:`run_stage` is the same call from Python. Every stage is idempotent (docs/cycles.md).
"""

from workflows.cycle.config import CycleConfig
from workflows.cycle.layout import StageResult
from workflows.cycle.stages import STAGES, run_stage

__all__ = ["CycleConfig", "STAGES", "StageResult", "run_stage"]
