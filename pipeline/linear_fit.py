"""Closed-form least-squares fit of the per-grid-point regressions of ``models.linear`` on a store's training period.

``fit_regression(head, dm)`` accumulates, for every trained step size s, the normal equations of
``delta = coef . features`` over every training window (anchor, anchor + s) of the datamodule ``dm`` (the same
windows, normalisation and forcings the emulators train on), adds a small ridge term and solves them per output
channel and grid point. It sets ``head.coef`` and returns the one-step validation RMSE per step and channel.

``fit_linear(config, store=..., out=...)`` is ``wxemu train --model linear``: it builds the ``linear`` model,
fits it and writes ``RUN_DIR/model.safetensors`` + ``model.json`` with the header of ``pipeline.training``, so
``wxemu forecast --checkpoint RUN_DIR`` rolls it out like any emulator (greedy and lagged paths alike).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from data_catalog.errors import ConfigError
from models.base import build_model
from models.forcings import DAY_OF_YEAR_NAMES, LOCAL_HOUR_NAMES, forcing_names
from models.linear import LinearRegression
from pipeline.checkpoint import build_header, save_checkpoint
from pipeline.datamodule import WindowDataModule, WindowDataset, assemble_windows, stride_for
from pipeline.losses import latitude_weights

RIDGE = 1e-3  # ridge term, relative to the number of windows (features are O(1) after normalisation)
# Forcings whose coefficients stay zero: a few weeks of training data cannot separate the seasonal cycle from
# the weather of those weeks, so a day-of-year term fits a trend that the test period does not continue.
UNFITTED_FORCINGS = DAY_OF_YEAR_NAMES


@dataclasses.dataclass(frozen=True)
class LinearFitResult:
    """``checkpoint``: RUN_DIR/model.safetensors; ``val_rmse``: {step hours: {channel: one-step RMSE}}, physical
    units, area-weighted, on the validation split's windows."""

    checkpoint: Path
    run_dir: Path
    steps: int
    val_rmse: dict[float, dict[str, float]]


def local_hour_index(names: list[str]) -> int | None:
    """Position of (sin, cos) local hour among the forcing channel names, None when absent."""
    for i in range(len(names) - 1):
        if tuple(names[i : i + 2]) == LOCAL_HOUR_NAMES:
            return i
    return None


def _windows(dm: WindowDataModule, split: str, dt: float, batch: int):
    """Yield normalised windows (inputs (B, history, C, H, W), targets (B, C, H, W), forcings (B, F, H, W)).

    Every one-step window of the split, whatever ``dm``'s rollout length: an emulator trained on 12-step rollouts
    and ``wxemu train --model linear`` fit their regressions on the same windows, so a residual emulator's linear
    part is the ``linear`` baseline of the same data and config."""
    assert dm.layout is not None and dm.dataset is not None and dm.stats is not None
    dataset = dm.dataset
    if dataset.rollout_steps != 1:
        dataset = WindowDataset(dm.layout, dm.stats, dataset.forcing_spec, dm.history, 1)
    stride = stride_for(dt, dm.layout)
    anchors = dataset.valid_anchors(dm.split_range(split), stride)
    for i in range(0, len(anchors), batch):
        keys = [(int(a), stride) for a in anchors[i : i + batch]]
        w = assemble_windows(dataset.__getitems__(keys), dm.stats, dm.history)
        yield w["inputs"].double(), w["targets"][:, 0].double(), w["forcings"][:, 0].double()


def _delta_target(inputs: torch.Tensor, targets: torch.Tensor, dm: WindowDataModule, dt: float) -> torch.Tensor:
    """The normalised difference the model predicts (the inverse of ``advance_normalized_state``)."""
    st = dm.stats
    std = torch.as_tensor(st.std)[None, :, None, None]
    dmean = torch.as_tensor(st.diff_mean[dt])[None, :, None, None]
    dstd = torch.as_tensor(st.diff_std[dt])[None, :, None, None]
    return ((targets - inputs[:, -1]) * std - dmean) / dstd


def fit_regression(
    head: LinearRegression, dm: WindowDataModule, *, batch_size: int = 64
) -> dict[float, dict[str, float]]:
    """Fit ``head`` on ``dm``'s training windows (one regression per step of ``head.step_hours``, each of which
    ``dm`` must train); returns the one-step validation RMSE {step: {channel: K}}. ConfigError when the steps or
    the forcing layout do not match ``dm``."""
    dm.prepare()
    assert dm.layout is not None and dm.stats is not None
    names = forcing_names(dm.forcing_spec)
    if len(names) != head.n_forcing:
        raise ConfigError(f"linear fit: the model takes {head.n_forcing} forcings, the data give {len(names)}")
    if head.hour_index is not None and local_hour_index(names) != head.hour_index:
        raise ConfigError(
            f"linear fit: the model expects sin/cos local hour at forcing {head.hour_index}, the data's forcings "
            f"are {names}"
        )
    missing = sorted(set(head.step_hours) - set(dm.step_hours))
    if missing:
        raise ConfigError(f"linear fit: steps {missing} h are not in data.step_hours {dm.step_hours}")
    coef = torch.zeros_like(head.coef, dtype=torch.float64)
    k = head.n_features
    # feature k: history states 0..h-1, then the forcings, then the harmonics and the intercept (models.linear)
    use = [
        i for i in range(k) if not (0 <= i - head.history < len(names) and names[i - head.history] in UNFITTED_FORCINGS)
    ]
    ridge = torch.eye(len(use), dtype=torch.float64)
    ridge[-1, -1] = 0.0  # no shrinkage of the intercept
    for si, dt in enumerate(head.step_hours):
        gram = rhs = None
        n = 0
        for inputs, targets, forcings in _windows(dm, "train", dt, batch_size):
            f = head.features(inputs.flatten(1, 2), forcings)  # (B, K, C, H, W)
            y = _delta_target(inputs, targets, dm, dt)  # (B, C, H, W)
            g = torch.einsum("bkchw,blchw->chwkl", f, f)
            r = torch.einsum("bkchw,bchw->chwk", f, y)
            gram = g if gram is None else gram + g
            rhs = r if rhs is None else rhs + r
            n += f.shape[0]
        if gram is None:
            raise ConfigError(f"linear fit: no training window for the {dt:g} h step")
        gram, rhs = gram[..., use, :][..., use], rhs[..., use]
        solved = torch.linalg.solve(gram + RIDGE * n * ridge, rhs[..., None])[..., 0]  # (C, H, W, len(use))
        coef[si][:, use] = solved.permute(0, 3, 1, 2)
    head.coef.copy_(coef.to(head.coef.dtype))
    return validation_rmse(head, dm, batch_size=batch_size)


