"""`wxemu explain`: attribution numerics on arrays, known answers on a linear model, and a trained emulator on
the real UK sample (completeness, deletion beats random, randomised-weights check, error cases)."""

from __future__ import annotations

from pathlib import Path

import _synthetic
import numpy as np
import pytest
import torch
import xarray as xr

from data_catalog.errors import ConfigError, WxemuError
from models.base import Emulator
from pipeline.explain import ExplainConfig, explain, open_explanation, write_figures
from pipeline.explain.attribution import attribute, randomized_copy
from pipeline.explain.faithfulness import block_masks, cell_ranking, faithfulness_correlation, perturbation_curves
from pipeline.explain.physical import distance_and_bearing, mass_centroid, share_inside
from pipeline.explain.target import RegionForecast
from pipeline.normalization import ChannelStats
from workflows.cli import main

CONFIG = """
model: {kind: graph, config: {latent: 16, processor_layers: 2}}
data:
  train: ["2019-03-01T00", "2019-03-21T23"]
  val: ["2019-03-22T00", "2019-03-24T23"]
  test: ["2019-03-25T00", "2019-03-31T23"]
  step_hours: [1, 3, 6, 12, 24]
  climatology_forcing: true
  batch_size: 8
  num_workers: 0
optim: {lr: 3.0e-3, warmup_steps: 10}
trainer: {max_steps: 60, val_every_n_steps: 60, limit_val_batches: 1, seed: 0}
"""


# ------------------------------------------------------------------------------------------------ pure numerics
def test_centroid_distance_bearing_and_share() -> None:
    lat, lon = np.array([50.0, 51.0, 52.0]), np.array([0.0, 1.0, 2.0, 3.0])
    mass = np.zeros((3, 4))
    mass[1, 2] = 5.0
    assert mass_centroid(mass=mass, latitude=lat, longitude=lon) == pytest.approx((51.0, 2.0))
    mass[1, 0] = 5.0  # two equal masses on a parallel: the centre lies between them (slightly poleward)
    c_lat, c_lon = mass_centroid(mass=mass, latitude=lat, longitude=lon)
    assert c_lon == pytest.approx(1.0) and 51.0 < c_lat < 51.01
    d, bearing = distance_and_bearing(lat1=0.0, lon1=0.0, lat2=0.0, lon2=1.0)
    assert d == pytest.approx(111.195, rel=1e-4) and bearing == pytest.approx(90.0)
    assert distance_and_bearing(lat1=10.0, lon1=5.0, lat2=9.0, lon2=5.0)[1] == pytest.approx(180.0)
    assert share_inside(mass=mass, mask=np.eye(3, 4, k=-1, dtype=bool)) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mass_centroid(mass=-mass, latitude=lat, longitude=lon)


def test_block_masks_and_ranking() -> None:
    attr = np.array([[[0.1, -3.0], [2.0, 0.0]]])
    order = cell_ranking(attribution=attr)
    assert order.tolist() == [1, 2, 0, 3]
    masks = block_masks(order=order, n_blocks=2, shape=(2, 2))
    assert masks.sum(axis=(1, 2)).tolist() == [0, 2, 4]
    assert masks[1].ravel().tolist() == [False, True, True, False]


def test_curves_of_a_linear_output_favour_the_true_attribution() -> None:
    rng = np.random.default_rng(1)
    w = rng.gamma(0.3, size=(1, 1, 12, 12))
    state, base = rng.normal(size=(1, 1, 12, 12)), np.zeros((1, 1, 12, 12))

    def evaluate(states: np.ndarray) -> np.ndarray:
        return (states * w).reshape(len(states), -1).sum(axis=1)

    exact = w * (state - base)
    curves = perturbation_curves(
        evaluate=evaluate, state=state, baseline=base, attribution=exact, n_blocks=8, n_random=6, seed=0
    )
    assert curves.deletion.shape == (7, 9)
    assert curves.deletion[:, 0] == pytest.approx(evaluate(state[None])[0])
    assert curves.insertion[:, -1] == pytest.approx(evaluate(state[None])[0])
    summary = curves.summary()
    assert summary["deletion_area_ratio"] > 1.3 and summary["insertion_area_ratio"] > 1.3
    assert faithfulness_correlation(evaluate=evaluate, state=state, baseline=base, attribution=exact) > 0.999
    wrong = rng.normal(size=exact.shape)
    assert faithfulness_correlation(evaluate=evaluate, state=state, baseline=base, attribution=wrong) < 0.7


