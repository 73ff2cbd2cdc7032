"""The dashboard stage: pages, known-answer scorecards, incremental builds, escaping, errors, offline maps."""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest

from data_catalog.errors import ConfigError, WxemuError
from data_catalog.samples import data_dir
from data_catalog.store_protocol import mark_incomplete
from pipeline.dashboard import DashboardConfig, build_dashboard
from pipeline.dashboard.testing import (
    write_synthetic_explanation,
    write_synthetic_forecasts,
    write_synthetic_scores,
)
from pipeline.verification import VerifyConfig, verify
from workflows.cli import main

SHARED = Path(data_dir())  # $WXEMU_DATA_DIR, else ../shared/data: the samples and Natural Earth's files
MARKUP = "<script>alert('x')</script>"


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("dash")
    scores = write_synthetic_scores(
        d / "scores.zarr",
        forecasts=("emulator", "persistence", "worse"),
        error_scale={"emulator": 0.8, "worse": 1.3},
        attrs={"comment": MARKUP},
    )
    truth, forecasts = write_synthetic_forecasts(d, attrs={"wxemu_note": MARKUP, "title": "$x^2$ <b>bold</b>"})
    return d, scores, truth, forecasts


def _figure(site: Path, name: str) -> dict:
    text = next((site / "figures").glob(f"{name}-*.js")).read_text()
    return json.loads(text[text.index(",") + 1 : text.rindex(")")])


def test_site_has_every_page_and_known_scorecard_answers(stores, monkeypatch):
    d, scores, truth, forecasts = stores
    monkeypatch.setenv("WXEMU_DATA_DIR", str(SHARED))
    out = d / "site"
    result = build_dashboard(
        DashboardConfig(scores=[str(scores)], forecasts=[str(p) for p in forecasts], truth=str(truth), out=str(out))
    )
    assert result.reference == "persistence"
    for page in ("index", "significance", "curves", "maps", "timeline", "spectra", "runs"):
        assert (out / f"{page}.html").is_file()
    assert (out / "plotly.min.js").stat().st_size > 1_000_000  # plotly.js bundled once beside the pages
    for html in out.glob("*.html"):
        assert not re.search(r'(src|href)="(https?:)?//', html.read_text()), f"{html.name} fetches from the network"
    # headline scorecard: emulator RMSE is 0.8x persistence at every lead -> -20 %, blue (RdBu_r: low = blue)
    fig = _figure(out, "scorecard-global")
    panel = fig["data"][0]
    rows = panel["y"]
    assert np.allclose(panel["z"][rows.index("emulator")], -20.0, atol=0.05)
    assert np.allclose(panel["z"][rows.index("worse")], 30.0, atol=0.05)
    assert np.allclose(panel["z"][rows.index("persistence")], 0.0)
    assert panel["colorscale"][0][1] == "rgb(5,48,97)" and panel["zmid"] == 0  # negative (lower RMSE) = blue
    assert float(panel["text"][rows.index("emulator")][0]) < float(panel["text"][rows.index("persistence")][0])
    # significance scorecard: significantly better / worse, with the right sign
    sig = (out / "significance.html").read_text()
    emulator = sig[sig.index("emulator vs persistence") : sig.index("worse vs persistence")]
    cells = re.findall(r'<td class="([^"]+)"[^>]*>([^<]*)</td>', emulator)
    assert cells and all(c == "better sig" and "▲ -20.0%" in t for c, t in cells)
    worse = re.findall(r'<td class="([^"]+)"[^>]*>([^<]*)</td>', sig[sig.index("worse vs persistence") :])
    assert worse and all(c == "worse sig" and "▼ +30.0%" in t for c, t in worse)
    # maps: PNGs drawn for each forecast (bias and RMSE at each lead, and the forecast/truth/error panel)
    pngs = sorted((out / "maps").glob("*.png"))
    assert len(pngs) == 2 * (2 * 2 + 1)  # the chosen leads the forecasts have: 6h and 12h
    assert "not in this scores store" not in (out / "spectra.html").read_text()


def test_store_text_is_escaped_everywhere(stores, monkeypatch, tmp_path):
    d, _, truth, forecasts = stores
    monkeypatch.setenv("WXEMU_DATA_DIR", str(SHARED))
    scores = write_synthetic_scores(tmp_path / "s.zarr", forecasts=(MARKUP, "persistence"), attrs={"x": MARKUP})
    out = tmp_path / "site"
    build_dashboard(
        DashboardConfig(scores=[str(scores)], forecasts=[str(forecasts[0])], truth=str(truth), out=str(out))
    )
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"
    runs = (out / "runs.html").read_text()
    assert escaped in runs and "&lt;b&gt;bold&lt;/b&gt;" in runs
    for path in list(out.glob("*.html")) + list(out.rglob("*.js")):
        text = path.read_text()
        assert "<script>alert(" not in text, path  # neither in pages nor in the data handed to Plotly
    assert escaped in (out / "significance.html").read_text()
    fig = _figure(out, "scorecard-global")
    assert "&lt;script&gt;" in fig["data"][0]["y"][0]


