"""Slurm for real: a one-node cluster (Debian's munge, slurmctld, slurmd) started on this machine by
workflows/slurm/local-cluster.sh for the module and stopped after. On it: the forecast cycle's `forecast` task
runs as a Slurm job submitted by Cylc (the workflow's Slurm platform), `wxemu ingest` runs its regions on a
dask-jobqueue SLURMCluster, and workflows/slurm/train.sbatch runs a two-task DDP job (gloo, CPU). Skipped, saying
so, only when Slurm or Cylc is not installed (make slurm-install, make cycle-install)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import _synthetic
import pytest
import xarray as xr
from distributed import Client

from data_catalog.ingestion import IngestConfig, ingest
from workflows.cycle import CycleConfig, run_stage
from workflows.cycle.cylc_env import cylc, find_cylc, global_config, scheduler_env, template_args

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "workflows" / "slurm" / "local-cluster.sh"
FLOW = REPO / "workflows" / "forecast-cycle"
TRAIN = REPO / "workflows" / "slurm" / "train.sbatch"
POINT = "20190315T0000Z"
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "sinfo")

pytestmark = pytest.mark.skipif(
    any(shutil.which(b) is None for b in SLURM_BINARIES),
    reason="Slurm/munge are not installed (make slurm-install: apt slurmctld slurmd slurm-client munge)",
)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """SLURM_CONF of a running one-node cluster; the daemons are stopped after the module."""
    state = tmp_path_factory.mktemp("slurm")
    up = subprocess.run([str(CLUSTER), "up", str(state)], capture_output=True, text=True, timeout=120)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        yield str(state / "slurm.conf")
    finally:
        subprocess.run([str(CLUSTER), "down", str(state)], timeout=60)


@pytest.mark.slow
def test_forecast_task_runs_as_a_slurm_job(slurm, tmp_path, sample):
    if find_cylc() is None:
        pytest.skip("cylc is not installed (make cycle-install)")
    work = tmp_path / "work"
    work.mkdir()
    config = work / "cycle.yaml"
    config.write_text(
        f"source: [{sample('era5-2mt-2019-03-uk.grib')}]\nstore: analysis.zarr\nwork_dir: out\nlead: 2h\n"
        "cycle_hours: 1\nanalysis_start: 2019-03-10T00\nmodels: [persistence]\n"
    )
    run_stage("ingest", CycleConfig.from_yaml(config), "20190314T2300Z")
    (tmp_path / "conf").mkdir()
    (tmp_path / "home").mkdir()
    (tmp_path / "conf" / "global.cylc").write_text(
        global_config(cylc_bin=str(Path(find_cylc()).parent), slurm_platform="slurm_local")
    )
    env = scheduler_env(tmp_path / "home", tmp_path / "conf", {"SLURM_CONF": slurm, "PYTHONPATH": str(REPO)})
    cylc(["install", str(FLOW), "--workflow-name=onslurm", "--no-run-name"], env=env)
    values = {
        "CYCLE_CONFIG": str(config),
        "MODE": "replay",
        "CYCLE": "PT1H",
        "INITIAL_CYCLE_POINT": POINT,
        "FINAL_CYCLE_POINT": POINT,
        "WXEMU_BIN": str(Path(sys.executable).parent),
        "JOB_PYTHONPATH": str(REPO),
        "FORECAST_PLATFORM": "slurm_local",
        "RETRY_DELAYS": "PT1S",
        "STALL_TIMEOUT": "PT0S",
    }
    cylc(["play", "onslurm", "--no-detach", *template_args(values)], env=env, timeout=400)
    job_dir = tmp_path / "home" / "cylc-run" / "onslurm" / "log" / "job" / POINT
    status = dict(
        ln.split("=", 1) for ln in (job_dir / "forecast" / "01" / "job.status").read_text().splitlines() if "=" in ln
    )
    assert status["CYLC_JOB_RUNNER_NAME"] == "slurm" and status["CYLC_JOB_ID"].isdigit()
    assert status["CYLC_JOB_EXIT"] == "SUCCEEDED"
    # the job ran under Slurm: its environment had the Slurm job id Cylc recorded
    job_out = (job_dir / "forecast" / "01" / "job.out").read_text()
    assert "wxemu cycle forecast" in job_out
    assert "background" in (job_dir / "ingest" / "01" / "job.status").read_text()  # the rest stays local
    fc = xr.open_zarr(work / "out" / "forecasts" / POINT / "persistence.zarr")
    assert fc.attrs["wxemu_complete"] and fc.sizes["prediction_timedelta"] == 2


def test_ingest_on_a_slurm_dask_cluster(slurm, tmp_path, sample, monkeypatch):
    dask_jobqueue = pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (extra 'cluster')")
    monkeypatch.setenv("SLURM_CONF", slurm)
    grib = sample("era5-2mt-2019-03-uk.grib")
    with dask_jobqueue.SLURMCluster(
        cores=1,
        processes=1,
        memory="2GB",
        walltime="00:10:00",
        python=sys.executable,
        job_script_prologue=[f"export PYTHONPATH={REPO}", f"export SLURM_CONF={slurm}"],
        log_directory=str(tmp_path / "dask-logs"),
        local_directory=str(tmp_path / "dask-local"),
    ) as cluster:
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=120)
            jobs = subprocess.run(["squeue", "-h", "-o", "%j %T"], capture_output=True, text=True)
            assert "RUNNING" in jobs.stdout
            result = ingest(
                IngestConfig(
                    sources=(grib,),
                    out=str(tmp_path / "slurm.zarr"),
                    end="2019-03-03T23",
                    chunk_time=24,
                ),
                scheduler=cluster.scheduler_address,
            )
    local = ingest(IngestConfig(sources=(grib,), out=str(tmp_path / "local.zarr"), end="2019-03-03T23", chunk_time=24))
    assert result.n_times == local.n_times == 72 and result.blocks_written >= 1
    xr.testing.assert_equal(
        xr.open_zarr(result.out, consolidated=None).load(), xr.open_zarr(local.out, consolidated=None).load()
    )


def test_train_sbatch_runs_a_two_task_ddp_job(slurm, tmp_path):
    """workflows/slurm/train.sbatch as submitted, two tasks on the one node, CPU (gloo) instead of GPUs."""
    store = _synthetic.write_canonical_store(
        _synthetic.synthetic_dataset(n_time=48, n_lat=6, n_lon=8), tmp_path / "s.zarr"
    )
    config = tmp_path / "c.yaml"
    config.write_text(
        "model: {config: {latent: 8, processor_layers: 1}}\n"
        "data: {train: ['2020-01-01T00', '2020-01-02T05'], val: ['2020-01-02T06', '2020-01-02T23'],\n"
        "       test: ['2020-01-02T06', '2020-01-02T23'], step_hours: [1], batch_size: 4, num_workers: 0}\n"
        "rollout: {max_steps: 1}\ntrainer: {max_steps: 3, val_every_n_steps: 3}\n"
    )
    run, log = tmp_path / "run", tmp_path / "train.out"
    env = dict(
        os.environ,
        SLURM_CONF=slurm,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        PYTHONPATH=str(REPO),
        WXEMU_ACCELERATOR="cpu",
        OMP_NUM_THREADS="1",
    )
    overrides = ["--nodes=1", "--ntasks-per-node=2", "--gpus-per-node=0", "--cpus-per-task=1", "--time=00:10:00"]
    proc = subprocess.run(
        ["sbatch", "--wait", *overrides, f"--output={log}", str(TRAIN), str(store), str(run), str(config)],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + out[-3000:]
    assert "MEMBER: 1/2" in out and "MEMBER: 2/2" in out and "distributed_backend=gloo" in out
    assert (run / "model.safetensors").is_file() and "(3 steps)" in out
