"""Benchmark: building the dashboard (full, unchanged rebuild, incremental after a new cycle) vs the plain
alternative, a static site of one matplotlib PNG per figure.

Cases (synthetic stores from :mod:`pipeline.dashboard.testing`):

- ``small``: the demo's shape: 4 forecasts (graph, transformer, persistence, climatology) x 2 m temperature x
  global x 24 hourly leads x 144 inits, and 4 forecast stores on a 5 deg grid for the maps;
- ``large``: 10 forecasts x 6 variables (5 on 13 levels) x 3 regions x 40 leads (6-hourly) x 60 inits, and 10
  forecast stores of 2 m temperature on a 1.5 deg grid (121 x 240; the 4 mapped leads x 8 inits) for the maps.

Each build runs in its own subprocess (peak RSS is its own). "incremental" = a second scores store with one new
forecast added to the sources after a full build; "unchanged" = the same build again. The alternative draws the
same content as PNGs (a scorecard per region, a curve per series x region x metric, a timeline per series x
region x metric with one panel per chosen lead, a spectrum per series with one panel per chosen lead, the same
cartopy maps) and has no cache, so its rebuilds cost a full build.

    .venv/bin/python benchmarks/dashboard.py [--case small|large|both] [--keep DIR]

Timings on a shared 2-core machine are noisy; the load average is printed.
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
LEVELS = (50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000)


def make_case(case: str, root: Path) -> dict:
    from pipeline.dashboard.testing import write_synthetic_forecasts, write_synthetic_scores

    root.mkdir(parents=True, exist_ok=True)
    if case == "small":
        names = ["graph", "transformer", "persistence", "climatology"]
        kw = dict(variables={"2m_temperature": None}, regions=("global",), leads_h=tuple(range(1, 25)), n_inits=144)
        map_kw = dict(n_inits=8, leads_h=(1, 9, 16, 24), resolution=5.0)
    else:
        names = [f"model{i}" for i in range(8)] + ["persistence", "climatology"]
        variables = {v: LEVELS for v in ("geopotential", "temperature", "u_component_of_wind", "v_component_of_wind")}
        variables.update({"specific_humidity": LEVELS, "2m_temperature": None})
        kw = dict(
            variables=variables,
            regions=("global", "tropics", "northern_extra_tropics"),
            leads_h=tuple(range(6, 241, 6)),
            n_inits=60,
        )
        map_kw = dict(n_inits=8, leads_h=(6, 84, 162, 240), resolution=1.5)
    scale = {n: 0.7 + 0.05 * i for i, n in enumerate(names)}
    scores = write_synthetic_scores(root / "scores.zarr", forecasts=names, error_scale=scale, **kw)
    new = write_synthetic_scores(root / "new-cycle.zarr", forecasts=["new_model"], error_scale={"new_model": 0.6}, **kw)
    truth, forecasts = write_synthetic_forecasts(root / "fc", forecasts=scale, **map_kw)
    return {"scores": str(scores), "new": str(new), "truth": str(truth), "forecasts": [str(p) for p in forecasts]}


# ------------------------------------------------------------------------------------------------ the alternative
def plain_png_site(scores: list[str], forecasts: list[str], truth: str, out: str) -> int:
    """The alternative: the same content as one matplotlib PNG per figure plus an HTML index; returns #files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pipeline.dashboard import maps as MP
    from pipeline.dashboard.data import load_scores, map_fields, open_truth, pick_headline, pick_leads, pick_reference
    from pipeline.metrics import METRICS

    out_dir = Path(out)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    data = load_scores(scores)
    ref = pick_reference(data, None)
    leads = pick_leads(data, None)
    hours = data.leads_hours()
    files = []

    def save(fig, name):
        fig.savefig(out_dir / name, dpi=80)
        plt.close(fig)
        files.append(name)

    headline = pick_headline(data, None)
    for region in data.scores["region"].values:
        fig, axes = plt.subplots(len(headline), 1, figsize=(10, 1 + 1.2 * len(headline)), squeeze=False)
        for ax, s in zip(axes[:, 0], headline):
            da = s.select(data.scores[s.variable]).sel(metric="rmse", region=region).transpose("forecast", ...)
            pct = 100 * (da.values - da.sel(forecast=ref).values) / da.sel(forecast=ref).values
            ax.imshow(pct, cmap="RdBu_r", vmin=-50, vmax=50, aspect="auto")
            for (i, j), v in np.ndenumerate(da.values):
                ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=5)
        save(fig, f"scorecard-{region}.png")
    for s in data.series():
        da = s.select(data.scores[s.variable])
        pi = s.select(data.per_init[s.variable]).sel(prediction_timedelta=leads)
        for region in da["region"].values:
            for m in da["metric"].values:
                fig, ax = plt.subplots(figsize=(7, 4))
                for f in da["forecast"].values:
                    ax.plot(hours, da.sel(region=region, metric=m, forecast=f).values, label=str(f))
                ax.legend(fontsize=6)
                save(fig, f"curves-{s.key.replace('/', '-')}-{region}-{m}.png")
                fig, axes = plt.subplots(1, len(leads), figsize=(12, 3), squeeze=False)
                for ax, lead in zip(axes[0], leads):
                    for f in pi["forecast"].values:
                        vals = pi.sel(region=region, metric=m, forecast=f, prediction_timedelta=lead).values
                        ax.plot(pi["time"].values, METRICS[str(m)]().finalize(vals))
                save(fig, f"timeline-{s.key.replace('/', '-')}-{region}-{m}.png")
        if data.spectra is not None:
            sp = s.select(data.spectra[s.variable])
            fig, axes = plt.subplots(1, len(leads), figsize=(12, 3), squeeze=False)
            for ax, lead in zip(axes[0], leads):
                for f in sp["forecast"].values:
                    ax.loglog(data.spectra["wavelength_km"].values, sp.sel(forecast=f, prediction_timedelta=lead))
            save(fig, f"spectra-{s.key.replace('/', '-')}.png")
    truth_ds = open_truth(truth)
    for path in forecasts:
        for s in headline:
            f = map_fields(path, truth_ds, truth, s, leads, None)
            if f is None:
                continue
            for i in range(len(f.leads)):
                for what, field in (("bias", f.bias[i]), ("rmse", f.rmse[i])):
                    name = f"map-{f.name}-{s.key.replace('/', '-')}-{what}-{i}.png"
                    MP.draw_field(out_dir / name, f.latitude, f.longitude, field, title=name, units="", diverging=True)
                    files.append(name)
            name = f"panel-{f.name}-{s.key.replace('/', '-')}.png"
            MP.draw_panel(out_dir / name, f.latitude, f.longitude, f.panel, titles=("f", "t", "e"), units="")
            files.append(name)
    (out_dir / "index.html").write_text("".join(f'<img src="{n}">\n' for n in files))
    return len(files)


