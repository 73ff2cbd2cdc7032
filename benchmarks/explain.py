"""Time and peak memory of one `wxemu explain` (integrated gradients, 32 points; SmoothGrad, 16 samples) at +1 h
and +24 h on the UK sample, beside the cheapest explanation (plain gradients, no faithfulness curves), printed as
ratios.

    python benchmarks/explain.py --checkpoint demo-output/runs/graph --store demo-output/era5_uk_t2m.zarr

Without ``--checkpoint`` a small graph emulator is trained for 60 steps first (not timed). Target (issue 18):
under 30 s on 2 CPU cores for the UK case at +24 h.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import _synthetic  # noqa: E402

from pipeline.explain import ExplainConfig, explain  # noqa: E402
from workflows.cli import main  # noqa: E402

CONFIG = """model: {kind: graph}
data: {train: ["2019-03-01T00", "2019-03-21T23"], val: ["2019-03-22T00", "2019-03-24T23"],
       test: ["2019-03-25T00", "2019-03-31T23"], step_hours: [1, 3, 6, 12, 24], climatology_forcing: true,
       batch_size: 8, num_workers: 0}
trainer: {max_steps: 60, val_every_n_steps: 60, limit_val_batches: 1}
"""


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--store", default=None)
    parser.add_argument("--init", default="2019-03-25T00")
    args = parser.parse_args(argv)
    store = args.store or str(_synthetic.cached_uk_store())
    checkpoint = args.checkpoint
    if checkpoint is None:
        tmp = Path(tempfile.mkdtemp(prefix="wxemu-explain-bench-"))
        (tmp / "config.yaml").write_text(CONFIG)
        if main(["train", "--store", store, "--out", str(tmp / "run"), "--config", str(tmp / "config.yaml")]) != 0:
            raise SystemExit("training the benchmark's model failed")
        checkpoint = str(tmp / "run")
    print(f"checkpoint {checkpoint}, store {store}, init {args.init}")
    print("| lead | method | explain s | gradient-only s | ratio | peak RSS MB |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for lead in ("1h", "24h"):
        t0 = time.perf_counter()
        explain(
            ExplainConfig(
                checkpoint=checkpoint,
                store=store,
                init=args.init,
                lead=lead,
                method="gradient",
                random_orderings=1,
                deletion_blocks=1,
            )
        )
        base = time.perf_counter() - t0
        for method in ("integrated_gradients", "smoothgrad"):
            t0 = time.perf_counter()
            explain(
                ExplainConfig(
                    checkpoint=checkpoint,
                    store=store,
                    init=args.init,
                    lead=lead,
                    method=method,
                    n_steps=32,
                    n_samples=16,
                )
            )
            took = time.perf_counter() - t0
            print(f"| +{lead} | {method} | {took:.1f} | {base:.1f} | {took / base:.1f}x | {peak_mb():.0f} |")


if __name__ == "__main__":
    main_()
