"""The dashboard stage: scores (and optionally forecast, truth and explanation) stores -> a static site.

:func:`build_dashboard` validates every input before writing anything, then writes the site through
:class:`~pipeline.dashboard.site.SiteWriter`: each figure, data file and map is keyed by a hash of what it shows,
and one whose hash matches the previous build is reused instead of drawn again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from markupsafe import Markup

from data_catalog.version import wxemu_version
from pipeline.dashboard import explanations as EX
from pipeline.dashboard import figures as F
from pipeline.dashboard import maps as MP
from pipeline.dashboard.config import DashboardConfig, DashboardResult, lead_timedelta
from pipeline.dashboard.data import (
    ScoresData,
    Series,
    load_scores,
    map_fields,
    open_truth,
    pick_headline,
    pick_leads,
    pick_metric,
    pick_reference,
    run_records,
)
from pipeline.dashboard.pages import NAV, STATIC, environment, render, slug, static_file
from pipeline.dashboard.site import SiteWriter, content_hash

RENDER_VERSION = "1"  # bump when a figure's drawing code changes, so incremental builds redraw it
EXPLORERS = {
    "curves": (("variable", "level", "region", "metric"), "Lead-time curves"),
    "timeline": (("variable", "level", "region", "metric", "lead"), "Per-init timeline"),
    "spectra": (("variable", "level", "lead"), "Spectra"),
}


def build_dashboard(config: DashboardConfig, *, progress: bool = False) -> DashboardResult:
    """Build the site of ``config`` in ``config.out`` and return what was written (see :class:`DashboardResult`).

    Raises a :class:`~data_catalog.errors.WxemuError` naming the store or option on bad input, before anything is
    written; the previous site at ``out`` stays as it was on any error.
    """
    explanations = EX.load_explanations(config.explanations)
    if not config.scores:
        return _empty_site(config, explanations)
    data = load_scores(config.scores)
    reference = pick_reference(data, config.reference)
    metric = pick_metric(data, config.metric, config.scores)
    headline = pick_headline(data, config.headline)
    leads = pick_leads(data, [lead_timedelta(x) for x in config.leads] if config.leads else None)
    truth = open_truth(config.truth) if config.truth else None
    runs = run_records(data, config.forecasts)
    say = (lambda msg: print(f"dashboard: {msg}", file=sys.stderr, flush=True)) if progress else (lambda msg: None)
    writer = SiteWriter(config.out)
    env = environment()
    common = {
        "title": config.title,
        "version": wxemu_version(),
        "sources": [str(p) for p in config.scores],
        "reference": reference,
    }
    pages = []
    try:
        _static(writer)
        pages.append(_scorecard_page(writer, env, data, headline, reference, metric, common))
        say("scorecard done")
        pages.append(_significance_page(writer, env, data, reference, metric, config.alpha, common))
        say("significance done")
        for kind in EXPLORERS:
            pages.append(_explorer_page(writer, env, kind, data, leads, common))
        say("curves, timeline, spectra done")
        pages.append(_maps_page(writer, env, config, data, headline, leads, truth, common, say))
        pages.append(_explanations_page(writer, env, explanations, common))
        say(f"{len(explanations)} explanation(s) done")
        pages.append(_runs_page(writer, env, runs, data, common))
        writer.commit(
            {
                "reference": reference,
                "forecasts": data.forecasts,
                "scores": list(config.scores),
                "explanations": [e.path for e in explanations],
            }
        )
    except BaseException:
        writer.abort()
        raise
    say(f"{len(writer.drawn)} files drawn, {len(writer.reused)} reused: {writer.out / 'index.html'}")
    return DashboardResult(
        out=writer.out,
        pages=tuple(pages),
        drawn=tuple(writer.drawn),
        reused=tuple(writer.reused),
        forecasts=tuple(data.forecasts),
        reference=reference,
    )


def _empty_site(config: DashboardConfig, explanations: list[EX.Explanation]) -> DashboardResult:
    """Every page saying that there are no scores yet (a cycle before its first verification), but the
    Explanations page when explanation stores are given."""
    writer, env = SiteWriter(config.out), environment()
    common = {"title": config.title, "version": wxemu_version(), "sources": [], "reference": "none"}
    notice = "No scores stores yet: nothing to show."
    try:
        _static(writer)
        pages = [
            _explanations_page(writer, env, explanations, common)
            if page == "explanations" and explanations
            else _page(writer, env, "notice.html", page, label, common, notice=notice)
            for page, _, label in NAV
        ]
        writer.commit(
            {"reference": None, "forecasts": [], "scores": [], "explanations": [e.path for e in explanations]}
        )
    except BaseException:
        writer.abort()
        raise
    return DashboardResult(writer.out, tuple(pages), tuple(writer.drawn), tuple(writer.reused), (), "")


def _static(writer: SiteWriter) -> None:
    import plotly
    from plotly.offline import get_plotlyjs

    writer.put("plotly.min.js", content_hash("plotly.js", plotly.__version__), lambda p: p.write_text(get_plotlyjs()))
    for name in STATIC:
        writer.put_text(name, static_file(name))


def _page(writer: SiteWriter, env, template: str, page: str, page_title: str, common: dict, **ctx: Any) -> str:
    rel = "index.html" if page == "index" else f"{page}.html"
    writer.put_text(rel, render(env, template, page=page, page_title=page_title, **common, **ctx))
    return rel


def _scorecard_page(writer, env, data: ScoresData, headline, reference, metric, common) -> str:
    figs = []
    for region in [str(r) for r in data.scores["region"].values]:
        fid = f"scorecard-{slug(region)}"
        rel = f"figures/{fid}.js"
        arrays = [s.select(data.scores[s.variable]).sel(metric=metric, region=region).values for s in headline]
        digest = content_hash(RENDER_VERSION, "scorecard", region, metric, reference, data.forecasts, headline, *arrays)

        def draw(path: Path, region=region, fid=fid) -> None:
            from plotly.io.json import to_json_plotly

            spec = F.headline_scorecard(data, headline, reference, metric, region)
            path.write_text(f"WXEMU.figure({F.json.dumps(fid)}, {to_json_plotly(spec)});\n", encoding="utf-8")

        writer.put(rel, digest, draw)
        figs.append({"id": fid, "file": rel, "region": region})
    return _page(writer, env, "index.html", "index", "Headline scorecard", common, figures=figs, metric=metric)


def _significance_page(writer, env, data: ScoresData, reference, metric: str, alpha: float, common) -> str:
    parts = []
    ref_arrays = [data.per_init[v].sel(forecast=reference, metric=metric).values for v in data.per_init]
    for name in data.forecasts:
        if name == reference:
            continue
        arrays = [data.per_init[v].sel(forecast=name, metric=metric).values for v in data.per_init]
        digest = content_hash(RENDER_VERSION, "significance", name, reference, metric, alpha, *ref_arrays, *arrays)

        def draw(path: Path, name=name) -> None:
            leads, rows = F.significance_rows(data, name, reference, metric, alpha)
            html = env.get_template("significance_table.html").render(
                forecast=name, reference=reference, leads=leads, rows=rows
            )
            path.write_text(html, encoding="utf-8")

        staged = writer.put(f"parts/significance-{slug(name)}.html", digest, draw)
        parts.append(Markup(staged.read_text(encoding="utf-8")))  # rendered (and escaped) by Jinja2 above
    return _page(
        writer,
        env,
        "significance.html",
        "significance",
        "Significance scorecard",
        common,
        parts=parts,
        metric=metric,
        alpha=alpha,
    )


def _explorer_page(writer, env, kind: str, data: ScoresData, leads: np.ndarray, common) -> str:
    selectors, title = EXPLORERS[kind]
    notice, index_file = "", f"data/{kind}-index.js"
    series = data.series()
    if kind == "spectra" and data.spectra is None:
        notice = "Spectra: not in this scores store (its verify run wrote no 'spectra' group)."
    keys: dict[str, dict[str, str]] = {}
    variables: dict[str, list[str]] = {}
    for s in series:
        digest, payload = _payload_digest(kind, data, s, leads)
        if digest is None:
            continue
        rel = f"data/{kind}/{slug(s.key)}.js"
        writer.put(rel, digest, lambda p, s=s: p.write_text(F.data_script(kind, s.key, payload(s)), encoding="utf-8"))
        keys[s.key] = {"file": rel}
        variables.setdefault(s.variable, [])
        if s.level is not None:
            variables[s.variable].append(f"{s.level:g}")
    if not notice and not keys:
        notice = f"{title}: nothing to show in these scores stores."
    if not notice:
        lead_labels = [F.lead_label(h) for h in leads / np.timedelta64(1, "h")]
        if kind == "spectra":
            lead_labels = [
                F.lead_label(h) for h in data.spectra["prediction_timedelta"].values / np.timedelta64(1, "h")
            ]
        metrics = [m for m in F.CURVE_METRICS if m in data.scores["metric"].values]
        metrics += [str(m) for m in data.scores["metric"].values if m not in metrics]
        if kind == "timeline":
            metrics = [m for m in metrics if m != "spread_skill"]
        index = {
            "variables": variables,
            "keys": keys,
            "regions": [str(r) for r in data.scores["region"].values],
            "metrics": metrics,
            "leads": lead_labels,
            "units": {s.key: str(data.scores[s.variable].attrs.get("units", "")) for s in series},
        }
        writer.put_text(index_file, f"WXEMU.setIndex({F.json.dumps(kind)}, {F.to_js(index)});\n")
    intro = {
        "curves": "Scores of every forecast against lead time; choose the variable, level, region and metric.",
        "timeline": "The error of each forecast against its initial time at the chosen lead, so bad days show.",
        "spectra": "Power spectra of the forecasts and the truth by lead (from the scores store's spectra group); "
        "a forecast that blurs loses power at short wavelengths.",
    }[kind]
    return _page(
        writer,
        env,
        "explorer.html",
        kind,
        title,
        common,
        kind=kind,
        selectors=selectors,
        notice=notice,
        index_file=index_file,
        intro=intro,
    )


def _payload_digest(kind: str, data: ScoresData, s: Series, leads: np.ndarray):
    """(hash of what the data file of ``s`` shows, function building its payload), or (None, None)."""
    if kind == "curves":
        arr = s.select(data.scores[s.variable]).values
        return content_hash(RENDER_VERSION, kind, s, data.forecasts, data.scores["metric"].values, arr), (
            lambda s: F.curves_payload(data, s)
        )
    if kind == "timeline":
        da = s.select(data.per_init[s.variable]).sel(prediction_timedelta=leads)
        return content_hash(RENDER_VERSION, kind, s, data.forecasts, leads, da["time"].values, da.values), (
            lambda s: F.timeline_payload(data, s, leads)
        )
    if data.spectra is None or s.variable not in data.spectra.data_vars:
        return None, None
    da = data.spectra[s.variable]
    if s.level is not None and ("level" not in da.dims or s.level not in da["level"].values):
        return None, None
    arr = s.select(da).values
    return content_hash(RENDER_VERSION, kind, s, list(da["forecast"].values), arr), (
        lambda s: F.spectra_payload(data.spectra, s)
    )


def _maps_page(writer, env, config: DashboardConfig, data, headline, leads, truth, common, say) -> str:
    maps, skipped, notice = [], [], ""
    if not config.forecasts or truth is None:
        notice = "No forecast stores given (--forecasts with --truth): no maps."
    for path in config.forecasts:
        for s in headline:
            fields = map_fields(str(path), truth, str(config.truth), s, leads, config.map_init)
            if fields is None:
                skipped.append(f"{s.key} of {path}")
                continue
            maps.append(_draw_maps(writer, fields, path))
            say(f"maps of {fields.name} {s.key} done")
    return _page(writer, env, "maps.html", "maps", "Maps", common, maps=maps, skipped=skipped, notice=notice)


def _draw_maps(writer: SiteWriter, f, path) -> dict[str, Any]:
    base = f"maps/{slug(f'{f.name}-{f.series.key}')}-{content_hash(str(path))[:6]}"
    units = f.units
    images = []
    for i, lead in enumerate(f.leads):
        label = F.lead_label(lead / np.timedelta64(1, "h"))
        for what, field in (("bias", f.bias[i]), ("rmse", f.rmse[i])):
            title = f"{f.name} {f.series.key}: time-mean {what} at lead {label}"
            rel = f"{base}-{what}-{label}.png"
            digest = content_hash(RENDER_VERSION, "map", title, units, f.latitude, f.longitude, field)
            writer.put(
                rel,
                digest,
                lambda p, field=field, title=title, what=what: MP.draw_field(
                    p, f.latitude, f.longitude, field, title=title, units=units, diverging=what == "bias"
                ),
            )
            images.append({"file": rel, "title": title})
    init = str(pd.Timestamp(f.init))[:16]
    label = F.lead_label(f.panel_lead / np.timedelta64(1, "h"))
    titles = (f"{f.name} forecast", "truth", "forecast - truth")
    ptitle = f"{f.name} {f.series.key}: init {init}, lead {label}: forecast, truth, error"
    rel = f"{base}-panel.png"
    digest = content_hash(RENDER_VERSION, "panel", ptitle, titles, units, f.latitude, f.longitude, f.panel)
    writer.put(rel, digest, lambda p: MP.draw_panel(p, f.latitude, f.longitude, f.panel, titles=titles, units=units))
    return {
        "name": f.name,
        "series": f.series.key,
        "n_inits": f.n_inits,
        "images": images,
        "panel": {"file": rel, "title": ptitle},
    }


def _runs_page(writer, env, runs, data: ScoresData, common) -> str:
    sources = [(path, {k: str(v) for k, v in attrs.items()}) for path, attrs in data.sources]
    return _page(writer, env, "runs.html", "runs", "Runs and provenance", common, runs=runs, scores_sources=sources)


def _explanations_page(writer, env, explanations: list[EX.Explanation], common) -> str:
    notice = "" if explanations else "No explanation stores given (--explanations, written by wxemu explain)."
    sections = [EX.draw(writer, ex, slug) for ex in explanations]
    return _page(
        writer, env, "explanations.html", "explanations", "Explanations", common, explanations=sections, notice=notice
    )
