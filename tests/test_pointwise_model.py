"""The pointwise emulator (models/pointwise_emulator.py): the same MLP at every grid point, no spatial mixing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.base import ModelConfigError, build_model
from pipeline.train_config import TrainConfig, default_config_path

LAT = np.linspace(50.0, 58.0, 9)
LON = np.linspace(350.0, 362.0, 13)


def model(**config) -> torch.nn.Module:
    torch.manual_seed(0)
    m = build_model("pointwise", latitude=LAT, longitude=LON, n_state=2, n_forcing=6, history=2, config=config)
    if not config.get("linear_steps"):
        torch.nn.init.normal_(m.net[-1].weight)  # a trained-looking output layer
    return m


def test_output_at_a_point_depends_only_on_that_point_and_its_position() -> None:
    m = model(hidden=8, layers=2)
    state, forcings, lead = torch.randn(2, 4, 9, 13), torch.randn(2, 6, 9, 13), torch.ones(2)
    out = m(state, forcings, lead)
    assert out.shape == (2, 2, 9, 13)
    changed = state.clone()
    changed[:, :, 4, 6] += 3.0
    diff = (m(changed, forcings, lead) - out).abs().sum(dim=(0, 1))
    assert diff[4, 6] > 0 and float(diff.sum() - diff[4, 6]) == 0.0  # no spatial mixing
    uniform = m(torch.ones(1, 4, 9, 13), torch.ones(1, 6, 9, 13), torch.ones(1))
    assert not torch.allclose(uniform[..., 0, 0], uniform[..., 8, 12])  # the position is an input


def test_bad_pointwise_configs_are_refused_and_the_packaged_config_loads() -> None:
    for bad in ({"hidden": 0}, {"layers": -1}, {"width": 8}):
        with pytest.raises(ModelConfigError, match="pointwise"):
            model(**bad)
    cfg = TrainConfig.from_yaml(default_config_path("pointwise"))
    assert cfg.model.kind == "pointwise" and cfg.model.config["linear_steps"] == [1]