# ------------------------------------------------------------------------------------------------ known answers
class PointwiseLinear(Emulator):
    """delta = a * latest state + c * first forcing, cell by cell: attributions are known exactly."""

    kind = "pointwise-linear-test"

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.a = torch.nn.Parameter(torch.tensor(0.5))
        self.c = torch.nn.Parameter(torch.tensor(-0.25))

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead_hours: torch.Tensor) -> torch.Tensor:
        return self.a * state[:, -self.n_state :] + self.c * forcings[:, :1]


def test_integrated_gradients_known_answer_on_a_linear_model() -> None:
    lat, lon = np.linspace(50, 53, 4), np.linspace(350, 354, 5)
    model = PointwiseLinear(latitude=lat, longitude=lon, n_state=1, n_forcing=2, history=1)
    stats = ChannelStats(
        names=["t"],
        mean=np.array([280.0]),
        std=np.array([5.0]),
        diff_mean={1.0: np.array([0.0])},
        diff_std={1.0: np.array([1.0])},
    )
    weights = np.zeros((4, 5))
    weights[1:3, 1:3] = 0.25
    fn = RegionForecast(model, stats, [1.0], 2.0, 0, weights, [1.0, 2.0])
    rng = np.random.default_rng(0)
    x = (
        torch.from_numpy(rng.normal(size=(1, 1, 1, 4, 5)).astype("f4")),
        torch.from_numpy(rng.normal(size=(1, 2, 2, 4, 5)).astype("f4")),
    )
    b = (torch.zeros_like(x[0]), torch.zeros_like(x[1]))
    (a_state, a_forc), delta = attribute(fn, x, b, method="integrated_gradients", n_steps=8)
    # two steps of next = s + delta * diff_std / std: s2 = k^2 s + ..., k = 1 + 0.5 / 5
    k = 1 + 0.5 / 5.0
    expected_state = weights * 5.0 * k**2 * x[0][0, 0, 0].numpy()
    np.testing.assert_allclose(a_state[0, 0, 0].numpy(), expected_state, rtol=1e-4, atol=1e-6)
    expected_forc = np.stack([weights * 5.0 * (-0.25 / 5.0) * k, weights * 5.0 * (-0.25 / 5.0)])
    np.testing.assert_allclose(a_forc[0, :, 0].numpy(), expected_forc * x[1][0, :, 0].numpy(), rtol=1e-4, atol=1e-6)
    assert np.all(a_forc[0, :, 1].numpy() == 0)  # the model ignores the second forcing
    with torch.no_grad():
        assert float(a_state.sum() + a_forc.sum()) == pytest.approx(float(fn(*x) - fn(*b)), abs=1e-5)
    assert delta < 1e-5
    grad_attr, _ = attribute(fn, x, b, method="gradient")
    np.testing.assert_allclose(grad_attr[0].numpy(), a_state.numpy(), rtol=1e-4, atol=1e-6)


def test_randomized_copy_redraws_parameters_and_fitted_linear_coefficients() -> None:
    from models.linear import LinearConfig, LinearRegression

    class Residual(torch.nn.Module):  # a network beside a fitted regression, as the demo's emulators are
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(3, 3)
            cfg = LinearConfig(step_hours=[1.0])
            self.linear = LinearRegression(grid_shape=(4, 5), n_state=1, n_forcing=0, history=1, config=cfg)
            with torch.no_grad():
                self.linear.coef.copy_(torch.linspace(0, 1, self.linear.coef.numel()).reshape(self.linear.coef.shape))

    model = Residual()
    clone = randomized_copy(model, seed=1)
    assert not torch.equal(clone.net.weight, model.net.weight)
    assert not torch.equal(clone.linear.coef, model.linear.coef)
    assert torch.equal(clone.linear.steps, model.linear.steps)  # not learned: kept
    assert abs(float(clone.linear.coef.std()) - float(model.linear.coef.std())) < 0.1


# ------------------------------------------------------------------------------------------------ real data
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    store = str(_synthetic.cached_uk_store())
    root = tmp_path_factory.mktemp("explain")
    (root / "config.yaml").write_text(CONFIG)
    rc = main(["train", "--store", store, "--out", str(root / "run"), "--config", str(root / "config.yaml")])
    assert rc == 0
    return store, root / "run"


