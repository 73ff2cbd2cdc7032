"""Benchmark: wxemu verify beside WeatherBench2's own ``evaluate_in_memory`` (and naive xarray), on both storage
orders, in one run.

Builds realistic stores in a temporary directory (1.5 deg global grid 121 x 240, `temperature` on 13 levels and
`2m_temperature`, --inits initial times every 12 h x --leads lead times every 12 h, smooth synthetic fields;
forecasts = truth at the valid time + an error growing with lead), once with arrays stored latitude first and once
longitude first (WeatherBench2's published layout), then runs each implementation in its own subprocess (so peak
RSS is its own) on the same workload: RMSE, MAE, bias and ACC for WeatherBench2's global, tropics and
northern-hemisphere regions. Prints wall time, peak RSS, each time over wxemu's and the largest relative difference
of RMSE and ACC from wxemu's. With --workers N..., also wxemu on a dask LocalCluster of N processes.

WeatherBench2 runs when ``weatherbench2`` is importable (install it by hand from its repository:
``pip install --no-deps /path/to/weatherbench2``; it is never vendored). Its ``evaluation`` module imports
apache_beam and xarray_beam at the top, for its Beam pipeline only; when they are not installed (installing
apache-beam would downgrade protobuf in the shared venv) the WeatherBench2 child process registers empty stand-ins
for those two modules before importing it and says so: ``evaluate_in_memory`` itself uses neither.

    .venv/bin/python benchmarks/verify.py [--inits 20] [--leads 10] [--layouts lat_first lon_first]
                                          [--workers 1 2] [--keep DIR]

Timings on a shared 2-core machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from pipeline.verification.testing import wave_fields  # noqa: E402

LEVELS = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]
#: WeatherBench2's regions (the same names mean the same boxes in wxemu): name -> latitude band
REGIONS = {"global": (-90, 90), "tropics": (-20, 20), "northern-hemisphere": (20, 90)}
METRICS = ["rmse", "mae", "bias", "acc"]


# ------------------------------------------------------------------------------------------------ synthetic data
def build_stores(root: Path, n_init: int, n_lead: int, lon_first: bool) -> dict[str, str]:
    """Truth (+ group climatology) and forecast stores, one init per forecast chunk, one time per truth chunk;
    ``lon_first``: arrays stored (..., longitude, latitude), as WeatherBench2 publishes them."""
    import dask.array as da
    import pandas as pd
    import xarray as xr

    lat = np.linspace(-90, 90, 121)
    lon = np.arange(240) * 1.5
    grid = ["longitude", "latitude"] if lon_first else ["latitude", "longitude"]
    t0 = np.datetime64("2020-01-01T00", "ns")
    n_truth = n_init + n_lead
    times = t0 + np.arange(n_truth) * np.timedelta64(12, "h")
    hours = np.arange(n_truth) * 12.0
    dims_t = {
        "temperature": ["time", "level", "latitude", "longitude"],
        "2m_temperature": ["time", "latitude", "longitude"],
    }
    values_t = {
        "temperature": wave_fields(hours, lat, lon, LEVELS, 1),
        "2m_temperature": wave_fields(hours, lat, lon, None, 2),
    }
    truth = xr.Dataset(
        {v: (dims_t[v], values_t[v], {"units": "K"}) for v in dims_t},
        coords={"time": times, "level": LEVELS, "latitude": lat, "longitude": lon},
    )
    truth_stored = truth.transpose(..., *grid)
    paths = {"truth": str(root / "truth.zarr"), "forecast": str(root / "forecast.zarr")}
    truth_stored.chunk({"time": 1}).to_zarr(paths["truth"], mode="w", zarr_format=3, consolidated=True)
    doy = np.unique(pd.DatetimeIndex(times).day_of_year)
    clim = truth.mean("time").expand_dims(dayofyear=doy, hour=[0, 12]).astype(np.float32).transpose(..., *grid)
    clim = clim.chunk({"dayofyear": 1, "hour": 1})  # one field per chunk, as an ingest writes it
    clim.to_zarr(paths["truth"], group="climatology", mode="w", zarr_format=3, consolidated=True)
    leads = (np.arange(1, n_lead + 1) * np.timedelta64(12, "h")).astype("timedelta64[ns]")
    dims = {
        "temperature": ["time", "prediction_timedelta", "level", *grid],
        "2m_temperature": ["time", "prediction_timedelta", *grid],
    }
    size = {"time": n_init, "prediction_timedelta": n_lead, "level": len(LEVELS), "latitude": 121, "longitude": 240}
    fc = xr.Dataset(
        coords={
            "time": times[:n_init],
            "prediction_timedelta": leads,
            "level": LEVELS,
            "latitude": lat,
            "longitude": lon,
        },
        attrs={"wxemu_model": "synthetic"},
    )
    for v, d in dims.items():
        shape = tuple(size[k] for k in d)
        fc[v] = (d, da.zeros(shape, chunks=(1,) + shape[1:], dtype=np.float32), {"units": "K"})
    fc.to_zarr(paths["forecast"], mode="w", zarr_format=3, compute=False, consolidated=True)
    err = {
        "temperature": wave_fields(np.arange(n_init) * 37.0, lat, lon, LEVELS, 3)
        - wave_fields(np.zeros(1), lat, lon, LEVELS, 3),
        "2m_temperature": wave_fields(np.arange(n_init) * 37.0, lat, lon, None, 4)
        - wave_fields(np.zeros(1), lat, lon, None, 4),
    }
    bias = {"temperature": 0.3, "2m_temperature": -0.2}
    scale = np.sqrt(np.arange(1, n_lead + 1) / n_lead).astype(np.float32)
    for i in range(n_init):
        idx = i + np.arange(1, n_lead + 1)
        block = {}
        for v in dims:
            s = scale.reshape(-1, *[1] * (values_t[v].ndim - 1))
            arr = values_t[v][idx] + bias[v] + s * err[v][i][None]
            natural = ["prediction_timedelta"] + dims_t[v][1:]
            block[v] = xr.DataArray(arr[None], dims=["time", *natural]).transpose(*dims[v])
        xr.Dataset(block).to_zarr(paths["forecast"], region={d: slice(None) for d in size} | {"time": slice(i, i + 1)})
    return paths


# ------------------------------------------------------------------------------------------------ implementations
def _summary(rmse_t850, rmse_t2m, acc_t850) -> dict:
    return {"rmse_T850": rmse_t850, "rmse_T2m": rmse_t2m, "acc_T850": acc_t850}


def run_wxemu(paths: dict[str, str], workers: int | None = None) -> dict:
    from pipeline.verification import VerifyConfig, verify

    config = VerifyConfig(
        forecasts=[paths["forecast"]], truth=paths["truth"], metrics=METRICS, regions=list(REGIONS), spectra=False
    )
    scores = verify(config, workers=workers).scores.isel(forecast=0)
    t850 = scores["temperature"].sel(level=850).transpose("metric", "region", ...)
    return _summary(
        t850.sel(metric="rmse").values.tolist(),
        scores["2m_temperature"].sel(metric="rmse").transpose("region", ...).values.tolist(),
        t850.sel(metric="acc").values.tolist(),
    )


def _import_wb2() -> tuple[types.ModuleType, list[str]]:
    """weatherbench2.evaluation, with empty stand-ins for apache_beam / xarray_beam when they are missing."""
    stubbed = []
    for name, attrs in (("apache_beam", ("PTransform", "PCollection")), ("xarray_beam", ("Key",))):
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            for a in attrs:
                setattr(stub, a, object)
            sys.modules[name] = stub
            stubbed.append(name)
    from weatherbench2 import evaluation

    return evaluation, stubbed


def run_wb2(paths: dict[str, str]) -> dict:
    """WeatherBench2's evaluate_in_memory (its data config, metrics and SliceRegions), results read back."""
    import xarray as xr

    evaluation, stubbed = _import_wb2()
    from weatherbench2 import config, metrics, regions

    out_dir = tempfile.mkdtemp(prefix="wb2-results-")
    try:
        fc = xr.open_zarr(paths["forecast"])
        clim = xr.open_zarr(paths["truth"], group="climatology")
        data = config.Data(
            selection=config.Selection(
                variables=["temperature", "2m_temperature"],
                levels=LEVELS,
                time_slice=slice(str(fc.time.values[0]), str(fc.time.values[-1])),
            ),
            paths=config.Paths(forecast=paths["forecast"], obs=paths["truth"], output_dir=out_dir),
            by_init=True,
        )
        wb2_regions = {name: regions.SliceRegion(lat_slice=slice(lo, hi)) for name, (lo, hi) in REGIONS.items()}
        evals = {
            "deterministic": config.Eval(
                metrics={"mse": metrics.MSE(), "mae": metrics.MAE(), "bias": metrics.Bias(), "acc": metrics.ACC(clim)},
                regions=wb2_regions,
            )
        }
        evaluation.evaluate_in_memory(data, evals)
        res = xr.open_dataset(os.path.join(out_dir, "deterministic.nc")).load()
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
    t850 = res["temperature"].sel(level=850).transpose("metric", "region", ...)
    out = _summary(
        np.sqrt(t850.sel(metric="mse")).values.tolist(),
        np.sqrt(res["2m_temperature"].sel(metric="mse")).transpose("region", ...).values.tolist(),
        t850.sel(metric="acc").values.tolist(),
    )
    out["note"] = f"stand-ins for {', '.join(stubbed)}" if stubbed else ""
    return out


