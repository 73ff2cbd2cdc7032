"""Which forecast path an explanation follows, and on which device it runs.

A lead is reached either greedily from the initial time (the trained steps, largest first) or, for history-1
checkpoints forecast with ``wxemu forecast --lagged-paths``, by one trained step of ``lead + k`` hours from the
analysis ``k`` hours before the initial time (``pipeline.rollout``, "lagged" leads). A lagged forecast is
exactly the greedy one-step forecast from that earlier analysis with the same forcings (valid at init + lead) and
the same step, so the explanation attributes it through that call, and its input state is the analysis ``k`` h
before the initial time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import zarr

from data_catalog.errors import ConfigError, WxemuError
from data_catalog.store_protocol import require_complete
from pipeline.rollout import plan_rollout


@dataclass(frozen=True)
class ForecastPath:
    """``lag`` hours (0: greedy from the initial time); the model path starts at ``start`` (init - lag) and
    reaches the explained valid time after ``path_lead`` = lead + lag hours."""

    lag: float
    start: np.datetime64
    path_lead: float

    def describe(self, lead: float, steps: list[float]) -> str:
        if self.lag == 0:
            return f"greedy: +{lead:g} h from the initial time in trained steps of {sorted(steps)} h"
        return f"lagged: one {self.path_lead:g} h step from the analysis {self.lag:g} h before the initial time"


def lag_of(*, lead: float, lag: str | None, forecast: str | None, checkpoint_sha256: str) -> float:
    """The lag (hours) of the path that the explained forecast used for ``lead``.

    ``lag``: given explicitly ("1h"; "0h" is the greedy path). ``forecast``: a forecast store whose
    ``wxemu_lead_paths`` attribute (written by ``wxemu forecast --lagged-paths``) names the lagged leads; a store
    without it was forecast greedily. The store must come from the same checkpoint (its sha256). Neither: 0.
    """
    if lag is not None and forecast is not None:
        raise ConfigError("explain: give the path by lag or by forecast store, not both")
    if lag is not None:
        text = str(lag).strip()
        try:
            hours = float(text) if text.replace(".", "", 1).isdigit() else pd.Timedelta(text) / pd.Timedelta(hours=1)
        except (ValueError, TypeError):
            raise ConfigError(f"explain: lag {lag!r} is not a duration (use e.g. 1h)") from None
        if hours < 0:
            raise ConfigError(f"explain: lag must be >= 0 hours before the initial time, got {lag!r}")
        return float(hours)
    if forecast is None:
        return 0.0
    require_complete(forecast, "forecast")
    attrs = dict(zarr.open_group(forecast, mode="r").attrs)
    made_by = attrs.get("wxemu_checkpoint_sha256")
    if made_by is not None and made_by != checkpoint_sha256:
        raise WxemuError(
            f"{forecast}: this forecast store was made by another checkpoint (sha256 {str(made_by)[:12]}, the "
            f"checkpoint to explain has {checkpoint_sha256[:12]}); explain the checkpoint that made it"
        )
    paths = attrs.get("wxemu_lead_paths") or {}
    lagged = {float(k): float(v) for k, v in (paths.get("lagged") or {}).items()}
    return lagged.get(float(lead), 0.0)


def resolve_path(
    *, init: np.datetime64, lead: float, lag: float, steps: list[float], history: int, checkpoint: str
) -> ForecastPath:
    """The :class:`ForecastPath` of ``lead`` with ``lag``; WxemuError when the model cannot take it."""
    if lag == 0:
        return ForecastPath(0.0, init, lead)
    if history != 1:
        raise WxemuError(
            f"{checkpoint}: lagged paths are for history-1 models; this one has history {history} (its forecasts "
            "are greedy: explain without --lag/--forecast)"
        )
    try:
        plan_rollout([lead], steps, 1, {lead: lag})
    except ValueError:
        raise WxemuError(
            f"{checkpoint}: lead {lead:g} h cannot be one trained step from {lag:g} h before the initial time "
            f"({lead + lag:g} h is not one of the trained steps {[f'{s:g}' for s in sorted(steps)]} h)"
        ) from None
    start = init - np.timedelta64(int(round(lag * 3600)), "s")
    return ForecastPath(float(lag), start, float(lead + lag))


def check_device(device: str) -> torch.device:
    """``device`` as a torch device; WxemuError when it is not one or is not on this machine."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise WxemuError(f"device {device!r}: not a torch device (use cpu, cuda or cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise WxemuError(
                f"device {device!r}: CUDA is not available on this machine (no GPU, or torch built without CUDA); "
                "use --device cpu"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise WxemuError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise WxemuError(f"device {device!r}: explain runs on cpu or cuda")
    return dev