def test_trained_graph_emulator_explained_on_real_data(trained: tuple[str, Path], tmp_path: Path) -> None:
    store, run = trained
    config = ExplainConfig(
        checkpoint=str(run),
        store=store,
        init="2019-03-25T06",
        lead="3h",
        region="52,55,354,358",
        n_steps=16,
        random_orderings=4,
        out=str(tmp_path / "x.zarr"),
    )
    result = explain(config)
    n = result.numbers
    change = n["output"] - n["output_baseline"]
    assert n["attribution_sum"] == pytest.approx(change, abs=1e-3 + 1e-3 * abs(change))  # completeness
    assert n["deletion_area_ratio"] > 1.0 and n["insertion_area_ratio"] > 1.0  # beats random orderings
    assert n["faithfulness_correlation"] > 0.9
    assert n["randomized_weights_rank_correlation"] < 0.9
    assert 0.0 <= n["self_share"] <= 1.0 and n["mass_centroid_distance_km"] < 500
    ds = open_explanation(str(tmp_path / "x.zarr"))
    assert ds["state_attribution"].dims == ("history_hours", "channel", "latitude", "longitude")
    assert ds.attrs["channel"] == "2m_temperature" and ds.attrs["method"] == "integrated_gradients"
    assert float(ds["channel_total"].sum() + ds["forcing_total"].sum()) == pytest.approx(n["attribution_sum"], rel=1e-4)
    xr.testing.assert_allclose(ds["deletion_curve"], result.attributions["deletion_curve"])
    smooth = explain(
        ExplainConfig(
            checkpoint=str(run),
            store=store,
            init="2019-03-25T06",
            lead="3h",
            region="52,55,354,358",
            method="smoothgrad",
            n_samples=4,
            random_orderings=2,
        )
    )
    assert np.isfinite(smooth.attributions["state_attribution"].values).all()


def test_figures_are_drawn_without_network(trained: tuple[str, Path], tmp_path: Path, data_dir: str) -> None:
    store, run = trained
    result = explain(
        ExplainConfig(
            checkpoint=str(run),
            store=store,
            init="2019-03-25T06",
            lead="1h",
            region="uk",
            n_steps=4,
            random_orderings=2,
        )
    )
    paths = write_figures(result.attributions, str(tmp_path / "fig"), cartopy_data_dir=f"{data_dir}/cartopy")
    assert len(paths) == 2 and all(Path(p).stat().st_size > 10_000 for p in paths)


def test_bad_requests_get_clear_errors(trained: tuple[str, Path], tmp_path: Path, capsys) -> None:
    store, run = trained

    def error(**kw) -> str:
        base = dict(checkpoint=str(run), store=store, init="2019-03-25T06", lead="1h", region="uk", random_orderings=1)
        with pytest.raises(WxemuError) as exc:
            explain(ExplainConfig(**{**base, **kw}))
        return str(exc.value)

    assert "does not overlap" in error(region="10,20,100,110")
    assert "not in the store" in error(init="2018-01-01T00")
    assert "2m_temperatur" in error(variable="2m_temperatur")
    assert "1.5" in error(lead="1.5h")
    with pytest.raises(ConfigError, match="method"):
        ExplainConfig(checkpoint="x", store="y", init="2019-03-25T00", method="shap")
    rc = main(
        [
            "explain",
            "--checkpoint",
            str(run),
            "--store",
            store,
            "--init",
            "2019-03-25T06",
            "--lead",
            "90min",
            "--region",
            "uk",
        ]
    )
    assert rc == 2 and "error" in capsys.readouterr().err


