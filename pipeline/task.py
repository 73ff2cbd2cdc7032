"""The LightningModule that trains an emulator on rollout windows (pipeline.datamodule).

Loss: latitude-area-weighted MSE with per-channel weights of the state error expressed in the step's
``diff_std`` units (pipeline.normalization.state_error_in_residual_units), averaged over the first n rollout
steps, n rising 1 -> k by the curriculum. Optimiser AdamW, LR linear warm-up then cosine decay, per step.
Optional EMA of the weights (``torch.optim.swa_utils.AveragedModel``) is what validation and exports use.

Validation logs ``val/loss`` and, per channel in physical units, ``val/rmse/<channel>`` (first step) and
``val/rmse/<channel>/lead_<h>h`` for every rollout step: the square root of the mean over all validation windows
of the latitude-weighted MSE (summed over ranks).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from pipeline.datamodule import assemble_windows, log_indices
from pipeline.losses import (
    channel_weights,
    curriculum_steps,
    latitude_weights,
    per_channel_mse,
    rollout_loss,
    warmup_cosine,
)
from pipeline.normalization import ChannelStats, advance_normalized_state, state_error_in_residual_units


def rollout_windows(
    model: torch.nn.Module,
    inputs: torch.Tensor,
    forcings: torch.Tensor,
    dt_hours: float,
    n_steps: int,
    stats: ChannelStats,
) -> list[torch.Tensor]:
    """Roll ``model`` ``n_steps`` steps of ``dt_hours`` from normalised ``inputs`` (B, history, C, H, W).

    ``forcings`` (B, >=n_steps, F, H, W) at each target time. Returns the normalised predicted states, a list of
    ``n_steps`` (B, C, H, W) float32 tensors (the residual is added in float32 even under autocast).
    """
    history = inputs
    lead = torch.full((inputs.shape[0],), float(dt_hours), dtype=torch.float32, device=inputs.device)
    preds = []
    for j in range(n_steps):
        delta = model(history.flatten(1, 2), forcings[:, j], lead)
        nxt = advance_normalized_state(history[:, -1].float(), delta.float(), stats, dt_hours)
        preds.append(nxt)
        history = torch.cat([history[:, 1:], nxt[:, None].to(history.dtype)], dim=1)
    return preds


class EmulatorTask(pl.LightningModule):
    """Trains ``model`` (an ``models.base.Emulator``). ``config`` is the ``TrainConfig`` as a plain dict."""

    def __init__(
        self,
        model: torch.nn.Module,
        stats: ChannelStats,
        latitude: np.ndarray,
        config: dict[str, Any],
        index_log_dir: str | None = None,
    ) -> None:
        super().__init__()
        self.model = model
        self.stats = stats
        self.cfg = config
        self.index_log_dir = index_log_dir
        self.register_buffer(
            "lat_w", torch.as_tensor(latitude_weights(latitude), dtype=torch.float32), persistent=False
        )
        loss_cfg = config.get("loss", {})
        cw = channel_weights(stats.names, loss_cfg.get("variable_weights"), loss_cfg.get("level_weights"))
        self.register_buffer("chan_w", torch.as_tensor(cw, dtype=torch.float32), persistent=False)
        decay = config.get("trainer", {}).get("ema_decay")
        self.ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True) if decay else None
        self._val_sse: torch.Tensor | None = None
        self._val_n = 0
        self._val_loss_sum = 0.0

    # ------------------------------------------------------------------------------------------ helpers
    @property
    def eval_model(self) -> torch.nn.Module:
        """The weights used for validation and export: the EMA copy when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def _rollout_n(self) -> int:
        r = self.cfg.get("rollout", {})
        total = int(self.cfg.get("trainer", {}).get("max_steps", 1))
        return curriculum_steps(
            int(self.global_step), int(r.get("max_steps", 1)), total, float(r.get("ramp_fraction", 0.5))
        )

    def _errors(self, preds: Sequence[torch.Tensor], targets: torch.Tensor, dt: float) -> list[torch.Tensor]:
        return [state_error_in_residual_units(p, targets[:, j].float(), self.stats, dt) for j, p in enumerate(preds)]

    # ------------------------------------------------------------------------------------------ training
    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int) -> dict[str, torch.Tensor]:
        """Normalise and gather the windows on the device (pipeline.datamodule.assemble_windows)."""
        return assemble_windows(batch, self.stats, int(self.cfg.get("data", {}).get("history", 1)))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        dt = float(batch["dt_hours"][0])
        n = min(self._rollout_n(), batch["targets"].shape[1])
        preds = rollout_windows(self.model, batch["inputs"], batch["forcings"], dt, n, self.stats)
        loss = rollout_loss(self._errors(preds, batch["targets"], dt), self.lat_w, self.chan_w)
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["inputs"].shape[0])
        self.log("train/rollout_steps", float(n), batch_size=batch["inputs"].shape[0])
        if self.index_log_dir is not None:
            log_indices(self.index_log_dir, self.global_rank, batch["index"].tolist())
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    # ------------------------------------------------------------------------------------------ validation
    def on_validation_epoch_start(self) -> None:
        self._val_sse = None
        self._val_n = 0
        self._val_loss_sum = 0.0

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        dt = float(batch["dt_hours"][0])
        k = batch["targets"].shape[1]
        preds = rollout_windows(self.eval_model, batch["inputs"], batch["forcings"], dt, k, self.stats)
        b = batch["inputs"].shape[0]
        loss = rollout_loss(self._errors(preds, batch["targets"], dt), self.lat_w, self.chan_w)
        std = torch.as_tensor(self.stats.std, dtype=torch.float32, device=self.device)[None, :, None, None]
        sse = torch.stack(
            [per_channel_mse((p - batch["targets"][:, j].float()) * std, self.lat_w) * b for j, p in enumerate(preds)]
        )  # (k, C): sum over windows of per-window MSE
        self._val_sse = sse if self._val_sse is None else self._val_sse + sse
        self._val_n += b
        self._val_loss_sum += float(loss) * b

    def on_validation_epoch_end(self) -> None:
        if self._val_sse is None:
            return
        totals = torch.cat(
            [self._val_sse.flatten(), torch.tensor([self._val_n, self._val_loss_sum], device=self.device)]
        )
        totals = self.trainer.strategy.reduce(totals, reduce_op="sum") if self.trainer.world_size > 1 else totals
        k, c = self._val_sse.shape
        sse, n, loss_sum = totals[:-2].reshape(k, c), totals[-2], totals[-1]
        rmse = torch.sqrt(sse / n)
        dt = self.trainer.datamodule.step_hours[0] if self.trainer.datamodule is not None else 1.0
        metrics = {"val/loss": loss_sum / n}
        for ci, name in enumerate(self.stats.names):
            metrics[f"val/rmse/{name}"] = rmse[0, ci]
            for j in range(k):
                metrics[f"val/rmse/{name}/lead_{(j + 1) * dt:g}h"] = rmse[j, ci]
        self.log_dict(metrics, sync_dist=False, rank_zero_only=False)
        self.log("val_loss", loss_sum / n, prog_bar=True, sync_dist=False)

    # ------------------------------------------------------------------------------------------ optimiser
    def configure_optimizers(self) -> Any:
        o = self.cfg.get("optim", {})
        total = int(self.cfg.get("trainer", {}).get("max_steps", 1))
        opt = torch.optim.AdamW(
            self.model.parameters(),
            lr=float(o.get("lr", 1e-3)),
            weight_decay=float(o.get("weight_decay", 0.0)),
            betas=tuple(o.get("betas", (0.9, 0.95))),
        )
        warm, floor = int(o.get("warmup_steps", 0)), float(o.get("min_lr_factor", 0.0))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, warm, total, floor))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
