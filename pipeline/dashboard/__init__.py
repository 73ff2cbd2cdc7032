"""The skill-score dashboard: scores (and forecast) stores -> a static site (``wxemu dashboard``).

Modules: :mod:`.config` (DashboardConfig, DashboardResult), :mod:`.data` (reading the stores), :mod:`.figures`
(Plotly specs and page data), :mod:`.maps` (cartopy PNGs), :mod:`.pages` (Jinja2 templates), :mod:`.site`
(atomic, incremental writing), :mod:`.build` (the stage function), :mod:`.serve`, :mod:`.cli`, :mod:`.testing`
(synthetic stores for tests and benchmarks).
"""

from pipeline.dashboard.build import build_dashboard
from pipeline.dashboard.config import DashboardConfig, DashboardResult

__all__ = ["DashboardConfig", "DashboardResult", "build_dashboard"]
