"""pipeline.task: rollout windows, the curriculum in training, validation RMSE in physical units."""

from __future__ import annotations

from pathlib import Path

import _synthetic
import numpy as np
import pytest
import pytorch_lightning as pl
import torch

from pipeline.datamodule import WindowDataModule
from pipeline.losses import latitude_weights
from pipeline.normalization import ChannelStats
from pipeline.task import EmulatorTask, rollout_windows


class ZeroDelta(torch.nn.Module):
    """Stand-in emulator predicting a zero normalised difference (next = x + diff_mean); one dummy weight."""

    def __init__(self, n_state: int) -> None:
        super().__init__()
        self.n_state = n_state
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, state: torch.Tensor, forcings: torch.Tensor, lead: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(state[:, -self.n_state :]) + 0 * self.w


def test_rollout_windows_adds_diff_mean_each_step() -> None:
    stats = ChannelStats(
        names=["a"],
        mean=np.zeros(1),
        std=np.array([2.0]),
        diff_mean={3: np.array([1.0])},
        diff_std={3: np.array([0.5])},
    )
    x = torch.zeros(2, 2, 1, 3, 4)  # history 2
    preds = rollout_windows(ZeroDelta(1), x, torch.zeros(2, 3, 0, 3, 4), 3.0, 3, stats)
    assert len(preds) == 3
    for j, p in enumerate(preds):
        torch.testing.assert_close(p, torch.full((2, 1, 3, 4), 0.5 * (j + 1)))  # +1 K per step = 0.5 std


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("task") / "s.zarr"
    return str(_synthetic.write_canonical_store(_synthetic.synthetic_dataset(n_time=36, static=False), path))


def _dm(store: str, k: int) -> WindowDataModule:
    return WindowDataModule(
        store,
        train=("2020-01-01T00", "2020-01-01T23"),
        val=("2020-01-02T00", "2020-01-02T11"),
        test=("2020-01-02T00", "2020-01-02T11"),
        rollout_steps=k,
        step_hours=[1],
        batch_size=4,
    )


def test_validation_rmse_in_physical_units(store: str, tmp_path: Path) -> None:
    import xarray as xr

    dm = _dm(store, 2)
    dm.setup()
    cfg = {"rollout": {"max_steps": 2}, "trainer": {"max_steps": 1}}
    task = EmulatorTask(ZeroDelta(3), dm.stats, dm.layout.latitude, cfg)
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        use_distributed_sampler=False,
    )
    metrics = trainer.validate(task, datamodule=dm, verbose=False)[0]
    # independent computation: zero-delta forecast x(t) + j*diff_mean against x(t + j), over val anchors
    ds = xr.open_zarr(store)
    t2m = ds["2m_temperature"].values.astype(np.float64)
    anchors = dm.anchors("val")[1]
    w = latitude_weights(dm.layout.latitude)[None, :, None]
    for j in (1, 2):
        err = t2m[anchors] + j * dm.stats.diff_mean[1.0][0] - t2m[anchors + j]
        rmse = np.sqrt(np.mean((w * err**2).mean(axis=(1, 2))))
        assert metrics[f"val/rmse/2m_temperature/lead_{j}h"] == pytest.approx(rmse, rel=1e-4)
    assert metrics["val/rmse/2m_temperature"] == metrics["val/rmse/2m_temperature/lead_1h"]
    assert "val/rmse/temperature/850/lead_2h" in metrics and metrics["val/loss"] > 0


def test_curriculum_grows_rollout_and_ema_tracks(store: str, tmp_path: Path) -> None:
    from models.base import build_model

    dm = _dm(store, 3)
    dm.setup()
    model = build_model(
        "graph",
        latitude=dm.layout.latitude,
        longitude=dm.layout.longitude,
        n_state=3,
        n_forcing=5,
        config={"latent": 8, "processor_layers": 1},
    )
    cfg = {
        "rollout": {"max_steps": 3, "ramp_fraction": 0.5},
        "trainer": {"max_steps": 6, "ema_decay": 0.5},
        "optim": {"lr": 1e-2, "warmup_steps": 1},
    }
    task = EmulatorTask(model, dm.stats, dm.layout.latitude, cfg)
    seen = []
    orig = task._rollout_n
    task._rollout_n = lambda: seen.append(orig()) or seen[-1]  # type: ignore[method-assign]
    trainer = pl.Trainer(
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        max_steps=6,
        limit_val_batches=0,
        use_distributed_sampler=False,
        enable_checkpointing=False,
    )
    before = [p.detach().clone() for p in task.ema.module.parameters()]
    trainer.fit(task, datamodule=dm)
    assert seen == [1, 1, 2, 3, 3, 3]  # 1 + floor(2 * step / 3): the ramp spans half of 6 steps
    # EMA weights moved, and differ from the raw weights (decay 0.5 lags behind)
    ema_params = list(task.ema.module.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, ema_params))
    assert any(not torch.equal(a, b) for a, b in zip(task.model.parameters(), ema_params))
    assert task.eval_model is task.ema.module
