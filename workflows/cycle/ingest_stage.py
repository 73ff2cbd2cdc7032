"""Cycle stages `available` and `ingest`: append the analyses up to the cycle point to the store."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from data_catalog import store_protocol as sp
from data_catalog.errors import InputDataError, WxemuError
from data_catalog.ingestion import IngestConfig, ingest
from data_catalog.ingestion.sources import open_sources
from workflows.cycle.config import CycleConfig
from workflows.cycle.layout import (
    DataNotArrivedError,
    StageResult,
    point_label,
    store_times,
)

log = logging.getLogger(__name__)


def _ingest_config(config: CycleConfig, start: str | None, end: str | None, append: bool) -> IngestConfig:
    return IngestConfig(
        sources=config.source,
        out=config.store,
        variables=config.variables,
        region=config.ingest_region,
        start=start,
        end=end,
        chunk_time=config.chunk_time,
        append=append,
    )


def available_stage(config: CycleConfig, point: pd.Timestamp) -> StageResult:
    """Whether the source holds the analysis at ``point`` (raises :class:`DataNotArrivedError` if not); reads
    the sources' metadata only. Used by the workflow's data trigger."""
    iso = point.isoformat()
    try:
        ds = open_sources(_ingest_config(config, iso, iso, append=False)).ds
    except InputDataError as exc:
        raise DataNotArrivedError(f"{', '.join(config.source)}: no analysis at {iso} yet ({exc})") from None
    if np.datetime64(point, "ns") not in ds["time"].values.astype("datetime64[ns]"):
        raise DataNotArrivedError(f"{', '.join(config.source)}: no analysis at {iso} yet")
    return StageResult("available", point_label(point), "done", message=f"the analysis at {iso} has arrived")


def ingest_stage(config: CycleConfig, point: pd.Timestamp) -> StageResult:
    """Append the analyses after the store's last time up to ``point`` (create the store from
    ``config.analysis_start`` at the first cycle); an interrupted append is completed with its own command."""
    label, iso = point_label(point), point.isoformat()
    if sp.store_exists(config.store) and not sp.is_complete(config.store):
        plan = sp.read_resume_plan(config.store) or {}
        recipe = plan.get("recipe") or {}
        append = plan.get("mode") == "append"
        log.info("%s: completing the interrupted %s", config.store, "append" if append else "ingest")
        result = ingest(_ingest_config(config, recipe.get("start"), recipe.get("end"), append=append))
    times = store_times(config.store)
    if times is not None and times[-1] >= np.datetime64(point, "ns"):
        return StageResult("ingest", label, "skipped", (config.store,), f"{config.store} already holds {iso}")
    available_stage(config, point)
    if times is None:
        result = ingest(_ingest_config(config, config.analysis_start, iso, append=False))
    else:
        step = np.diff(times).min() if times.size > 1 else None
        if step is None:
            raise WxemuError(f"{config.store}: holds one time only; cannot tell the step of the next analysis")
        start = pd.Timestamp(times[-1] + step).isoformat()
        result = ingest(_ingest_config(config, start, iso, append=True))
    return StageResult("ingest", label, "done", (config.store,), f"{result.status}: {result.n_times} times")
