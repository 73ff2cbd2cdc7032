"""pipeline.losses on plain arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.losses import (
    channel_weights,
    curriculum_steps,
    latitude_weights,
    per_channel_mse,
    rollout_loss,
    warmup_cosine,
    weighted_mse,
)


def test_latitude_weights_global_grid_match_band_areas() -> None:
    lat = np.linspace(-90, 90, 7)  # 30-degree spacing with pole rows
    w = latitude_weights(lat)
    assert w.mean() == pytest.approx(1.0)
    bands = np.sin(np.deg2rad(np.clip(lat + 15, -90, 90))) - np.sin(np.deg2rad(np.clip(lat - 15, -90, 90)))
    np.testing.assert_allclose(w, bands / bands.mean())
    # away from the poles the weight is proportional to cos(latitude)
    np.testing.assert_allclose(w[1:-1] / w[3], np.cos(np.deg2rad(lat[1:-1])), rtol=1e-2)
    assert w[0] < w[1] < w[3]


def test_latitude_weights_regional_and_descending() -> None:
    lat = np.arange(50, 58.01, 0.25)
    w = latitude_weights(lat)
    assert w.mean() == pytest.approx(1.0) and w[0] > w[-1]
    np.testing.assert_allclose(latitude_weights(lat[::-1]), w[::-1])


def test_channel_weights() -> None:
    names = ["2m_temperature", "temperature/500", "temperature/850"]
    w = channel_weights(names, {"temperature": 2.0}, {"850": 0.5})
    assert w.tolist() == [1.0, 2.0, 1.0]


def test_weighted_mse_values() -> None:
    err = torch.ones(2, 2, 3, 4)
    err[:, 1] = 2.0
    lat_w = torch.tensor(latitude_weights(np.array([-30.0, 0.0, 30.0])), dtype=torch.float32)
    # uniform error per channel: lat weights average out to 1, channel weights normalised by their mean
    assert weighted_mse(err, lat_w, torch.tensor([1.0, 1.0])).item() == pytest.approx((1 + 4) / 2, rel=1e-6)
    assert weighted_mse(err, lat_w, torch.tensor([3.0, 1.0])).item() == pytest.approx((3 * 1 + 4) / 4, rel=1e-6)
    # an error only on the equator row is up-weighted relative to the unweighted mean
    eq = torch.zeros(1, 1, 3, 4)
    eq[0, 0, 1] = 1.0
    assert weighted_mse(eq, lat_w, torch.ones(1)).item() == pytest.approx(lat_w[1].item() / 3, rel=1e-6)
    np.testing.assert_allclose(per_channel_mse(err, lat_w).numpy(), [1.0, 4.0], rtol=1e-6)
    assert rollout_loss([err, 2 * err], lat_w, torch.ones(2)).item() == pytest.approx((2.5 + 10) / 2, rel=1e-6)


def test_curriculum() -> None:
    assert [curriculum_steps(s, 3, 100, 0.5) for s in (0, 24, 25, 49, 50, 99)] == [1, 1, 2, 2, 3, 3]
    assert curriculum_steps(1000, 1, 100, 0.5) == 1
    assert curriculum_steps(0, 4, 100, 0.0) == 1 and curriculum_steps(1, 4, 100, 0.0) == 4


def test_warmup_cosine() -> None:
    assert warmup_cosine(0, 10, 110) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 110) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 110) == pytest.approx(0.5)
    assert warmup_cosine(110, 10, 110, min_factor=0.1) == pytest.approx(0.1)
