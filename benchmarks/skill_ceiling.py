"""Linear reference forecasts on the demo's held-out week, and how close each model comes to the best of them.

    python benchmarks/skill_ceiling.py [--store demo-output/era5_uk_t2m.zarr] [--forecasts demo-output/forecasts]

Not a speed benchmark: the analysis behind the README's skill findings. On the store ``make demo`` ingests (ERA5
2 m temperature, UK, March 2019; statistics and climatology from the training period 03-01..03-21; when
``--store`` does not exist, it is ingested into a temp dir the same way) it scores, for the demo's test inits
(2019-03-25T00 .. 03-30T23, hourly) and leads 1..24 h, with the area weights and the RMSE of
docs/verification.md (per-init MSE averaged over inits, then the root):

* persistence x(t) and climatology c(t+L), the demo's baselines;
* "same hour yesterday" x(t+L-24h) (an analysis at or before t for L <= 24 h: no future data);
* damped anomaly persistence c(t+L) + rho_L (x(t) - c(t)), rho_L fitted on the training period;
* the least-squares combination a c(t+L) + b x(t) + d x(t+L-24h) + e, fitted on the training period;
* "hourly+change": a per-grid-point regression of the next hour on the state, the last hour's change, the
  climatology, the insolation and the local hour (two harmonics), fitted on the training period and rolled
  forward hour by hour: a numpy check of the product's ``linear`` model (which also takes the change over the
  same hour yesterday, and with it scores 0.317 K at +1 h against this reference's 0.322 K).

Then every forecast store in ``--forecasts`` (the demo's: graph, transformer, linear, ...), scored the same way,
and its ratio to the best fitted linear reference at each lead (the product's ``linear`` forecast included):
below 1 the model beats every linear fit of the training period.
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
FITTED = ("anom-persist", "fitted-combination", "hourly+change")  # the fitted linear references


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


def hourly_features(state: np.ndarray, previous: np.ndarray, forcing: np.ndarray) -> np.ndarray:
    """(N, lat, lon, k): state, its last hourly change, then the forcings (N, lat, lon, f) valid an hour later."""
    return np.concatenate([state[..., None], (state - previous)[..., None], forcing], axis=-1)


def hourly_forcings(c: np.ndarray, times: pd.DatetimeIndex, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(T, lat, lon, 7): climatology, insolation / S0, sin/cos of the local hour and of twice it, 1."""
    from models.forcings import SOLAR_CONSTANT, time_features, toa_incident_solar

    ins = toa_incident_solar(times.values, lat, lon) / SOLAR_CONSTANT
    tf = time_features(times.values, lon)[:, :2, None, :] * np.ones((1, 1, len(lat), 1))
    s, co = tf[:, 0], tf[:, 1]
    return np.stack([c, ins, s, co, 2 * s * co, co * co - s * s, np.ones_like(c)], axis=-1)


def hourly_change_rollout(x: np.ndarray, f: np.ndarray, n_train: int, inits: np.ndarray, leads: int) -> np.ndarray:
    """Fit x(t+1) - x(t) per grid point on :func:`hourly_features` over the training period (small ridge) and roll
    it from ``inits``: (leads, inits, lat, lon)."""
    i = np.arange(1, n_train - 1)
    feats = hourly_features(x[i], x[i - 1], f[i + 1])
    gram = np.einsum("nhwk,nhwl->hwkl", feats, feats) + 1e-3 * len(i) * np.eye(feats.shape[-1])
    coef = np.linalg.solve(gram, np.einsum("nhwk,nhw->hwk", feats, x[i + 1] - x[i])[..., None])[..., 0]
    prev, state, out = x[inits - 1], x[inits], []
    for lead in range(1, leads + 1):
        nxt = state + np.einsum("nhwk,hwk->nhw", hourly_features(state, prev, f[inits + lead]), coef)
        prev, state = state, nxt
        out.append(nxt)
    return np.stack(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="demo-output/era5_uk_t2m.zarr", help="the demo's analysis store")
    parser.add_argument("--forecasts", default="demo-output/forecasts", help="directory of forecast stores to rank")
    parser.add_argument("--leads", default="1,3,6,9,12,15,18,21,23,24", help="leads in hours")
    args = parser.parse_args(argv)

    from data_catalog.store import is_complete
    from workflows.demo import SAMPLE_ENTRY, STATS_PERIOD, TEST_INITS

    first_init, last_init = TEST_INITS.split("/")[:2]
    with tempfile.TemporaryDirectory(prefix="wxemu-skill-") as tmp:
        if not (Path(args.store).exists() and is_complete(args.store)):
            from data_catalog.ingestion import IngestConfig, ingest

            args.store = str(Path(tmp) / "era5_uk_t2m.zarr")
            ingest(
                IngestConfig(
                    sources=(SAMPLE_ENTRY,),
                    out=args.store,
                    stats_start=STATS_PERIOD[0],
                    stats_end=STATS_PERIOD[1],
                )
            )
        forecasts = sorted(Path(args.forecasts).glob("*.zarr")) if Path(args.forecasts).is_dir() else []
        report(
            args.store,
            [int(v) for v in args.leads.split(",")],
            STATS_PERIOD[1],
            (first_init, last_init),
            {p.stem: str(p) for p in forecasts},
        )
    return 0