def test_incremental_build_reuses_unchanged_figures(stores, monkeypatch, tmp_path):
    d, scores, truth, forecasts = stores
    monkeypatch.setenv("WXEMU_DATA_DIR", str(SHARED))
    out = tmp_path / "site"
    kw = dict(forecasts=[str(p) for p in forecasts], truth=str(truth), out=str(out))
    first = build_dashboard(DashboardConfig(scores=[str(scores)], **kw))
    assert not first.reused
    maps_before = {p.name: p.stat().st_ino for p in (out / "maps").glob("*.png")}
    again = build_dashboard(DashboardConfig(scores=[str(scores)], **kw))
    assert not [f for f in again.drawn if not f.endswith(".html") or f.startswith("parts/")]
    # a new cycle: another scores store with a new forecast -> its figures and the scorecards are redrawn only
    new = write_synthetic_scores(tmp_path / "new.zarr", forecasts=("new_model",), error_scale={"new_model": 0.9})
    third = build_dashboard(DashboardConfig(scores=[str(scores), str(new)], **kw))
    assert "new_model" in third.forecasts
    assert any(f.startswith("parts/significance-new_model") for f in third.drawn)
    assert any(f.startswith("parts/significance-emulator") for f in third.reused)
    assert any(f.startswith("figures/scorecard-global") for f in third.drawn)
    assert not [f for f in third.drawn if f.startswith("maps/")]
    assert {p.name: p.stat().st_ino for p in (out / "maps").glob("*.png")} == maps_before  # not rewritten
    assert "new_model" in (out / "significance.html").read_text()


def test_real_verify_scores_and_a_store_without_spectra(tmp_path, monkeypatch):
    monkeypatch.setenv("WXEMU_DATA_DIR", str(SHARED))
    truth, forecasts = write_synthetic_forecasts(tmp_path, n_inits=3, leads_h=(6, 12))
    scores = tmp_path / "scores.zarr"
    verify(VerifyConfig(forecasts=[str(p) for p in forecasts], truth=str(truth), out=str(scores)))
    out = tmp_path / "site"
    rc = main(["dashboard", "--scores", str(scores), "--out", str(out), "--reference", "persistence", "--quiet"])
    assert rc == 0
    assert "not in this scores store" not in (out / "spectra.html").read_text()  # verify wrote the spectra group
    spectra = next((out / "data" / "spectra").glob("2m_temperature-*.js")).read_text()
    assert '"truth"' in spectra and '"emulator"' in spectra
    assert "No forecast stores given" in (out / "maps.html").read_text()
    # a scores store without the spectra group: the page says so
    bare = write_synthetic_scores(tmp_path / "bare.zarr", spectra=False)
    build_dashboard(DashboardConfig(scores=[str(bare)], out=str(out)))
    assert "not in this scores store" in (out / "spectra.html").read_text()
    assert "emulator" in (out / "significance.html").read_text()


def test_bad_inputs_name_the_store_and_leave_no_site(tmp_path, capsys):
    import xarray as xr

    out = tmp_path / "site"
    with pytest.raises(WxemuError, match="missing.zarr: no such file"):
        build_dashboard(DashboardConfig(scores=[str(tmp_path / "missing.zarr")], out=str(out)))
    plain = tmp_path / "plain.zarr"
    xr.Dataset({"a": ("x", np.arange(3.0))}).to_zarr(plain, zarr_format=3, consolidated=False)
    with pytest.raises(WxemuError, match="plain.zarr"):
        build_dashboard(DashboardConfig(scores=[str(plain)], out=str(out)))
    unfinished = write_synthetic_scores(tmp_path / "unfinished.zarr", spectra=False)
    mark_incomplete(str(unfinished))  # as an interrupted verify leaves it
    with pytest.raises(WxemuError, match="unfinished.zarr: store is incomplete"):
        build_dashboard(DashboardConfig(scores=[str(unfinished)], out=str(out)))
    good = write_synthetic_scores(tmp_path / "good.zarr", spectra=False)
    with pytest.raises(WxemuError, match="reference 'ecmwf' is not a scored forecast"):
        build_dashboard(DashboardConfig(scores=[str(good)], out=str(out), reference="ecmwf"))
    assert not out.exists() and not list(tmp_path.glob(".site.*"))
    assert main(["dashboard", "--scores", str(plain), "--out", str(out)]) == 2
    assert "plain.zarr" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="alpha"):
        DashboardConfig(scores=["s.zarr"], alpha=2.0)
    with pytest.raises(ConfigError, match="leads"):
        DashboardConfig(scores=["s.zarr"], leads=["soon"])
    # a directory that is not a dashboard is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(ConfigError, match="not a wxemu dashboard"):
        build_dashboard(DashboardConfig(scores=[str(good)], out=str(tmp_path / "mine")))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_config_from_yaml(tmp_path):
    path = tmp_path / "dash.yaml"
    path.write_text("scores: [a.zarr, b.zarr]\nout: site\nleads: [24h]\nreference: persistence\n")
    config = DashboardConfig.from_yaml(path)
    assert config.scores == ("a.zarr", "b.zarr") and config.leads == ("24h",)
    path.write_text("scores: a.zarr\ncolour: red\n")
    with pytest.raises(ConfigError, match="colour"):
        DashboardConfig.from_yaml(path)


