"""The dashboard call of the cycle: ``pipeline.dashboard.build_dashboard(DashboardConfig)`` when that package is
installed (the dashboard branch); until then the cycle's dashboard stage logs that it is absent and succeeds."""

from __future__ import annotations

try:  # the dashboard branch provides it
    from pipeline.dashboard import DashboardConfig, build_dashboard
except ImportError:  # pragma: no cover - depends on which branches are merged
    DashboardConfig = build_dashboard = None


def dashboard_available() -> bool:
    return build_dashboard is not None


def build_site(*, scores: list[str], out: str) -> None:
    """Rebuild the dashboard site ``out`` from the scores stores ``scores`` (no-op when the dashboard is absent)."""
    if build_dashboard is None:
        return
    build_dashboard(DashboardConfig(scores=tuple(scores), out=out))
