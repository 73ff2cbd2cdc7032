"""The Explanations page: explanation stores written by ``wxemu explain`` (read with
:func:`pipeline.explain.open_explanation`), shown as attribution maps with coastlines, the deletion/insertion
curves, the faithfulness and physical numbers, the totals and the provenance.

Nothing is recomputed here: every number is read from the store's attributes as ``explain`` wrote it.
"""

from __future__ import annotations

import dataclasses
import glob
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

from data_catalog.errors import WxemuError
from pipeline.dashboard import maps as MP
from pipeline.dashboard.data import DashboardInputError
from pipeline.dashboard.site import SiteWriter, content_hash
from pipeline.explain.output import draw_curves, open_explanation

RENDER_VERSION = "1"  # bump when the drawing below changes, so incremental builds redraw it
GLOB_CHARS = "*?["
COMPASS = ("N", "NNE", "NE", "ENE", "E", "ESE", "SE", "SSE", "S", "SSW", "SW", "WSW", "W", "WNW", "NW", "NNW")


@dataclasses.dataclass
class Explanation:
    """One explanation store: its path and content (``ds``, loaded)."""

    path: str
    ds: xr.Dataset

    @property
    def title(self) -> str:
        a = self.ds.attrs
        return (
            f"{a['channel']}, {a['region']}: +{float(a['lead_hours']):g} h from {a['init']} "
            f"({a['method'].replace('_', ' ')})"
        )


def expand_paths(items: Sequence[str]) -> list[str]:
    """The explanation stores named by ``items``: paths, or glob patterns (``explain/*.zarr``) expanded in sorted
    order; a pattern matching nothing is an error naming it (a plain path is checked when it is opened)."""
    out: list[str] = []
    for item in items:
        if any(c in item for c in GLOB_CHARS):
            found = sorted(glob.glob(item))
            if not found:
                raise DashboardInputError(f"explanations: the pattern {item!r} matches no explanation store")
            out += found
        else:
            out.append(item)
    return list(dict.fromkeys(out))  # a store named twice shows once


def load_explanations(items: Sequence[str]) -> list[Explanation]:
    """Open and check every explanation store (before the site is written); DashboardInputError naming the store
    when one is missing, incomplete, corrupt or not an explanation."""
    out = []
    for path in expand_paths(items):
        try:
            out.append(Explanation(path=path, ds=open_explanation(path)))
        except WxemuError as exc:
            raise DashboardInputError(f"explanation store {exc}") from None
    return out


def _num(ds: xr.Dataset, key: str) -> float | None:
    value = ds.attrs.get(key)
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if np.isfinite(value) else None


def numbers(ds: xr.Dataset) -> list[dict[str, str]]:
    """Table rows (``name``, ``value``, ``meaning``) of the explanation's scalar checks that the store holds."""
    rows = []

    def row(name: str, value: str, meaning: str) -> None:
        rows.append({"name": name, "value": value, "meaning": meaning})

    for curve in ("deletion", "insertion"):
        ratio, spread = _num(ds, f"{curve}_area_ratio"), _num(ds, f"{curve}_area_ratio_spread")
        if ratio is not None:
            row(
                f"{curve} area ratio",
                f"{ratio:.2f} ± {spread:.2f}" if spread is not None else f"{ratio:.2f}",
                f"area under the {curve} curve of the attribution's ordering over that of random orderings "
                "(± its spread over the random draws); > 1: the most-attributed cells move the output sooner",
            )
    simple = (
        (
            "faithfulness_correlation",
            "faithfulness correlation",
            "attribution held by random cell subsets vs the "
            "output's drop when they are removed (1: perfectly faithful)",
        ),
        (
            "randomized_weights_rank_correlation",
            "randomised-weights rank correlation",
            "explanation of the "
            "trained model vs one with randomised weights; low: the explanation depends on what the model learned",
        ),
        ("self_share", "self share", "share of |attribution| to the latest state inside the target region"),
        (
            "change_self_share",
            "self share of the model's change",
            "the same for the model's change (the attribution minus the identity path)",
        ),
        ("output", "forecast", "the explained region mean"),
        ("output_baseline", "forecast from the baseline", "the same from the baseline state"),
        (
            "attribution_sum",
            "sum of the attributions",
            "equals forecast minus baseline forecast for integrated gradients (completeness)",
        ),
        ("completeness_error", "completeness error", "integrated gradients' convergence delta"),
    )
    for key, name, meaning in simple:
        value = _num(ds, key)
        if value is not None:
            row(name, f"{value:.4g}", meaning)
    distance, bearing = _num(ds, "mass_centroid_distance_km"), _num(ds, "mass_centroid_bearing_deg")
    if distance is not None and bearing is not None:
        row(
            "centre of the model's change",
            f"{distance:.0f} km at {bearing:.0f}° ({COMPASS[int((bearing % 360) / 22.5 + 0.5) % 16]})",
            "distance and bearing from the region's centre to the centre of mass of the attribution of the "
            "model's change (moves upwind as the lead grows)",
        )
    return rows


