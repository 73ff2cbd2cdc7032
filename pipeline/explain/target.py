"""The explained quantity as a differentiable function of the forecast's inputs.

:class:`RegionForecast` maps (initial history, forcings of every model call) to the area-weighted region mean
of one channel at one lead, in physical units, through the same autoregressive path the forecast takes
(``pipeline.rollout``). :func:`explain_inputs` reads those inputs and their baselines for one initial time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from data_catalog.errors import WxemuError
from models.forcings import YESTERDAY_HOURS, ForcingSpec, forcing_names
from pipeline.normalization import ChannelStats, normalize
from pipeline.rollout import plan_rollout, rollout
from pipeline.store_reader import ClimatologyReader, stride_for


@dataclass
class ExplainInputs:
    """The inputs of one forecast and the baselines attributions are measured from (all normalised, float32).

    history, history_baseline: (1, history, C, H, W). forcings, forcing_baseline: (1, S, F, H, W), one slot per
    model call of the forecast's path (``call_leads``). history_hours: (history,) hours relative to the init.
    """

    history: torch.Tensor
    history_baseline: torch.Tensor
    forcings: torch.Tensor
    forcing_baseline: torch.Tensor
    call_leads: list[float]
    history_hours: list[float]
    channel_names: list[str]
    forcing_names: list[str]


class RegionForecast:
    """``f(history (B, h, C, H, W), forcings (B, S, F, H, W)) -> (B,)``: the region mean of one channel.

    ``weights`` (H, W) sum to 1 (area weights restricted to the region); the output is in the channel's physical
    units. Gradients flow to both inputs. ``increment``: explain the forecast minus the region mean of the latest
    input state (the model's change, without the identity path that a residual emulator carries).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        stats: ChannelStats,
        steps: list[float],
        lead: float,
        channel: int,
        weights: np.ndarray,
        call_leads: list[float],
        increment: bool = False,
    ) -> None:
        self.model = model
        self.stats = stats
        self.steps = steps
        self.lead = float(lead)
        self.channel = int(channel)
        self.weights = torch.as_tensor(weights, dtype=torch.float32)
        self.slot = {float(x): i for i, x in enumerate(call_leads)}
        self.mean = float(stats.mean[channel])
        self.std = float(stats.std[channel])
        self.increment = increment

    def __call__(self, history: torch.Tensor, forcings: torch.Tensor) -> torch.Tensor:
        out = rollout(
            self.model,
            history,
            lambda lead, _states: forcings[:, self.slot[float(lead)]],
            [self.lead],
            self.steps,
            self.stats,
            differentiable=True,
        )[self.lead]
        field = out[:, self.channel] * self.std + self.mean
        if self.increment:
            field = field - (history[:, -1, self.channel] * self.std + self.mean)
        return (field * self.weights.to(field.device)).sum(dim=(-2, -1))


def call_leads(lead: float, steps: list[float], history: int) -> list[float]:
    """Leads (hours) of the model calls that reach ``lead`` greedily; WxemuError when it cannot be reached."""
    try:
        return [p.lead for p in plan_rollout([lead], steps, history)]
    except ValueError as exc:
        raise WxemuError(f"lead {lead:g} h: {exc}") from None


def explain_inputs(forecaster, init: np.datetime64, lead: float, baseline: str) -> ExplainInputs:
    """Read the inputs of the forecast from ``init`` (a store time) and their baselines.

    ``forecaster`` is a :class:`pipeline.forecasters.ModelForecaster` (model, statistics, store readers).
    Baselines: the state at each history time is replaced by the store's climatology ("climatology") or the
    training mean ("mean"); each forcing channel by its spatial mean at the same time (so the attribution to a
    forcing is that of its spatial pattern).
    """
    layout, stats = forecaster.layout, forecaster.stats
    i0 = layout.time_index(init)
    stride = stride_for(forecaster.step0, layout)
    offsets = np.arange(-(forecaster.history - 1), 1) * stride
    idx = i0 + offsets
    if idx[0] < 0:
        raise WxemuError(
            f"{layout.path}: initial time {pd.Timestamp(init)} needs {-offsets[0]} earlier time steps of history; "
            f"the store starts at {pd.Timestamp(layout.times[0])}"
        )
    states = normalize(forecaster.reader.read(idx), stats.mean, stats.std).astype(np.float32)
    if baseline == "climatology":
        try:
            clim = ClimatologyReader(layout)(layout.times[idx])
        except (KeyError, FileNotFoundError, LookupError) as exc:
            if isinstance(exc, WxemuError):
                raise
            raise WxemuError(
                f"{layout.path}: the store has no climatology group; use baseline 'mean' (--baseline mean)"
            ) from None
        base = normalize(clim, stats.mean, stats.std).astype(np.float32)
    else:
        base = np.zeros_like(states)
    calls = call_leads(lead, forecaster.steps, forecaster.history)
    if forecaster.spec.yesterday_change and max(calls) > YESTERDAY_HOURS:
        raise WxemuError(
            f"{forecaster.header.get('model_kind')}: explain reaches +{YESTERDAY_HOURS:g} h with a model that takes "
            f"yesterday's change as a forcing (beyond it that forcing comes from the forecast itself); got +{lead:g} h"
        )
    valid = layout.times[i0] + np.array([np.timedelta64(int(round(h * 3600)), "s") for h in calls])
    forc = forecaster.forcings(valid).astype(np.float32)  # (S, F, H, W)
    spec = ForcingSpec.from_dict(forecaster.header["forcing_spec"])
    return ExplainInputs(
        history=torch.from_numpy(states)[None],
        history_baseline=torch.from_numpy(base)[None],
        forcings=torch.from_numpy(forc)[None],
        forcing_baseline=torch.from_numpy(np.broadcast_to(forc.mean(axis=(-2, -1), keepdims=True), forc.shape).copy())[
            None
        ],
        call_leads=calls,
        history_hours=[float(o * layout.step_hours) for o in offsets],
        channel_names=list(layout.channel_names),
        forcing_names=forcing_names(spec),
    )
