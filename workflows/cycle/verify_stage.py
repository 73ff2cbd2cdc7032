"""Cycle stage `verify`: score the earlier cycles' forecasts over the leads that have now verified."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog import store_protocol as sp
from data_catalog.errors import IncompleteStoreError
from pipeline.verification import VerifyConfig, verify
from workflows.cycle.config import CycleConfig
from workflows.cycle.layout import (
    StageResult,
    forecast_dir,
    point_label,
    scores_path,
    store_times,
)

log = logging.getLogger(__name__)


def _verified_leads(forecast: str, init: pd.Timestamp, point: pd.Timestamp) -> list[pd.Timedelta]:
    leads = pd.to_timedelta(xr.open_zarr(forecast, consolidated=None)["prediction_timedelta"].values)
    return [lead for lead in leads if init + lead <= point]


def _scored_leads(path: Path) -> set[pd.Timedelta]:
    if not (path / "zarr.json").exists():
        return set()
    return set(pd.to_timedelta(xr.open_zarr(path, consolidated=False)["prediction_timedelta"].values))


def verify_stage(config: CycleConfig, point: pd.Timestamp) -> StageResult:
    """Score the forecasts of the earlier cycles whose leads have verified by ``point`` (valid time <= point)
    into ``scores/INIT.zarr``, one store per initial cycle holding every lead verified so far. A scores store
    that already holds those leads is left as it is (the leads only grow, so the order of re-runs is free)."""
    label = point_label(point)
    if store_times(config.store) is None or store_times(config.store)[-1] < np.datetime64(point, "ns"):
        raise IncompleteStoreError(f"{config.store}: has no analysis at {point.isoformat()}; run the ingest first")
    written, checked = [], []
    k = 1
    while k * config.cycle_hours <= config.lead_hours:
        init = point - pd.Timedelta(hours=k * config.cycle_hours)
        k += 1
        fdir = forecast_dir(config, init)
        stores = [str(fdir / f"{name}.zarr") for name in config.model_names]
        present = [s for s in stores if sp.store_exists(s)]
        if not present:
            log.info("no forecasts initialised at %s (before the first cycle?)", init.isoformat())
            continue
        incomplete = [s for s in stores if s not in present or not sp.is_complete(s)]
        if incomplete:
            raise IncompleteStoreError(f"forecast stores {incomplete} are missing or incomplete")
        leads = _verified_leads(stores[0], init, point)
        if not leads:
            continue
        out = scores_path(config, init)
        checked.append(str(out))
        if set(leads) <= _scored_leads(out):
            continue
        verify(
            VerifyConfig(
                forecasts=stores,
                truth=config.store,
                out=str(out),
                regions=list(config.regions),
                variables=list(config.variables) if config.variables else None,
                leads=[f"{lead.total_seconds() / 3600:g}h" for lead in leads],
                overwrite=True,
            )
        )
        written.append(str(out))
    status = "done" if written else "skipped"
    return StageResult("verify", label, status, tuple(checked), f"wrote {written}" if written else "up to date")
