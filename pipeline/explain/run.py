"""The explain stage: attribute one region-mean forecast, measure how faithful that is, store it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
import xarray as xr

from data_catalog.errors import WxemuError
from data_catalog.regions import parse_region, region_weights
from data_catalog.version import wxemu_version
from pipeline.checkpoint import sha256_file, weights_path
from pipeline.explain.attribution import attribute, randomized_copy
from pipeline.explain.config import ExplainConfig
from pipeline.explain.faithfulness import faithfulness_correlation, perturbation_curves, rank_correlation
from pipeline.explain.output import write_explanation
from pipeline.explain.paths import check_device, lag_of, resolve_path
from pipeline.explain.physical import distance_and_bearing, mass_centroid, share_inside
from pipeline.explain.target import ExplainInputs, RegionForecast, explain_inputs
from pipeline.forecasters import ModelForecaster
from pipeline.forecasting import parse_duration_hours
from pipeline.store_reader import read_layout
from pipeline.weights import latitude_weights


@dataclass
class ExplainResult:
    """``attributions``: the explanation as a Dataset (docs/explain.md); ``numbers``: its scalar checks;
    ``path``: where it was written (None when ``config.out`` is None)."""

    attributions: xr.Dataset
    numbers: dict[str, float] = field(default_factory=dict)
    path: str | None = None


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"wxemu explain: {text}", flush=True)


def explain(config: ExplainConfig, *, device: str = "cpu", progress: bool = False) -> ExplainResult:
    """Attribute the region-mean forecast that ``config`` names; returns (and writes to ``config.out``) the maps,
    totals, faithfulness curves and physical checks."""
    layout = read_layout(config.store)
    lead = parse_duration_hours(config.lead, "lead")
    try:
        init = np.datetime64(pd.Timestamp(config.init).tz_localize(None), "ns")
    except (ValueError, TypeError):
        raise WxemuError(f"init {config.init!r}: not a time (use e.g. 2019-03-25T00)") from None
    if config.channel not in layout.channel_names:
        raise WxemuError(f"{config.store}: no channel {config.channel!r}; the store has {layout.channel_names}")
    wpath = weights_path(config.checkpoint)
    if not wpath.exists():
        raise WxemuError(f"{config.checkpoint}: no such checkpoint")
    dev = check_device(device)
    sha = sha256_file(wpath)
    lag = lag_of(lead=lead, lag=config.lag, forecast=config.forecast, checkpoint_sha256=sha)
    forecaster = ModelForecaster(str(wpath), layout, [lead + lag], 1, 0.0, str(dev), config.seed)
    path = resolve_path(
        init=init,
        lead=lead,
        lag=lag,
        steps=forecaster.steps,
        history=forecaster.history,
        checkpoint=str(config.checkpoint),
    )
    region = parse_region(config.region)
    lat, lon = layout.latitude, layout.longitude
    weights = region_weights([region], lat, lon, latitude_weights(lat), grid_name=f"the store {config.store}")[0]
    channel = layout.channel_names.index(config.channel)
    inputs = explain_inputs(forecaster, path.start, path.path_lead, config.baseline)
    x = (inputs.history.to(dev), inputs.forcings.to(dev))
    b = (inputs.history_baseline.to(dev), inputs.forcing_baseline.to(dev))

    def target(model: torch.nn.Module, increment: bool = False) -> RegionForecast:
        return RegionForecast(
            model, forecaster.stats, forecaster.steps, path.path_lead, channel, weights, inputs.call_leads, increment
        )

    fn = target(forecaster.model)
    options = dict(
        method=config.method, n_steps=config.n_steps, n_samples=config.n_samples, noise=config.noise, seed=config.seed
    )
    _say(
        progress,
        f"{config.method} of the {region.name} mean of {config.channel} at +{lead:g} h from "
        f"{pd.Timestamp(init)} ({len(inputs.call_leads)} model call(s); {path.describe(lead, forecaster.steps)})",
    )
    (a_hist, a_forc), delta = attribute(fn, x, b, **options)
    with torch.no_grad():
        f_x, f_b = float(fn(*x)), float(fn(*b))
    a_hist_np, a_forc_np = a_hist[0].cpu().numpy(), a_forc[0].cpu().numpy()
    numbers: dict[str, float] = {
        "output": f_x,
        "output_baseline": f_b,
        "attribution_sum": float(a_hist_np.sum() + a_forc_np.sum()),
    }
    if delta is not None:
        numbers["completeness_error"] = float(delta)

    _say(progress, f"faithfulness: deletion and insertion curves, {config.random_orderings} random orderings")
    forcings = x[1]

    def evaluate(states: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            s = torch.from_numpy(np.ascontiguousarray(states, dtype=np.float32)).to(dev)
            return fn(s, forcings.expand(len(s), *forcings.shape[1:])).cpu().numpy()

    curves = perturbation_curves(
        evaluate=evaluate,
        state=x[0][0].cpu().numpy(),
        baseline=b[0][0].cpu().numpy(),
        attribution=a_hist_np,
        n_blocks=config.deletion_blocks,
        n_random=config.random_orderings,
        seed=config.seed,
    )
    numbers.update(curves.summary())
    numbers["faithfulness_correlation"] = faithfulness_correlation(
        evaluate=evaluate,
        state=x[0][0].cpu().numpy(),
        baseline=b[0][0].cpu().numpy(),
        attribution=a_hist_np,
        seed=config.seed,
    )

    # The identity path of a residual emulator contributes weights * std * (x - b) to the latest state of the
    # explained channel, exactly (integrated gradients and gradient x input are exact on linear functions); the
    # rest is the model's own change, which the physical checks and the randomisation test look at.
    change = a_hist_np.copy()
    state_np, base_np = x[0][0].cpu().numpy(), b[0][0].cpu().numpy()
    change[-1, channel] -= weights * forecaster.stats.std[channel] * (state_np[-1, channel] - base_np[-1, channel])
    _say(progress, "sanity check: gradients of the model's change for the trained and for randomised weights")
    trained = _gradient(target(forecaster.model, increment=True), x)
    randomized = _gradient(target(randomized_copy(forecaster.model, config.seed), increment=True), x)
    inside = np.broadcast_to(weights > 0, trained.shape)  # outside it both are ~0 for local models: not informative
    numbers["randomized_weights_rank_correlation"] = rank_correlation(trained[inside], randomized[inside])
    numbers["self_share"] = share_inside(mass=np.abs(a_hist_np[-1]).sum(axis=0), mask=weights > 0)
    numbers.update(_physical_checks(change, weights > 0, weights, lat, lon))

    ds = _as_dataset(config, inputs, a_hist_np, change, a_forc_np, curves, weights > 0, lat, lon, path.lag)
    ds.attrs.update(
        {
            "wxemu_stage": "explain",
            "wxemu_version": wxemu_version(),
            "checkpoint": str(wpath),
            "checkpoint_sha256": sha,
            "model": forecaster.model_name,
            "store": str(config.store),
            "init": str(pd.Timestamp(init)),
            "lead_hours": lead,
            "path": path.describe(lead, forecaster.steps),
            "lag_hours": path.lag,
            "channel": config.channel,
            "region": f"{region.name}: {region.describe()}",
            "method": config.method,
            "baseline": config.baseline,
            **{k: float(v) for k, v in numbers.items()},
        }
    )
    written = None
    if config.out:
        written = write_explanation(ds, config.out)
        _say(progress, f"wrote {written}")
    return ExplainResult(attributions=ds, numbers=numbers, path=written)


def _gradient(fn: RegionForecast, x: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
    """d fn / d history (history, C, H, W) at ``x``."""
    state = x[0].detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(fn(state, x[1]).sum(), state)
    return grad[0].cpu().numpy()


def _physical_checks(
    change: np.ndarray, mask: np.ndarray, weights: np.ndarray, lat: np.ndarray, lon: np.ndarray
) -> dict[str, float]:
    """Where the attribution of the model's change to the latest state sits: its share inside the target region,
    and the distance and bearing from the region's centre to its centre of mass."""
    mass = np.abs(change[-1]).sum(axis=0)
    if not mass.sum() > 0:
        return {"change_self_share": float("nan")}
    c_lat, c_lon = mass_centroid(mass=mass, latitude=lat, longitude=lon)
    r_lat, r_lon = mass_centroid(mass=weights, latitude=lat, longitude=lon)
    distance, bearing = distance_and_bearing(lat1=r_lat, lon1=r_lon, lat2=c_lat, lon2=c_lon)
    return {
        "change_self_share": share_inside(mass=mass, mask=mask),
        "mass_centroid_latitude": c_lat,
        "mass_centroid_longitude": c_lon,
        "mass_centroid_distance_km": distance,
        "mass_centroid_bearing_deg": bearing,
    }


