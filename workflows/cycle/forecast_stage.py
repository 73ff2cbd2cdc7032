"""Cycle stage `forecast`: one forecast store per configured model, initialised at the cycle point."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from data_catalog import store_protocol as sp
from data_catalog.errors import IncompleteStoreError
from pipeline.forecasting import ForecastConfig, forecast
from workflows.cycle.config import CycleConfig
from workflows.cycle.layout import (
    StageResult,
    forecast_dir,
    point_label,
    store_times,
)

log = logging.getLogger(__name__)


def forecast_stage(config: CycleConfig, point: pd.Timestamp) -> StageResult:
    """One forecast store per configured model, initialised at ``point`` (complete stores are left as they are)."""
    label, iso = point_label(point), point.isoformat()
    times = store_times(config.store)
    if times is None or np.datetime64(point, "ns") not in times.astype("datetime64[ns]"):
        raise IncompleteStoreError(f"{config.store}: has no analysis at {iso}; run the cycle's ingest first")
    out_dir = forecast_dir(config, point)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, done = [], []
    for model, name in zip(config.models, config.model_names):
        out = out_dir / f"{name}.zarr"
        if not (sp.store_exists(str(out)) and sp.is_complete(str(out))):
            forecast(
                ForecastConfig(
                    checkpoint=model, store=config.store, init=iso, lead=config.lead, out=str(out), step=config.step
                )
            )
            done.append(name)
        paths.append(str(out))
    status = "done" if done else "skipped"
    return StageResult("forecast", label, status, tuple(paths), f"wrote {done}" if done else "all complete")
