"""wxemu pipeline: train, forecast and verify, each a function over a typed config returning a result.

    from pipeline import train, TrainConfig, forecast, ForecastConfig, verify, VerifyConfig

The names are imported on first use (data_catalog.exports), so ``import pipeline.metrics`` does not pay for torch
and Lightning. A stage function shares its name with its module; either one called runs the stage.
"""

from __future__ import annotations

from data_catalog.exports import lazy_exports

_EXPORTS = {
    "train": "pipeline.training",
    "TrainResult": "pipeline.training",
    "TrainConfig": "pipeline.train_config",
    "forecast": "pipeline.forecasting",
    "ForecastConfig": "pipeline.forecasting",
    "ForecastResult": "pipeline.forecasting",
    "verify": "pipeline.verification",
    "VerifyConfig": "pipeline.verification",
}

__all__ = sorted(_EXPORTS)
__getattr__ = lazy_exports(__name__, _EXPORTS)