@pytest.mark.skipif(not (SHARED / "cartopy").is_dir(), reason="no local Natural Earth directory")
def test_maps_use_local_natural_earth_and_never_download(stores, monkeypatch, tmp_path):
    import cartopy
    import matplotlib.image as mpimg

    d, scores, truth, forecasts = stores
    attempts = []

    def blocked(self, address, *args):
        attempts.append(address)
        raise OSError(f"network blocked by the test: {address}")

    monkeypatch.setattr(socket.socket, "connect", blocked)
    monkeypatch.setattr(socket.socket, "connect_ex", blocked)
    monkeypatch.setitem(cartopy.config, "data_dir", str(tmp_path / "cartopy-cache"))  # no earlier download helps
    monkeypatch.setenv("WXEMU_DATA_DIR", str(SHARED))
    out = tmp_path / "site"
    build_dashboard(
        DashboardConfig(scores=[str(scores)], forecasts=[str(forecasts[0])], truth=str(truth), out=str(out))
    )
    assert attempts == []
    assert not (tmp_path / "cartopy-cache").exists()
    assert cartopy.config["pre_existing_data_dir"] == str(SHARED / "cartopy")
    panel = mpimg.imread(next((out / "maps").glob("*panel.png")))
    assert panel.shape[0] > 100 and panel[..., :3].std() > 0.05  # drawn, not blank
    # with no local Natural Earth files (and no network) the error names the missing sample, and no site appears
    monkeypatch.setenv("WXEMU_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("WXEMU_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(WxemuError, match="ne_110m_coastline"):
        build_dashboard(
            DashboardConfig(
                scores=[str(scores)], forecasts=[str(forecasts[0])], truth=str(truth), out=str(tmp_path / "s2")
            )
        )
    assert not (tmp_path / "s2").exists()
    assert not (tmp_path / "cartopy-cache").exists()  # cartopy itself tried no download
    assert os.listdir(tmp_path / "empty") == []


def test_demo_dashboard_builds_into_the_demo_directory(stores, monkeypatch, tmp_path, capsys):
    from pipeline.dashboard.demo import demo_dashboard

    d, scores, truth, forecasts = stores
    monkeypatch.setenv("WXEMU_DATA_DIR", str(SHARED))
    result = demo_dashboard(tmp_path, str(scores), [str(p) for p in forecasts], str(truth))
    assert result.out == tmp_path / "dashboard" and result.index.is_file()
    assert f"open file://{result.index}" in capsys.readouterr().out


def test_ensemble_scores_use_ensemble_mean_rmse_and_unknown_metric_is_named(tmp_path):
    scores = write_synthetic_scores(
        tmp_path / "ens.zarr", forecasts=("ens", "persistence"), metrics=("ens_mean_rmse", "crps", "spread")
    )
    result = build_dashboard(DashboardConfig(scores=[str(scores)], out=str(tmp_path / "site")))
    assert "<b>ens_mean_rmse</b>" in (tmp_path / "site" / "significance.html").read_text()
    assert result.reference == "persistence"
    index = next((tmp_path / "site" / "data").glob("curves-index.js")).read_text()
    assert all(m in index for m in ("ens_mean_rmse", "crps", "spread"))
    with pytest.raises(WxemuError, match="metric 'acc' is not in the scores stores"):
        build_dashboard(DashboardConfig(scores=[str(scores)], out=str(tmp_path / "site"), metric="acc"))


def test_no_scores_yet_gives_a_site_saying_so(tmp_path):
    result = build_dashboard(DashboardConfig(scores=[], out=str(tmp_path / "site")))
    assert len(result.pages) == 8 and result.forecasts == ()
    for page in result.pages:
        assert "No scores stores yet" in (tmp_path / "site" / page).read_text()
    scores = write_synthetic_scores(tmp_path / "s.zarr", spectra=False)  # the first cycle's scores arrive
    build_dashboard(DashboardConfig(scores=[str(scores)], out=str(tmp_path / "site")))
    assert "No scores stores yet" not in (tmp_path / "site" / "index.html").read_text()


# ------------------------------------------------------------------------------------------------ explanations
@pytest.mark.skipif(not (SHARED / "cartopy").is_dir(), reason="no local Natural Earth directory")
def test_explanations_page_shows_maps_curves_numbers_and_provenance(stores, monkeypatch, tmp_path):
    import matplotlib.image as mpimg

    d, scores, truth, forecasts = stores
    monkeypatch.setenv("WXEMU_DATA_DIR", str(SHARED))
    attempts = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, address, *a: attempts.append(address))
    (tmp_path / "explain").mkdir()
    write_synthetic_explanation(tmp_path / "explain" / "a.zarr", attrs={"model": MARKUP})
    write_synthetic_explanation(tmp_path / "explain" / "b.zarr", channels=("2m_temperature", "geopotential/500"))
    out = tmp_path / "site"
    rc = main(
        ["dashboard", "--scores", str(scores), "--explanations", str(tmp_path / "explain" / "*.zarr")]
        + ["--out", str(out), "--quiet"]
    )
    assert rc == 0 and attempts == []
    page = (out / "explanations.html").read_text()
    assert page.count('<section class="explanation">') == 2
    for text in (
        "deletion area ratio",
        "1.84 ± 0.21",
        "insertion area ratio",
        "1.52 ± 0.13",
        "faithfulness correlation",
        "randomised-weights rank correlation",
        "0.12",
        "self share",
        "0.81",
        "312 km at 250° (WSW)",
        "runs/graph/model.safetensors",
        "integrated gradients",
        "2019-03-25 00:00:00",
        "toa_radiation",
    ):
        assert text in page, text
    assert "&lt;script&gt;" in page and MARKUP not in page
    images = re.findall(r'<img src="(explanations/[^"]+\.png)"', page)
    assert len(images) == (1 + 1) + (2 + 1) + 2  # state maps per channel, the change map, a curves figure each
    for rel in images:
        img = mpimg.imread(out / rel)
        assert img.shape[0] > 100 and img[..., :3].std() > 0.05, rel  # drawn, not blank
    assert 'href="explanations.html"' in (out / "index.html").read_text()  # in the navigation of every page
    again = build_dashboard(
        DashboardConfig(scores=[str(scores)], explanations=[str(tmp_path / "explain" / "a.zarr")], out=str(out))
    )
    assert not [f for f in again.drawn if f.startswith("explanations/")]  # unchanged figures are reused
    # without explanation stores the page says so; with only explanations (no scores yet) the page still shows them
    build_dashboard(DashboardConfig(scores=[str(scores)], out=str(out)))
    assert "No explanation stores given" in (out / "explanations.html").read_text()
    early = build_dashboard(
        DashboardConfig(explanations=[str(tmp_path / "explain" / "a.zarr")], out=str(tmp_path / "early"))
    )
    assert "1.84 ± 0.21" in (early.out / "explanations.html").read_text()
    assert "No scores stores yet" in (early.out / "index.html").read_text()


