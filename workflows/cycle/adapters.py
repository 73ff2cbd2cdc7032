"""The calls into stage functions whose interface is about to change, each in one small function.

``run_forecast`` calls ``pipeline.forecasting(ForecastConfig(...))``.
"""

from __future__ import annotations

import logging

from pipeline.forecasting import ForecastConfig, forecast

log = logging.getLogger(__name__)


def run_forecast(*, checkpoint: str, store: str, init: str, lead: str, out: str, step: str | None) -> None:
    """One forecast store ``out`` from ``checkpoint`` (run dir or baseline name) at the initial time(s) ``init``;
    a complete store made by the same request is left untouched (pipeline.forecasting resumes and skips)."""
    forecast(ForecastConfig(checkpoint=checkpoint, store=store, init=init, lead=lead, step=step, out=out))
