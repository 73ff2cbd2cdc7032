"""The dashboard in a real browser: Debian's headless Chromium loads every page from file:// and from the
built-in server, with no console message and every host but 127.0.0.1 unresolvable."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import numpy as np
import pytest

from data_catalog.samples import data_dir
from pipeline.dashboard import DashboardConfig, build_dashboard
from pipeline.dashboard.serve import serve_in_thread
from pipeline.dashboard.testing import (
    chromium,
    run_browser,
    write_synthetic_explanation,
    write_synthetic_forecasts,
    write_synthetic_scores,
)

pytestmark = pytest.mark.skipif(chromium() is None, reason="no chromium (make install installs it)")
SHARED = Path(data_dir()) if (Path(data_dir()) / "cartopy").is_dir() else None  # $WXEMU_DATA_DIR or ../shared/data
MARKUP = "<img src=x onerror=alert(1)>"
PLOT_PAGES = ("index", "curves", "timeline", "spectra")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    d = tmp_path_factory.mktemp("browser")
    scores = write_synthetic_scores(
        d / "scores.zarr", forecasts=("emulator", "persistence", "worse"), error_scale={"emulator": 0.8, "worse": 1.3}
    )
    truth, forecasts = write_synthetic_forecasts(d, attrs={"wxemu_note": MARKUP})
    kw = {"forecasts": [str(p) for p in forecasts], "truth": str(truth)} if SHARED else {}
    if SHARED:
        kw["explanations"] = [str(write_synthetic_explanation(d / "explain.zarr", attrs={"model": MARKUP}))]
    with pytest.MonkeyPatch.context() as mp:
        if SHARED:
            mp.setenv("WXEMU_DATA_DIR", str(SHARED))
        build_dashboard(DashboardConfig(scores=[str(scores)], out=str(d / "site"), **kw))
    return d / "site"


def _check_page(dom: str, console: list[str], page: str) -> None:
    assert not console, f"{page}: console messages {console}"
    errors = re.search(r'<pre id="js-errors"([^>]*)>(.*?)</pre>', dom, re.S)
    assert errors and "hidden" in errors.group(1) and not errors.group(2).strip(), f"{page}: {errors.group(2)}"
    if page in PLOT_PAGES:
        assert 'class="main-svg"' in dom, f"{page}: no Plotly SVG rendered"
        assert int(re.search(r'data-plots-rendered="(\d+)"', dom).group(1)) >= 1


def test_every_page_renders_from_file_url(site):
    for page in ("index", "significance", "curves", "maps", "timeline", "spectra", "explanations", "runs"):
        dom, console = run_browser((site / f"{page}.html").as_uri())
        _check_page(dom, console, page)
        if page == "maps" and SHARED:
            assert dom.count('<img src="maps/') == 2 * 5
        if page == "explanations" and SHARED:
            assert dom.count('<img src="explanations/') == 3 and "1.84 ± 0.21" in dom


def test_every_page_renders_from_the_server(site):
    server, url = serve_in_thread(site)
    try:
        for page in ("index", "curves", "timeline", "spectra", "runs"):
            dom, console = run_browser(f"{url}{page}.html")
            _check_page(dom, console, page)
    finally:
        server.shutdown()
        server.server_close()


def _trace_paths(dom: str) -> list[str]:
    return [d for d in re.findall(r'<path class="js-line" d="([^"]+)"', dom) if "L" in d]  # not the legend


def test_variable_selector_changes_the_plotted_data(site):
    doms = {}
    for selection in ("variable=2m_temperature", "variable=geopotential&level=850", "variable=geopotential&level=500"):
        dom, console = run_browser((site / "curves.html").as_uri() + "#" + selection)
        assert not console
        chosen = json.loads(html.unescape(re.search(r'data-selection="([^"]+)"', dom).group(1)))
        doms[chosen["key"]] = _trace_paths(dom)
    assert set(doms) == {"2m_temperature", "geopotential/850", "geopotential/500"}
    assert all(len(paths) == 3 for paths in doms.values())  # one line per forecast
    assert doms["2m_temperature"] != doms["geopotential/850"] != doms["geopotential/500"]


def test_known_scorecard_cells_and_escaped_markup_in_the_browser(site):
    dom, _ = run_browser((site / "significance.html").as_uri())
    block = dom[dom.index("emulator vs persistence") : dom.index("worse vs persistence")]
    cells = re.findall(r'<td class="([^"]+)"[^>]*>([^<]*)</td>', block)
    assert cells and all(cls == "better sig" and "-20.0%" in text for cls, text in cells)
    runs, console = run_browser((site / "runs.html").as_uri())
    assert not console  # the onerror handler of the markup never ran
    if SHARED:
        assert html.escape(MARKUP, quote=False) in runs and '<img src="x"' not in runs


def test_screenshot_is_not_blank(site, tmp_path):
    import matplotlib.image as mpimg

    shot = tmp_path / "index.png"
    run_browser((site / "index.html").as_uri(), screenshot=shot, size="1200,1000")
    img = mpimg.imread(shot)[..., :3]
    assert img.shape[:2] == (1000, 1200)
    body = img[150:700]  # below the header: the scorecard heatmap
    coloured = (np.abs(body - body.mean(axis=2, keepdims=True)).max(axis=2) > 0.1).mean()
    assert coloured > 0.05  # blue and red heatmap cells, not a white page
    blue = (body[..., 2] - body[..., 0] > 0.15).mean()
    red = (body[..., 0] - body[..., 2] > 0.15).mean()
    assert blue > 0.01 and red > 0.01  # the better (blue) and the worse (red) forecast rows


DRIVER = """<!doctype html><html><body><pre id="out"></pre>
<iframe id="f" src="curves.html" width="1200" height="900"></iframe>
<script>
var f = document.getElementById("f"), log = [];
function form() { return f.contentDocument.querySelector("form.selectors[data-kind='curves']"); }
function values(select) { return Array.prototype.map.call(select.options, function (o) { return o.value; }); }
function snap(label) {
  var d = f.contentDocument, el = d.getElementById("explorer-curves");
  var lines = d.querySelectorAll("path.js-line");
  var paths = Array.prototype.map.call(lines, function (p) { return p.getAttribute("d"); });
  log.push({ label: label, levels: values(form().elements["level"]), level: form().elements["level"].value,
    selection: JSON.parse(el.getAttribute("data-selection") || "null"),
    paths: paths.filter(function (p) { return p && p.indexOf("L") >= 0; }) });
}
function choose(name, value) {
  var s = form().elements[name];
  s.value = value;
  s.dispatchEvent(new Event("change"));
}
function later(fn) { setTimeout(fn, 1500); }
f.addEventListener("load", function () {
  later(function () {
    snap("initial");
    choose("variable", "geopotential");
    later(function () {
      snap("variable");
      var level = form().elements["level"];
      choose("level", values(level).filter(function (v) { return v !== level.value; })[0]);
      later(function () { snap("level"); document.getElementById("out").textContent = JSON.stringify(log); });
    });
  });
});
</script></body></html>"""


def test_choosing_in_the_dropdowns_redraws_the_curves(site):
    # what a user does: pick a variable, then a level, in the page's own <select> elements (the change handlers)
    (site / "drive-selectors.html").write_text(DRIVER)
    server, url = serve_in_thread(site)
    try:
        dom, console = run_browser(f"{url}drive-selectors.html", budget_ms=15000)
    finally:
        server.shutdown()
        server.server_close()
        (site / "drive-selectors.html").unlink()
    assert not console
    steps = {
        s["label"]: s for s in json.loads(html.unescape(re.search(r'<pre id="out">(.*?)</pre>', dom, re.S).group(1)))
    }
    assert steps["initial"]["selection"]["key"] == "2m_temperature" and steps["initial"]["levels"] == []
    assert steps["variable"]["selection"]["key"].startswith("geopotential/")
    assert "500" in steps["variable"]["levels"] and "850" in steps["variable"]["levels"]
    assert steps["level"]["level"] != steps["variable"]["level"]
    assert steps["level"]["selection"]["key"] == f"geopotential/{steps['level']['level']}"
    assert all(len(s["paths"]) == 3 for s in steps.values())  # one line per forecast
    assert steps["initial"]["paths"] != steps["variable"]["paths"] != steps["level"]["paths"]