@torch.no_grad()
def validation_rmse(
    head: LinearRegression, dm: WindowDataModule, *, batch_size: int = 64
) -> dict[float, dict[str, float]]:
    """One-step RMSE (physical units, area-weighted) of ``head`` on ``dm``'s validation windows, per step/channel."""
    assert dm.layout is not None and dm.stats is not None
    w = torch.as_tensor(latitude_weights(dm.layout.latitude))[None, None, :, None]
    out: dict[float, dict[str, float]] = {}
    for si, dt in enumerate(head.step_hours):
        sse, n = 0.0, 0
        for inputs, targets, forcings in _windows(dm, "val", dt, batch_size):
            pred = torch.einsum(
                "bkchw,bckhw->bchw", head.features(inputs.flatten(1, 2), forcings), head.coef[si].double()[None]
            )
            err = (pred - _delta_target(inputs, targets, dm, dt)) * torch.as_tensor(dm.stats.diff_std[dt])[
                None, :, None, None
            ]
            sse = sse + (w * err.square()).mean(dim=(2, 3)).sum(dim=0)
            n += err.shape[0]
        if n:
            out[dt] = {c: float(v) for c, v in zip(dm.stats.names, torch.sqrt(torch.as_tensor(sse) / n))}
    return out


def build_datamodule(cfg: Any, store: str) -> WindowDataModule:
    """The datamodule of ``wxemu train`` for ``cfg`` (a ``TrainConfig``), one-step windows."""
    d = cfg.data
    dm = WindowDataModule(
        store,
        train=d.train,
        val=d.val,
        test=d.test,
        history=d.history,
        rollout_steps=1,
        step_hours=d.step_hours,
        batch_size=d.batch_size,
        num_workers=0,
        contiguous=d.contiguous_batches,
        diff_stats_samples=d.diff_stats_samples,
        climatology_forcing=d.climatology_forcing,
        yesterday_change=d.yesterday_change,
        storage_options=d.storage_options,
        seed=cfg.trainer.seed,
    )
    dm.prepare()
    return dm


def fit_linear(cfg: Any, *, store: str, out: str | Path) -> LinearFitResult:
    """Fit the ``linear`` model of ``cfg`` (a ``TrainConfig`` with ``model.kind == "linear"``) on ``store``'s
    training period and write the checkpoint into run directory ``out`` (``model.safetensors``, ``model.json``;
    the header holds the full model config; ``train`` records the run's ``config.yaml``).
    Its step sizes are ``data.step_hours``; ``model.config`` may not name others."""
    dm = build_datamodule(cfg, store)
    assert dm.layout is not None
    names = forcing_names(dm.forcing_spec)
    model_config = dict(cfg.model.config)
    given = model_config.get("step_hours")
    if given is not None and sorted(float(s) for s in given) != dm.step_hours:
        raise ConfigError(f"model.config.step_hours {given} differs from data.step_hours {dm.step_hours}")
    model_config["step_hours"] = list(dm.step_hours)
    model_config.setdefault("local_hour_index", local_hour_index(names))
    model = build_model(
        "linear",
        latitude=dm.layout.latitude,
        longitude=dm.layout.longitude,
        n_state=len(dm.layout.channel_names),
        n_forcing=len(names),
        history=dm.history,
        config=model_config,
    )
    val = fit_regression(model.linear, dm, batch_size=max(cfg.data.batch_size, 64))
    config = cfg.to_dict()
    config["model"]["config"] = model.config_dict()
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    header = {**build_header(dm, model, config, store), "global_step": 0, "weights": "least-squares fit"}
    path = save_checkpoint(run_dir / "model.safetensors", model, header)
    return LinearFitResult(checkpoint=path, run_dir=run_dir, steps=0, val_rmse=val)


def format_val_rmse(val: dict[float, dict[str, float]]) -> str:
    """'1 h: 2m_temperature 0.41 K; 3 h: ...' for the CLI."""
    return "; ".join(f"{dt:g} h: " + ", ".join(f"{c} {v:.3f}" for c, v in by.items()) for dt, by in sorted(val.items()))