def _naive_inputs(paths: dict[str, str]):
    import xarray as xr

    fc = xr.open_zarr(paths["forecast"])
    truth = xr.open_zarr(paths["truth"])
    clim = xr.open_zarr(paths["truth"], group="climatology")
    lat = fc.latitude.values
    bounds = np.deg2rad(
        np.clip(
            np.concatenate(
                [[lat[0] - (lat[1] - lat[0]) / 2], (lat[:-1] + lat[1:]) / 2, [lat[-1] + (lat[-1] - lat[-2]) / 2]]
            ),
            -90,
            90,
        )
    )
    w = fc.latitude.copy(data=np.sin(bounds[1:]) - np.sin(bounds[:-1]))
    return fc, truth, clim, w


def run_naive(paths: dict[str, str]) -> dict:
    """What a user would write with xarray + dask: per lead, weighted means per region, one compute per lead."""
    import xarray as xr

    fc, truth, clim, w = _naive_inputs(paths)

    def score(f, t, c, wr):
        def mean(x):
            return x.weighted(wr).mean(["latitude", "longitude"])

        err, fa, ta = f - t, f - c, t - c
        return xr.concat(
            [
                np.sqrt(mean(err**2).mean("time")),
                mean(abs(err)).mean("time"),
                mean(err).mean("time"),
                (mean(fa * ta) / np.sqrt(mean(fa**2) * mean(ta**2))).mean("time"),
            ],
            dim="metric",
        )

    per_lead = []
    for lead in fc.prediction_timedelta.values:
        f = fc.sel(prediction_timedelta=lead)
        valid = f.time + lead
        t = truth.sel(time=valid.values).assign_coords(time=f.time.values)
        c = clim.sel(
            dayofyear=xr.DataArray(valid.dt.dayofyear.values, dims="time"),
            hour=xr.DataArray(valid.dt.hour.values, dims="time"),
        ).drop_vars(["dayofyear", "hour"])
        c = c.assign_coords(time=f.time.values)
        per_region = [
            score(f, t, c, w.where((w.latitude >= lo) & (w.latitude <= hi), 0)) for lo, hi in REGIONS.values()
        ]
        per_lead.append(xr.concat(per_region, dim="region").compute())
    res = xr.concat(per_lead, dim="prediction_timedelta")
    t850 = res["temperature"].sel(level=850).transpose("metric", "region", ...)
    return _summary(
        t850.isel(metric=0).values.tolist(),
        res["2m_temperature"].isel(metric=0).transpose("region", ...).values.tolist(),
        t850.isel(metric=3).values.tolist(),
    )


