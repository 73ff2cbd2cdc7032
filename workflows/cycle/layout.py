"""Where a forecast cycle's outputs live, cycle points, and what a stage returns.

Layout under ``config.work_dir``: ``forecasts/POINT/MODEL.zarr`` (initialised at POINT), ``scores/POINT.zarr``
(the forecasts initialised at POINT, scored over every lead verified so far), ``site/`` (dashboard). POINT is the
cycle point in Cylc's compact form, e.g. ``20190315T0600Z``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from data_catalog import store as st
from data_catalog import store_protocol as sp
from data_catalog.errors import IncompleteStoreError, WxemuError
from workflows.cycle.config import CycleConfig

log = logging.getLogger(__name__)


class DataNotArrivedError(WxemuError):
    """The analysis of a cycle point is not (yet) in the source."""


@dataclasses.dataclass(frozen=True)
class StageResult:
    """What a stage did: ``status`` is "done" or "skipped"; ``paths`` the outputs written or checked."""

    stage: str
    point: str
    status: str
    paths: tuple[str, ...] = ()
    message: str = ""


# ------------------------------------------------------------------------------------------------- points, paths
def parse_point(text: str) -> pd.Timestamp:
    """A cycle point (``20190315T0600Z``, ``2019-03-15T06``, ...) as a naive UTC timestamp."""
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise WxemuError(f"--point: cannot read {text!r} as a cycle point (e.g. 20190315T0600Z)") from None
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def point_label(point: pd.Timestamp) -> str:
    return point.strftime("%Y%m%dT%H%MZ")


def forecast_dir(config: CycleConfig, point: pd.Timestamp) -> Path:
    return Path(config.work_dir) / "forecasts" / point_label(point)


def scores_path(config: CycleConfig, point: pd.Timestamp) -> Path:
    return Path(config.work_dir) / "scores" / f"{point_label(point)}.zarr"


def site_dir(config: CycleConfig) -> Path:
    return Path(config.work_dir) / "site"


def store_times(path: str) -> np.ndarray | None:
    """The time axis of the analysis store (None when there is no store yet); IncompleteStoreError when the
    store is being written or its ingest was interrupted (the cycle's ingest completes it)."""
    if not sp.store_exists(path):
        return None
    if not sp.is_complete(path):
        raise IncompleteStoreError(f"{path}: incomplete (an ingest is running or was interrupted); run the ingest")
    return st.open_store(path)["time"].values
