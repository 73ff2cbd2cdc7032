"""`wxemu demo`: the whole pipeline on the bundled real sample (ERA5 hourly 2 m temperature, UK, March 2019).

ingest -> train (graph and transformer emulators; the linear baseline's least-squares fit) -> forecast (emulators,
linear, persistence, climatology) -> verify -> explain (one cheap explanation of the first emulator, +1 h) -> dashboard,
each stage run through the same command line a user would type (the commands are printed), then the RMSE-by-lead
table of every forecast and the scorecards of the emulators against both baselines.

Split (held out = the last week): train 2019-03-01..03-21, validation 03-22..03-24, test 03-25..03-31. The
store's statistics and climatology are computed on the training period only, so the climatology baseline and
the emulators never see the test week.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import time
from pathlib import Path

import numpy as np
import zarr

from data_catalog.errors import WxemuError
from data_catalog.store import is_complete
from pipeline.dashboard.demo import demo_dashboard
from pipeline.scorecard import paired_test
from pipeline.train_config import default_config_path
from pipeline.verification import open_scores
from workflows.cli import main

SAMPLE_ENTRY = "era5-t2m-uk-2019-03"
STATS_PERIOD = ("2019-03-01T00", "2019-03-21T23")
TEST_INITS = "2019-03-25T00/2019-03-30T23/1h"  # every hour of the held-out week whose +24 h lies in the data
# validation inits (03-22..03-24) whose +24 h lies in the validation period: the emulators' paths are chosen on them
VALIDATION_INITS = "2019-03-22T00/2019-03-23T23"
LEAD = "24h"
MODELS = ("graph", "transformer")
FITTED_BASELINES = ("linear",)  # trained (fitted) like a model, rolled out with the same paths, always run
BASELINES = ("persistence", "climatology")
TABLE_LEADS_H = (1, 3, 6, 9, 12, 15, 18, 21, 23, 24)
# one explanation for the dashboard, sized to cost seconds (docs/benchmarks.md): +1 h (one model call), 8
# integration points, 4 random orderings; the faithfulness curves cost most, and grow with the lead's model calls
EXPLAIN_LEAD = "1h"
EXPLAIN_REGION = "52,55,354,358"  # Wales and central England (the whole grid would make the self share trivially 1)
EXPLAIN = ("--init", "2019-03-25T00", "--lead", EXPLAIN_LEAD, "--region", EXPLAIN_REGION, "--steps", "8")
EXPLAIN += ("--random-orderings", "4")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="demo-output", help="directory for stores, runs and scores")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS), help="emulators to train")
    parser.add_argument("--max-steps", type=int, default=None, help="override the training steps of each model")
    parser.add_argument("--init", default=TEST_INITS, help=f"initial times of the test forecasts ({TEST_INITS})")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="redo every stage (by default the store and checkpoints of an earlier run are reused)",
    )


def _history(checkpoint: str) -> int:
    """Input states of a checkpoint (lagged paths are for history 1)."""
    from pipeline.checkpoint import read_header

    return int(read_header(checkpoint)["history"])


def _stage(argv: list[str]) -> None:
    print(f"\n$ wxemu {shlex.join(argv)}", flush=True)
    t0 = time.perf_counter()
    code = main(argv)
    if code:
        raise WxemuError(f"stage `wxemu {argv[0]}` failed with exit code {code}")
    print(f"  ({time.perf_counter() - t0:.0f} s)", flush=True)


def rmse_table(scores_path: str, *, region: str = "global", leads_h=None) -> tuple[list[str], dict]:
    """RMSE by lead (hours) of every forecast in a scores store: (forecast names, {name: {lead: rmse}});
    every lead unless ``leads_h`` lists some."""
    scores, _ = open_scores(scores_path)
    var = next(iter(scores.data_vars))
    da = scores[var].sel(metric="rmse", region=region)
    hours = (da.prediction_timedelta.values / np.timedelta64(1, "h")).astype(int)
    table = {}
    for name in da.forecast.values:
        row = da.sel(forecast=name).values
        table[str(name)] = {int(h): float(v) for h, v in zip(hours, row) if leads_h is None or int(h) in leads_h}
    return [str(n) for n in da.forecast.values], table


def format_table(names: list[str], table: dict, *, leads_h=TABLE_LEADS_H) -> str:
    """A Markdown table, best RMSE at each lead in bold."""
    head = "| forecast | " + " | ".join(f"+{h} h" for h in leads_h) + " |"
    rule = "| --- |" + " ---: |" * len(leads_h)
    best = {h: min(table[n].get(h, np.inf) for n in names) for h in leads_h}
    lines = [head, rule]
    for n in names:
        cells = []
        for h in leads_h:
            v = table[n].get(h)
            cells.append("n/a" if v is None else (f"**{v:.3f}**" if v == best[h] else f"{v:.3f}"))
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _spans(hours: list[int]) -> str:
    """[1, 2, 3, 7, 9] -> '+1..+3 h, +7 h, +9 h'."""
    spans: list[list[int]] = []
    for h in hours:
        if spans and h == spans[-1][1] + 1:
            spans[-1][1] = h
        else:
            spans.append([h, h])
    return ", ".join(f"+{a} h" if a == b else f"+{a}..+{b} h" for a, b in spans)


def paths_note(forecasts: list[tuple[str, str]]) -> str:
    """Which leads each emulator forecast reached by a lagged path (the forecast stores' ``wxemu_lead_paths``)."""
    lines = []
    for name, path in forecasts:
        chosen = zarr.open_group(path, mode="r").attrs.get("wxemu_lead_paths")
        if chosen is None:
            continue
        lagged = sorted(int(float(k)) for k in chosen["lagged"])
        how = (
            f"{_spans(lagged)} one trained step from an earlier analysis, other leads greedy from the initial time"
            if lagged
            else "every lead greedy from the initial time"
        )
        lines.append(f"- {name}: {how} (chosen on the validation inits {chosen['validation']})")
    return ("\nPaths (`wxemu forecast --lagged-paths`):\n" + "\n".join(lines) + "\n") if lines else ""


def skill_findings(names: list[str], table: dict) -> list[str]:
    """Where each emulator falls short of a baseline (persistence, climatology, the fitted linear baseline when
    scored), over every lead scored. (The target: the best baseline at every lead to +24 h.)"""
    out = []
    bases = [b for b in (*BASELINES, *FITTED_BASELINES) if b in table]
    for m in names:
        if m in bases:
            continue
        for base in bases:
            short = [h for h in sorted(table[m]) if h in table[base] and table[m][h] >= table[base][h]]
            if short:
                out.append(f"{m} does not beat {base} at {_spans(short)}")
    return out


def linear_margins(names: list[str], table: dict) -> list[str]:
    """How far each emulator's RMSE lies from the fitted linear baseline's, over every lead scored: a residual
    emulator is that baseline plus its network, so this is what the network adds. One line per emulator; none
    when ``linear`` was not scored."""
    out = []
    if "linear" not in table:
        return out
    for m in names:
        if m in (*BASELINES, *FITTED_BASELINES):
            continue
        leads = [h for h in sorted(table[m]) if h in table["linear"]]
        if not leads:
            continue
        diff = np.array([table[m][h] - table["linear"][h] for h in leads])
        rel = np.round(100 * diff / np.array([table["linear"][h] for h in leads]), 2) + 0.0  # no "-0.00"
        diff = np.round(diff, 4) + 0.0
        out.append(
            f"{m} minus linear: {diff.min():+.4f} .. {diff.max():+.4f} K ({rel.min():+.2f} .. {rel.max():+.2f} %) "
            f"over {_spans(leads)}"
        )
    return out


def per_init_mse(scores_path: str, *, region: str = "global") -> dict[str, np.ndarray]:
    """Per-initial-time MSE of every forecast in a scores store: {name: (n_init, n_lead) array}, leads +1 h, +2 h..."""
    _, per_init = open_scores(scores_path)
    var = next(iter(per_init.data_vars))
    da = per_init[var].sel(metric="rmse", region=region).transpose("forecast", "time", "prediction_timedelta")
    return {str(n): da.sel(forecast=n).values.astype(np.float64) for n in da.forecast.values}


def significance_findings(names: list[str], mse: dict[str, np.ndarray], *, alpha: float = 0.05) -> list[str]:
    """For each emulator, lead by lead against the best baseline there (lowest RMSE): better or worse, whether the
    difference is significant (``pipeline.scorecard.paired_test`` on the per-init MSE, p < ``alpha``) and the range
    of p over the leads of each group.

    ``mse``: {name: (n_init, n_lead)} for leads +1, +2, ... h (:func:`per_init_mse`). One line per emulator.
    """
    bases = [b for b in (*BASELINES, *FITTED_BASELINES) if b in mse]
    out = []
    for m in names:
        if m in bases or not bases:
            continue
        groups: dict[str, list[tuple[int, float]]] = {}
        for k in range(mse[m].shape[1]):
            best = min(bases, key=lambda b: np.nanmean(mse[b][:, k]))
            p, _ = paired_test(mse[m][:, k], mse[best][:, k])
            side = "better" if np.nanmean(mse[m][:, k]) < np.nanmean(mse[best][:, k]) else "worse"
            key = f"significantly {side}" if p < alpha else f"{side} but not significantly"
            groups.setdefault(key, []).append((k + 1, p))
        parts = []
        for key, hp in groups.items():
            lo, hi = f"{min(p for _, p in hp):.2g}", f"{max(p for _, p in hp):.2g}"
            parts.append(f"{key} at {_spans([h for h, _ in hp])} (p {lo if lo == hi else lo + '-' + hi})")
        out.append(f"{m} against the best baseline at each lead: " + "; ".join(parts))
    return out


def run(args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = str(out / "era5_uk_t2m.zarr")
    t_start = time.perf_counter()

    # A stage reruns when its output is missing or anything upstream reran; forecasts are always redone (cheap).
    redo = args.fresh or not is_complete(store)
    if redo:
        _stage(
            [
                "ingest",
                SAMPLE_ENTRY,
                "--out",
                store,
                "--stats-start",
                STATS_PERIOD[0],
                "--stats-end",
                STATS_PERIOD[1],
                *(["--overwrite"] if Path(store).exists() else []),
            ]
        )
    forecasts = []
    for model in [*args.models, *FITTED_BASELINES]:
        run_dir = out / "runs" / model
        ckpt = run_dir / "model.safetensors"
        if redo or args.max_steps or not ckpt.exists():
            if run_dir.exists():  # a run of another store or length: train it again from scratch
                shutil.rmtree(run_dir)
            steps = ["--max-steps", str(args.max_steps)] if args.max_steps else []
            _stage(
                [
                    "train",
                    "--model",
                    model,
                    "--store",
                    store,
                    "--out",
                    str(run_dir),
                    "--config",
                    str(default_config_path(model)),
                    *steps,
                ]
            )
        forecasts.append((model, str(ckpt)))
    forecasts += [(b, b) for b in BASELINES]
    paths = []
    for name, ckpt in forecasts:
        fc = out / "forecasts" / f"{name}.zarr"
        if fc.exists():
            shutil.rmtree(fc)
        lagged = ["--lagged-paths", VALIDATION_INITS] if name not in BASELINES and _history(ckpt) == 1 else []
        _stage(
            [
                "forecast",
                "--checkpoint",
                ckpt,
                "--store",
                store,
                "--init",
                args.init,
                "--lead",
                LEAD,
                "--out",
                str(fc),
                "--batch-size",
                "24",
                *lagged,
            ]
        )
        paths.append(str(fc))
    scores = str(out / "scores.zarr")
    for reference in BASELINES:
        _stage(
            [
                "verify",
                "--forecast",
                *paths,
                "--truth",
                store,
                "--out",
                scores,
                "--overwrite",
                "--reference",
                reference,
                "--quiet",
            ]
        )

    names, table = rmse_table(scores)
    md = format_table(names, table)  # the leads of TABLE_LEADS_H; the findings cover every lead
    findings = skill_findings(names, table)
    significance = significance_findings(names, per_init_mse(scores))
    margins = linear_margins(names, table)
    text = (
        "## RMSE of 2 m temperature (K) by lead, held-out week 2019-03-25..31, UK (ERA5)\n\n"
        + md
        + "\n\n"
        + (
            "Findings (every lead +1..+24 h):\n" + "\n".join(f"- {f}" for f in findings)
            if findings
            else "Every emulator beats persistence, climatology and the linear baseline at every lead."
        )
        + (
            "\n\nRMSE minus the linear baseline's (what the networks add to their linear part; < 0: better):\n"
            + "\n".join(f"- {f}" for f in margins)
            if margins
            else ""
        )
        + "\n\nSignificance at 5 % (paired t-test on the per-init MSE, sample size corrected for autocorrelation):\n"
        + "\n".join(f"- {f}" for f in significance)
        + "\n"
        + paths_note([(name, str(out / "forecasts" / f"{name}.zarr")) for name in [*args.models, *FITTED_BASELINES]])
    )
    (out / "summary.md").write_text(text)
    print("\n" + text)
    explanation = str(out / "explain" / f"{args.models[0]}-{EXPLAIN_LEAD}.zarr")
    _stage(
        ["explain", "--checkpoint", str(out / "runs" / args.models[0]), "--store", store, *EXPLAIN]
        + ["--out", explanation]
    )
    demo_dashboard(out, scores, paths, store, explanations=[explanation])
    print(f"demo finished in {time.perf_counter() - t_start:.0f} s; summary in {out / 'summary.md'}")
    return 0
