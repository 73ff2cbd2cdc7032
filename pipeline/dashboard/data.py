"""Gathering what the dashboard shows: scores stores (merged), their spectra, forecast provenance, map fields.

Nothing here computes a score that ``wxemu verify`` computes: the scores, per-init scores and spectra are read as
they are; only the maps (time-mean bias and RMSE *fields*, which verify reduces over the grid) are computed here
from the forecast and truth stores.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from data_catalog.errors import InputDataError, WxemuError
from data_catalog.store_protocol import require_complete
from pipeline.verification import PER_INIT_GROUP, forecast_name, open_dataset, open_scores, open_spectra

SCORE_DIMS = ("metric", "forecast", "region", "prediction_timedelta")


class DashboardInputError(InputDataError):
    """A scores, forecast or truth store given to the dashboard cannot be shown."""


@dataclasses.dataclass(frozen=True)
class Series:
    """One row of the dashboard: a variable, at one level when it has levels. ``key`` is ``var`` or ``var/level``."""

    variable: str
    level: float | None

    @property
    def key(self) -> str:
        return self.variable if self.level is None else f"{self.variable}/{self.level:g}"

    def select(self, da: xr.DataArray) -> xr.DataArray:
        return da if self.level is None else da.sel(level=self.level)


@dataclasses.dataclass
class ScoresData:
    """The merged content of the scores stores: ``scores`` (root), ``per_init``, ``spectra`` (None when no store
    has the group) and, per store, its path and root attributes."""

    scores: xr.Dataset
    per_init: xr.Dataset
    spectra: xr.Dataset | None
    sources: list[tuple[str, dict[str, Any]]]

    @property
    def forecasts(self) -> list[str]:
        return [str(f) for f in self.scores["forecast"].values]

    def series(self) -> list[Series]:
        out = []
        for var, da in self.scores.data_vars.items():
            levels = da["level"].values if "level" in da.dims else [None]
            out += [Series(str(var), None if lv is None else float(lv)) for lv in levels]
        return out

    def leads_hours(self) -> np.ndarray:
        return self.scores["prediction_timedelta"].values / np.timedelta64(1, "h")


def _open_one(path: str) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset | None]:
    if not Path(path).exists():
        raise DashboardInputError(f"scores store {path}: no such file or directory")
    require_complete(path, "scores")  # the store protocol: refuses a scores store verify has not finished
    try:
        scores, per_init = open_scores(path)
    except WxemuError:
        raise
    except Exception as exc:
        raise DashboardInputError(
            f"scores store {path}: cannot read it as a wxemu verify scores store with group {PER_INIT_GROUP!r} "
            f"({type(exc).__name__}: {exc})"
        ) from None
    if not scores.data_vars:
        raise DashboardInputError(f"scores store {path}: no scored variable")
    for var, da in scores.data_vars.items():
        missing = [d for d in SCORE_DIMS if d not in da.dims]
        if missing:
            raise DashboardInputError(f"scores store {path}: variable {var!r} lacks dimension(s) {missing}")
        if var not in per_init.data_vars or "time" not in per_init[var].dims:
            raise DashboardInputError(f"scores store {path}: group {PER_INIT_GROUP!r} has no per-init {var!r}")
    spectra = open_spectra(path)
    spectra = spectra if spectra.data_vars else None
    # variables in name order: a Zarr group lists its members in no fixed order, and the pages (and the hashes
    # that decide what an incremental build redraws) must not change with it
    order = sorted(str(v) for v in scores.data_vars)
    spectra = None if spectra is None else spectra[[v for v in order if v in spectra.data_vars]]
    return scores[order], per_init[order], spectra


def load_scores(paths: Sequence[str]) -> ScoresData:
    """Open and check every scores store, then merge them along ``forecast`` (later stores win a name)."""
    opened = [(str(p), *_open_one(str(p))) for p in paths]
    scores_l, per_init_l, spectra_l, sources = [], [], [], []
    seen: set[str] = set()
    for path, sc, pi, sp in reversed(opened):
        keep = [str(f) for f in sc["forecast"].values if str(f) not in seen]
        seen.update(keep)
        if keep:
            scores_l.append(sc.sel(forecast=keep))
            per_init_l.append(pi.sel(forecast=keep))
            if sp is not None:
                spectra_l.append(sp.sel(forecast=[f for f in sp["forecast"].values if str(f) in keep or f == "truth"]))
        sources.append((path, dict(sc.attrs)))
    sources.reverse()
    if len(scores_l) == 1:
        scores, per_init = scores_l[0], per_init_l[0]
    else:
        scores_l.reverse(), per_init_l.reverse()
        scores = xr.concat(scores_l, dim="forecast", join="outer")
        per_init = xr.concat(per_init_l, dim="forecast", join="outer")
    spectra = None
    if spectra_l:
        spectra_l.reverse()
        truth_first = [spectra_l[0]] + [s.drop_sel(forecast="truth", errors="ignore") for s in spectra_l[1:]]
        spectra = truth_first[0] if len(truth_first) == 1 else xr.concat(truth_first, dim="forecast", join="outer")
    return ScoresData(scores=scores, per_init=per_init, spectra=spectra, sources=sources)


def pick_reference(data: ScoresData, reference: str | None) -> str:
    """``reference`` when scored (a clear error naming the forecasts otherwise); default persistence or first."""
    names = data.forecasts
    if reference is not None:
        if reference not in names:
            raise DashboardInputError(f"reference {reference!r} is not a scored forecast; the scores have {names}")
        return reference
    return "persistence" if "persistence" in names else names[0]


def pick_metric(data: ScoresData, metric: str, stores: Sequence[str]) -> str:
    """The scorecards' metric: ``metric`` when scored; ``rmse`` of ensembles is their ensemble-mean RMSE
    (``ens_mean_rmse``) when only that was scored; otherwise an error naming the stores and their metrics."""
    have = [str(m) for m in data.scores["metric"].values]
    if metric in have:
        return metric
    if metric == "rmse" and "ens_mean_rmse" in have:
        return "ens_mean_rmse"
    raise DashboardInputError(f"metric {metric!r} is not in the scores stores {list(stores)}; they have {have}")


def pick_headline(data: ScoresData, headline: Sequence[str] | None) -> list[Series]:
    """The scorecard panels: ``headline`` entries ``var`` or ``var/level``; default one per variable (500 hPa
    or the first level)."""
    series = data.series()
    if headline:
        by_key = {s.key: s for s in series}
        out = []
        for item in headline:
            if item not in by_key:
                raise DashboardInputError(f"headline {item!r} is not in the scores; have {sorted(by_key)}")
            out.append(by_key[item])
        return out
    out = []
    for var in data.scores.data_vars:
        levels = [s for s in series if s.variable == var]
        out.append(next((s for s in levels if s.level == 500), levels[0]))
    return out


def pick_leads(data: ScoresData, leads: Sequence[pd.Timedelta] | None, n: int = 4) -> np.ndarray:
    """The chosen leads (timedelta64[ns]), checked against the scored ones; default up to ``n`` spread out."""
    have = data.scores["prediction_timedelta"].values.astype("timedelta64[ns]")
    if leads:
        wanted = np.array([np.timedelta64(pd.Timedelta(x).value, "ns") for x in leads])
        missing = [str(pd.Timedelta(x)) for x in wanted if x not in have]
        if missing:
            raise DashboardInputError(
                f"leads {missing} are not scored; the scores have {[str(pd.Timedelta(x)) for x in have]}"
            )
        return wanted
    idx = np.unique(np.linspace(0, have.size - 1, min(n, have.size)).round().astype(int))
    return have[idx]


def run_records(data: ScoresData, forecast_paths: Sequence[str]) -> list[dict[str, Any]]:
    """Provenance rows for the runs page: one per forecast store given (its root attributes), then one per
    scored forecast whose store was not given (what the scores store recorded about it)."""
    rows = []
    named = set()
    for path in forecast_paths:
        ds = open_dataset(str(path), "forecast")
        name = forecast_name(ds, str(path))
        named.add(name)
        attrs = {k: _text(v) for k, v in ds.attrs.items()}
        rows.append({"name": name, "path": str(path), "source": "forecast store", "attrs": attrs})
    for path, attrs in data.sources:
        try:
            entries = json.loads(attrs.get("forecasts", "[]"))
        except (TypeError, ValueError):
            entries = []
        for entry in entries if isinstance(entries, list) else []:
            if isinstance(entry, dict) and entry.get("name") not in named:
                named.add(entry.get("name"))
                details = {k: _text(v) for k, v in entry.items() if k != "name"}
                details.update({k: _text(attrs[k]) for k in ("truth", "created", "wxemu_version") if k in attrs})
                rows.append({"name": str(entry.get("name")), "path": path, "source": "scores store", "attrs": details})
    return rows


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


@dataclasses.dataclass(frozen=True)
class MapFields:
    """Fields of one forecast and variable (2-D, latitude x longitude): per lead, the time-mean ``bias`` and
    ``rmse`` over initial times, and for one init and lead the forecast, truth and error."""

    name: str
    series: Series
    latitude: np.ndarray
    longitude: np.ndarray
    leads: np.ndarray
    bias: np.ndarray  # (lead, lat, lon)
    rmse: np.ndarray  # (lead, lat, lon)
    init: np.datetime64
    panel_lead: np.timedelta64
    panel: np.ndarray  # (3, lat, lon): forecast, truth, error
    units: str
    n_inits: int


def map_fields(
    forecast_path: str, truth: xr.Dataset, truth_path: str, series: Series, leads: np.ndarray, init: str | None
) -> MapFields | None:
    """The map fields of ``series`` in one forecast store, or None when the store lacks the variable, the leads
    or the truth's grid (the page lists what was skipped)."""
    fc = open_dataset(forecast_path, "forecast")
    var = series.variable
    if var not in fc.data_vars or var not in truth.data_vars:
        return None
    if fc.sizes["latitude"] != truth.sizes["latitude"] or fc.sizes["longitude"] != truth.sizes["longitude"]:
        return None
    have = fc["prediction_timedelta"].values.astype("timedelta64[ns]")
    use = np.array([x for x in leads if x in have])
    if use.size == 0:
        return None
    da = series.select(fc[var]).sel(prediction_timedelta=use)
    if "number" in da.dims:
        da = da.mean("number")
    t = series.select(truth[var])
    inits = fc["time"].values.astype("datetime64[ns]")
    tindex = pd.Index(t["time"].values.astype("datetime64[ns]"))
    valid = inits[:, None] + use[None, :]
    rows = tindex.get_indexer(valid.ravel()).reshape(valid.shape)
    f = da.transpose("time", "prediction_timedelta", "latitude", "longitude").values.astype(np.float64)
    tv = t.transpose("time", "latitude", "longitude").values.astype(np.float64)
    err = np.where((rows >= 0)[..., None, None], f - tv[np.maximum(rows, 0)], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bias = np.nanmean(err, axis=0)
        rmse = np.sqrt(np.nanmean(err**2, axis=0))
    ok = np.where((rows >= 0).any(axis=1))[0]
    if ok.size == 0:
        return None
    j = ok[-1] if init is None else int(np.argmin(np.abs(inits - np.datetime64(pd.Timestamp(init)))))
    k = int(np.where(rows[j] >= 0)[0][-1]) if (rows[j] >= 0).any() else 0
    panel = np.stack([f[j, k], tv[max(rows[j, k], 0)], err[j, k]])
    return MapFields(
        name=forecast_name(fc, forecast_path),
        series=series,
        latitude=fc["latitude"].values,
        longitude=fc["longitude"].values,
        leads=use,
        bias=bias,
        rmse=rmse,
        init=inits[j],
        panel_lead=use[k],
        panel=panel,
        units=str(t.attrs.get("units", "")),
        n_inits=int(ok.size),
    )


def open_truth(path: str) -> xr.Dataset:
    """The truth store (lazily), through verify's opener (incomplete wxemu stores are refused)."""
    return open_dataset(path, "truth")
