"""pipeline.normalization on plain arrays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.normalization import (
    ChannelStats,
    advance_normalized_state,
    denormalize,
    difference_stats,
    greedy_step_decomposition,
    normalize,
    state_error_in_residual_units,
)


def _stats() -> ChannelStats:
    return ChannelStats(
        names=["a", "b/850"],
        mean=np.array([280.0, 5.0]),
        std=np.array([10.0, 0.0]),
        diff_mean={1: np.array([0.1, 0.0]), 6: np.array([0.5, 0.2])},
        diff_std={1: np.array([0.5, 2.0]), 6: np.array([2.0, 4.0])},
    )


def test_zero_std_replaced_and_roundtrip() -> None:
    st = _stats()
    assert st.std.tolist() == [10.0, 1.0]
    x = np.random.default_rng(0).normal(280, 5, (3, 2, 4, 5)).astype(np.float32)
    z = normalize(x, st.mean, st.std)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z[:, 0], (x[:, 0] - 280.0) / 10.0, rtol=1e-5)
    np.testing.assert_allclose(denormalize(z, st.mean, st.std), x, rtol=1e-6)


def test_advance_matches_physical_residual_update_numpy_and_torch() -> None:
    st = _stats()
    rng = np.random.default_rng(1)
    x = rng.normal(280, 5, (2, 2, 3, 3))
    delta = rng.normal(0, 1, (2, 2, 3, 3))
    expected = x + delta * st.diff_std[6][None, :, None, None] + st.diff_mean[6][None, :, None, None]
    z_next = advance_normalized_state(normalize(x, st.mean, st.std), delta, st, 6)
    np.testing.assert_allclose(denormalize(z_next, st.mean, st.std), expected, rtol=1e-10)
    zt = advance_normalized_state(torch.tensor(normalize(x, st.mean, st.std)), torch.tensor(delta), st, 6.0)
    np.testing.assert_allclose(zt.numpy(), z_next, rtol=1e-10)


def test_error_in_residual_units_is_normalised_delta_error() -> None:
    st = _stats()
    rng = np.random.default_rng(2)
    x = normalize(rng.normal(280, 5, (1, 2, 2, 2)), st.mean, st.std)
    d_true, d_pred = rng.normal(size=(2, 1, 2, 2, 2))
    err = state_error_in_residual_units(
        advance_normalized_state(x, d_pred, st, 1), advance_normalized_state(x, d_true, st, 1), st, 1
    )
    np.testing.assert_allclose(err, d_pred - d_true, atol=1e-9)


def test_stats_dict_roundtrip_and_shape_check() -> None:
    st = _stats()
    back = ChannelStats.from_dict(st.to_dict())
    assert back.step_hours == [1.0, 6.0]
    np.testing.assert_array_equal(back.diff_std[6.0], st.diff_std[6.0])
    with pytest.raises(ValueError, match="mean"):
        ChannelStats(names=["a"], mean=np.zeros(2), std=np.ones(1))


def test_difference_stats() -> None:
    now = np.zeros((4, 1, 2, 2))
    later = np.arange(16, dtype=float).reshape(4, 1, 2, 2)
    mean, std = difference_stats(now, later)
    assert mean.tolist() == [7.5] and std[0] == pytest.approx(np.arange(16).std())


@pytest.mark.parametrize(
    "lead,steps,expected",
    [
        (7, [1, 3, 6, 12, 24], [6, 1]),
        (24, [1, 3, 6, 12, 24], [24]),
        (23, [1, 3, 6, 12, 24], [12, 6, 3, 1, 1]),
        (4, [2], [2, 2]),
    ],
)
def test_greedy_decomposition(lead: float, steps: list[float], expected: list[float]) -> None:
    assert greedy_step_decomposition(lead, steps) == expected


def test_greedy_decomposition_unreachable() -> None:
    with pytest.raises(ValueError, match="cannot be reached"):
        greedy_step_decomposition(5, [2, 4])
