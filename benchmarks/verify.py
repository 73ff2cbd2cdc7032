"""Benchmark: scoring one forecast store with wxemu verify vs the xarray code a user would write vs xskillscore.

Builds a realistic store in a temporary directory (1.5 deg global grid 121 x 240, `temperature` on 13 levels and
`2m_temperature`, --inits initial times every 12 h x --leads lead times every 12 h, smooth synthetic fields:
travelling waves on a latitude/level background; forecasts = truth at the valid time + an error growing with lead),
then runs each implementation in its own subprocess (so peak RSS is its own) on the same workload: RMSE, MAE, bias
and ACC for the global, tropics and northern extra-tropics regions. Prints wall time, peak RSS, ratios and the
largest relative difference of each implementation's RMSE from wxemu's.

    .venv/bin/python benchmarks/verify.py [--inits 60] [--leads 20] [--keep DIR]

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
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LEVELS = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]
REGIONS = {"global": (-90, 90), "tropics": (-20, 20), "northern_extra_tropics": (20, 90)}
METRICS = ["rmse", "mae", "bias", "acc"]


# ------------------------------------------------------------------------------------------------ synthetic data
def _field(times_h: np.ndarray, lat: np.ndarray, lon: np.ndarray, levels: list[int] | None, seed: int) -> np.ndarray:
    """Smooth fields (n_time, [n_level], lat, lon), float32: background + 3 travelling waves."""
    rng = np.random.default_rng(seed)
    phi, lam = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
    nlev = len(levels) if levels else 1
    lev = np.asarray(levels or [1000], float)
    base = (288.0 - 60 * np.sin(phi) ** 2 + 0 * lam)[None] - 0.05 * (1000 - lev)[:, None, None]  # (L, lat, lon)
    out = np.empty((len(times_h), nlev, lat.size, lon.size), np.float32)
    waves = [(k, rng.uniform(2, 8), rng.uniform(0.02, 0.1), rng.uniform(0, 2 * np.pi)) for k in (2, 4, 7)]
    for i, t in enumerate(times_h):
        f = base.copy()
        for k, amp, speed, ph in waves:
            f += (amp * np.cos(phi) * np.sin(k * lam - speed * t + ph))[None] * (0.5 + lev / 2000)[:, None, None]
        out[i] = f
    return out if levels else out[:, 0]


def build_stores(root: Path, n_init: int, n_lead: int) -> dict[str, str]:
    import pandas as pd
    import xarray as xr

    lat = np.linspace(-90, 90, 121)
    lon = np.arange(240) * 1.5
    t0 = np.datetime64("2020-01-01T00", "ns")
    n_truth = n_init + n_lead
    times = t0 + np.arange(n_truth) * np.timedelta64(12, "h")
    hours = np.arange(n_truth) * 12.0
    truth = xr.Dataset(
        {
            "temperature": (
                ("time", "level", "latitude", "longitude"),
                _field(hours, lat, lon, LEVELS, 1),
                {"units": "K"},
            ),
            "2m_temperature": (("time", "latitude", "longitude"), _field(hours, lat, lon, None, 2), {"units": "K"}),
        },
        coords={"time": times, "level": LEVELS, "latitude": lat, "longitude": lon},
        attrs={"wxemu_complete": True},
    )
    paths = {"truth": str(root / "truth.zarr"), "forecast": str(root / "forecast.zarr")}
    truth.chunk({"time": 1}).to_zarr(paths["truth"], mode="w", zarr_format=3, consolidated=True)
    # climatology on the days covered (dims dayofyear, hour, [level], lat, lon), WB2 layout
    doy = np.unique(pd.DatetimeIndex(times).day_of_year)
    clim = truth.mean("time").expand_dims(dayofyear=doy, hour=[0, 12]).astype(np.float32)
    clim = clim.chunk({"dayofyear": 1, "hour": 1})  # one field per chunk, as an ingest writes it
    clim.to_zarr(paths["truth"], group="climatology", mode="w", zarr_format=3, consolidated=True)
    # forecast: truth at the valid time + error growing with lead (smooth, init-dependent) + small bias
    leads = np.arange(1, n_lead + 1) * np.timedelta64(12, "h")
    fc = xr.Dataset(
        coords={
            "time": times[:n_init],
            "prediction_timedelta": leads.astype("timedelta64[ns]"),
            "level": LEVELS,
            "latitude": lat,
            "longitude": lon,
        },
        attrs={"wxemu_model": "synthetic", "wxemu_complete": True},
    )
    shapes = {"temperature": (n_init, n_lead, len(LEVELS), 121, 240), "2m_temperature": (n_init, n_lead, 121, 240)}
    dims = {
        "temperature": ("time", "prediction_timedelta", "level", "latitude", "longitude"),
        "2m_temperature": ("time", "prediction_timedelta", "latitude", "longitude"),
    }
    import dask.array as da

    for v, shape in shapes.items():
        fc[v] = (dims[v], da.zeros(shape, chunks=(1,) + shape[1:], dtype=np.float32), {"units": "K"})
    fc.to_zarr(paths["forecast"], mode="w", zarr_format=3, compute=False, consolidated=True)
    err_t = _field(np.arange(n_init) * 37.0, lat, lon, LEVELS, 3) - _field(np.zeros(1), lat, lon, LEVELS, 3)
    err_s = _field(np.arange(n_init) * 37.0, lat, lon, None, 4) - _field(np.zeros(1), lat, lon, None, 4)
    scale = np.sqrt(np.arange(1, n_lead + 1) / n_lead).astype(np.float32)
    for i in range(n_init):
        idx = i + np.arange(1, n_lead + 1)
        block = xr.Dataset(
            {
                "temperature": (
                    dims["temperature"],
                    truth["temperature"].values[idx][None]
                    + 0.3
                    + scale[None, :, None, None, None] * err_t[i][None, None],
                ),
                "2m_temperature": (
                    dims["2m_temperature"],
                    truth["2m_temperature"].values[idx][None] - 0.2 + scale[None, :, None, None] * err_s[i][None, None],
                ),
            }
        )
        block.to_zarr(
            paths["forecast"],
            region={
                "time": slice(i, i + 1),
                "prediction_timedelta": slice(None),
                "level": slice(None),
                "latitude": slice(None),
                "longitude": slice(None),
            },
        )
    return paths


# ------------------------------------------------------------------------------------------------ implementations
def run_wxemu(paths: dict[str, str]) -> dict:
    from pipeline.verify import VerifyConfig, verify

    scores, _ = verify(
        VerifyConfig(forecasts=[paths["forecast"]], truth=paths["truth"], metrics=METRICS, regions=list(REGIONS))
    )
    rmse = scores.sel(metric="rmse").isel(forecast=0)
    return {
        "rmse_T850": rmse["temperature"].sel(level=850).transpose("region", ...).values.tolist(),
        "rmse_T2m": rmse["2m_temperature"].transpose("region", ...).values.tolist(),
    }


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


def _per_lead(paths: dict[str, str], score_lead) -> dict:
    """Loop over lead times as a user would: truth at valid time = init + lead, scores per region, then stack."""
    import xarray as xr

    fc, truth, clim, w = _naive_inputs(paths)
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
            score_lead(f, t, c, w.where((w.latitude >= lo) & (w.latitude <= hi), 0)) for lo, hi in REGIONS.values()
        ]
        per_lead.append(xr.concat(per_region, dim="region").compute())
    res = xr.concat(per_lead, dim="prediction_timedelta")
    return {
        "rmse_T850": res["temperature"].isel(metric=0).sel(level=850).transpose("region", ...).values.tolist(),
        "rmse_T2m": res["2m_temperature"].isel(metric=0).transpose("region", ...).values.tolist(),
    }


def run_naive(paths: dict[str, str]) -> dict:
    """What a user would write with xarray + dask: per lead, weighted means per region, one compute per lead."""
    import xarray as xr

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

    return _per_lead(paths, score)


def run_xskillscore(paths: dict[str, str]) -> dict:
    import xarray as xr
    import xskillscore as xs

    def score(f, t, c, wr):
        wr = (wr * xr.ones_like(f.longitude)).astype("f4")
        dims = ["latitude", "longitude"]
        fa, ta = f - c, t - c
        acc = (fa * ta).weighted(wr).mean(dims) / np.sqrt(
            (fa**2).weighted(wr).mean(dims) * (ta**2).weighted(wr).mean(dims)
        )

        def per_var(fn):
            return xr.Dataset({v: fn(f[v], t[v], dim=dims, weights=wr) for v in f.data_vars})

        return xr.concat(
            [
                np.sqrt(per_var(xs.mse).mean("time")),
                per_var(xs.mae).mean("time"),
                per_var(xs.me).mean("time"),
                acc.mean("time"),
            ],
            dim="metric",
        )

    return _per_lead(paths, score)


IMPLEMENTATIONS = {"wxemu": run_wxemu, "naive_xarray": run_naive, "xskillscore": run_xskillscore}


def peak_rss_mb() -> float:
    """Peak RSS of this process in MiB: ``VmHWM`` (Linux), else ``ru_maxrss``.

    ``ru_maxrss`` survives fork + exec on Linux, so a child started by a parent that had just built a large store
    reported the parent's peak (both implementations showed the same 387 MiB); ``VmHWM`` belongs to the child's
    own address space.
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
    base = peak_rss_mb()
    t = time.perf_counter()
    result = IMPLEMENTATIONS[name](paths)
    result["seconds"] = time.perf_counter() - t
    result["peak_rss_mb"] = peak_rss_mb()
    result["rss_at_start_mb"] = base
    print("RESULT " + json.dumps(result))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inits", type=int, default=60)
    parser.add_argument("--leads", type=int, default=20)
    parser.add_argument("--only", nargs="+", choices=list(IMPLEMENTATIONS), default=list(IMPLEMENTATIONS))
    parser.add_argument("--keep", metavar="DIR", help="build (or reuse) the stores in DIR and keep them")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(*args.child)
        return 0
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="wxemu-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        paths = {"truth": str(root / "truth.zarr"), "forecast": str(root / "forecast.zarr")}
        if not (Path(paths["forecast"]) / "zarr.json").exists():
            t = time.perf_counter()
            paths = build_stores(root, args.inits, args.leads)
            print(f"built stores in {root} ({time.perf_counter() - t:.0f} s)")
        size = sum(f.stat().st_size for f in Path(paths["forecast"]).rglob("*") if f.is_file()) / 2**20
        print(f"forecast store: {size:.0f} MiB on disk; workload: {', '.join(METRICS)} x {', '.join(REGIONS)}")
        env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        results = {}
        for name in args.only:
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
        print(f"{'implementation':<14} {'seconds':>8} {'peak RSS MiB':>12} {'x wxemu time':>12} {'max rel diff':>12}")
        for name, r in results.items():
            ratio = r["seconds"] / ref["seconds"] if ref else float("nan")
            diff = (
                max(np.max(np.abs(np.array(r[k]) / np.array(ref[k]) - 1)) for k in ("rmse_T850", "rmse_T2m"))
                if ref
                else float("nan")
            )
            print(f"{name:<14} {r['seconds']:8.1f} {r['peak_rss_mb']:12.0f} {ratio:12.2f} {diff:12.1e}")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
