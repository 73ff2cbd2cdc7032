"""Training losses (pure): latitude-area-weighted MSE with channel weights, rollout loss, curriculum, LR schedule.

Latitude weights follow docs/conventions.md and WeatherBench2:
a row weighs the area of its band, ``sin(upper) - sin(lower)``
with bounds halfway between rows and half a spacing beyond the edge rows, clipped to +-90 degrees, normalised to
mean 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch


def latitude_weights(latitude: np.ndarray) -> np.ndarray:
    """Area weights of latitude rows (degrees, ascending or descending), shape (H,), mean 1."""
    lat = np.asarray(latitude, dtype=np.float64)
    if lat.size == 1:
        return np.ones(1)
    order = np.argsort(lat)
    s = lat[order]
    mid = (s[1:] + s[:-1]) / 2.0
    lower = np.concatenate([[s[0] - (s[1] - s[0]) / 2.0], mid])
    upper = np.concatenate([mid, [s[-1] + (s[-1] - s[-2]) / 2.0]])
    lower, upper = np.clip(lower, -90.0, 90.0), np.clip(upper, -90.0, 90.0)
    w_sorted = np.sin(np.deg2rad(upper)) - np.sin(np.deg2rad(lower))
    w = np.empty_like(w_sorted)
    w[order] = w_sorted
    return w / w.mean()


def channel_weights(
    names: Sequence[str],
    variable_weights: Mapping[str, float] | None = None,
    level_weights: Mapping[int | str, float] | None = None,
) -> np.ndarray:
    """Per-channel loss weights (C,): ``variable_weights[var] * level_weights[level]`` (missing -> 1).

    Channel names are ``"var"`` or ``"var/level"`` (docs/architecture.md). Unknown keys in the mappings are
    not an error here (the config validates them against the store).
    """
    vw = dict(variable_weights or {})
    lw = {str(k): float(v) for k, v in (level_weights or {}).items()}
    out = []
    for name in names:
        var, _, level = name.partition("/")
        w = float(vw.get(var, 1.0))
        if level:
            w *= lw.get(level, 1.0)
        out.append(w)
    return np.asarray(out, dtype=np.float64)


def weighted_mse(error: torch.Tensor, lat_weights: torch.Tensor, chan_weights: torch.Tensor) -> torch.Tensor:
    """Mean over batch, channels and grid of ``w_lat * w_chan * error**2``; ``error`` (B, C, H, W) -> scalar.

    ``lat_weights`` (H,) and ``chan_weights`` (C,) as from :func:`latitude_weights` / :func:`channel_weights`.
    The channel weights are used as given (a channel of weight 2 counts twice), divided by their mean.
    """
    w = (
        lat_weights.to(error)[None, None, :, None]
        * (chan_weights.to(error) / chan_weights.mean().to(error))[None, :, None, None]
    )
    return (w * error.square()).mean()


def per_channel_mse(error: torch.Tensor, lat_weights: torch.Tensor) -> torch.Tensor:
    """Latitude-weighted mean of ``error**2`` over batch and grid per channel: (B, C, H, W) -> (C,)."""
    w = lat_weights.to(error)[None, None, :, None]
    return (w * error.square()).mean(dim=(0, 2, 3))


def rollout_loss(errors: Sequence[torch.Tensor], lat_weights: torch.Tensor, chan_weights: torch.Tensor) -> torch.Tensor:
    """Mean over rollout steps of :func:`weighted_mse` (each step weighs the same)."""
    if not errors:
        raise ValueError("rollout_loss needs at least one step")
    return torch.stack([weighted_mse(e, lat_weights, chan_weights) for e in errors]).mean()


def curriculum_steps(global_step: int, max_rollout: int, total_steps: int, ramp_fraction: float) -> int:
    """Number of autoregressive steps in the loss at ``global_step``: 1 rising linearly to ``max_rollout``.

    The rise spans the first ``ramp_fraction`` of ``total_steps``; with ``max_rollout`` = 1 it is always 1.
    """
    if max_rollout <= 1:
        return 1
    ramp = max(1.0, ramp_fraction * total_steps)
    return int(min(max_rollout, 1 + math.floor((max_rollout - 1) * global_step / ramp)))


def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_factor: float = 0.0) -> float:
    """LR multiplier: linear warm-up 0->1 over ``warmup_steps`` then cosine decay to ``min_factor`` at the end."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_factor + (1.0 - min_factor) * 0.5 * (1.0 + math.cos(math.pi * progress))
