"""Persistence and climatology baselines."""

from __future__ import annotations

import numpy as np
import pytest

from models.baselines import (
    climatology_forecast,
    persistence_forecast,
)


def test_persistence_forecast_repeats_initial_state():
    x = np.arange(6.0).reshape(2, 3)
    f = persistence_forecast(x, 4)
    assert f.shape == (4, 2, 3)
    np.testing.assert_array_equal(f[3], x)
    f[0, 0, 0] = -1  # a writable copy, not a view of the input
    assert x[0, 0] == 0


def test_climatology_forecast_picks_day_of_year_and_hour():
    # clim[d, h] = 100 * day of year + hour, so the lookup can be read off the value.
    hours = np.array([0, 6, 12, 18])
    clim = (100.0 * np.arange(1, 367)[:, None] + hours[None, :])[:, :, None, None] * np.ones((1, 1, 2, 3))
    times = np.array(["2019-01-01T00", "2019-03-01T18", "2020-03-01T06", "2020-12-31T12"], dtype="datetime64[ns]")
    out = climatology_forecast(clim, times, hours)
    assert out.shape == (4, 2, 3)
    # 1 March is day 60 in 2019 and day 61 in the leap year 2020; 31 Dec 2020 is day 366.
    np.testing.assert_array_equal(out[:, 0, 0], [100.0, 6018.0, 6106.0, 36612.0])
    # Default hours: evenly spaced from 0.
    np.testing.assert_array_equal(climatology_forecast(clim, times[:2]), out[:2])


def test_climatology_forecast_errors():
    clim = np.zeros((366, 4, 2))
    with pytest.raises(ValueError, match="hour 3"):
        climatology_forecast(clim, np.array(["2019-01-01T03"], dtype="datetime64[ns]"))
    with pytest.raises(ValueError, match=r"\(366, n_hour"):
        climatology_forecast(np.zeros((365, 4)), np.array(["2019-01-01"], dtype="datetime64[ns]"))
