"""The ``wxemu verify`` stage: score forecast stores against the truth, WeatherBench2's way, fast.

``verify(VerifyConfig(forecasts=[...], truth=..., out=...)) -> VerifyResult`` (``.path``, ``.scores``,
``.per_init``, ``.spectra``). Modules: :mod:`~pipeline.verify.config` (config, result, errors),
:mod:`~pipeline.verify.inputs` (opening stores, regridding), :mod:`~pipeline.verify.plan` (validation, blocks),
:mod:`~pipeline.verify.reader` (block reads), :mod:`~pipeline.verify.scoring` (the scoring loop),
:mod:`~pipeline.verify.distributed` (blocks as dask.distributed tasks), :mod:`~pipeline.verify.store` (the scores
store), :mod:`~pipeline.verify.wb2` (WeatherBench2 results export), :mod:`~pipeline.verify.stage` (``verify``),
:mod:`~pipeline.verify.cli` (the command line).
"""

from pipeline.verify.cli import HELP, add_arguments, run
from pipeline.verify.config import VerifyConfig, VerifyError, VerifyResult, parse_leads
from pipeline.verify.inputs import forecast_name, open_climatology_for, open_dataset
from pipeline.verify.plan import BlockPlan, ForecastPlan, plan_blocks, plan_forecast
from pipeline.verify.stage import verify
from pipeline.verify.store import PER_INIT_GROUP, SPECTRA_GROUP, open_scores, open_spectra, write_scores
from pipeline.verify.wb2 import export_wb2, wb2_results

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
