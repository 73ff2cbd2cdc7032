"""Lazy package exports, where a stage function may share its name with its module (``data_catalog.ingest`` the
module, ``ingest`` the function; ``pipeline.train``, ``pipeline.forecast``, ``pipeline.verify`` likewise).

:func:`lazy_exports` makes ``from package import name`` import ``name`` from its module on first use. Python binds
a submodule to its package's attribute of the same name once the submodule is imported, so ``from package import
ingest`` then gives the module; such a module is made callable as its stage function (``ingest(config)`` works
on either), and its other names stay reachable (``ingest.IngestConfig``).
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


class StageModule(types.ModuleType):
    """A module called like the function of the same name that it defines: ``module(...)`` = ``module.name(...)``."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(types.ModuleType):
    """A package whose submodules named like one of its exports become :class:`StageModule` when bound."""

    _exports: Mapping[str, str] = {}

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._exports and type(value) is types.ModuleType:
            value.__class__ = StageModule
        super().__setattr__(name, value)


def lazy_exports(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """Install ``exports`` ({name: module}) on ``package``; returns the module ``__getattr__`` to assign."""
    module = sys.modules[package]
    module.__class__ = type("Package", (_Package,), {"_exports": dict(exports)})

    def __getattr__(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
