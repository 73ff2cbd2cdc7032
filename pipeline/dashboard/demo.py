"""The last step of ``wxemu demo``: the dashboard of the demo's forecasts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pipeline.dashboard.build import build_dashboard
from pipeline.dashboard.config import DashboardConfig, DashboardResult


def demo_dashboard(
    out: str | Path,
    scores: str,
    forecasts: Sequence[str],
    truth: str,
    *,
    reference: str = "persistence",
    explanations: Sequence[str] = (),
) -> DashboardResult:
    """Build the dashboard of the demo's scores, forecast, truth (and explanation) stores into ``out/dashboard``
    (reusing the figures of an earlier run that did not change) and print how to open it."""
    site = Path(out) / "dashboard"
    config = DashboardConfig(
        scores=(str(scores),),
        forecasts=tuple(str(p) for p in forecasts),
        truth=str(truth),
        explanations=tuple(str(p) for p in explanations),
        out=str(site),
        reference=reference,
        title="wxemu demo: ERA5 2 m temperature, UK, held-out week of March 2019",
    )
    result = build_dashboard(config)
    print(
        f"dashboard: {len(result.pages)} pages in {result.out} ({len(result.drawn)} files drawn, "
        f"{len(result.reused)} reused); open file://{result.index}\n"
        f"  or serve it: wxemu dashboard --scores {scores} --out {result.out} --serve"
    )
    return result
