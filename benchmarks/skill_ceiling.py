"""Linear reference forecasts on the demo's held-out week: what the training period can teach, lead by lead.

    python benchmarks/skill_ceiling.py [--store demo-output/era5_uk_t2m.zarr]

Not a speed benchmark: the analysis behind the README's findings on the emulators' mid-range leads. On the
store ``make demo`` ingests (ERA5 2 m temperature, UK, March 2019; statistics and climatology from the training
period 03-01..03-21; when ``--store`` does not exist, it is ingested into a temp dir the same way) it scores, for the
demo's test inits (2019-03-25T00 .. 03-30T23, hourly) and leads 1..24 h,
with the area weights and the RMSE of docs/verification.md (per-init MSE averaged over inits, then the root):

* persistence x(t) and climatology c(t+L), the demo's baselines;
* "same hour yesterday" x(t+L-24h) (an analysis at or before t for L <= 24 h: no future data);
* damped anomaly persistence c(t+L) + rho_L (x(t) - c(t)), rho_L fitted on the training period;
* the least-squares combination a c(t+L) + b x(t) + d x(t+L-24h) + e, fitted on the training period.

The fitted references are what a linear model can learn from the training period; where they lose to
climatology on the test week, the training period's lead-L relationships do not hold in the test week.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VARIABLE = "2m_temperature"


def weighted_rmse(pred: np.ndarray, truth: np.ndarray, weights: np.ndarray) -> float:
    """RMSE over inits of (inits, lat, lon) fields: per-init area-weighted MSE, averaged, then the root."""
    return float(np.sqrt((((pred - truth) ** 2) * weights).mean(axis=(1, 2)).mean()))


def lstsq_fit(features: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Least-squares coefficients of ``target`` (N,) on ``features`` (N, k)."""
    return np.linalg.lstsq(features, target, rcond=None)[0]


def features(c: np.ndarray, x: np.ndarray, inits: np.ndarray, lead: int) -> np.ndarray:
    """(inits, lat, lon, 4): climatology at the valid time, state at the init, the state 24 h before the valid
    time, and 1, for time indices ``inits`` and ``lead`` steps."""
    return np.stack([c[inits + lead], x[inits], x[inits + lead - 24], np.ones_like(x[inits])], axis=-1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="demo-output/era5_uk_t2m.zarr", help="the demo's analysis store")
    parser.add_argument("--leads", default="1,3,6,9,12,15,18,21,23,24", help="leads in hours")
    args = parser.parse_args(argv)

    from data_catalog.store import is_complete
    from workflows.demo import SAMPLE_ENTRY, STATS_PERIOD, TEST_INITS

    first_init, last_init = TEST_INITS.split("/")[:2]
    with tempfile.TemporaryDirectory(prefix="wxemu-skill-") as tmp:
        if not (Path(args.store).exists() and is_complete(args.store)):
            from data_catalog.ingest import IngestConfig, ingest

            args.store = str(Path(tmp) / "era5_uk_t2m.zarr")
            ingest(
                IngestConfig(
                    sources=(SAMPLE_ENTRY,),
                    out=args.store,
                    stats_start=STATS_PERIOD[0],
                    stats_end=STATS_PERIOD[1],
                )
            )
        report(args.store, [int(v) for v in args.leads.split(",")], STATS_PERIOD[1], (first_init, last_init))
    return 0


def report(store: str, leads: list[int], train_end: str, test_inits: tuple[str, str]) -> None:
    """Print the table for ``store``: training period up to ``train_end``, test inits ``test_inits``."""
    from data_catalog.store import open_climatology, open_store
    from pipeline.weights import latitude_weights

    ds = open_store(store)
    climatology = open_climatology(store)
    clim = climatology[VARIABLE].values  # (dayofyear, hour, lat, lon)
    x = ds[VARIABLE].values.astype("f8")
    t = pd.DatetimeIndex(ds["time"].values)
    c = clim[t.day_of_year - 1, np.searchsorted(climatology["hour"].values, t.hour)]
    w = np.asarray(latitude_weights(ds["latitude"].values), dtype="f8")[:, None] * np.ones(x.shape[-1])[None, :]
    n_train = int(t.searchsorted(pd.Timestamp(train_end), side="right"))
    inits = np.flatnonzero((t >= test_inits[0]) & (t <= test_inits[1]))
    anomaly = x - c

    print(f"{store}: RMSE (K) of {VARIABLE} over {len(inits)} inits {test_inits[0]} .. {test_inits[1]}")
    header = ["lead", "persistence", "climatology", "yesterday", "anom-persist", "fitted-combination"]
    print(" ".join(f"{h:>18s}" for h in header))
    for lead in leads:
        test = inits[inits + lead < len(t)]
        train = np.arange(max(0, 24 - lead), n_train - lead)  # t+L-24h >= 0 and t+L inside the training period
        rho = float((anomaly[train] * anomaly[train + lead] * w).sum() / ((anomaly[train] ** 2) * w).sum())

        coef = lstsq_fit(features(c, x, train, lead).reshape(-1, 4), x[train + lead].ravel())
        truth = x[test + lead]
        row = [
            weighted_rmse(x[test], truth, w),
            weighted_rmse(c[test + lead], truth, w),
            weighted_rmse(x[test + lead - 24], truth, w),
            weighted_rmse(c[test + lead] + rho * anomaly[test], truth, w),
            weighted_rmse(features(c, x, test, lead) @ coef, truth, w),
        ]
        print(
            f"{f'+{lead} h':>18s} "
            + " ".join(f"{v:18.3f}" for v in row)
            + f"   rho {rho:.2f}, combination {np.round(coef, 2).tolist()}"
        )


if __name__ == "__main__":
    sys.exit(main())
