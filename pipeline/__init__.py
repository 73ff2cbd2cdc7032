"""wxemu pipeline: train, forecast and verify, each a function over a typed config returning a result.

    from pipeline import train, TrainConfig, forecast, ForecastConfig, verify, VerifyConfig

The names are imported on first use, so ``import pipeline.metrics`` does not pay for torch and Lightning. The
stage functions share their names with their modules (``pipeline.train`` the module, ``train`` the function):
importing such a module does not rebind the package attribute, so ``pipeline.train`` is always the function;
import module contents with ``from pipeline.train import ...``.
"""

from __future__ import annotations

import importlib
import sys
import types
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


class _Package(types.ModuleType):
    """The package module: the import system's binding of a submodule named like an export is ignored."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
