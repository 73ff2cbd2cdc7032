"""Lazy package exports: ``from package import name`` imports ``name`` from its module on first use, so importing
a light module of the package (``data_catalog.errors``, ``pipeline.metrics``) does not pay for the heavy ones.

The stage functions live in modules of other names (``data_catalog.ingestion``, ``pipeline.training``,
``pipeline.forecasting``, ``pipeline.verification``), so an exported name never collides with a submodule.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package`` that serves ``exports`` ({name: module}) on first use."""

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