def totals(ds: xr.Dataset) -> list[dict[str, Any]]:
    """Small tables of the attribution totals: per channel, history step, forcing and input region."""
    out = []
    for var, dim, title in (
        ("channel_total", "channel", "per channel of the state"),
        ("history_total", "history_hours", "per history step (hours from the initial time)"),
        ("forcing_total", "forcing", "per forcing"),
        ("input_region_total", "input_region", "inside and outside the target region"),
    ):
        da = ds[var]
        labels = [f"{x:g}" if isinstance(x, (float, np.floating)) else str(x) for x in da[dim].values]
        out.append({"title": title, "rows": [(k, f"{float(v):.4g}") for k, v in zip(labels, da.values)]})
    return out


def provenance(ds: xr.Dataset) -> list[tuple[str, str]]:
    """The store's non-numeric attributes (checkpoint and its sha256, store, init, lead, region, method...)."""
    skip = {"wxemu_complete"}
    return [
        (k, str(v))
        for k, v in ds.attrs.items()
        if k not in skip and (isinstance(v, str) or k in ("lead_hours", "lag_hours"))
    ]


def draw(writer: SiteWriter, ex: Explanation, slug: Callable[[str], str]) -> dict[str, Any]:
    """Stage the figures of one explanation (maps with coastlines, curves); returns its section of the page."""
    ds, a = ex.ds, ex.ds.attrs
    base = f"explanations/{slug(ex.path)}"
    lat, lon = ds["latitude"].values, ds["longitude"].values
    latest = float(ds["history_hours"].values[-1])
    fields = [
        (
            f"attribution to {c} at {latest:+g} h (the latest input state)",
            f"state-{c}",
            ds["state_attribution"].sel(channel=c).isel(history_hours=-1).values,
        )
        for c in ds["channel"].values
    ]
    fields.append(
        (
            f"attribution of the model's change to {a['channel']} at {latest:+g} h",
            "change",
            ds["change_attribution"].sel(channel=a["channel"]).isel(history_hours=-1).values,
        )
    )
    units = f"contribution to the region mean of {a['channel']}"
    images = []
    for title, key, field in fields:
        rel = f"{base}-{slug(key)}.png"
        digest = content_hash(RENDER_VERSION, "explain-map", title, units, lat, lon, field)
        writer.put(
            rel,
            digest,
            lambda p, f=field, t=title: MP.draw_field(p, lat, lon, f, title=t, units=units, diverging=True),
        )
        images.append({"file": rel, "title": title})
    rel = f"{base}-curves.png"
    curves = (ds["fraction"].values, ds["deletion_curve"].values, ds["insertion_curve"].values)
    writer.put(rel, content_hash(RENDER_VERSION, "explain-curves", a["channel"], *curves), lambda p: draw_curves(ds, p))
    return {
        "title": ex.title,
        "path": ex.path,
        "images": images,
        "curves": {"file": rel, "title": f"deletion and insertion curves: {ex.title}"},
        "numbers": numbers(ds),
        "totals": totals(ds),
        "provenance": provenance(ds),
    }
