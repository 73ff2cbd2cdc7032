"""The scores store: writing it atomically, reading it back, and the provenance attributes it carries.

Layout (Zarr v3, consolidated): root = scores, one variable per forecast variable with dims (metric, forecast,
region, prediction_timedelta, [level]); group ``per_init`` = per-initial-time scores (``time`` added); group
``spectra`` = mean power spectra (forecast incl. "truth", prediction_timedelta, [level], wavenumber).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import xarray as xr
import zarr

from data_catalog import store_protocol as sp
from data_catalog.regions import AnyRegion
from data_catalog.version import wxemu_version
from pipeline.metrics import Metric
from pipeline.verification.config import VerifyConfig, VerifyError
from pipeline.verification.plan import ForecastPlan

PER_INIT_GROUP = "per_init"
SPECTRA_GROUP = "spectra"


def provenance(
    config: VerifyConfig,
    plans: Sequence[ForecastPlan],
    names: Sequence[str],
    regions: Sequence[AnyRegion],
    metrics: Sequence[Metric],
    have_clim: bool,
    left_out: Sequence[str] = (),
) -> dict[str, Any]:
    """The root attributes of a scores store: what was scored, against what, how."""
    command = " ".join(sys.argv)
    sources = [{"role": "truth", "path": str(config.truth)}] + [
        {"role": "forecast", "path": str(p.path)} for p in plans
    ]
    return {
        **sp.provenance(command=command, sources=sources),
        "wxemu_complete": True,
        "wxemu_version": wxemu_version(),
        "wxemu_stage": "verify",
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "truth": str(config.truth),
        "climatology": str(config.climatology or (config.truth + "#climatology" if have_clim else "")),
        "forecasts": json.dumps(
            [
                {
                    "name": n,
                    "path": str(p.path),
                    "variables": p.variables,
                    "ensemble": p.ensemble,
                    "regridding": p.regrid or "none (same grid as truth)",
                }
                for p, n in zip(plans, names)
            ]
        ),
        "regridding": "; ".join(f"{n}: {p.regrid}" for p, n in zip(plans, names) if p.regrid) or "none",
        "regions": json.dumps({r.name: r.describe() for r in regions}),
        "metrics": [m.name for m in metrics],
        "metrics_left_out": list(left_out),
        "conventions": "WeatherBench2: truth at valid time = time + prediction_timedelta; area weights "
        "sin(upper)-sin(lower) per latitude band; per-init spatial means averaged over init times "
        "(RMSE = sqrt of mean MSE); ACC per init then averaged; fair CRPS",
    }


@contextlib.contextmanager
def output_lock(out: str | None) -> Iterator[None]:
    """The writer lock on a verification's output (:func:`data_catalog.store_protocol.writer_lock`, ``OUT.lock``
    beside it), held from before scoring until the output is written, so a second run on the same ``out`` fails
    at once with :class:`~data_catalog.store_protocol.StoreLockedError`. ``out`` None: no lock."""
    if out is None:
        yield
        return
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with sp.writer_lock(out, stage="verify"):
        yield


def write_scores(
    scores: xr.Dataset,
    per_init: xr.Dataset,
    out: str,
    *,
    spectra: xr.Dataset | None = None,
    overwrite: bool = False,
) -> None:
    """Write scores (root), per-init scores (group ``per_init``) and spectra (group ``spectra``) to Zarr at
    ``out`` (a path or fsspec URL) atomically: into a hidden temporary sibling marked incomplete, then
    :func:`data_catalog.store_protocol.publish` (moved into place, marked complete)."""
    if sp.store_exists(out) and not overwrite:
        raise VerifyError(f"output {out} exists; pass --overwrite to replace it")
    tmp = sp.tmp_sibling(out)
    try:
        with warnings.catch_warnings():  # fixed-length unicode coords and consolidated metadata are "unstable" v3
            warnings.simplefilter("ignore")
            scores.assign_attrs({sp.COMPLETE_ATTR: False}).to_zarr(tmp, mode="w", consolidated=False, zarr_format=3)
            per_init.to_zarr(tmp, group=PER_INIT_GROUP, mode="w", consolidated=False, zarr_format=3)
            if spectra is not None and spectra.data_vars:
                spectra.to_zarr(tmp, group=SPECTRA_GROUP, mode="w", consolidated=False, zarr_format=3)
        sp.publish(tmp, out)
    finally:
        sp.discard(tmp)


def open_scores(path: str) -> tuple[xr.Dataset, xr.Dataset]:
    """Read a scores store written by :func:`write_scores`: (scores, per_init), loaded into memory."""
    if not Path(path).exists():
        raise VerifyError(f"scores store {path}: no such file or directory")
    scores = xr.open_zarr(path, consolidated=False).load()
    per_init = xr.open_zarr(path, group=PER_INIT_GROUP, consolidated=False).load()
    return scores, per_init


def open_spectra(path: str) -> xr.Dataset:
    """The group ``spectra`` of a scores store, loaded; an empty Dataset when the store has none."""
    if not Path(path).exists():
        raise VerifyError(f"scores store {path}: no such file or directory")
    try:
        return xr.open_zarr(path, group=SPECTRA_GROUP, consolidated=False).load()
    except (FileNotFoundError, KeyError, zarr.errors.GroupNotFoundError):
        return xr.Dataset()
