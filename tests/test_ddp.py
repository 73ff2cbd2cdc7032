"""Real 2-process DDP training on CPU (gloo), launched as Lightning launches from a script."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import _synthetic
import pytest
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_two_rank_ddp_sees_different_samples_and_ends_identical(tmp_path: Path) -> None:
    store = _synthetic.write_canonical_store(
        _synthetic.synthetic_dataset(n_time=48, n_lat=6, n_lon=8), tmp_path / "s.zarr"
    )
    config = tmp_path / "c.yaml"
    config.write_text(
        "model: {config: {latent: 8, processor_layers: 1}}\n"
        "data: {train: ['2020-01-01T00', '2020-01-02T05'], val: ['2020-01-02T06', '2020-01-02T23'],\n"
        "       test: ['2020-01-02T06', '2020-01-02T23'], step_hours: [1], batch_size: 4, num_workers: 0}\n"
        "rollout: {max_steps: 1}\n"
        "trainer: {max_steps: 3, val_every_n_steps: 3, debug_ranks: true}\n"
    )
    run = tmp_path / "run"
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "workflows.cli",
            "train",
            "--store",
            str(store),
            "--out",
            str(run),
            "--config",
            str(config),
            "--devices",
            "2",
            "--strategy",
            "ddp",
            "--accelerator",
            "cpu",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = run / "ranks"
    lines = [(ranks / f"indices-rank{r}.txt").read_text().splitlines() for r in (0, 1)]
    assert len(lines[0]) == len(lines[1]) == 3  # 3 steps on each rank (batches of <= 4 windows)
    seen = [[int(x) for line in rank_lines for x in line.split()] for rank_lines in lines]
    assert min(map(len, seen)) >= 3
    assert set(seen[0]).isdisjoint(seen[1])  # each rank read its own share
    w0 = load_file(str(ranks / "weights-rank0.safetensors"))
    w1 = load_file(str(ranks / "weights-rank1.safetensors"))
    assert w0.keys() == w1.keys() and len(w0) > 0
    for key in w0:
        assert (w0[key] == w1[key]).all(), key  # gradients were all-reduced: identical replicas
    assert (run / "model.safetensors").exists()