def test_bad_explanation_stores_name_the_store_and_leave_no_site(stores, tmp_path, capsys):
    import xarray as xr

    d, scores, _, _ = stores
    out = tmp_path / "site"

    def error(path) -> str:
        with pytest.raises(WxemuError) as exc:
            build_dashboard(DashboardConfig(scores=[str(scores)], explanations=[str(path)], out=str(out)))
        return str(exc.value)

    assert "missing.zarr: no such explanation store" in error(tmp_path / "missing.zarr")
    assert "matches no explanation store" in error(tmp_path / "none" / "*.zarr")
    unfinished = write_synthetic_explanation(tmp_path / "unfinished.zarr")
    mark_incomplete(str(unfinished))
    assert "unfinished.zarr: incomplete explanation store" in error(unfinished)
    corrupt = write_synthetic_explanation(tmp_path / "corrupt.zarr")
    (corrupt / "zarr.json").write_text("{not json")
    assert "corrupt.zarr: cannot read the explanation store" in error(corrupt)
    assert "not an explanation store (written by verify)" in error(scores)
    partial = tmp_path / "partial.zarr"
    ds = xr.open_zarr(write_synthetic_explanation(tmp_path / "full.zarr")).load().drop_vars("deletion_curve")
    ds.to_zarr(partial, zarr_format=3, consolidated=True)
    assert "partial.zarr: the explanation store lacks ['deletion_curve']" in error(partial)
    assert not out.exists() and not list(tmp_path.glob(".site.*"))
    assert main(["dashboard", "--scores", str(scores), "--explanations", str(partial), "--out", str(out)]) == 2
    assert "partial.zarr" in capsys.readouterr().err
