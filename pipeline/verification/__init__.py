"""The ``wxemu verify`` stage: score forecast stores against the truth, WeatherBench2's way, fast.

``verify(VerifyConfig(forecasts=[...], truth=..., out=...)) -> VerifyResult`` (``.path``, ``.scores``,
``.per_init``, ``.spectra``). Modules: ``config`` (config, result, errors), ``inputs`` (opening
stores, regridding), ``plan`` (validation, blocks), ``reader`` (block reads), ``scoring`` (the scoring loop),
``distributed`` (blocks as dask.distributed tasks), ``store`` (the scores store), ``wb2`` (WeatherBench2 results
export), ``stage`` (``verify``), ``cli`` (the command line).
"""

from pipeline.verification.cli import HELP, add_arguments, run
from pipeline.verification.config import VerifyConfig, VerifyError, VerifyResult, parse_leads
from pipeline.verification.inputs import forecast_name, open_climatology_for, open_dataset
from pipeline.verification.plan import BlockPlan, ForecastPlan, plan_blocks, plan_forecast
from pipeline.verification.stage import verify
from pipeline.verification.store import PER_INIT_GROUP, SPECTRA_GROUP, open_scores, open_spectra, write_scores
from pipeline.verification.wb2 import export_wb2, wb2_results

__all__ = [
    "HELP",
    "PER_INIT_GROUP",
    "SPECTRA_GROUP",
    "BlockPlan",
    "ForecastPlan",
    "VerifyConfig",
    "VerifyError",
    "VerifyResult",
    "add_arguments",
    "export_wb2",
    "forecast_name",
    "open_climatology_for",
    "open_dataset",
    "open_scores",
    "open_spectra",
    "parse_leads",
    "plan_blocks",
    "plan_forecast",
    "run",
    "verify",
    "wb2_results",
    "write_scores",
]
