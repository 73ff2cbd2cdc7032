"""The installed wxemu version, recorded in every store's provenance."""

from __future__ import annotations


def wxemu_version() -> str:
    """The wxemu distribution's version, or ``"unknown"`` when running from a checkout that is not installed."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wxemu")
    except PackageNotFoundError:
        return "unknown"
