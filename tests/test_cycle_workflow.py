"""The Cylc workflows for real: `cylc validate` and `cylc lint` on every workflow of the repo, and the forecast
cycle played (`cylc play --no-detach`, replay mode) over three hourly cycles of the ERA5 UK sample, with a task
made to fail once, the scheduler SIGKILLed mid-cycle and played again, and a second play that changes no byte.

Cylc lives in its own venv (`make cycle-install`); the tests skip, saying so, only when it is not installed."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from workflows.cycle import CycleConfig, run_stage
from workflows.cycle.cylc_env import (
    cylc,
    find_cylc,
    global_config,
    scheduler_env,
    template_args,
    workflow_dirs,
)

POINTS = ["20190315T0000Z", "20190315T0100Z", "20190315T0200Z"]
STAGES = ("ingest", "forecast", "verify", "dashboard", "housekeep")
FLOW = Path(__file__).resolve().parents[1] / "workflows" / "forecast-cycle"
REPO = FLOW.parents[1]

pytestmark = pytest.mark.skipif(find_cylc() is None, reason="cylc is not installed (make cycle-install)")


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def assert_same_data(a: Path, b: Path) -> None:
    """The same files, and every Zarr store (root and groups) holds equal data (attributes name paths)."""
    files_a = sorted(str(p.relative_to(a)) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(str(p.relative_to(b)) for p in b.rglob("*") if p.is_file())
    stores = sorted(
        {
            p.parent.relative_to(a)
            for p in a.rglob("zarr.json")
            if p.parent.suffix == ".zarr" and "site" not in p.relative_to(a).parts
        }
    )
    assert len(stores) == 1 + 3 * 2 + 2  # analysis, 3 cycles x 2 models, 2 scores stores
    for rel in stores:
        groups = [None] + [
            p.parent.name
            for p in (a / rel).glob("*/zarr.json")
            if json.loads(p.read_text()).get("node_type") == "group"
        ]
        for g in groups:
            xa = xr.open_zarr(a / rel, group=g, consolidated=False).load()
            xb = xr.open_zarr(b / rel, group=g, consolidated=False).load()
            xr.testing.assert_equal(xa, xb)


@pytest.fixture(scope="module")
def cylc_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cylc")
    (root / "conf").mkdir()
    (root / "home").mkdir()
    (root / "conf" / "global.cylc").write_text(global_config(cylc_bin=str(Path(find_cylc()).parent)))
    return root, scheduler_env(root / "home", root / "conf", {"PYTHONPATH": str(REPO)})


@pytest.fixture(scope="module")
def base_store(tmp_path_factory, sample):
    """The analysis store of the first two weeks (2019-03-01 .. 14T23), made once by the cycle's ingest."""
    root = tmp_path_factory.mktemp("base")
    cfg = CycleConfig.from_yaml(make_config(root, sample("era5-2mt-2019-03-uk.grib")))
    run_stage("ingest", cfg, "20190314T2300Z")
    return Path(cfg.store)


def make_config(work: Path, grib: str) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    path = work / "cycle.yaml"
    path.write_text(
        f"source: [{grib}]\nstore: analysis.zarr\nwork_dir: out\nlead: 2h\ncycle_hours: 1\n"
        "analysis_start: 2019-03-01T00\n"
    )
    return path


def template(config: Path, **extra: str) -> list[str]:
    values = {
        "CYCLE_CONFIG": str(config),
        "MODE": "replay",
        "CYCLE": "PT1H",
        "INITIAL_CYCLE_POINT": POINTS[0],
        "FINAL_CYCLE_POINT": POINTS[-1],
        "WXEMU_BIN": str(Path(sys.executable).parent),
        "JOB_PYTHONPATH": str(REPO),
        "RETRY_DELAYS": "PT1S, PT1S",
        "DATA_POLL": "PT2S",
        "STALL_TIMEOUT": "PT0S",
        **extra,
    }
    return template_args(values)


