"""The installed wxemu version, recorded in every store's and checkpoint's provenance (the one lookup)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def wxemu_version() -> str:
    """The wxemu distribution's version, or ``"unknown"`` when running from a checkout that is not installed."""
    try:
        return version("wxemu")
    except PackageNotFoundError:
        return "unknown"