def _as_dataset(
    config: ExplainConfig,
    inputs: ExplainInputs,
    a_hist: np.ndarray,
    change: np.ndarray,
    a_forc: np.ndarray,
    curves: Any,
    mask: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    lag: float,
) -> xr.Dataset:
    """The explanation's Dataset; ``history_hours`` and ``call_lead_hours`` are relative to the forecast's initial
    time (a lagged path's input state lies ``lag`` hours before it)."""
    grid = {"latitude": lat, "longitude": lon}
    orderings = ["attribution"] + [f"random_{i}" for i in range(curves.deletion.shape[0] - 1)]
    inside = mask[None, None]
    return xr.Dataset(
        {
            "state_attribution": (("history_hours", "channel", "latitude", "longitude"), a_hist),
            "change_attribution": (("history_hours", "channel", "latitude", "longitude"), change),
            "forcing_attribution": (("call_lead_hours", "forcing", "latitude", "longitude"), a_forc),
            "channel_total": (("channel",), a_hist.sum(axis=(0, 2, 3))),
            "history_total": (("history_hours",), a_hist.sum(axis=(1, 2, 3))),
            "forcing_total": (("forcing",), a_forc.sum(axis=(0, 2, 3))),
            "input_region_total": (
                ("input_region",),
                [
                    float((a_hist * inside).sum() + (a_forc * inside).sum()),
                    float((a_hist * ~inside).sum() + (a_forc * ~inside).sum()),
                ],
            ),
            "deletion_curve": (("ordering", "fraction"), curves.deletion),
            "insertion_curve": (("ordering", "fraction"), curves.insertion),
        },
        coords={
            "history_hours": [h - lag for h in inputs.history_hours],
            "channel": inputs.channel_names,
            "call_lead_hours": [h - lag for h in inputs.call_leads],
            "forcing": inputs.forcing_names,
            "input_region": ["target_region", "outside"],
            "ordering": orderings,
            "fraction": curves.fractions,
            **grid,
        },
    )
