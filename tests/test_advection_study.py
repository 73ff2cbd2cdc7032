"""The motion estimate of benchmarks/advection_study.py on a real ERA5 2 m temperature field (the UK sample)."""

import sys
from pathlib import Path

import _synthetic
import numpy as np
import pytest
from scipy import ndimage

from data_catalog.store import open_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from advection_study import advective_change, block_motion  # noqa: E402


@pytest.fixture(scope="module")
def field():
    ds = open_store(str(_synthetic.cached_uk_store()))
    t2m = ds["2m_temperature"].isel(time=slice(0, 12)).values.astype(np.float64)
    return t2m[11] - t2m.mean(axis=0)  # an anomaly-like field with real structure


@pytest.mark.parametrize("shift", [(0, 0), (2, -3), (-4, 5)])
def test_block_motion_recovers_a_known_shift(field, shift):
    moved = ndimage.shift(field, shift, order=1, mode="nearest")
    assert block_motion(before=field, after=moved, max_shift=6) == shift


def test_advective_change_is_zero_without_motion_and_moves_the_field(field):
    assert np.abs(advective_change(anomaly=field, motion=np.zeros(2))).max() == 0
    change = advective_change(anomaly=field, motion=np.array([1.0, 0.0]))
    np.testing.assert_allclose(field + change, ndimage.shift(field, (1, 0), order=1, mode="nearest"))
    assert np.abs(change).max() > 0.1