def score_forecast(path: str, x: np.ndarray, inits: np.ndarray, w: np.ndarray, leads: list[int]) -> dict[int, float]:
    """RMSE by lead of a forecast store whose initial times are ``inits`` (store time indices, hourly leads)."""
    import zarr

    pred = zarr.open_group(path, mode="r")[VARIABLE][:]  # (init, lead, lat, lon), leads 1 h apart
    if pred.shape[0] != len(inits):
        return {}
    return {lead: weighted_rmse(pred[:, lead - 1], x[inits + lead], w) for lead in leads if lead <= pred.shape[1]}


def report(
    store: str, leads: list[int], train_end: str, test_inits: tuple[str, str], forecasts: dict[str, str]
) -> None:
    """Print the tables for ``store``: training period up to ``train_end``, test inits ``test_inits``, and the
    forecast stores ``forecasts`` {name: path} ranked against the best fitted linear reference."""
    from data_catalog.store import open_climatology, open_store
    from pipeline.weights import latitude_weights

    ds = open_store(store)
    climatology = open_climatology(store)
    clim = climatology[VARIABLE].values  # (dayofyear, hour, lat, lon)
    x = ds[VARIABLE].values.astype("f8")
    t = pd.DatetimeIndex(ds["time"].values)
    c = clim[t.day_of_year - 1, np.searchsorted(climatology["hour"].values, t.hour)].astype("f8")
    lat, lon = ds["latitude"].values, ds["longitude"].values
    w = np.asarray(latitude_weights(lat), dtype="f8")[:, None] * np.ones(x.shape[-1])[None, :]
    n_train = int(t.searchsorted(pd.Timestamp(train_end), side="right"))
    inits = np.flatnonzero((t >= test_inits[0]) & (t <= test_inits[1]))
    inits = inits[inits + max(leads) < len(t)]
    anomaly = x - c
    hourly = hourly_change_rollout(x, hourly_forcings(c, t, lat, lon), n_train, inits, max(leads))

    print(f"{store}: RMSE (K) of {VARIABLE} over {len(inits)} inits {test_inits[0]} .. {test_inits[1]}")
    refs: dict[str, dict[int, float]] = {n: {} for n in ("persistence", "climatology", "yesterday", *FITTED)}
    notes = {}
    for lead in leads:
        train = np.arange(max(0, 24 - lead), n_train - lead)  # t+L-24h >= 0 and t+L inside the training period
        rho = float((anomaly[train] * anomaly[train + lead] * w).sum() / ((anomaly[train] ** 2) * w).sum())
        coef = lstsq_fit(features(c, x, train, lead).reshape(-1, 4), x[train + lead].ravel())
        truth = x[inits + lead]
        refs["persistence"][lead] = weighted_rmse(x[inits], truth, w)
        refs["climatology"][lead] = weighted_rmse(c[inits + lead], truth, w)
        refs["yesterday"][lead] = weighted_rmse(x[inits + lead - 24], truth, w)
        refs["anom-persist"][lead] = weighted_rmse(c[inits + lead] + rho * anomaly[inits], truth, w)
        refs["fitted-combination"][lead] = weighted_rmse(features(c, x, inits, lead) @ coef, truth, w)
        refs["hourly+change"][lead] = weighted_rmse(hourly[lead - 1], truth, w)
        notes[lead] = f"rho {rho:.2f}, combination {np.round(coef, 2).tolist()}"
    print_table(refs, leads, notes)

    scored = {name: score_forecast(path, x, inits, w, leads) for name, path in forecasts.items()}
    scored = {name: s for name, s in scored.items() if s}
    if not scored:
        return
    fitted = {n: refs[n] for n in FITTED} | ({"linear": scored["linear"]} if "linear" in scored else {})
    best = {lead: min(r[lead] for r in fitted.values()) for lead in leads}
    which = {lead: min(fitted, key=lambda n: fitted[n][lead]) for lead in leads}
    print("\nforecasts, and their RMSE over the best fitted linear reference at each lead (< 1: better):")
    print_table({**scored, "best linear": best}, leads, {lead: f"best linear: {which[lead]}" for lead in leads})
    ratios = {f"{name} / best linear": {lead: s[lead] / best[lead] for lead in leads} for name, s in scored.items()}
    print_table(ratios, leads, {})


def print_table(rows: dict[str, dict[int, float]], leads: list[int], notes: dict[int, str]) -> None:
    """One line per lead, one column per row name."""
    print(f"{'lead':>8s} " + " ".join(f"{n:>20s}" for n in rows))
    for lead in leads:
        cells = " ".join(f"{rows[n].get(lead, float('nan')):20.3f}" for n in rows)
        print(f"{f'+{lead} h':>8s} {cells}   {notes.get(lead, '')}")


if __name__ == "__main__":
    sys.exit(main())
