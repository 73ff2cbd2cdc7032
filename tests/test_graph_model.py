"""Graph emulator: shapes, gradients, config handling, determinism, caching, aggregation equivalence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import build_model, count_parameters
from models.base import ModelConfigError, is_global_grid
from models.graph_emulator import GraphEmulator, _cached_graph
from models.graph_net import aggregate_sum

UK_LAT = np.linspace(50.0, 58.0, 33)
UK_LON = np.linspace(350.0, 362.0, 49)
SMALL = {"latent": 16, "processor_layers": 2}
GLOBAL_LAT = np.linspace(-90, 90, 19)
GLOBAL_LON = np.arange(36) * 10.0


def _inputs(b, n_state, n_forcing, h, w, history=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.randn(b, history * n_state, h, w, generator=g),
        torch.randn(b, n_forcing, h, w, generator=g),
        torch.rand(b, generator=g) * 48,
    )


def test_uk_forward_backward_shapes_and_all_params_get_gradients():
    torch.manual_seed(0)
    model = build_model("graph", latitude=UK_LAT, longitude=UK_LON, n_state=2, n_forcing=3, history=2, config=SMALL)
    assert model.graph_info["global_grid"] is False
    assert 100 <= model.graph_info["mesh_nodes"] <= 500
    state, forc, lead = _inputs(2, 2, 3, 33, 49, history=2)
    out = model(state, forc, lead)
    assert out.shape == (2, 2, 33, 49)
    out.pow(2).mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_default_config_round_trips_and_rebuilds_same_architecture():
    model = build_model("graph", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=5)
    cfg = model.config_dict()
    assert cfg["latent"] == 48 and cfg["processor_layers"] == 4
    again = build_model("graph", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=5, config=cfg)
    assert again.config_dict() == cfg
    assert count_parameters(again) == count_parameters(model) > 0
    again.load_state_dict(model.state_dict())  # same keys and shapes; no graph arrays in the state dict
    assert not any("senders" in k or "features" in k for k in model.state_dict())


def test_unknown_and_bad_config_keys_are_named():
    with pytest.raises(ValueError, match="'latnet'"):
        build_model("graph", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=0, config={"latnet": 3})
    with pytest.raises(ModelConfigError, match="aggregation"):
        build_model("graph", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=0, config={"aggregation": "mean"})
    with pytest.raises(ModelConfigError, match="unknown model kind 'cnn'"):
        build_model("cnn", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=0)


def test_wrong_input_shape_is_reported():
    model = build_model("graph", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=2, config=SMALL)
    state, forc, lead = _inputs(1, 1, 3, 33, 49)
    with pytest.raises(ValueError, match="forcings have shape"):
        model(state, forc, lead)


def test_determinism_with_seed_and_finite_on_zero_state():
    outs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build_model(
            "graph",
            latitude=GLOBAL_LAT,
            longitude=GLOBAL_LON,
            n_state=2,
            n_forcing=1,
            config={**SMALL, "mesh_level": 2},
        )
        state, forc, lead = _inputs(2, 2, 1, 19, 36, seed=5)
        outs.append(model(state, forc, lead).detach())
        zero = model(torch.zeros_like(state), torch.zeros_like(forc), torch.zeros_like(lead))
        assert torch.isfinite(zero).all()
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)
    assert model.graph_info["global_grid"] is True and model.graph_info["mesh_nodes"] == 162


def test_global_detection_and_override():
    assert is_global_grid(GLOBAL_LON)
    assert not is_global_grid(UK_LON)
    assert not is_global_grid(GLOBAL_LON[:-1])
    assert is_global_grid(UK_LON, override=True)
    model = build_model(
        "graph",
        latitude=GLOBAL_LAT,
        longitude=GLOBAL_LON,
        n_state=1,
        n_forcing=0,
        config={**SMALL, "mesh_level": 2, "global_grid": False},
    )
    assert model.graph_info["global_grid"] is False


def test_lead_conditioning_changes_output():
    torch.manual_seed(0)
    model = build_model("graph", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=0, config=SMALL)
    state, forc, _ = _inputs(1, 1, 0, 33, 49)
    a = model(state, forc, torch.tensor([1.0]))
    b = model(state, forc, torch.tensor([24.0]))
    assert (a - b).abs().max() > 1e-4


def test_aggregations_agree_and_disk_cache(tmp_path, monkeypatch):
    msgs = torch.randn(2, 50, 4)
    recv = torch.randint(0, 7, (50,))
    a = aggregate_sum(msgs, recv, 7, "index_add")
    b = aggregate_sum(msgs, recv, 7, "scatter_reduce")
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[1, 3], msgs[1, recv == 3].sum(0))

    cfg = {**SMALL, "mesh_level": 2, "graph_cache_dir": str(tmp_path)}
    torch.manual_seed(0)
    m1 = build_model("graph", latitude=GLOBAL_LAT, longitude=GLOBAL_LON, n_state=1, n_forcing=0, config=cfg)
    files = list(tmp_path.glob("wxemu-graph-*.npz"))
    assert len(files) == 1
    _cached_graph.cache_clear()
    torch.manual_seed(0)
    m2 = GraphEmulator(
        latitude=GLOBAL_LAT,
        longitude=GLOBAL_LON,
        n_state=1,
        n_forcing=0,
        config={**cfg, "aggregation": "scatter_reduce"},
    )
    torch.testing.assert_close(m1.m2g_edge_features, m2.m2g_edge_features)
    state, forc, lead = _inputs(1, 1, 0, 19, 36)
    torch.testing.assert_close(m1(state, forc, lead), m2(state, forc, lead), rtol=1e-5, atol=1e-5)


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = build_model(
        "graph", latitude=GLOBAL_LAT, longitude=GLOBAL_LON, n_state=1, n_forcing=0, config={**SMALL, "mesh_level": 2}
    )
    state, forc, lead = _inputs(2, 1, 0, 19, 36)
    target = 0.5 * state
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(15):
        loss = (model(state, forc, lead) - target).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_real_uk_sample_both_longitude_conventions(sample):
    """The real ERA5 UK sample: the file's -10..2 longitudes and the store's 350..362 give the same mesh, and
    both default models map real normalised 2m temperature to finite deltas."""
    xr = pytest.importorskip("xarray")
    ds = xr.open_dataset(sample("era5-2mt-2019-03-uk.grib"), engine="cfgrib", backend_kwargs={"indexpath": ""})
    t2m = ds["t2m"].isel(time=slice(0, 2)).sortby("latitude")
    lat, lon = t2m.latitude.values, t2m.longitude.values
    assert lon[0] == -10.0 and lat[0] == 50.0 and t2m.shape == (2, 33, 49)
    x = torch.from_numpy(((t2m.values - t2m.values.mean()) / t2m.values.std()).astype(np.float32))[:, None]
    graph_west = build_model("graph", latitude=lat, longitude=lon, n_state=1, n_forcing=0)
    graph_east = build_model(
        "graph", latitude=lat, longitude=np.mod(lon, 360) + np.where(lon < 0, 0, 360), n_state=1, n_forcing=0
    )
    assert graph_east.graph_info == graph_west.graph_info
    torch.testing.assert_close(graph_east.m2g_edge_features, graph_west.m2g_edge_features)
    for model in (graph_west, build_model("transformer", latitude=lat, longitude=lon, n_state=1, n_forcing=0)):
        out = model(x, torch.zeros(2, 0, 33, 49), torch.ones(2))
        assert out.shape == (2, 1, 33, 49) and torch.isfinite(out).all()