# ------------------------------------------------------------------------------------------------ one measured run
def run_one(kind: str, spec: dict, out: str) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    if kind == "alternative":
        n = plain_png_site([spec["scores"]], spec["forecasts"], spec["truth"], out)
        info = {"drawn": n, "reused": 0}
    else:
        from pipeline.dashboard import DashboardConfig, build_dashboard

        scores = [spec["scores"], spec["new"]] if kind == "incremental" else [spec["scores"]]
        config = DashboardConfig(scores=scores, forecasts=spec["forecasts"], truth=spec["truth"], out=out)
        result = build_dashboard(config)
        info = {"drawn": len(result.drawn), "reused": len(result.reused)}
    wall = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall_s": wall, "cpu_s": time.process_time() - c0, "peak_rss_mb": rss, **info}


def measure(kind: str, spec: dict, out: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, __file__, "--one", kind, "--spec", json.dumps(spec), "--out", out]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO)
    if proc.returncode:
        raise SystemExit(f"{kind} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=["small", "large", "both"], default="both")
    parser.add_argument("--keep", help="directory for the stores and sites (default: a temporary one, removed)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, json.loads(args.spec), args.out)))
        return
    root = Path(args.keep or tempfile.mkdtemp(prefix="wxemu-bench-dashboard-"))
    os.environ.setdefault("WXEMU_DATA_DIR", str(REPO.parent / "shared" / "data"))
    try:
        for case in ["small", "large"] if args.case == "both" else [args.case]:
            t = time.perf_counter()
            spec = make_case(case, root / case)
            print(f"\n## {case} case (stores built in {time.perf_counter() - t:.1f} s; load {os.getloadavg()[0]:.1f})")
            site = str(root / case / "site")
            rows = [
                ("dashboard full", measure("full", spec, site)),
                ("dashboard unchanged rebuild", measure("full", spec, site)),
                ("dashboard incremental (+1 forecast)", measure("incremental", spec, site)),
                ("alternative: PNG per figure", measure("alternative", spec, str(root / case / "png-site"))),
            ]
            alt = rows[-1][1]
            print(f"| {case} | wall s | CPU s | peak RSS MiB | files drawn / reused | wall vs alternative |")
            print("| --- | ---: | ---: | ---: | ---: | ---: |")
            for name, r in rows:
                ratio = r["wall_s"] / alt["wall_s"]
                print(
                    f"| {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | "
                    f"{r['drawn']} / {r['reused']} | {ratio:.2f}x |"
                )
            print(f"(load average after: {os.getloadavg()[0]:.1f})")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