def test_lagged_paths_are_followed(trained: tuple[str, Path], tmp_path: Path) -> None:
    """A lagged lead (one trained step from an earlier analysis) is explained through that call: the same as the
    greedy one-step explanation from the earlier analysis, with hours relative to the forecast's init; given a
    forecast store, the explanation follows the paths it recorded and explains exactly its forecast."""
    store, run = trained
    base = dict(checkpoint=str(run), store=store, region="52,55,354,358", n_steps=4, random_orderings=2)
    lagged = explain(ExplainConfig(init="2019-03-25T06", lead="23h", lag="1h", **base))
    shifted = explain(ExplainConfig(init="2019-03-25T05", lead="24h", **base))
    assert lagged.numbers["output"] == pytest.approx(shifted.numbers["output"], abs=1e-5)
    np.testing.assert_allclose(
        lagged.attributions["state_attribution"].values, shifted.attributions["state_attribution"].values, atol=1e-6
    )
    ds = lagged.attributions
    assert ds["history_hours"].values.tolist() == [-1.0] and ds["call_lead_hours"].values.tolist() == [23.0]
    assert ds.attrs["lag_hours"] == 1.0 and ds.attrs["path"].startswith("lagged: one 24 h step")
    assert explain(ExplainConfig(init="2019-03-25T06", lead="23h", **base)).attributions.attrs["lag_hours"] == 0.0
    # through a forecast store made with --lagged-paths: the explained output is the store's forecast
    fc = tmp_path / "fc.zarr"
    argv = ["forecast", "--checkpoint", str(run), "--store", store, "--init", "2019-03-25T06", "--lead", "3h"]
    assert main(argv + ["--out", str(fc), "--lagged-paths", "2019-03-23T00/2019-03-23T03", "--quiet"]) == 0
    recorded = xr.open_zarr(fc).attrs["wxemu_lead_paths"]["lagged"]
    forecast = xr.open_zarr(fc)["2m_temperature"].isel(time=0)
    from data_catalog.regions import parse_region, region_weights
    from pipeline.weights import latitude_weights

    lat, lon = forecast["latitude"].values, forecast["longitude"].values
    weights = region_weights([parse_region("52,55,354,358")], lat, lon, latitude_weights(lat))[0]
    for lead in (1, 2, 3):
        result = explain(ExplainConfig(init="2019-03-25T06", lead=f"{lead}h", forecast=str(fc), **base))
        assert result.attributions.attrs["lag_hours"] == float(recorded.get(str(lead), 0.0))
        field = forecast.sel(prediction_timedelta=np.timedelta64(lead, "h")).values
        assert result.numbers["output"] == pytest.approx(float((field * weights).sum()), abs=2e-3)


def test_path_and_device_errors(trained: tuple[str, Path], tmp_path: Path, capsys) -> None:
    store, run = trained
    base = dict(checkpoint=str(run), store=store, init="2019-03-25T06", region="uk", random_orderings=1)
    with pytest.raises(WxemuError, match="cannot be one trained step from 2 h before"):
        explain(ExplainConfig(lead="23h", lag="2h", **base))
    with pytest.raises(ConfigError, match="not both"):
        ExplainConfig(lead="23h", lag="1h", forecast="fc.zarr", **base)
    with pytest.raises(WxemuError, match="no store there"):
        explain(ExplainConfig(lead="23h", forecast=str(tmp_path / "none.zarr"), **base))
    with pytest.raises(WxemuError, match="not a torch device"):
        explain(ExplainConfig(lead="1h", **base), device="tpu0")
    if not torch.cuda.is_available():
        with pytest.raises(WxemuError, match="CUDA is not available on this machine"):
            explain(ExplainConfig(lead="1h", **base), device="cuda")
        argv = ["explain", "--checkpoint", str(run), "--store", store, "--init", "2019-03-25T06", "--lead", "1h"]
        assert main(argv + ["--device", "cuda"]) == 2
        assert "CUDA is not available" in capsys.readouterr().err


def test_dashboard_shows_a_real_explanation(trained: tuple[str, Path], tmp_path: Path, data_dir: str, monkeypatch):
    from pipeline.dashboard import DashboardConfig, build_dashboard

    store, run = trained
    out = tmp_path / "x.zarr"
    explain(
        ExplainConfig(
            checkpoint=str(run),
            store=store,
            init="2019-03-25T06",
            lead="3h",
            region="uk",
            n_steps=4,
            random_orderings=2,
            out=str(out),
        )
    )
    monkeypatch.setenv("WXEMU_DATA_DIR", data_dir)
    site = build_dashboard(DashboardConfig(explanations=[str(out)], out=str(tmp_path / "site")))
    page = (site.out / "explanations.html").read_text()
    assert "deletion area ratio" in page and "randomised-weights rank correlation" in page and str(out) in page
    assert len(list((site.out / "explanations").glob("*.png"))) == 3  # state map, change map, curves
