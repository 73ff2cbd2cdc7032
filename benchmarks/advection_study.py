"""Does the motion of the 2 m temperature anomaly, estimated from the analyses alone, add to the hourly regression?

    python benchmarks/advection_study.py [--store demo-output/era5_uk_t2m.zarr] [--window 6] [--taper 24]

Not a speed benchmark: the numpy study behind docs/models.md ("Motion from the temperature field"). At every
initial time t the anomaly field A = x - climatology is matched against itself ``--window`` hours earlier
(block matching over whole-cell shifts, as radar nowcasting estimates motion): the best shift, divided by the
window, is one motion vector for the domain, in cells per hour. The hourly per-grid-point regression of
``benchmarks/skill_ceiling.py`` (plus the change over the same hour yesterday, as the product's ``linear``) is
fitted on the training period, then a single coefficient ``alpha`` pooled over the domain is fitted on its
one-step residuals against the advective change ``shift(A, motion) - A``. Rolled forward hour by hour from each
init, the forecast adds ``alpha * exp(-(L - 1) / taper) * (shift(A, motion) - A)`` at lead L, with the motion
kept from the initial time (it tapers because the motion does not persist). Scored (area-weighted RMSE, leads
1..24) with and without that term on the folds of ``benchmarks/selection.py``: weeks 2 and 3 with the fit cut at
their start, and the validation days. The test week is never read. Result and reading: docs/models.md (it passes
those periods and fails the test week, which had no westerly flow).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from selection import FOLDS, TRAIN_START  # noqa: E402
from skill_ceiling import VARIABLE, hourly_forcings  # noqa: E402


def overlap_mask(shape: tuple[int, int], dy: int, dx: int) -> np.ndarray:
    """(H, W) bool: the cells a field shifted by (dy, dx) whole cells still covers."""
    h, w = shape
    mask = np.zeros(shape, bool)
    mask[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = True
    return mask


def block_motion(*, before: np.ndarray, after: np.ndarray, max_shift: int) -> tuple[int, int]:
    """The whole-cell shift (dy, dx), each in [-max_shift, max_shift], that best maps ``before`` onto ``after``.

    Args:
      before, after: (H, W) fields some hours apart.
    Returns:
      (dy, dx) minimising the mean squared difference over the cells the shifted field covers.
    """
    from scipy import ndimage

    best, best_err = (0, 0), np.inf
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            diff = ndimage.shift(before, (dy, dx), order=1, mode="nearest") - after
            err = float((diff[overlap_mask(before.shape, dy, dx)] ** 2).mean())
            if err < best_err:
                best, best_err = (dy, dx), err
    return best


def advective_change(*, anomaly: np.ndarray, motion: np.ndarray) -> np.ndarray:
    """(H, W): ``anomaly`` moved by ``motion`` (dy, dx cells; bilinear, edges held) minus ``anomaly``."""
    from scipy import ndimage

    return ndimage.shift(anomaly, motion, order=1, mode="nearest") - anomaly


class Study:
    """The store's fields and the per-time motion, with the regression fitted and rolled as the docstring says."""

    def __init__(self, store: str, window: int, max_shift: int) -> None:
        from data_catalog.store import open_climatology, open_store
        from pipeline.weights import latitude_weights

        ds = open_store(store)
        self.x = ds[VARIABLE].values.astype(np.float64)
        self.times = pd.DatetimeIndex(ds.time.values)
        clim = open_climatology(store)[VARIABLE].values
        self.c = clim[self.times.day_of_year.values - 1, self.times.hour.values]
        self.anom = self.x - self.c
        lat = ds.latitude.values
        self.w = latitude_weights(lat)[:, None] * np.ones((1, self.x.shape[2]))  # as `wxemu verify` weighs
        self.f = hourly_forcings(self.c, self.times, lat, ds.longitude.values)
        self.motion = np.zeros((len(self.times), 2))
        for t in range(window, len(self.times)):
            shift = block_motion(before=self.anom[t - window], after=self.anom[t], max_shift=max_shift)
            self.motion[t] = np.asarray(shift, float) / window

    def index(self, time: str) -> int:
        return int(self.times.get_loc(pd.Timestamp(time)))

    def features(self, state: np.ndarray, prev: np.ndarray, t: int) -> np.ndarray:
        """(H, W, k) for the step from time index t: state, last change, forcings at t+1, yesterday's change."""
        yesterday = (self.x[t + 1 - 24] - self.x[t - 24])[..., None]
        return np.concatenate([state[..., None], (state - prev)[..., None], self.f[t + 1], yesterday], axis=-1)

    def fit(self, end: int) -> tuple[np.ndarray, float]:
        """Per-point coefficients (H, W, k) and the pooled ``alpha``, on the one-step windows before ``end``."""
        ts = np.arange(max(self.index(TRAIN_START), 25), end)
        feats = np.stack([self.features(self.x[t], self.x[t - 1], t) for t in ts])
        gram = np.einsum("nhwk,nhwl->hwkl", feats, feats) + 1e-3 * len(ts) * np.eye(feats.shape[-1])
        rhs = np.einsum("nhwk,nhw->hwk", feats, self.x[ts + 1] - self.x[ts])
        coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
        resid = self.x[ts + 1] - self.x[ts] - np.einsum("nhwk,hwk->nhw", feats, coef)
        adv = np.stack([advective_change(anomaly=self.anom[t], motion=self.motion[t]) for t in ts])
        return coef, float((resid * adv * self.w).sum() / (adv * adv * self.w).sum())

    def rmse(self, coef: np.ndarray, alpha: float, taper: float, inits: np.ndarray) -> np.ndarray:
        """(24,) RMSE by lead of the rollout from ``inits`` (alpha 0: the regression alone)."""
        se = np.zeros(24)
        for t0 in inits:
            prev, state, motion = self.x[t0 - 1], self.x[t0], self.motion[t0]
            for lead in range(1, 25):
                t = t0 + lead - 1
                step = np.einsum("hwk,hwk->hw", self.features(state, prev, t), coef)
                if alpha:
                    step += (
                        alpha * np.exp(-(lead - 1) / taper) * advective_change(anomaly=state - self.c[t], motion=motion)
                    )
                prev, state = state, state + step
                se[lead - 1] += (((state - self.x[t0 + lead]) ** 2) * self.w).mean()
        return np.sqrt(se / len(inits))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="demo-output/era5_uk_t2m.zarr", help="the demo's analysis store")
    parser.add_argument("--window", type=int, default=6, help="hours between the fields matched for the motion")
    parser.add_argument("--max-shift", type=int, default=8, help="largest shift searched, cells per window")
    parser.add_argument("--taper", type=float, default=24.0, help="e-folding lead (hours) of the advective term")
    args = parser.parse_args(argv)
    if not Path(args.store).exists():
        parser.error(f"--store {args.store}: not found (make demo ingests it)")
    study = Study(args.store, args.window, args.max_shift)
    print(f"RMSE (K) at +1/+6/+12/+24 h and mean over 1..24; window {args.window} h, taper {args.taper:g} h")
    for fold, (train_end, inits) in FOLDS.items():
        first, last = inits.split("/")[:2]
        init_idx = np.arange(study.index(first), study.index(last) + 1)
        coef, alpha = study.fit(study.index(train_end))
        for name, a in (("regression", 0.0), (f"+ advection (alpha {alpha:.3f})", alpha)):
            r = study.rmse(coef, a, args.taper, init_idx)
            shown = "/".join(f"{r[h - 1]:.3f}" for h in (1, 6, 12, 24))
            print(f"{fold:<11} {name:<28} {shown}  mean {r.mean():.4f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
