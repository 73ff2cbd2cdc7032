"""The calls into stage functions whose interface is about to change, each in one small function.

``run_forecast`` calls today's ``pipeline.forecast.run``; when ``pipeline.forecast.forecast(ForecastConfig)``
lands it becomes that call.
"""

from __future__ import annotations

import argparse
import logging

from pipeline import forecast as _forecast

log = logging.getLogger(__name__)


def run_forecast(*, checkpoint: str, store: str, init: str, lead: str, out: str, step: str | None) -> None:
    """One forecast store ``out`` from ``checkpoint`` (run dir or baseline name) at the initial time(s) ``init``;
    a complete store made by the same request is left untouched (pipeline.forecast resumes and skips)."""
    args = argparse.Namespace(
        checkpoint=checkpoint,
        store=store,
        init=init,
        lead=lead,
        step=step,
        out=out,
        members=1,
        perturbation_scale=0.5,
        batch_size=4,
        device="cpu",
        seed=0,
        lagged_paths=None,
    )
    _forecast.run(args)
