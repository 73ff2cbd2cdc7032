"""Synthetic scores and forecast stores for dashboard tests and benchmarks (reusable fakes).

:func:`synthetic_scores` builds a scores store in the layout ``wxemu verify`` writes (root scores, group
``per_init``, optionally group ``spectra``) with a known answer: forecast ``f`` has the per-init error of the
reference scaled by ``error_scale[f]`` (RMSE ratio), so its % difference from the reference is known exactly.
:func:`write_synthetic_forecasts` writes a tiny global truth store and forecast stores (WeatherBench2 layout) for
the maps and runs pages.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from pipeline.metrics import METRICS
from pipeline.verification import write_scores

DEFAULT_VARIABLES: dict[str, tuple[int, ...] | None] = {"2m_temperature": None, "geopotential": (500, 850)}


def synthetic_scores(
    *,
    forecasts: Sequence[str] = ("emulator", "persistence", "climatology"),
    error_scale: Mapping[str, float] | None = None,
    variables: Mapping[str, tuple[int, ...] | None] = DEFAULT_VARIABLES,
    regions: Sequence[str] = ("global", "tropics"),
    leads_h: Sequence[int] = (6, 12, 24, 48, 72),
    n_inits: int = 20,
    metrics: Sequence[str] = ("rmse", "mae", "bias", "acc"),
    start: str = "2020-01-01",
    attrs: Mapping[str, object] | None = None,
    seed: int = 0,
) -> tuple[xr.Dataset, xr.Dataset]:
    """(scores, per_init) Datasets in the verify layout. Per-init MSE = (scale * (1 + lead/24))^2 * noise;
    ``error_scale`` defaults to 1 for every forecast."""
    rng = np.random.default_rng(seed)
    scale = {f: float((error_scale or {}).get(f, 1.0)) for f in forecasts}
    leads = pd.to_timedelta(list(leads_h), unit="h").values.astype("timedelta64[ns]")
    times = pd.date_range(start, periods=n_inits, freq="12h").values
    base_err = 1.0 + np.asarray(leads_h, np.float64) / 24.0  # (lead,)
    per_init, scores = {}, {}
    for var, levels in variables.items():
        shape_tail = (len(leads),) + ((len(levels),) if levels else ())
        noise = np.exp(rng.normal(0.0, 0.2, (len(regions), n_inits) + shape_tail))  # shared by the forecasts
        block = np.empty((len(metrics), len(forecasts), len(regions), n_inits) + shape_tail, np.float32)
        for i, m in enumerate(metrics):
            for j, f in enumerate(forecasts):
                e = scale[f] * base_err.reshape((1, 1, -1) + (1,) * (len(shape_tail) - 1)) * noise
                block[i, j] = {
                    "rmse": e**2,
                    "mse": e**2,
                    "mae": 0.8 * e,
                    "bias": 0.1 * e,
                    "acc": np.clip(1.0 - 0.05 * e, -1, 1),
                }.get(m, e)
        dims = ("metric", "forecast", "region", "time", "prediction_timedelta") + (("level",) if levels else ())
        per_init[var] = (dims, block, {"units": "K" if "temperature" in var else "m2 s-2"})
        mean = block.mean(axis=3)
        final = np.stack([METRICS[m]().finalize(mean[i]) for i, m in enumerate(metrics)]).astype(np.float32)
        scores[var] = (tuple(d for d in dims if d != "time"), final, per_init[var][2])
    coords = {
        "metric": list(metrics),
        "forecast": list(forecasts),
        "region": list(regions),
        "prediction_timedelta": leads,
    }
    levels_all = sorted({lv for lvs in variables.values() if lvs for lv in lvs})
    level_coord = {"level": np.array(levels_all, np.int64)} if levels_all else {}
    pi = xr.Dataset(per_init, coords={**coords, "time": times, **level_coord})
    sc = xr.Dataset(scores, coords={**coords, **level_coord})
    sc.attrs = {
        "wxemu_complete": True,
        "wxemu_stage": "verify",
        "created": "2020-01-01T00:00:00+00:00",
        "truth": "synthetic",
        "metrics": list(metrics),
        "forecasts": json.dumps([{"name": f, "path": f"{f}.zarr"} for f in forecasts]),
        **(attrs or {}),
    }
    return sc, pi


def synthetic_spectra(scores: xr.Dataset, *, n_wavenumber: int = 32, seed: int = 0) -> xr.Dataset:
    """A ``spectra`` group for ``scores``: power ~ k^-3 for the truth, damped at high k by the forecasts."""
    rng = np.random.default_rng(seed)
    k = np.arange(1, n_wavenumber + 1)
    names = ["truth"] + [str(f) for f in scores["forecast"].values]
    out = {}
    for var, da in scores.data_vars.items():
        levels = da["level"].values if "level" in da.dims else None
        n_lead = da.sizes["prediction_timedelta"]
        shape = (len(names), n_lead) + ((len(levels),) if levels is not None else ()) + (k.size,)
        power = np.broadcast_to(k.astype(np.float64) ** -3.0, shape).copy()
        damp = np.exp(-np.outer(np.arange(len(names)), k / n_wavenumber))  # forecast j blurs more
        power *= damp.reshape((len(names), 1) + (1,) * (len(shape) - 3) + (k.size,))
        power *= np.exp(rng.normal(0, 0.05, shape))
        dims = ("forecast", "prediction_timedelta") + (("level",) if levels is not None else ()) + ("wavenumber",)
        out[var] = (dims, power.astype(np.float32))
    coords = {
        "forecast": names,
        "prediction_timedelta": scores["prediction_timedelta"].values,
        "wavenumber": k,
        "wavelength_km": ("wavenumber", 40075.0 / k),
    }
    if "level" in scores.coords:
        coords["level"] = scores["level"].values
    return xr.Dataset(out, coords=coords)


def write_synthetic_scores(path: str | Path, *, spectra: bool = True, **kwargs) -> Path:
    """Write :func:`synthetic_scores` (and :func:`synthetic_spectra` as group ``spectra``) to ``path``."""
    scores, per_init = synthetic_scores(**kwargs)
    write_scores(scores, per_init, str(path), spectra=synthetic_spectra(scores) if spectra else None, overwrite=True)
    return Path(path)


def write_synthetic_forecasts(
    directory: str | Path,
    *,
    forecasts: Mapping[str, float] | None = None,
    n_inits: int = 4,
    leads_h: Sequence[int] = (6, 12, 24),
    resolution: float = 10.0,
    attrs: Mapping[str, object] | None = None,
    seed: int = 0,
) -> tuple[Path, list[Path]]:
    """A global truth store and forecast stores (2 m temperature, forecast = truth + noise * scale + 0.5 K
    bias). Returns (truth path, forecast paths); ``attrs`` are added to every forecast store."""
    rng = np.random.default_rng(seed)
    directory = Path(directory)
    lat = np.arange(-90.0, 90.0 + 1e-9, resolution)
    lon = np.arange(0.0, 360.0, resolution)
    leads = pd.to_timedelta(list(leads_h), unit="h")
    inits = pd.date_range("2020-01-01", periods=n_inits, freq="12h")
    step = np.gcd.reduce([12, *[int(h) for h in leads_h]])  # the truth holds every valid time
    times = pd.date_range(inits[0], inits[-1] + leads[-1], freq=f"{step}h")
    field = 250.0 + 40.0 * np.cos(np.deg2rad(lat))[None, :, None] + np.sin(np.deg2rad(lon))[None, None, :] * 5.0
    truth_vals = field + rng.normal(0, 1.0, (times.size, lat.size, lon.size))
    truth = xr.Dataset(
        {"2m_temperature": (("time", "latitude", "longitude"), truth_vals.astype(np.float32), {"units": "K"})},
        coords={"time": times.values, "latitude": lat, "longitude": lon},
    )
    truth_path = directory / "truth.zarr"
    truth.to_zarr(truth_path, mode="w", consolidated=False, zarr_format=3)
    paths = []
    for name, scale in (forecasts or {"emulator": 1.0, "persistence": 2.0}).items():
        valid = inits.values[:, None] + leads.values[None, :]
        t = truth["2m_temperature"].sel(time=valid.ravel()).values.reshape(valid.shape + (lat.size, lon.size))
        vals = t + 0.5 + scale * rng.normal(0, 1.0, t.shape)
        ds = xr.Dataset(
            {
                "2m_temperature": (
                    ("time", "prediction_timedelta", "latitude", "longitude"),
                    vals.astype(np.float32),
                    {"units": "K"},
                )
            },
            coords={"time": inits.values, "prediction_timedelta": leads.values, "latitude": lat, "longitude": lon},
            attrs={"wxemu_model": name, "wxemu_checkpoint": f"runs/{name}/model.safetensors", **(attrs or {})},
        )
        path = directory / f"{name}.zarr"
        ds.to_zarr(path, mode="w", consolidated=False, zarr_format=3)
        paths.append(path)
    return truth_path, paths


SYNTHETIC_EXPLANATION_NUMBERS = {
    "output": 281.25,
    "output_baseline": 279.5,
    "attribution_sum": 1.75,
    "completeness_error": 0.0004,
    "deletion_area_ratio": 1.84,
    "deletion_area_ratio_spread": 0.21,
    "insertion_area_ratio": 1.52,
    "insertion_area_ratio_spread": 0.13,
    "faithfulness_correlation": 0.93,
    "randomized_weights_rank_correlation": 0.12,
    "self_share": 0.81,
    "change_self_share": 0.44,
    "mass_centroid_latitude": 53.0,
    "mass_centroid_longitude": 352.0,
    "mass_centroid_distance_km": 312.0,
    "mass_centroid_bearing_deg": 250.0,
}


def write_synthetic_explanation(
    path: str | Path, *, channels: Sequence[str] = ("2m_temperature",), attrs: Mapping[str, object] | None = None
) -> Path:
    """An explanation store on a small UK grid in the layout of ``wxemu explain`` (written with its writer), the
    attribution a blob west of the target region, numbers :data:`SYNTHETIC_EXPLANATION_NUMBERS`."""
    from pipeline.explain.output import write_explanation

    lat, lon = np.arange(49.0, 61.01, 1.0), np.arange(348.0, 363.01, 1.0) % 360.0
    yy, xx = np.meshgrid(lat, np.arange(348.0, 363.01, 1.0), indexing="ij")
    blob = np.exp(-((yy - 54.0) ** 2 + (xx - 353.0) ** 2) / 4.0)
    state = np.stack([np.stack([0.5 * blob, blob])] * len(channels), axis=1)  # (history 2, C, lat, lon)
    fractions = np.linspace(0, 1, 11)
    deletion = np.stack([281.25 - 1.75 * np.sqrt(fractions)] + [281.25 - 1.75 * fractions] * 3)
    insertion = deletion[:, ::-1]
    ds = xr.Dataset(
        {
            "state_attribution": (("history_hours", "channel", "latitude", "longitude"), state),
            "change_attribution": (("history_hours", "channel", "latitude", "longitude"), 0.3 * state),
            "forcing_attribution": (("call_lead_hours", "forcing", "latitude", "longitude"), 0.01 * state[:1, :1]),
            "channel_total": (("channel",), state.sum(axis=(0, 2, 3))),
            "history_total": (("history_hours",), state.sum(axis=(1, 2, 3))),
            "forcing_total": (("forcing",), [0.01 * float(state[0, 0].sum())]),
            "input_region_total": (("input_region",), [1.2, 0.55]),
            "deletion_curve": (("ordering", "fraction"), deletion),
            "insertion_curve": (("ordering", "fraction"), insertion),
        },
        coords={
            "history_hours": [-1.0, 0.0],
            "channel": list(channels),
            "call_lead_hours": [24.0],
            "forcing": ["toa_radiation"],
            "input_region": ["target_region", "outside"],
            "ordering": ["attribution", "random_0", "random_1", "random_2"],
            "fraction": fractions,
            "latitude": lat,
            "longitude": lon,
        },
        attrs={
            "wxemu_stage": "explain",
            "wxemu_version": "test",
            "checkpoint": "runs/graph/model.safetensors",
            "checkpoint_sha256": "0" * 64,
            "model": "graph",
            "store": "era5_uk_t2m.zarr",
            "init": "2019-03-25 00:00:00",
            "lead_hours": 24.0,
            "channel": channels[0],
            "region": "box: 52..55 N, 354..358 E",
            "method": "integrated_gradients",
            "baseline": "climatology",
            "path": "greedy",
            **SYNTHETIC_EXPLANATION_NUMBERS,
            **(attrs or {}),
        },
    )
    write_explanation(ds, str(path))
    return Path(path)


# ------------------------------------------------------------------------------------------------ headless browser
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def chromium() -> str | None:
    """The system's headless-capable Chromium (Debian's ``chromium`` package), or None."""
    import shutil

    return next((p for p in map(shutil.which, BROWSERS) if p), None)


def run_browser(url: str, *, screenshot: str | Path | None = None, size: str = "1200,900", budget_ms: int = 8000):
    """Load ``url`` in headless Chromium with every host but 127.0.0.1 unresolvable (nothing leaves the machine);
    return (DOM after the scripts ran, console messages). With ``screenshot``, also write a PNG there."""
    import subprocess
    import tempfile

    exe = chromium()
    if exe is None:
        raise RuntimeError("no chromium found (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="wxemu-chromium-") as profile:
        cmd = [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={profile}",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            "--enable-logging=stderr",
            "--v=0",
            f"--virtual-time-budget={budget_ms}",
            f"--window-size={size}",
        ]
        cmd += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
        proc = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=120)
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return proc.stdout, console
