"""Time and peak memory of one `wxemu explain` (integrated gradients, 32 points; SmoothGrad, 16 samples) at +1 h
and +24 h, beside the cheapest explanation (plain gradients, no faithfulness curves), printed as ratios; on the
UK sample (33 x 49) and on a 1.5 deg global grid (121 x 240).

    python benchmarks/explain.py --checkpoint demo-output/runs/graph --store demo-output/era5_uk_t2m.zarr
    python benchmarks/explain.py --case global

Without ``--checkpoint`` a small graph emulator is trained first (not timed): 60 steps on the UK sample. The
global case always trains its own demo-size graph emulator (latent 32, 2 processor layers, steps 1-24 h) for a
few steps on a synthetic global store (the bundled data has no hourly global reanalysis): its numbers are the
cost of an explanation, not of a good one. The global store's climatology group holds values only on its own
days (the hourly mean over them). Target (issue 18): under 30 s on 2 CPU cores for the UK case
at +24 h.
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
import numpy as np  # noqa: E402

from pipeline.explain import ExplainConfig, explain  # noqa: E402
from workflows.cli import main  # noqa: E402

UK_CONFIG = """model: {kind: graph}
data: {train: ["2019-03-01T00", "2019-03-21T23"], val: ["2019-03-22T00", "2019-03-24T23"],
       test: ["2019-03-25T00", "2019-03-31T23"], step_hours: [1, 3, 6, 12, 24], climatology_forcing: true,
       batch_size: 8, num_workers: 0}
trainer: {max_steps: 60, val_every_n_steps: 60, limit_val_batches: 1}
"""
GLOBAL_CONFIG = """model: {kind: graph, config: {latent: 32, processor_layers: 2}}
data: {train: ["2020-01-01T00", "2020-01-02T11"], val: ["2020-01-02T12", "2020-01-02T23"],
       test: ["2020-01-03T00", "2020-01-04T23"], step_hours: [1, 3, 6, 12, 24], batch_size: 2, num_workers: 0}
trainer: {max_steps: STEPS, val_every_n_steps: STEPS, limit_val_batches: 1}
"""
GLOBAL_INIT = "2020-01-03T00"


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train(store: str, config: str, tmp: Path) -> str:
    (tmp / "config.yaml").write_text(config)
    if main(["train", "--store", store, "--out", str(tmp / "run"), "--config", str(tmp / "config.yaml")]) != 0:
        raise SystemExit("training the benchmark's model failed")
    return str(tmp / "run")


def global_store(tmp: Path) -> str:
    """A synthetic 1.5 deg global store (121 x 240; 2 m temperature and temperature at 500 and 850 hPa, a land-sea
    mask), four days hourly. Its climatology group holds values only on the store's days (the hourly mean over
    them); the other days of year are unwritten chunks (NaN), so the group takes megabytes, not gigabytes."""
    import dask.array as da
    import xarray as xr
    import zarr

    ds = _synthetic.synthetic_dataset(n_time=96, n_lat=121, n_lon=240, levels=(500, 850), start="2020-01-01T00")
    ds = ds.assign_coords(latitude=np.linspace(-90.0, 90.0, 121), longitude=np.arange(240) * 1.5)
    path = _synthetic.write_canonical_store(ds, tmp / "global.zarr", climatology=False)
    days = np.unique(ds["time"].dt.dayofyear.values)
    hourly = {n: v.groupby(v.time.dt.hour).mean("time") for n, v in ds.data_vars.items() if "time" in v.dims}
    template = xr.Dataset(
        {
            n: (("dayofyear",) + v.dims, da.full((366,) + v.shape, np.nan, dtype=np.float32, chunks=(1,) + v.shape))
            for n, v in hourly.items()
        },
        coords={"dayofyear": np.arange(1, 367), **{c: hourly["2m_temperature"][c].values for c in ("hour",)}},
    )
    template = template.assign_coords({k: ds[k].values for k in ("latitude", "longitude", "level")})
    template.to_zarr(path, group="climatology", mode="w", compute=False, zarr_format=3, consolidated=False)
    zarr.consolidate_metadata(path)
    block = xr.Dataset({n: v.expand_dims(dayofyear=days).astype(np.float32) for n, v in hourly.items()})
    block = block.drop_vars([c for c in block.coords if c != "dayofyear"])
    block.to_zarr(path, group="climatology", region={"dayofyear": slice(int(days[0]) - 1, int(days[-1]))})
    zarr.consolidate_metadata(path)
    return str(path)


def measure(label: str, checkpoint: str, store: str, init: str, baseline: str, leads, methods) -> None:
    for lead in leads:
        common = dict(checkpoint=checkpoint, store=store, init=init, lead=lead, baseline=baseline)
        t0 = time.perf_counter()
        explain(ExplainConfig(method="gradient", random_orderings=1, deletion_blocks=1, **common))
        base = time.perf_counter() - t0
        for method in methods:
            t0 = time.perf_counter()
            explain(ExplainConfig(method=method, n_steps=32, n_samples=16, **common))
            took = time.perf_counter() - t0
            print(
                f"| {label} | +{lead} | {method} | {took:.1f} | {base:.1f} | {took / base:.1f}x | {peak_mb():.0f} |",
                flush=True,
            )


def main_(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("uk", "global", "both"), default="both")
    parser.add_argument("--checkpoint", default=None, help="UK case: a trained checkpoint (default: train one)")
    parser.add_argument("--store", default=None, help="UK case: the store (default: the UK sample, ingested)")
    parser.add_argument("--init", default="2019-03-25T00", help="UK case: the initial time")
    parser.add_argument("--global-steps", type=int, default=5, help="training steps of the global model")
    parser.add_argument("--leads", nargs="+", default=["1h", "24h"])
    parser.add_argument("--methods", nargs="+", default=["integrated_gradients", "smoothgrad"])
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="wxemu-explain-bench-"))
    print("| grid | lead | method | explain s | gradient-only s | ratio | peak RSS MB |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |", flush=True)
    if args.case in ("uk", "both"):
        store = args.store or str(_synthetic.cached_uk_store())
        (tmp / "uk").mkdir()
        checkpoint = args.checkpoint or train(store, UK_CONFIG, tmp / "uk")
        measure("UK 33x49", checkpoint, store, args.init, "climatology", args.leads, args.methods)
    if args.case in ("global", "both"):
        (tmp / "global").mkdir()
        store = global_store(tmp / "global")
        checkpoint = train(store, GLOBAL_CONFIG.replace("STEPS", str(args.global_steps)), tmp / "global")
        print(
            f"(global: synthetic 1.5 deg store, no hourly global reanalysis is bundled; graph latent 32, 2 layers, "
            f"{args.global_steps} training steps)",
            flush=True,
        )
        measure("global 121x240", checkpoint, store, GLOBAL_INIT, "climatology", args.leads, args.methods)


if __name__ == "__main__":
    main_()
