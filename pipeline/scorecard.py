"""Scorecards: forecast A against reference B, lead by lead, with significance.

For a metric, variable, level, region and lead time: the relative difference of the time-averaged scores
``(A - B) / B`` (negative = A has the smaller error; for ACC, positive = A better) and a two-sided paired test on
the per-initial-time scores (the quantity the metric averages: MSE for RMSE, ...). Forecast errors at successive
initial times are correlated, so the t-test uses an effective sample size from the lag-1 autocorrelation r1 of the
paired differences, ``n_eff = n (1 - r1) / (1 + r1)`` (clipped to [2, n]; Wilks 1997, Geer 2016), with
``n_eff - 1`` degrees of freedom.

Pure functions on numpy/xarray (:func:`paired_test`, :func:`scorecard`); :func:`render_scorecard` makes a
``rich`` table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import stats as _st

from data_catalog.errors import WxemuError
from pipeline.metrics import METRICS

QUANTITIES = ("score", "reference_score", "relative_difference", "p_value", "n_eff")


def lag1_autocorrelation(x: np.ndarray) -> float:
    """Lag-1 autocorrelation of a 1-D series (NaNs dropped; 0 for fewer than 3 points or no variance)."""
    x = np.asarray(x, dtype=np.float64)
    x = x[~np.isnan(x)]
    if x.size < 3:
        return 0.0
    a = x - x.mean()
    den = np.dot(a, a)
    return float(np.dot(a[:-1], a[1:]) / den) if den > 0 else 0.0


def effective_sample_size(n: int, r1: float) -> float:
    """``n (1 - r1) / (1 + r1)`` for r1 > 0 (else n), clipped to [min(2, n), n]."""
    if n <= 0:
        return 0.0
    r1 = max(0.0, min(r1, 0.999))
    return float(np.clip(n * (1 - r1) / (1 + r1), min(2.0, n), n))


def paired_test(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sided p-value that the mean of ``a - b`` is zero, and the effective sample size used.

    ``a``, ``b``: per-initial-time scores in time order, shape (n,); pairs with a NaN are dropped.
    """
    d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    d = d[~np.isnan(d)]
    n = d.size
    if n < 2:
        return float("nan"), float(n)
    n_eff = effective_sample_size(n, lag1_autocorrelation(d))
    sd = d.std(ddof=1)
    if sd == 0:
        return (1.0 if d.mean() == 0 else 0.0), n_eff
    t = d.mean() / (sd / np.sqrt(n_eff))
    return float(2 * _st.t.sf(abs(t), df=max(n_eff - 1, 1))), n_eff


def scorecard(per_init: xr.Dataset, forecast: str, reference: str, metric: str = "rmse") -> xr.Dataset:
    """Scorecard of ``forecast`` against ``reference`` from the ``per_init`` scores of ``wxemu verify``.

    Returns a Dataset with one variable per forecast variable, dims (``quantity``, region,
    prediction_timedelta, [level]) and ``quantity`` = score, reference_score, relative_difference (A - B) / B,
    p_value, n_eff. Only initial times both forecasts have are compared.
    """
    if metric not in METRICS:
        raise WxemuError(f"unknown scorecard metric {metric!r}")
    m = METRICS[metric]()
    if metric == "spread_skill":
        raise WxemuError("spread_skill has no per-init score to test; pick another scorecard metric")
    forecasts = list(per_init["forecast"].values)
    for name in (forecast, reference):
        if name not in forecasts:
            raise WxemuError(f"forecast {name!r} is not in the scores (have {forecasts})")
    if metric not in per_init["metric"].values:
        raise WxemuError(f"metric {metric!r} was not computed (have {list(per_init['metric'].values)})")
    out = {}
    for var, da in per_init.data_vars.items():
        a = da.sel(metric=metric, forecast=forecast)
        b = da.sel(metric=metric, forecast=reference)
        both = ~(a.isnull() | b.isnull())
        a, b = a.where(both), b.where(both)
        a = a.transpose("time", ...)
        b = b.transpose("time", ...)
        sa = m.finalize(_nanmean0(a.values))
        sb = m.finalize(_nanmean0(b.values))
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = (sa - sb) / np.abs(sb)
        av = a.values.reshape(a.shape[0], -1)
        bv = b.values.reshape(b.shape[0], -1)
        tests = [paired_test(av[:, k], bv[:, k]) for k in range(av.shape[1])]
        p = np.array([t[0] for t in tests]).reshape(sa.shape)
        neff = np.array([t[1] for t in tests]).reshape(sa.shape)
        tmpl = a.isel(time=0, drop=True)
        out[var] = xr.concat(
            [tmpl.copy(data=x) for x in (sa, sb, rel, p, neff)],
            dim=xr.DataArray(list(QUANTITIES), dims="quantity", name="quantity"),
        )
    return xr.Dataset(out).assign_attrs(
        forecast=forecast,
        reference=reference,
        metric=metric,
        higher_is_better=int(m.higher_is_better),
        test="paired t-test, n_eff = n (1 - r1) / (1 + r1)",
    )


def _nanmean0(x: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(x, axis=0)


def render_scorecard(card: xr.Dataset, alpha: float = 0.05):
    """A ``rich.table.Table``: one row per lead time, one column per variable/level and region, cells the relative
    difference in percent, green where the forecast is better and red where worse, bold when significant at
    ``alpha``. (Leads run down the page: forecasts scored hourly have dozens of them.)"""
    from rich.markup import escape
    from rich.table import Table

    higher = bool(card.attrs.get("higher_is_better", 0))
    first = next(iter(card.data_vars.values()))
    leads = first["prediction_timedelta"].values
    title = (  # names come from store attributes: escaped, never read as markup
        f"{escape(str(card.attrs['metric']))}: {escape(str(card.attrs['forecast']))} vs "
        f"{escape(str(card.attrs['reference']))} (relative difference %, bold = p < {alpha})"
    )
    table = Table(title=title, min_width=min(len(title) + 4, 100))
    table.add_column("lead", justify="right")
    columns = []
    for var, da in card.data_vars.items():
        levels = da["level"].values if "level" in da.dims else [None]
        for level in levels:
            for region in da["region"].values:
                sub = da.sel(region=region) if level is None else da.sel(region=region, level=level)
                label = var if level is None else f"{var}/{level:g}"
                table.add_column(escape(f"{label}\n{region}"), justify="right")
                columns.append(sub)
    for lead in leads:
        cells = []
        for sub in columns:
            rel = float(sub.sel(quantity="relative_difference", prediction_timedelta=lead))
            p = float(sub.sel(quantity="p_value", prediction_timedelta=lead))
            if np.isnan(rel):
                cells.append("-")
                continue
            better = rel > 0 if higher else rel < 0
            colour = "green" if better else "red"
            style = f"bold {colour}" if p < alpha else colour
            cells.append(f"[{style}]{100 * rel:+.1f}[/{style}]")
        table.add_row(f"{lead / np.timedelta64(1, 'h'):g}h", *cells)
    return table


def print_scorecards(
    scores: xr.Dataset,
    per_init: xr.Dataset,
    reference: str,
    metric: str = "rmse",
    forecasts: Sequence[str] | None = None,
) -> list[xr.Dataset]:
    """Print the scorecard of each forecast (other than ``reference``) against ``reference``; return them."""
    from rich.console import Console

    console = Console()
    cards = []
    for name in forecasts or [str(f) for f in scores["forecast"].values]:
        if name == reference:
            continue
        card = scorecard(per_init, name, reference, metric)
        console.print(render_scorecard(card))
        cards.append(card)
    return cards
