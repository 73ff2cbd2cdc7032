"""Autoregressive rollouts with hierarchical temporal aggregation (docs/architecture.md, "Time stepping").

A lead L is reached by the greedy decomposition of L into trained step sizes (largest first); the state at the
prefix (L minus its last step) is itself an earlier lead, cached, so each requested lead costs one model call.
A *lagged* lead is instead one trained step s from the analysis k = s - L hours before the initial time (known
at the initial time: no future data); which leads are lagged is chosen by skill on a validation period
(:func:`choose_lags`, ``wxemu forecast --lagged-paths``). States are normalised (pipeline.normalization);
physical values come from :func:`denormalize`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.normalization import (
    ChannelStats,
    advance_normalized_state,
    greedy_step_decomposition,
)


@dataclass(frozen=True)
class PlannedStep:
    """One model call: the state at ``lead`` = the state at ``parent`` advanced by ``step`` hours."""

    lead: float
    parent: float
    step: float
    lagged: bool = False  # from an analysis before the initial time; never a parent of other leads


def lag_candidates(lead_hours: float, steps_hours: Sequence[float]) -> list[float]:
    """Lags k > 0 (hours before the initial time) from which one trained step reaches ``lead_hours``: s - L for
    every trained step s longer than the lead."""
    return [float(s) - float(lead_hours) for s in sorted(float(x) for x in steps_hours) if s > lead_hours + 1e-9]


def choose_lags(scores: Mapping[float, Mapping[float, float]]) -> dict[float, float]:
    """{lead: {lag: score}} (lag 0 = the greedy path from the initial time; lower is better) -> {lead: lag} for
    the leads whose best path is lagged (ties go to the smaller lag)."""
    out = {}
    for lead, by_lag in scores.items():
        best = min(sorted(by_lag), key=lambda k: by_lag[k])
        if best > 0:
            out[float(lead)] = float(best)
    return out


def plan_rollout(
    leads_hours: Sequence[float],
    steps_hours: Sequence[float],
    history: int = 1,
    lags: Mapping[float, float] | None = None,
) -> list[PlannedStep]:
    """Model calls (in execution order) that produce every lead in ``leads_hours`` (hours > 0).

    With ``history > 1`` only one step size is allowed and every lead must be a multiple of it (the history
    window of lead L is the states at L - (history-1)*dt .. L). Intermediate leads that are not requested but
    needed as parents are planned too. ``lags`` {lead: k}: those leads are one step of L + k hours from the
    analysis k hours before the initial time (parent -k; L + k must be a trained step; history 1 only); they are
    outputs only: the other leads keep their greedy paths, whose parents are greedy states (so a lead's forecast
    does not depend on which other leads are lagged). Raises ``ValueError`` for unreachable leads.
    """
    steps = sorted(float(s) for s in steps_hours)
    if history > 1 and len(steps) > 1:
        raise ValueError("a model with history > 1 must use a single step size")
    lags = {float(k): float(v) for k, v in (lags or {}).items()}
    if lags and history > 1:
        raise ValueError("lagged paths need a model with history 1")
    for lead, lag in lags.items():
        if lag <= 0 or not any(abs(lead + lag - s) < 1e-9 for s in steps):
            raise ValueError(
                f"lead {lead} h cannot be one trained step from {lag} h before the initial time (steps {steps} h)"
            )
    planned: dict[float, PlannedStep] = {}

    def need(lead: float) -> None:
        if lead <= 1e-9 or lead in planned:
            return
        parts = greedy_step_decomposition(lead, steps)
        parent = float(sum(parts[:-1]))
        need(parent)
        planned[lead] = PlannedStep(lead=lead, parent=parent, step=parts[-1])

    lagged = []
    for lead in sorted(float(x) for x in leads_hours):
        if lead <= 0:
            raise ValueError(f"leads must be positive hours, got {lead}")
        if lead in lags:
            lagged.append(PlannedStep(lead=lead, parent=-lags[lead], step=lead + lags[lead], lagged=True))
        else:
            need(lead)
    return sorted(planned.values(), key=lambda p: p.lead) + lagged


def rollout(
    model: torch.nn.Module,
    init_history: torch.Tensor,
    forcing_at: Callable[[float, Mapping[float, torch.Tensor]], torch.Tensor],
    leads_hours: Sequence[float],
    steps_hours: Sequence[float],
    stats: ChannelStats,
    autocast_dtype: torch.dtype | None = None,
    lags: Mapping[float, float] | None = None,
    lagged_states: Mapping[float, torch.Tensor] | None = None,
    differentiable: bool = False,
) -> dict[float, torch.Tensor]:
    """Roll ``model`` from normalised ``init_history`` (B, history, C, H, W) to every lead (hours).

    ``forcing_at(valid_lead_hours, states)`` returns the (B, F, H, W) forcings valid at init + that lead, given
    ``states`` {lead: normalised state (B, C, H, W)} of the leads forecast so far (forcings derived from the state,
    such as yesterday's change beyond +24 h, come from the forecast itself). Returns
    lead -> normalised state (B, C, H, W) float32 for the requested leads. ``autocast_dtype`` (e.g. bf16 on CUDA)
    wraps the model calls; the residual update stays float32. ``lags`` {lead: k} as in :func:`plan_rollout`,
    with ``lagged_states`` {k: normalised analyses (B, 1, C, H, W) k hours before the initial time}.
    ``differentiable``: keep the autograd graph (for attribution); otherwise no gradients are recorded.
    """
    history = init_history.shape[1]
    plan = plan_rollout(leads_hours, steps_hours, history, lags)
    windows: dict[float, torch.Tensor] = {0.0: init_history.float()}
    for lag, states in (lagged_states or {}).items():
        windows[-float(lag)] = states.float()
    wanted = {float(x) for x in leads_hours}
    out: dict[float, torch.Tensor] = {}
    device_type = init_history.device.type
    ctx = torch.autocast(device_type=device_type, dtype=autocast_dtype) if autocast_dtype is not None else nullcontext()
    b = init_history.shape[0]
    known: dict[float, torch.Tensor] = {}
    with torch.enable_grad() if differentiable else torch.no_grad():
        for p in plan:
            hist = windows[p.parent]
            lead_t = torch.full((b,), p.step, dtype=torch.float32, device=init_history.device)
            with ctx:
                delta = model(hist.flatten(1, 2), forcing_at(p.lead, known), lead_t)
            nxt = advance_normalized_state(hist[:, -1], delta.float(), stats, p.step)
            if not p.lagged:
                known[p.lead] = nxt
                windows[p.lead] = torch.cat([hist[:, 1:], nxt[:, None]], dim=1)
            if p.lead in wanted and (p.lagged or p.lead not in (lags or {})):
                out[p.lead] = nxt
            # free windows no later step needs (parents are always earlier leads)
    return out


def perturb(
    history: torch.Tensor,
    stats: ChannelStats,
    step_hours: float,
    scale: float,
    generator: torch.Generator,
    smoothing_cells: float = 2.0,
) -> torch.Tensor:
    """Gaussian initial-condition perturbation of normalised states (B, history, C, H, W).

    Noise per channel has standard deviation ``scale * diff_std[step_hours]`` (physical units; converted to the
    state normalisation), is spatially smoothed with a Gaussian of ``smoothing_cells`` grid cells (then rescaled
    to that standard deviation) and is the same for every history step.
    """
    from scipy.ndimage import gaussian_filter

    b, _, c, h, w = history.shape
    noise = torch.randn((b, c, h, w), generator=generator, dtype=torch.float64).numpy()
    if smoothing_cells > 0:
        noise = gaussian_filter(noise, sigma=(0, 0, smoothing_cells, smoothing_cells), mode="nearest")
        noise /= noise.std(axis=(2, 3), keepdims=True) + 1e-12
    sd = scale * stats.diff_std[float(step_hours)] / stats.std
    noise = noise * sd[None, :, None, None]
    return history + torch.as_tensor(noise, dtype=history.dtype, device=history.device)[:, None]


def simulated_days_per_second(n_forecasts: int, lead_hours: float, seconds: float) -> float:
    """Throughput in simulated days per wall-clock second."""
    return n_forecasts * lead_hours / 24.0 / max(seconds, 1e-12)


def as_numpy(states: dict[float, torch.Tensor], leads: Sequence[float]) -> np.ndarray:
    """Stack lead -> (B, C, H, W) into (B, L, C, H, W) numpy float32 in the order of ``leads``."""
    return np.stack([states[float(x)].float().cpu().numpy() for x in leads], axis=1)