def peak_rss_mb() -> float:
    """Peak RSS of this process in MiB: ``VmHWM`` (Linux), else ``ru_maxrss``.

    ``ru_maxrss`` survives fork + exec on Linux, so a child started by a parent that had just built a large store
    reported the parent's peak; ``VmHWM`` belongs to the child's own address space.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child(name: str, paths_json: str) -> None:
    paths = json.loads(paths_json)
    t = time.perf_counter()
    if name.startswith("wxemu_workers"):
        result = run_wxemu(paths, workers=int(name.removeprefix("wxemu_workers")))
    else:
        result = {"wxemu": run_wxemu, "weatherbench2": run_wb2, "naive_xarray": run_naive}[name](paths)
    result["seconds"] = time.perf_counter() - t
    result["peak_rss_mb"] = peak_rss_mb()  # of this process (dask workers are other processes)
    print("RESULT " + json.dumps(result))


def wb2_importable() -> bool:
    try:
        import weatherbench2.metrics  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=20)
    parser.add_argument("--leads", type=int, default=10)
    parser.add_argument("--layouts", nargs="+", choices=["lat_first", "lon_first"], default=["lat_first", "lon_first"])
    parser.add_argument(
        "--only",
        nargs="+",
        choices=["wxemu", "weatherbench2", "naive_xarray"],
        default=["wxemu", "weatherbench2", "naive_xarray"],
    )
    parser.add_argument("--workers", nargs="*", type=int, default=[], help="also wxemu on LocalClusters of N workers")
    parser.add_argument("--keep", metavar="DIR", help="build (or reuse) the stores in DIR and keep them")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    names = list(args.only) + [f"wxemu_workers{n}" for n in args.workers]
    if "weatherbench2" in names and not wb2_importable():
        print("WeatherBench2 is not importable here (pip install --no-deps <its repository>): not run")
        names.remove("weatherbench2")
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="wxemu-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    print(
        f"workload: {args.inits} inits x {args.leads} leads, 121 x 240, temperature on 13 levels + 2 m; "
        f"{', '.join(METRICS)} x {', '.join(REGIONS)}"
    )
    try:
        for layout in args.layouts:
            where = root / f"{layout}-{args.inits}x{args.leads}"
            where.mkdir(exist_ok=True)
            paths = {"truth": str(where / "truth.zarr"), "forecast": str(where / "forecast.zarr")}
            if not (Path(paths["forecast"]) / "zarr.json").exists():
                t = time.perf_counter()
                paths = build_stores(where, args.inits, args.leads, lon_first=layout == "lon_first")
                print(f"built {layout} stores in {where} ({time.perf_counter() - t:.0f} s)")
            size = sum(f.stat().st_size for f in Path(paths["forecast"]).rglob("*") if f.is_file()) / 2**20
            print(f"\n== layout {layout}: forecast store {size:.0f} MiB on disk")
            results = {}
            for name in names:
                proc = subprocess.run(
                    [sys.executable, __file__, "--child", name, json.dumps(paths)],
                    env=env,
                    check=False,
                    capture_output=True,
                    text=True,
                )
                line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
                if proc.returncode or not line:
                    print(f"{name} failed:\n{proc.stderr[-3000:]}")
                    continue
                results[name] = json.loads(line[0][7:])
            ref = results.get("wxemu")
            print(
                f"{'implementation':<18} {'seconds':>8} {'peak RSS MiB':>12} {'x wxemu time':>12} {'max rel diff':>12}"
            )
            for name, r in results.items():
                ratio = r["seconds"] / ref["seconds"] if ref else float("nan")
                diff = (
                    max(
                        np.max(np.abs(np.array(r[k]) / np.array(ref[k]) - 1))
                        for k in ("rmse_T850", "rmse_T2m", "acc_T850")
                    )
                    if ref
                    else float("nan")
                )
                note = f"  ({r['note']})" if r.get("note") else ""
                print(f"{name:<18} {r['seconds']:8.1f} {r['peak_rss_mb']:12.0f} {ratio:12.2f} {diff:12.1e}{note}")
            for name, r in results.items():
                if name.startswith("wxemu_workers"):
                    speed, base = args.inits / r["seconds"], args.inits / ref["seconds"]
                    print(f"{name}: {speed:.2f} inits/s (1 process: {base:.2f})")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
