"""wxemu pipeline: train, forecast and verify, each a function over a typed config returning a result.

    from pipeline import train, TrainConfig, forecast, ForecastConfig, verify, VerifyConfig

The names are imported lazily (``pipeline.metrics`` and the other modules do not pay for torch/Lightning).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "pipeline.train",
    "TrainResult": "pipeline.train",
    "TrainConfig": "pipeline.train_config",
    "forecast": "pipeline.forecast",
    "ForecastConfig": "pipeline.forecast",
    "ForecastResult": "pipeline.forecast",
    "verify": "pipeline.verify",
    "VerifyConfig": "pipeline.verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pipeline' has no attribute {name!r}")
