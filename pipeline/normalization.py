"""Channel statistics and the (pure) normalisation arithmetic of states and residual targets.

States are normalised per channel with the store's ``mean``/``std``; a model predicts the difference over a step
of ``dt`` hours normalised with that step's ``diff_mean``/``diff_std`` (the store's own for its time step, or
estimated on the training split for longer steps). All functions work on numpy arrays and torch tensors alike
(plain arithmetic with broadcasting over a channel axis); channel arrays have shape (C,).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

Array = TypeVar("Array")  # np.ndarray or torch.Tensor

_TINY = 1e-12


@dataclass
class ChannelStats:
    """Per-channel statistics, physical units. ``diff_mean``/``diff_std`` map step size (hours) -> (C,) array.

    ``mean``/``std``: (C,) of the fields; ``diff_*[dt]``: (C,) of the dt-hour differences x[t+dt] - x[t].
    Zero standard deviations (constant channels) are replaced by 1 so that normalising never divides by zero.
    """

    names: list[str]
    mean: np.ndarray
    std: np.ndarray
    diff_mean: dict[float, np.ndarray] = field(default_factory=dict)
    diff_std: dict[float, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float64)
        self.std = _safe_std(self.std)
        self.diff_mean = {float(k): np.asarray(v, dtype=np.float64) for k, v in self.diff_mean.items()}
        self.diff_std = {float(k): _safe_std(v) for k, v in self.diff_std.items()}
        n = len(self.names)
        for what, arr in [
            ("mean", self.mean),
            ("std", self.std),
            *[(f"diff_mean[{k}]", v) for k, v in self.diff_mean.items()],
        ]:
            if arr.shape != (n,):
                raise ValueError(f"ChannelStats.{what} has shape {arr.shape}, expected ({n},)")

    @property
    def step_hours(self) -> list[float]:
        """Step sizes (hours) with difference statistics, ascending."""
        return sorted(self.diff_std)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (lists of floats; step sizes as strings)."""
        return {
            "names": list(self.names),
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "diff_mean": {_key(k): v.tolist() for k, v in self.diff_mean.items()},
            "diff_std": {_key(k): v.tolist() for k, v in self.diff_std.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ChannelStats:
        return cls(
            names=list(d["names"]),
            mean=np.asarray(d["mean"]),
            std=np.asarray(d["std"]),
            diff_mean={float(k): np.asarray(v) for k, v in d["diff_mean"].items()},
            diff_std={float(k): np.asarray(v) for k, v in d["diff_std"].items()},
        )


def _key(hours: float) -> str:
    return str(int(hours)) if float(hours).is_integer() else str(hours)


def _safe_std(std: Any) -> np.ndarray:
    std = np.asarray(std, dtype=np.float64)
    return np.where(np.isfinite(std) & (std > _TINY), std, 1.0)


def channel_axis(values: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Reshape a (C,) array so it broadcasts along ``axis`` of an ``ndim``-dimensional array."""
    shape = [1] * ndim
    shape[axis] = -1
    return np.asarray(values).reshape(shape)


def normalize(x: Array, mean: np.ndarray, std: np.ndarray, axis: int = -3) -> Array:
    """(x - mean) / std with (C,) statistics broadcast along ``axis`` (default: channels of (..., C, H, W))."""
    nd = x.ndim
    return (x - _like(channel_axis(mean, nd, axis), x)) / _like(channel_axis(std, nd, axis), x)


def denormalize(x: Array, mean: np.ndarray, std: np.ndarray, axis: int = -3) -> Array:
    """x * std + mean, the inverse of :func:`normalize`."""
    nd = x.ndim
    return x * _like(channel_axis(std, nd, axis), x) + _like(channel_axis(mean, nd, axis), x)


def advance_normalized_state(state: Array, delta: Array, stats: ChannelStats, dt_hours: float, axis: int = -3) -> Array:
    """Next normalised state from a normalised state and the model's normalised difference over ``dt_hours``.

    Physically ``x_next = x + (delta * diff_std + diff_mean)``; in state-normalised units that is
    ``state + (delta * diff_std + diff_mean) / std``. ``state`` and ``delta`` have the same shape (..., C, H, W).
    """
    scale = stats.diff_std[float(dt_hours)] / stats.std
    offset = stats.diff_mean[float(dt_hours)] / stats.std
    nd = state.ndim
    return state + delta * _like(channel_axis(scale, nd, axis), delta) + _like(channel_axis(offset, nd, axis), delta)


def state_error_in_residual_units(
    pred: Array, target: Array, stats: ChannelStats, dt_hours: float, axis: int = -3
) -> Array:
    """(pred - target) of normalised states expressed in units of the step's ``diff_std`` (the loss's units).

    For a one-step prediction from the true state this is exactly the error of the normalised residual.
    """
    factor = stats.std / stats.diff_std[float(dt_hours)]
    return (pred - target) * _like(channel_axis(factor, pred.ndim, axis), pred)


def _like(arr: np.ndarray, ref: Any) -> Any:
    """``arr`` as the same kind of array as ``ref`` (torch tensor on ref's device/dtype, else numpy)."""
    if isinstance(ref, np.ndarray):
        return arr.astype(ref.dtype, copy=False)
    import torch

    if isinstance(ref, torch.Tensor):
        dtype = ref.dtype if ref.is_floating_point() else torch.float32
        return torch.as_tensor(arr, dtype=dtype, device=ref.device)
    return arr


def difference_stats(samples_now: np.ndarray, samples_later: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std per channel of ``later - now``; inputs (N, C, H, W) in physical units -> two (C,) arrays."""
    diff = np.asarray(samples_later, dtype=np.float64) - np.asarray(samples_now, dtype=np.float64)
    axes = (0, 2, 3)
    return diff.mean(axis=axes), diff.std(axis=axes)


def greedy_step_decomposition(lead_hours: float, steps: Sequence[float]) -> list[float]:
    """Split a lead time into trained step sizes, largest first (Pangu-Weather's hierarchical aggregation).

    ``greedy_step_decomposition(7, [1, 3, 6, 24]) == [6, 1]``. Raises ``ValueError`` when no exact decomposition
    exists (a lead not reachable with these steps).
    """
    remaining = float(lead_hours)
    out: list[float] = []
    for step in sorted((float(s) for s in steps), reverse=True):
        while remaining >= step - 1e-9:
            out.append(step)
            remaining -= step
    if abs(remaining) > 1e-9:
        raise ValueError(f"lead {lead_hours} h cannot be reached with steps {sorted(steps)} h")
    return out
