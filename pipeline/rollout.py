"""Autoregressive rollouts with hierarchical temporal aggregation (docs/architecture.md, "Time stepping").

A lead L is reached by the greedy decomposition of L into trained step sizes (largest first); the state at the
prefix (L minus its last step) is itself an earlier lead, cached, so each requested lead costs one model call.
States are normalised (pipeline.normalization); physical values come from :func:`denormalize`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.normalization import ChannelStats, advance_normalized_state, greedy_step_decomposition


@dataclass(frozen=True)
class PlannedStep:
    """One model call: the state at ``lead`` = the state at ``parent`` advanced by ``step`` hours."""

    lead: float
    parent: float
    step: float


def plan_rollout(leads_hours: Sequence[float], steps_hours: Sequence[float], history: int = 1) -> list[PlannedStep]:
    """Model calls (in execution order) that produce every lead in ``leads_hours`` (hours > 0).

    With ``history > 1`` only one step size is allowed and every lead must be a multiple of it (the history
    window of lead L is the states at L - (history-1)*dt .. L). Intermediate leads that are not requested but
    needed as parents are planned too. Raises ``ValueError`` for unreachable leads.
    """
    steps = sorted(float(s) for s in steps_hours)
    if history > 1 and len(steps) > 1:
        raise ValueError("a model with history > 1 must use a single step size")
    planned: dict[float, PlannedStep] = {}

    def need(lead: float) -> None:
        if lead <= 1e-9 or lead in planned:
            return
        parts = greedy_step_decomposition(lead, steps)
        parent = float(sum(parts[:-1]))
        need(parent)
        planned[lead] = PlannedStep(lead=lead, parent=parent, step=parts[-1])

    for lead in sorted(float(x) for x in leads_hours):
        if lead <= 0:
            raise ValueError(f"leads must be positive hours, got {lead}")
        need(lead)
    return sorted(planned.values(), key=lambda p: p.lead)


def rollout(model: torch.nn.Module, init_history: torch.Tensor, forcing_at: Callable[[float], torch.Tensor],
            leads_hours: Sequence[float], steps_hours: Sequence[float], stats: ChannelStats,
            autocast_dtype: torch.dtype | None = None) -> dict[float, torch.Tensor]:
    """Roll ``model`` from normalised ``init_history`` (B, history, C, H, W) to every lead (hours).

    ``forcing_at(valid_lead_hours)`` returns the (B, F, H, W) forcings valid at init + that lead. Returns
    lead -> normalised state (B, C, H, W) float32 for the requested leads. ``autocast_dtype`` (e.g. bf16 on CUDA)
    wraps the model calls; the residual update stays float32.
    """
    history = init_history.shape[1]
    plan = plan_rollout(leads_hours, steps_hours, history)
    windows: dict[float, torch.Tensor] = {0.0: init_history.float()}
    wanted = {float(x) for x in leads_hours}
    out: dict[float, torch.Tensor] = {}
    device_type = init_history.device.type
    ctx = (torch.autocast(device_type=device_type, dtype=autocast_dtype) if autocast_dtype is not None
           else nullcontext())
    b = init_history.shape[0]
    with torch.no_grad():
        for p in plan:
            hist = windows[p.parent]
            lead_t = torch.full((b,), p.step, dtype=torch.float32, device=init_history.device)
            with ctx:
                delta = model(hist.flatten(1, 2), forcing_at(p.lead), lead_t)
            nxt = advance_normalized_state(hist[:, -1], delta.float(), stats, p.step)
            windows[p.lead] = torch.cat([hist[:, 1:], nxt[:, None]], dim=1)
            if p.lead in wanted:
                out[p.lead] = nxt
            # free windows no later step needs (parents are always earlier leads)
    return out


def perturb(history: torch.Tensor, stats: ChannelStats, step_hours: float, scale: float, generator: torch.Generator,
            smoothing_cells: float = 2.0) -> torch.Tensor:
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
