"""Faithfulness of an attribution, measured: deletion and insertion curves against random orderings.

The curves replace grid cells of the initial state (every history step and channel of a cell together) by the
baseline state, in ``n_blocks`` equal blocks of cells, most-attributed first, and record the explained output.
A faithful attribution moves the output sooner than random orderings of the cells do (area ratios > 1), and the
attribution a random subset of cells holds predicts the output's change when they are removed (faithfulness
correlation near 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Curves:
    """Deletion/insertion curves of the attribution's ordering (row 0) and of random orderings (rows 1..).

    fractions: (n_blocks + 1,) share of cells replaced (deletion) or inserted (insertion).
    deletion: (1 + n_random, n_blocks + 1) output after replacing the first cells by the baseline.
    insertion: the same, starting from the baseline and inserting the first cells of the input.
    Both in the output's physical units; row k, column 0 is the full input (deletion) or the baseline (insertion).
    """

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray

    def summary(self) -> dict[str, float]:
        """Area under |change from the curve's start| for the attribution's ordering and the random ones, and their
        ratio (> 1: the most-attributed cells move the output sooner than random cells; faithful), with the
        random areas' standard deviation relative to their mean."""
        out: dict[str, float] = {}
        for name, curve in (("deletion", self.deletion), ("insertion", self.insertion)):
            change = np.abs(curve - curve[:, :1])
            areas = ((change[:, 1:] + change[:, :-1]) / 2 * np.diff(self.fractions)).sum(axis=1)
            rnd = areas[1:]
            mean = float(rnd.mean())
            out[f"{name}_area"] = float(areas[0])
            out[f"{name}_area_random_mean"] = mean
            out[f"{name}_area_ratio"] = float(areas[0] / mean) if mean > 0 else float("nan")
            out[f"{name}_area_ratio_spread"] = (
                float(areas[0] * rnd.std(ddof=1) / mean**2) if mean > 0 and len(rnd) > 1 else 0.0
            )
        return out


def cell_ranking(*, attribution: np.ndarray) -> np.ndarray:
    """Flat cell indices, most attributed first.

    Args:
      attribution: (..., nlat, nlon) attribution of the state; |values| are summed over the leading axes.
    Returns:
      (nlat * nlon,) int indices into the flattened grid, by decreasing total |attribution|.
    """
    score = np.abs(np.asarray(attribution, dtype=np.float64)).reshape(-1, *attribution.shape[-2:]).sum(axis=0)
    return np.argsort(-score.ravel(), kind="stable")


def block_masks(*, order: np.ndarray, n_blocks: int, shape: tuple[int, int]) -> np.ndarray:
    """(n_blocks + 1, nlat, nlon) bool: mask k selects the first ``k / n_blocks`` of the cells of ``order``."""
    n = int(np.prod(shape))
    counts = np.round(np.linspace(0, n, n_blocks + 1)).astype(int)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return (rank[None, :] < counts[:, None]).reshape(n_blocks + 1, *shape)


def perturbation_curves(
    *,
    evaluate: Callable[[np.ndarray], np.ndarray],
    state: np.ndarray,
    baseline: np.ndarray,
    attribution: np.ndarray,
    n_blocks: int,
    n_random: int,
    seed: int = 0,
) -> Curves:
    """Deletion and insertion curves of ``attribution``'s cell ordering and of ``n_random`` random orderings.

    Args:
      evaluate: maps a batch of states (N, *state.shape) to the explained outputs (N,).
      state: the initial state (history, channels, nlat, nlon), as the model sees it.
      baseline: the same shape: the values cells take when they are removed.
      attribution: (..., nlat, nlon) attribution of the state (ranks the cells).
      n_blocks: points on each curve after the first. n_random: random orderings to compare with.
    Returns:
      :class:`Curves` (outputs in physical units).
    """
    shape = state.shape[-2:]
    rng = np.random.default_rng(seed)
    orders = [cell_ranking(attribution=attribution)] + [rng.permutation(int(np.prod(shape))) for _ in range(n_random)]
    deletion, insertion = [], []
    for order in orders:
        masks = block_masks(order=order, n_blocks=n_blocks, shape=shape)[:, None, None]  # (K, 1, 1, H, W)
        deletion.append(evaluate(np.where(masks, baseline[None], state[None])))
        insertion.append(evaluate(np.where(masks, state[None], baseline[None])))
    return Curves(np.linspace(0, 1, n_blocks + 1), np.asarray(deletion), np.asarray(insertion))


def faithfulness_correlation(
    *,
    evaluate: Callable[[np.ndarray], np.ndarray],
    state: np.ndarray,
    baseline: np.ndarray,
    attribution: np.ndarray,
    n_subsets: int = 32,
    subset_fraction: float = 0.1,
    seed: int = 0,
) -> float:
    """Faithfulness correlation (Bhatt et al. 2020): over random subsets of grid cells, the Pearson correlation
    between the attribution they hold and the output's drop when they are replaced by the baseline.

    Shapes as :func:`perturbation_curves`; ``attribution`` has the state's shape.
    """
    shape = state.shape[-2:]
    n = int(np.prod(shape))
    rng = np.random.default_rng(seed)
    masks = np.zeros((n_subsets, n), dtype=bool)
    for row in masks:
        row[rng.choice(n, size=max(1, int(round(subset_fraction * n))), replace=False)] = True
    masks = masks.reshape(n_subsets, 1, 1, *shape)
    outputs = evaluate(np.concatenate([state[None], np.where(masks, baseline[None], state[None])]))
    drop = outputs[0] - outputs[1:]
    held = (np.asarray(attribution)[None] * masks).reshape(n_subsets, -1).sum(axis=1)
    if np.std(drop) == 0 or np.std(held) == 0:
        return float("nan")
    return float(np.corrcoef(held, drop)[0, 1])


def rank_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two arrays of the same shape (flattened)."""
    ra = np.argsort(np.argsort(np.asarray(a).ravel(), kind="stable"), kind="stable").astype(np.float64)
    rb = np.argsort(np.argsort(np.asarray(b).ravel(), kind="stable"), kind="stable").astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])
