"""The dashboard call of the cycle: ``pipeline.dashboard.build_dashboard`` when that module is installed."""

from __future__ import annotations

try:  # the dashboard branch provides it
    from pipeline.dashboard import build_dashboard as _build_dashboard
except ImportError:  # pragma: no cover - depends on which branches are merged
    _build_dashboard = None


def dashboard_available() -> bool:
    return _build_dashboard is not None


def build_site(*, scores: list[str], out: str) -> None:
    """Rebuild the dashboard site ``out`` from the scores stores ``scores`` (no-op when the dashboard is absent)."""
    if _build_dashboard is None:
        return
    _build_dashboard(scores=scores, out=out)
