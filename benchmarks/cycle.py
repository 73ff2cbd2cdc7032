"""Forecast-cycle overhead: the Cylc workflow against the same stage calls made in one Python process.

    python benchmarks/cycle.py [--cycles 24] [--keep DIR]

A replay of ``--cycles`` hourly cycles from 2019-03-15T00 of the real ERA5 UK sample (persistence and
climatology forecasts, 2 h lead, verification and housekeeping), starting from an analysis store of the first two
weeks, run (a) as ``run_stage`` calls one after the other in this process and (b) by ``cylc play --no-detach`` of
workflows/forecast-cycle (replay mode, local background jobs). Printed: both wall times, their ratio, and where
the workflow's time goes, from the jobs' own status files: the time inside the job scripts on each cycle's
critical path (ingest -> forecast -> verify -> the longer of dashboard/housekeep; cycles are serialised by the
store append), split into the stage work (the in-process time) and the rest (Python start-up and imports, Cylc's
job wrapper and messaging), and the time outside any job (the scheduler's submission and polling latency).
Needs Cylc (``make cycle-install``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from data_catalog.samples import sample_path  # noqa: E402
from workflows.cycle import CycleConfig, run_stage  # noqa: E402
from workflows.cycle.cylc_env import cylc, find_cylc, global_config, scheduler_env, template_args  # noqa: E402

STAGES = ("ingest", "forecast", "verify", "dashboard", "housekeep")


def make_config(work: Path) -> CycleConfig:
    work.mkdir(parents=True, exist_ok=True)
    (work / "cycle.yaml").write_text(
        f"source: [{sample_path('era5-2mt-2019-03-uk.grib')}]\nstore: analysis.zarr\nwork_dir: out\nlead: 2h\n"
        "cycle_hours: 1\nanalysis_start: 2019-03-01T00\nretention_hours: 6\n"
    )
    return CycleConfig.from_yaml(work / "cycle.yaml")


def job_times(run_dir: Path, point: str, task: str) -> float:
    """Seconds between the last try's job start and exit (from its job.status)."""
    status = sorted((run_dir / "log" / "job" / point / task).glob("0*/job.status"))[-1]
    kv = dict(ln.split("=", 1) for ln in status.read_text().splitlines() if "=" in ln)
    return (pd.Timestamp(kv["CYLC_JOB_EXIT_TIME"]) - pd.Timestamp(kv["CYLC_JOB_INIT_TIME"])).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=24)
    parser.add_argument("--keep", default=None, help="work in this directory and keep it")
    args = parser.parse_args()
    if find_cylc() is None:
        sys.exit("cylc is not installed: make cycle-install")
    root = Path(args.keep or tempfile.mkdtemp(prefix="wxemu-cycle-bench-"))
    points = [p.strftime("%Y%m%dT%H%MZ") for p in pd.date_range("2019-03-15T00", periods=args.cycles, freq="h")]
    print(f"load average before: {os.getloadavg()[0]:.1f}")
    try:
        base = make_config(root / "base")
        run_stage("ingest", base, "20190314T2300Z")
        inproc = make_config(root / "inproc")
        shutil.copytree(base.store, inproc.store)
        per_stage = dict.fromkeys(STAGES, 0.0)
        t0 = time.perf_counter()
        for point in points:
            for stage in STAGES:
                t = time.perf_counter()
                run_stage(stage, inproc, point)
                per_stage[stage] += time.perf_counter() - t
        t_inproc = time.perf_counter() - t0

        work = make_config(root / "cylc")
        shutil.copytree(base.store, work.store)
        (root / "conf").mkdir(exist_ok=True)
        (root / "home").mkdir(exist_ok=True)
        (root / "conf" / "global.cylc").write_text(global_config(cylc_bin=str(Path(find_cylc()).parent)))
        env = scheduler_env(root / "home", root / "conf", {"PYTHONPATH": str(REPO)})
        cylc(["install", str(REPO / "workflows" / "forecast-cycle"), "--workflow-name=bench", "--no-run-name"], env=env)
        values = {
            "CYCLE_CONFIG": str(root / "cylc" / "cycle.yaml"),
            "MODE": "replay",
            "CYCLE": "PT1H",
            "INITIAL_CYCLE_POINT": points[0],
            "FINAL_CYCLE_POINT": points[-1],
            "WXEMU_BIN": str(Path(sys.executable).parent),
            "JOB_PYTHONPATH": str(REPO),
            "STALL_TIMEOUT": "PT0S",
        }
        t0 = time.perf_counter()
        cylc(["play", "bench", "--no-detach", *template_args(values)], env=env, timeout=24 * 3600)
        t_cylc = time.perf_counter() - t0
        run_dir = root / "home" / "cylc-run" / "bench"
        jobs = {(p, s): job_times(run_dir, p, s) for p in points for s in STAGES}
        critical = sum(
            jobs[p, "ingest"]
            + jobs[p, "forecast"]
            + jobs[p, "verify"]
            + max(jobs[p, "dashboard"], jobs[p, "housekeep"])
            for p in points
        )
        stage_work = sum(per_stage[s] for s in ("ingest", "forecast", "verify")) + max(
            per_stage["dashboard"], per_stage["housekeep"]
        )
        n = len(points)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        print(f"{n} hourly cycles, {len(STAGES)} tasks each")
        print(f"in one process : {t_inproc:7.1f} s  ({t_inproc / n:5.1f} s per cycle)")
        print(f"cylc play      : {t_cylc:7.1f} s  ({t_cylc / n:5.1f} s per cycle)   ratio {t_cylc / t_inproc:.1f}x")
        print("where the workflow's time goes (s per cycle):")
        print(f"  stage work on the critical path (in-process time)     {stage_work / n:5.1f}")
        print(f"  job start-up: python imports, cylc job wrapper+messages {(critical - stage_work) / n:5.1f}")
        print(f"  outside the jobs: submission, polling, xtrigger        {(t_cylc - critical) / n:5.1f}")
        print(
            "mean job time per task (s): " + ", ".join(f"{s} {sum(jobs[p, s] for p in points) / n:.1f}" for s in STAGES)
        )
        print("in-process time per task (s): " + ", ".join(f"{s} {per_stage[s] / n:.2f}" for s in STAGES))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