def job_exits(run_dir: Path, point: str, task: str) -> list[str]:
    """CYLC_JOB_EXIT of every try of a task (SUCCEEDED, ERR, ...)."""
    out = []
    for status in sorted((run_dir / "log" / "job" / point / task).glob("0*/job.status")):
        exits = [ln.split("=", 1)[1] for ln in status.read_text().splitlines() if ln.startswith("CYLC_JOB_EXIT=")]
        out.append(exits[0] if exits else "")
    return out


def test_validate_and_lint_every_workflow(cylc_setup):
    _, env = cylc_setup
    flows = workflow_dirs()
    assert FLOW in flows
    for flow in flows:
        assert "Valid for cylc-8" in cylc(["validate", str(flow)], env=env)
        assert "Valid for cylc-8" in cylc(["validate", str(flow), *template(Path("cycle.yaml"))], env=env)
        assert "found no issues" in cylc(["lint", str(flow)], env=env)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_replay_retry_kill_and_replay_again(cylc_setup, base_store, sample, tmp_path):
    root, env = cylc_setup
    grib = sample("era5-2mt-2019-03-uk.grib")
    # the uninterrupted reference: the same stages called one after the other in this process
    ref = tmp_path / "ref"
    ref_cfg = CycleConfig.from_yaml(make_config(ref, grib))
    shutil.copytree(base_store, ref_cfg.store)
    for point in POINTS:
        for stage in STAGES:
            run_stage(stage, ref_cfg, point)

    work = tmp_path / "play"
    config = make_config(work, grib)
    shutil.copytree(base_store, work / "analysis.zarr")
    cylc(["install", str(FLOW), "--workflow-name=replay", "--no-run-name"], env=env)
    run_dir = root / "home" / "cylc-run" / "replay"
    # play; kill the scheduler (SIGKILL) once the second cycle's forecast job has been submitted
    play = [find_cylc(), "play", "replay", "--no-detach", *template(config, FAIL_ONCE="forecast")]
    proc = subprocess.Popen(play, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    target = run_dir / "log" / "job" / POINTS[1] / "forecast" / "01" / "job.status"
    deadline = time.monotonic() + 300
    while not target.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the scheduler ended before the second cycle's forecast started"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (work / "out" / "scores" / f"{POINTS[1]}.zarr").exists()  # killed mid-run indeed
    out = cylc(["play", "replay", "--no-detach"], env=env, timeout=900)  # restart from the workflow database
    assert "ERROR" not in out, out[-3000:]

    # a failed first try of the first forecast was retried and succeeded
    assert job_exits(run_dir, POINTS[0], "forecast") == ["ERR", "SUCCEEDED"]
    for point in POINTS:
        for stage in STAGES:
            assert job_exits(run_dir, point, stage)[-1] == "SUCCEEDED", (point, stage)
        for name in ("persistence", "climatology"):
            assert xr.open_zarr(work / "out" / "forecasts" / point / f"{name}.zarr").attrs["wxemu_complete"]
    dashboard_log = (run_dir / "log" / "job" / POINTS[-1] / "dashboard" / "NN" / "job.out").read_text()
    assert "wxemu cycle dashboard" in dashboard_log
    assert (work / "out" / "site" / "index.html").is_file() and "done" in dashboard_log  # the site was rebuilt
    # every verified lead of every cycle: T00 +1 h, +2 h; T01 +1 h (T02's leads verify after the last cycle)
    leads = {
        p.name: list(
            pd.to_timedelta(xr.open_zarr(p, consolidated=False)["prediction_timedelta"].values).seconds // 3600
        )
        for p in sorted((work / "out" / "scores").iterdir())
    }
    assert leads == {
        f"{POINTS[0]}.zarr": [1, 2],
        f"{POINTS[1]}.zarr": [1],
    }
    # killed and restarted: the same outputs as the uninterrupted run
    assert_same_data(ref, work)

    # a second play of the same cycles (a fresh install of the workflow) changes no byte
    before = tree_digest(work)
    cylc(["install", str(FLOW), "--workflow-name=again", "--no-run-name"], env=env)
    cylc(["play", "again", "--no-detach", *template(config)], env=env, timeout=400)
    again = root / "home" / "cylc-run" / "again"
    assert all(job_exits(again, p, s) == ["SUCCEEDED"] for p in POINTS for s in STAGES)
    assert tree_digest(work) == before
