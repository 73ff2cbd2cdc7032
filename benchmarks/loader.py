"""Training-sample throughput: the wxemu DataModule vs per-sample xarray ``isel`` vs per-sample raw zarr-python.

Builds (once, in the temp dir) a realistic canonical store: 1.5 degree global grid (121 x 240), 69 channels
(5 pressure-level variables x 13 levels + 4 surface variables), ``--times`` hourly steps, one time step per chunk,
the ingest's codec (data_catalog.store.data_encoding: blosc-lz4 + shuffle), smooth fields plus noise so that
they compress like real data. A sample is a 2-step window (t, t+1) of all 69 channels (16 MB float32).

    python benchmarks/loader.py [--times 200] [--samples 64] [--batch-size 8] [--workers 0 1]

Prints samples/s for each reader, side by side, and the ratios of the DataModule to the others. The DataModule
rows count windows out of the train loader (which ships physical states; normalisation and the gather into
windows run on the accelerator in training), and the same plus that normalisation done on the CPU.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)
LEVEL_VARS = ("geopotential", "temperature", "u_component_of_wind", "v_component_of_wind", "specific_humidity")
SURFACE_VARS = ("2m_temperature", "10m_u_component_of_wind", "10m_v_component_of_wind", "mean_sea_level_pressure")


def build_store(path: Path, n_times: int) -> Path:
    """Write the benchmark store (skipped when it exists and is complete)."""
    from data_catalog.store import data_encoding, is_complete

    if is_complete(str(path)):
        return path
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import _synthetic

    rng = np.random.default_rng(0)
    lat = np.linspace(-90, 90, 121)
    lon = np.arange(240) * 1.5
    times = pd.date_range("2020-01-01", periods=n_times, freq="1h").values
    base = (np.cos(np.deg2rad(lat))[:, None] * np.cos(np.deg2rad(lon))[None, :]).astype(np.float32)
    phase = np.sin(2 * np.pi * np.arange(n_times) / 24.0).astype(np.float32)[:, None, None]

    def field(extra_shape: tuple[int, ...], scale: float) -> np.ndarray:
        shape = (n_times, *extra_shape, 121, 240)
        noise = rng.standard_normal(shape, dtype=np.float32) * 0.05
        smooth = base * (1 + 0.1 * phase.reshape((n_times,) + (1,) * len(extra_shape) + (1, 1)))
        return (scale * (smooth + noise)).astype(np.float32)

    data = {v: (("time", "level", "latitude", "longitude"), field((len(LEVELS),), 100.0)) for v in LEVEL_VARS}
    data.update({v: (("time", "latitude", "longitude"), field((), 10.0)) for v in SURFACE_VARS})
    ds = xr.Dataset(data, coords={"time": times, "level": np.array(LEVELS), "latitude": lat, "longitude": lon})
    encoding = data_encoding(ds)
    assert all(e.get("chunks", (1,))[0] == 1 for k, e in encoding.items() if k in ds.data_vars)
    _synthetic.write_canonical_store(ds, path, climatology=False)
    return path


def bench_xarray(store: Path, anchors: np.ndarray) -> float:
    ds = xr.open_zarr(store)
    names = [v for v in ds.data_vars if "time" in ds[v].dims]
    t0 = time.perf_counter()
    for a in anchors:
        sample = ds[names].isel(time=slice(int(a), int(a) + 2)).load()
        _ = [sample[v].values for v in names]
    return len(anchors) / (time.perf_counter() - t0)


def bench_raw_zarr(store: Path, anchors: np.ndarray) -> float:
    import zarr

    group = zarr.open_group(str(store), mode="r")
    arrays = [group[v] for v in (*LEVEL_VARS, *SURFACE_VARS)]
    t0 = time.perf_counter()
    for a in anchors:
        _ = [arr[int(a) : int(a) + 2] for arr in arrays]
    return len(anchors) / (time.perf_counter() - t0)


def bench_datamodule(store: Path, n_samples: int, batch_size: int, workers: int, assemble: bool) -> float:
    """Windows/s out of the train loader; ``assemble``: also normalise + gather them on the CPU (in training that
    runs on the accelerator)."""
    from pipeline.datamodule import WindowDataModule, assemble_windows

    t_all = pd.DatetimeIndex(xr.open_zarr(store).time.values)
    dm = WindowDataModule(
        str(store),
        train=(str(t_all[0]), str(t_all[-1])),
        val=(str(t_all[0]), str(t_all[-1])),
        test=(str(t_all[0]), str(t_all[-1])),
        rollout_steps=1,
        step_hours=[1],
        batch_size=batch_size,
        num_workers=workers,
        diff_stats_samples=2,
    )
    dm.setup()
    loader = dm.train_dataloader()
    it = iter(loader)
    next(it)  # start workers / open arrays / first forcings outside the timing
    n, t0 = 0, time.perf_counter()
    while n < n_samples:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        if assemble:
            batch = assemble_windows(batch, dm.stats, 1)
        n += batch["index"].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=os.path.join(tempfile.gettempdir(), "wxemu-bench-loader-121x240.zarr"))
    parser.add_argument("--times", type=int, default=200)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1])
    args = parser.parse_args()
    t0 = time.perf_counter()
    store = build_store(Path(args.store), args.times)
    print(f"store {store} ready ({time.perf_counter() - t0:.0f} s); sample = 2 steps x 69 channels x 121 x 240")
    rng = np.random.default_rng(1)
    anchors = rng.integers(0, args.times - 2, size=args.samples)
    raw = bench_raw_zarr(store, anchors)
    xa = bench_xarray(store, anchors[: max(8, args.samples // 2)])
    print(f"{'reader':<34}{'samples/s':>10}{'vs xarray':>11}{'vs raw zarr':>13}")
    print(f"{'xarray isel per sample':<34}{xa:>10.1f}{1.0:>11.2f}{xa / raw:>13.2f}")
    print(f"{'raw zarr-python per sample':<34}{raw:>10.1f}{raw / xa:>11.2f}{1.0:>13.2f}")
    for w in args.workers:
        for assemble in (False, True):
            dm = bench_datamodule(store, args.samples, args.batch_size, w, assemble)
            label = f"DataModule (b{args.batch_size}, {w} workers{', +CPU norm' if assemble else ''})"
            print(f"{label:<34}{dm:>10.1f}{dm / xa:>11.2f}{dm / raw:>13.2f}")


if __name__ == "__main__":
    main()
