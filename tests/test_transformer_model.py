"""Transformer emulator: shapes with padding, longitude periodicity, lead-time conditioning, config handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models import build_model, count_parameters
from models.base import ModelConfigError

UK_LAT = np.linspace(50.0, 58.0, 33)
UK_LON = np.linspace(350.0, 362.0, 49)
GLOBAL_LAT = np.linspace(-90, 90, 19)
GLOBAL_LON = np.arange(36) * 10.0
SMALL = {"dim": 32, "depth": 2, "heads": 2}


def _perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Give every parameter random values, so the zero-initialised adaLN modulations are active."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_uk_default_shapes_padding_and_config_round_trip():
    model = build_model("transformer", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=5)
    cfg = model.config_dict()
    assert (cfg["patch"], cfg["dim"], cfg["depth"], cfg["heads"]) == (4, 128, 4, 4)
    assert not model.periodic
    assert (model.tokens_h, model.tokens_w) == (9, 13)  # 33 x 49 padded to 36 x 52
    state, forc = torch.randn(2, 1, 33, 49), torch.randn(2, 5, 33, 49)
    out = model(state, forc, torch.ones(2))
    assert out.shape == (2, 1, 33, 49)
    again = build_model("transformer", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=5, config=cfg)
    again.load_state_dict(model.state_dict())
    assert count_parameters(again) == count_parameters(model)
    torch.testing.assert_close(again(state, forc, torch.ones(2)), out)


@pytest.mark.parametrize("pos", ["learned", "sinusoidal", "none"])
def test_backward_reaches_patch_embedding_and_history(pos):
    torch.manual_seed(0)
    model = build_model(
        "transformer",
        latitude=UK_LAT,
        longitude=UK_LON,
        n_state=2,
        n_forcing=1,
        history=2,
        config={**SMALL, "patch": 5, "pos_embedding": pos},
    )
    state = torch.randn(2, 4, 33, 49, requires_grad=True)
    out = model(state, torch.randn(2, 1, 33, 49), torch.tensor([1.0, 6.0]))
    assert out.shape == (2, 2, 33, 49)
    out.sum().backward()
    assert model.patch_embed.weight.grad.abs().sum() > 0
    assert model.head.weight.grad.abs().sum() > 0
    assert state.grad[:, :2].abs().sum() > 0 and state.grad[:, 2:].abs().sum() > 0
    # adaLN-zero: the gates start at zero and receive gradient.
    assert model.blocks[0].modulation[1].weight.grad.abs().sum() > 0


def test_global_roll_in_longitude_rolls_output():
    # Periodic by design: circular padding, and on global grids the position embedding depends on latitude
    # only, so a roll by whole patches commutes with the model (the default learned embedding included).
    torch.manual_seed(0)
    model = build_model(
        "transformer", latitude=GLOBAL_LAT, longitude=GLOBAL_LON, n_state=2, n_forcing=1, config={**SMALL, "patch": 3}
    )
    assert model.periodic
    _perturb(model)
    state, forc, lead = torch.randn(1, 2, 19, 36), torch.randn(1, 1, 19, 36), torch.tensor([6.0])
    out = model(state, forc, lead)
    shift = 9  # three patches
    rolled = model(state.roll(shift, -1), forc.roll(shift, -1), lead)
    torch.testing.assert_close(rolled, out.roll(shift, -1), rtol=1e-4, atol=1e-5)


def test_circular_padding_used_on_global_grid_not_divisible_by_patch():
    lon = np.arange(34) * (360 / 34)
    model = build_model(
        "transformer", latitude=GLOBAL_LAT, longitude=lon, n_state=1, n_forcing=0, config={**SMALL, "patch": 4}
    )
    x = torch.arange(34.0).expand(1, 1, 19, 34)
    padded = model._pad(x)
    assert padded.shape == (1, 1, 20, 36)
    torch.testing.assert_close(padded[0, 0, 0, 34:], torch.tensor([0.0, 1.0]))  # wraps around
    regional = build_model(
        "transformer",
        latitude=GLOBAL_LAT,
        longitude=lon,
        n_state=1,
        n_forcing=0,
        config={**SMALL, "patch": 4, "global_grid": False},
    )
    torch.testing.assert_close(regional._pad(x)[0, 0, 0, 34:], torch.tensor([33.0, 33.0]))


def test_lead_conditioning_changes_output():
    torch.manual_seed(0)
    model = build_model("transformer", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=0, config=SMALL)
    state, forc = torch.randn(1, 1, 33, 49), torch.zeros(1, 0, 33, 49)
    # At initialisation adaLN-zero makes every block the identity: the lead time cannot matter yet.
    torch.testing.assert_close(model(state, forc, torch.tensor([1.0])), model(state, forc, torch.tensor([48.0])))
    _perturb(model)
    a = model(state, forc, torch.tensor([1.0]))
    b = model(state, forc, torch.tensor([48.0]))
    assert (a - b).abs().max() > 1e-3


def test_bad_config_is_named():
    with pytest.raises(ValueError, match="'depht'"):
        build_model("transformer", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=0, config={"depht": 2})
    with pytest.raises(ModelConfigError, match="divisible by heads"):
        build_model(
            "transformer", latitude=UK_LAT, longitude=UK_LON, n_state=1, n_forcing=0, config={"dim": 30, "heads": 4}
        )
