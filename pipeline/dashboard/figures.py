"""Figure specifications and page data, built from the scores (no I/O).

- :func:`headline_scorecard`: a Plotly figure spec (plain dict: ``data``, ``layout``) in the style of the public
  WeatherBench scorecard: one heatmap panel per headline variable, rows = forecasts, columns = leads, colour = %
  difference from the reference (blue = better), the absolute score written in each cell.
- :func:`significance_rows`: the ECMWF-style significance scorecard of one forecast (from
  :func:`pipeline.scorecard.scorecard`) as table rows.
- :func:`curves_payload`, :func:`timeline_payload`, :func:`spectra_payload`: per-series data that the pages'
  JavaScript turns into Plotly traces when a selector changes.

Every string that comes from a store is HTML-escaped before it reaches Plotly (which renders a subset of HTML in
labels); the pages escape through Jinja2.
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from pipeline.dashboard.data import ScoresData, Series
from pipeline.metrics import METRICS
from pipeline.scorecard import scorecard

CURVE_METRICS = ("rmse", "acc", "bias", "mae", "crps", "spread_skill", "ens_mean_rmse", "spread", "mse")


def esc(text: Any) -> str:
    """Text for a Plotly label: HTML-escaped (Plotly shows ``&lt;`` as ``<``)."""
    return html.escape(str(text), quote=True)


def lead_label(hours: float) -> str:
    return f"{hours:g}h" if hours < 48 or hours % 24 else f"{hours / 24:g}d"


def _higher_is_better(metric: str) -> bool:
    return bool(METRICS[metric].higher_is_better) if metric in METRICS else False


def headline_scorecard(
    data: ScoresData, series: Sequence[Series], reference: str, metric: str, region: str
) -> dict[str, Any]:
    """The WeatherBench-style scorecard of ``metric`` in ``region``: a figure spec with one heatmap per series."""
    from plotly.subplots import make_subplots

    leads = [lead_label(h) for h in data.leads_hours()]
    names = data.forecasts
    units = {s.key: data.scores[s.variable].attrs.get("units", "") for s in series}
    height = 90 + len(series) * (100 + 24 * len(names))
    fig = make_subplots(
        rows=len(series),
        cols=1,
        subplot_titles=[esc(f"{s.key} ({units[s.key]})" if units[s.key] else s.key) for s in series],
        vertical_spacing=min(85 / height, 0.9 / max(len(series) - 1, 1)),
    )
    higher = _higher_is_better(metric)
    for i, s in enumerate(series, start=1):
        da = s.select(data.scores[s.variable]).sel(metric=metric, region=region)
        vals = da.transpose("forecast", "prediction_timedelta").values.astype(np.float64)
        ref = da.sel(forecast=reference).values.astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            pct = 100.0 * (vals - ref[None, :]) / np.abs(ref[None, :])
        fig.add_heatmap(
            z=np.round(pct, 2).tolist(),
            x=leads,
            y=[esc(n) for n in names],
            text=[[f"{v:.3g}" if np.isfinite(v) else "" for v in row] for row in vals],
            texttemplate="%{text}",
            customdata=np.round(pct, 1).tolist(),
            hovertemplate="%{y} at %{x}: %{text} (%{customdata:+.1f}% vs reference)<extra></extra>",
            colorscale="RdBu" if higher else "RdBu_r",
            zmid=0,
            zmin=-50,
            zmax=50,
            showscale=i == 1,
            colorbar={"title": {"text": "% difference<br>vs reference"}, "len": 0.5},
            row=i,
            col=1,
        )
        fig.update_yaxes(autorange="reversed", row=i, col=1)
    fig.update_layout(
        title={"text": esc(f"{metric} vs {reference}, region {region}: colour = % difference (blue = better)")},
        height=height,
        margin={"l": 140, "r": 40, "t": 80, "b": 40},
        meta={"metric": metric, "reference": esc(reference), "region": esc(region), "higher_is_better": higher},
    )
    return fig.to_plotly_json()


def significance_rows(
    data: ScoresData, forecast: str, reference: str, metric: str, alpha: float
) -> tuple[list[str], list[dict[str, Any]]]:
    """(lead labels, rows) of the significance scorecard of ``forecast`` vs ``reference``: one row per series and
    region, cells with the % difference, whether it is better, and whether p < ``alpha``."""
    card = scorecard(data.per_init, forecast, reference, metric)
    higher = bool(card.attrs.get("higher_is_better", 0))
    leads = [lead_label(h) for h in data.leads_hours()]
    rows = []
    for s in data.series():
        da = s.select(card[s.variable]).transpose("quantity", "region", "prediction_timedelta")
        rel_all = da.sel(quantity="relative_difference").values
        p_all = da.sel(quantity="p_value").values
        for k, region in enumerate(da["region"].values):
            cells = []
            for r, pv in zip(rel_all[k], p_all[k]):
                if not np.isfinite(r):
                    cells.append({"text": "", "cls": "none", "mark": "", "title": "no data"})
                    continue
                better = (r > 0) if higher else (r < 0)
                sig = bool(np.isfinite(pv) and pv < alpha)
                mark = ("▲" if sig else "△") if better else ("▼" if sig else "▽")
                cells.append(
                    {
                        "text": f"{100 * r:+.1f}%",
                        "cls": ("better" if better else "worse") + (" sig" if sig else ""),
                        "mark": mark,
                        "title": f"p = {pv:.3g}",
                    }
                )
            rows.append({"series": s.key, "region": str(region), "cells": cells})
    return leads, rows


def curves_payload(data: ScoresData, s: Series) -> dict[str, Any]:
    """Lead-time curves of one series: ``values[region][metric][forecast]`` = score per lead."""
    da = s.select(data.scores[s.variable])
    metrics = [m for m in CURVE_METRICS if m in da["metric"].values] + [
        str(m) for m in da["metric"].values if m not in CURVE_METRICS
    ]
    arr = da.transpose("region", "metric", "forecast", "prediction_timedelta")
    vals = arr.values
    row = {str(m): i for i, m in enumerate(arr["metric"].values)}
    names = [str(f) for f in arr["forecast"].values]
    values = {
        str(region): {m: {f: vals[r, row[m], j] for j, f in enumerate(names)} for m in metrics}
        for r, region in enumerate(arr["region"].values)
    }
    return {
        "key": s.key,
        "units": str(data.scores[s.variable].attrs.get("units", "")),
        "x": [lead_label(h) for h in data.leads_hours()],
        "regions": [str(r) for r in arr["region"].values],
        "metrics": metrics,
        "values": values,
    }


def timeline_payload(data: ScoresData, s: Series, leads: np.ndarray) -> dict[str, Any]:
    """Per-init scores of one series at ``leads``: ``values[region][metric][lead][forecast]`` per init time."""
    da = s.select(data.per_init[s.variable]).sel(prediction_timedelta=leads)
    labels = [lead_label(h) for h in leads / np.timedelta64(1, "h")]
    values: dict[str, Any] = {}
    for region in da["region"].values:
        values[str(region)] = {}
        for m in da["metric"].values:
            metric = METRICS.get(str(m))
            if metric is None or str(m) == "spread_skill":
                continue
            sub = da.sel(region=region, metric=m).transpose("prediction_timedelta", "forecast", "time").values
            with np.errstate(invalid="ignore"):
                sub = metric().finalize(sub.astype(np.float64))
            values[str(region)][str(m)] = {
                lab: {str(f): sub[i, j] for j, f in enumerate(da["forecast"].values)} for i, lab in enumerate(labels)
            }
    times = [str(t)[:16] for t in da["time"].values.astype("datetime64[m]")]
    return {"key": s.key, "x": times, "leads": labels, "values": values, "units": ""}


def spectra_payload(spectra: xr.Dataset, s: Series) -> dict[str, Any] | None:
    """Spectra of one series from the scores store's ``spectra`` group: ``values[lead][forecast]`` per
    wavenumber, x = wavelength in km (None when the group lacks the series)."""
    if s.variable not in spectra.data_vars:
        return None
    da = spectra[s.variable]
    if s.level is not None:
        if "level" not in da.dims or s.level not in da["level"].values:
            return None
        da = da.sel(level=s.level)
    hours = da["prediction_timedelta"].values / np.timedelta64(1, "h")
    x = spectra["wavelength_km"].values if "wavelength_km" in spectra.coords else spectra["wavenumber"].values
    arr = da.transpose("prediction_timedelta", "forecast", "wavenumber").values
    names = [str(f) for f in da["forecast"].values]
    return {
        "key": s.key,
        "x": np.asarray(x, np.float64),
        "xtitle": "wavelength (km)" if "wavelength_km" in spectra.coords else "wavenumber",
        "leads": [lead_label(h) for h in hours],
        "values": {lead_label(h): {n: arr[i, j] for j, n in enumerate(names)} for i, h in enumerate(hours)},
    }


def to_js(obj: Any) -> str:
    """JSON text of ``obj`` with numpy arrays as lists of 5 significant digits (NaN -> null) and markup
    characters in strings escaped as ``\\u003c`` etc."""
    if isinstance(obj, np.ndarray):
        return json.dumps(_rounded(obj))
    if isinstance(obj, dict):
        return "{" + ",".join(_js_str(k) + ":" + to_js(v) for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(to_js(v) for v in obj) + "]"
    if isinstance(obj, (np.floating, float)):
        return "null" if not np.isfinite(obj) else repr(float(obj))
    if isinstance(obj, (np.integer, np.bool_)):
        return json.dumps(obj.item())
    if isinstance(obj, str):
        return _js_str(obj)
    return json.dumps(obj, default=str)


def _rounded(a: np.ndarray, digits: int = 5) -> list:
    """``a`` flattened to a list of floats with ``digits`` significant digits (NaN -> None)."""
    a = np.asarray(a, np.float64).ravel()
    finite = np.isfinite(a)
    mags = np.abs(a[finite & (a != 0)])
    if mags.size and mags.max() / mags.min() < 1e3:  # one decimal count fits every value: fast path
        out = np.round(a, int(digits - 1 - np.floor(np.log10(mags.max())))).tolist()
    else:  # values spanning decades (spectra): each value to its own significant digits
        out = [float(t) for t in np.char.mod(f"%.{digits}g", np.where(finite, a, 0.0))]
    return out if finite.all() else [v if ok else None for v, ok in zip(out, finite)]


def _js_str(text: object) -> str:
    """A JSON string literal with ``<``, ``>`` and ``&`` as unicode escapes (inert wherever the file lands)."""
    return json.dumps(str(text)).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def data_script(kind: str, key: str, payload: Any) -> str:
    """A JavaScript data file that hands ``payload`` to the page (loadable from file://, unlike fetch)."""
    return f"WXEMU.load({_js_str(kind)}, {_js_str(key)}, {to_js(payload)});\n"
