"""The ``yesterday_change`` forcing: each state channel's change over the same hour yesterday, from the analyses
up to the initial time and from the forecast itself beyond +24 h (never from analyses after the initial time)."""

from __future__ import annotations

from pathlib import Path

import _synthetic
import numpy as np
import pytest
import yaml

from data_catalog.errors import WxemuError
from data_catalog.store import open_store
from data_catalog.testing import write_canonical_store
from models.forcings import ForcingSpec, forcing_names
from pipeline.checkpoint import weights_path
from pipeline.forecasters import ModelForecaster
from pipeline.store_reader import ForcingProvider, read_layout, store_channel_stats
from pipeline.train_config import default_config_path
from workflows.cli import main

INIT = "2019-03-25T00"


@pytest.fixture(scope="module")
def uk_store() -> str:
    return str(_synthetic.cached_uk_store())


@pytest.fixture(scope="module")
def linear_run(uk_store: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The demo's linear baseline with ``data.yesterday_change: true``, fitted on the real UK sample."""
    tmp = tmp_path_factory.mktemp("yesterday")
    config = yaml.safe_load(default_config_path("linear").read_text())
    config["data"]["yesterday_change"] = True
    (tmp / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp / "run"
    assert main(["train", "--store", uk_store, "--out", str(out), "--config", str(tmp / "config.yaml"), "--quiet"]) == 0
    return str(out)


def test_the_forcing_is_the_analyses_change_over_the_same_hour_yesterday(uk_store: str) -> None:
    layout = read_layout(uk_store)
    stats = store_channel_stats(layout)
    spec = ForcingSpec(climatology=("2m_temperature",), yesterday_change=("2m_temperature",))
    assert forcing_names(spec)[-1] == "yesterday_change/2m_temperature"
    x = open_store(uk_store)["2m_temperature"].values
    i = np.array([30, 200, 600])
    got = ForcingProvider(layout, spec, stats)(layout.times[i])[:, -1]
    want = (x[i - 24] - x[i - 25]) / stats.std[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert np.abs(got).max() > 0.1  # a real signal, not zeros


def test_a_time_without_yesterday_in_the_store_is_a_clear_error(uk_store: str) -> None:
    layout = read_layout(uk_store)
    spec = ForcingSpec(yesterday_change=("2m_temperature",))
    with pytest.raises(WxemuError, match=r"yesterday_change forcing at 2019-03-01 10:00.*needs the analyses 24 h"):
        ForcingProvider(layout, spec, store_channel_stats(layout))(layout.times[[10]])
    with pytest.raises(WxemuError, match="unknown channels"):
        ForcingProvider(layout, ForcingSpec(yesterday_change=("nope",)), store_channel_stats(layout))


def test_forecasts_beyond_a_day_use_the_forecast_not_later_analyses(
    uk_store: str, linear_run: str, tmp_path: Path
) -> None:
    """Analyses after the initial time replaced by nonsense change nothing up to +30 h: the forcing beyond +24 h
    comes from the model's own forecast."""
    ds = open_store(uk_store).load()
    after = ds.time > np.datetime64(INIT)
    altered = ds.copy()
    altered["2m_temperature"] = ds["2m_temperature"].where(~after, ds["2m_temperature"] + 40.0)
    other = write_canonical_store(altered, tmp_path / "altered.zarr", stats_period=("2019-03-01T00", "2019-03-21T23"))
    leads = [1.0, 12.0, 24.0, 25.0, 30.0]
    outs = []
    for store in (uk_store, str(other)):
        layout = read_layout(store)
        forecaster = ModelForecaster(str(weights_path(linear_run)), layout, leads, 1, 0.0, "cpu", 0)
        assert forecaster.needed_history() == 24  # the +1 h forcing reads the analyses 23 and 24 h before the init
        outs.append(forecaster([layout.time_index(INIT), layout.time_index("2019-03-24T07")]))
    np.testing.assert_allclose(outs[0], outs[1], atol=1e-3)  # float32 round trip; a later analysis: ~40 K
    assert np.isfinite(outs[0]).all() and 260 < outs[0].mean() < 290


def test_the_fitted_linear_baseline_uses_yesterday(linear_run: str, uk_store: str) -> None:
    """The regression gives the forcing a weight: changing yesterday's change changes the +1 h forecast."""
    layout = read_layout(uk_store)
    forecaster = ModelForecaster(str(weights_path(linear_run)), layout, [1.0], 1, 0.0, "cpu", 0)
    names = forcing_names(forecaster.spec)
    assert names[-1] == "yesterday_change/2m_temperature"
    coef = forecaster.model.linear.coef
    k = forecaster.history + names.index("yesterday_change/2m_temperature")
    weight = coef[0, 0, k].numpy()
    assert np.abs(weight).mean() > 0.05  # the fit uses it (normalised units)
