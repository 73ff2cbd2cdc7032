"""Model selection as docs/models.md applies it: a candidate config against the fitted ``linear`` baseline, on the
validation period and on forward-chaining folds of the training weeks (default candidate: demo_pointwise.yaml).

    python benchmarks/selection.py [CANDIDATE.yaml] [--baseline pipeline/configs/demo_linear.yaml]
        [--store demo-output/era5_uk_t2m.zarr] [--out DIR] [--folds week2,week3,validation]
        [--variable 2m_temperature]

Not a speed benchmark: the protocol behind the configs the demo adopts, so that its figures can be reproduced.
On the store ``make demo`` ingests (ERA5 2 m temperature, UK, March 2019; ingested into a temp dir the same way
when ``--store`` does not exist), each fold trains both configs through ``pipeline.train`` on the training period
cut at the fold's end, forecasts every hour of the fold's scoring days to +24 h and scores them with
``pipeline.verify`` (area-weighted RMSE of ``--variable``; a store with more variables, such as the flow
variables of docs/models.md's "Inputs that carry the flow", trains on all of them and is scored on this one):

* week2: train 03-01..03-07, score inits 03-08T00..03-13T23 (their +24 h stays in week 2);
* week3: train 03-01..03-14, score inits 03-15T00..03-20T23;
* validation: train 03-01..03-21 (the configs as they are), score inits 03-22T00..03-23T23.

It prints each fold's RMSE at +1/+6/+12/+24 h and over leads 1..24 for both configs and the verdict of the rule
the project adopts changes by: the candidate is adopted when it beats the baseline on the validation mean *and*
on the mean over the training-week folds (validation alone is two days; one weather regime can fake a gain).
The test week (03-25..03-31) is never read. The store's normalisation and climatology come from its stats period
(03-01..03-21), which the folds' scoring weeks share: the same for both configs, so it cannot favour either.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TRAIN_START = "2019-03-01T00"
FOLDS = {  # name: (end of the training period, scoring inits)
    "week2": ("2019-03-07T23", "2019-03-08T00/2019-03-13T23/1h"),
    "week3": ("2019-03-14T23", "2019-03-15T00/2019-03-20T23/1h"),
    "validation": ("2019-03-21T23", "2019-03-22T00/2019-03-23T23/1h"),
}
SHOWN_LEADS_H = (1, 6, 12, 24)


def fold_rmse(config_path: str, fold: str, *, store: str, out: Path, variable: str = "2m_temperature") -> list[float]:
    """RMSE of ``variable`` at leads 1..24 h of ``config_path`` trained for ``fold`` (a key of :data:`FOLDS`) into
    ``out``."""
    from pipeline import ForecastConfig, TrainConfig, VerifyConfig, forecast, train, verify

    train_end, inits = FOLDS[fold]
    cfg = TrainConfig.from_yaml(config_path)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, train=(TRAIN_START, train_end)))
    run = train(cfg, store=store, out=out / "run")
    fc = forecast(
        ForecastConfig(checkpoint=run.checkpoint, store=store, init=inits, lead="24h", out=str(out / "fc.zarr"))
    )
    result = verify(
        VerifyConfig(forecasts=[fc.path], truth=store, out=None, metrics=["rmse"], spectra=False, variables=[variable])
    )
    da = result.scores[variable]
    return [float(v) for v in da.sel(metric="rmse").isel(forecast=0, region=0).values]


def adopt(candidate: dict[str, float], baseline: dict[str, float]) -> bool | None:
    """The adoption rule on {fold: mean RMSE}: better on validation and on the mean over the training-week folds;
    None when a fold the rule needs was not run."""
    weeks = [f for f in FOLDS if f != "validation"]
    if not all(f in candidate and f in baseline for f in FOLDS):
        return None
    mean = lambda d: sum(d[f] for f in weeks) / len(weeks)  # noqa: E731
    return candidate["validation"] < baseline["validation"] and mean(candidate) < mean(baseline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "candidate",
        nargs="?",
        default="pipeline/configs/demo_pointwise.yaml",
        help="training config (YAML) of the candidate",
    )
    parser.add_argument("--baseline", default="pipeline/configs/demo_linear.yaml", help="config it must beat")
    parser.add_argument("--store", default="demo-output/era5_uk_t2m.zarr", help="the demo's analysis store")
    parser.add_argument("--out", default=None, help="keep the runs and forecasts here (default: a temp dir)")
    parser.add_argument("--folds", default=",".join(FOLDS), help=f"comma-separated subset of {', '.join(FOLDS)}")
    parser.add_argument("--variable", default="2m_temperature", help="the variable scored (default 2m_temperature)")
    args = parser.parse_args(argv)
    folds = [f.strip() for f in args.folds.split(",") if f.strip()]
    if unknown := sorted(set(folds) - set(FOLDS)):
        parser.error(f"--folds: unknown {', '.join(unknown)}; known: {', '.join(FOLDS)}")

    import pytorch_lightning  # noqa: F401  (it sets its logger's level on import: quieten it after)

    logging.getLogger("pytorch_lightning").setLevel(logging.WARNING)  # a script: no banners between the rows
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(zarr|lightning_fabric|pytorch_lightning)\..*")
    from data_catalog.ingestion import IngestConfig, ingest
    from data_catalog.store import is_complete
    from workflows.demo import SAMPLE_ENTRY, STATS_PERIOD

    with tempfile.TemporaryDirectory(prefix="wxemu-selection-") as tmp:
        out = Path(args.out or tmp)
        store = args.store
        if not (Path(store).exists() and is_complete(store)):
            store = str(out / "era5_uk_t2m.zarr")
            ingest(
                IngestConfig(sources=(SAMPLE_ENTRY,), out=store, stats_start=STATS_PERIOD[0], stats_end=STATS_PERIOD[1])
            )
        means: dict[str, dict[str, float]] = {"candidate": {}, "baseline": {}}
        print(f"candidate {args.candidate} against baseline {args.baseline}; RMSE of {args.variable}")
        print(
            f"{'fold':<11} {'config':<9} " + " ".join(f"+{h}h".rjust(7) for h in SHOWN_LEADS_H) + "  mean 1..24  ratio"
        )
        for fold in folds:
            for name, path in (("baseline", args.baseline), ("candidate", args.candidate)):
                t0 = time.perf_counter()
                rmse = fold_rmse(path, fold, store=store, out=out / fold / name, variable=args.variable)
                means[name][fold] = sum(rmse) / len(rmse)
                ratio = means[name][fold] / means["baseline"][fold]
                shown = " ".join(f"{rmse[h - 1]:7.4f}" for h in SHOWN_LEADS_H)
                print(
                    f"{fold:<11} {name:<9} {shown}  {means[name][fold]:10.4f}  {ratio:5.3f}"
                    f"  ({time.perf_counter() - t0:.0f} s)",
                    flush=True,
                )
        verdict = adopt(means["candidate"], means["baseline"])
        rule = "better on validation and on the mean over the training-week folds"
        print({True: f"adopt: {rule}", False: f"do not adopt: not {rule}", None: "no verdict: run every fold"}[verdict])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
