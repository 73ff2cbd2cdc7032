"""Forecasters for ``wxemu forecast``: ``__call__(init_indices) -> (n_init, n_lead, [members,] C, H, W)`` float32
in physical units, for initial times given as indices into the analysis store's times.

- :class:`ModelForecaster`: a checkpoint rolled forward (pipeline.rollout), optionally an ensemble (member 0
  unperturbed; members 1..N-1 perturbed by pipeline.rollout.perturb) and lagged paths chosen on validation
  initial times (:func:`select_lags`);
- :class:`PersistenceForecaster`, :class:`ClimatologyForecaster`: the baselines of models.baselines.

``needed_history()`` is the number of store steps each needs before an initial time.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from data_catalog.errors import WxemuError
from models.baselines import persistence_forecast
from models.forcings import YESTERDAY_HOURS, ForcingSpec
from pipeline.checkpoint import load_checkpoint, read_header, stats_from_header
from pipeline.normalization import denormalize, normalize
from pipeline.rollout import as_numpy, choose_lags, lag_candidates, perturb, plan_rollout, rollout
from pipeline.store_reader import ClimatologyReader, ForcingProvider, StoreLayout, StoreReader, stride_for
from pipeline.weights import latitude_weights


def batches(indices: list[int], size: int) -> list[list[int]]:
    """``indices`` cut into consecutive lists of at most ``size``."""
    return [indices[i : i + size] for i in range(0, len(indices), size)]


class ModelForecaster:
    """Rolls a checkpoint forward; ``__call__(init_indices) -> (n_init, n_lead, [M,] C, H, W)`` physical."""

    def __init__(
        self,
        checkpoint: str,
        layout: StoreLayout,
        leads: list[float],
        members: int,
        scale: float,
        device: str,
        seed: int,
    ) -> None:
        header = read_header(checkpoint)  # validated; checked against the store before any model is built
        if list(header["channel_names"]) != list(layout.channel_names):
            raise WxemuError(
                f"{layout.path}: channels {layout.channel_names} differ from the checkpoint's "
                f"{header['channel_names']} ({checkpoint})"
            )
        grid = header["grid"]
        if (
            len(grid["latitude"]) != len(layout.latitude)
            or len(grid["longitude"]) != len(layout.longitude)
            or not np.allclose(grid["latitude"], layout.latitude)
            or not np.allclose(grid["longitude"], layout.longitude)
        ):
            raise WxemuError(f"{layout.path}: grid differs from the grid {checkpoint} was trained on")
        missing = sorted(set(header.get("static_fields", [])) - set(layout.static))
        if missing:
            raise WxemuError(f"{layout.path}: the checkpoint needs static fields {missing} that the store lacks")
        self.model, self.header = load_checkpoint(checkpoint, device=device)
        self.stats = stats_from_header(self.header)
        self.layout = layout
        self.spec = ForcingSpec.from_dict(self.header["forcing_spec"])
        self.forcings = ForcingProvider(layout, self.spec, self.stats)
        self.reader = StoreReader(layout)
        self.history = int(self.header["history"])
        self.steps = [float(s) for s in self.header["step_hours"]]
        self.leads = leads
        self.members = members
        self.scale = scale
        self.device = torch.device(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.autocast = torch.bfloat16 if self.device.type == "cuda" else None
        try:
            plan_rollout(leads, self.steps, self.history)
        except ValueError as exc:
            raise WxemuError(f"{checkpoint}: {exc}") from None
        self.step0 = min(self.steps)
        self.model_name = self.header["model_kind"]
        self.lags: dict[float, float] = {}  # {lead: hours before the init of its one-step start} (lagged paths)

    def needed_history(self) -> int:
        """Store steps needed before the initial time (history > 1, lagged paths, yesterday_change forcings)."""
        lag_steps = max((round(k / self.layout.step_hours) for k in self.lags.values()), default=0)
        yesterday = 0
        if self.spec.yesterday_change:  # the first lead's yesterday_change reads the analyses 24 h + 1 step back
            yesterday = self.forcings.yesterday_offsets()[1] - round(min(self.leads) / self.layout.step_hours)
        return max((self.history - 1) * stride_for(self.step0, self.layout), lag_steps, yesterday)

    def _forecast_yesterday(
        self, init_idx: list[int], lead: float, known: dict[float, torch.Tensor]
    ) -> np.ndarray | None:
        """The normalised yesterday_change channels at ``lead`` when they fall after the initial time (leads beyond
        24 h): from the forecast states ``known`` {lead: (B, C, H, W)}, and the analyses up to the initial time;
        None when the analyses alone give them (the forcing provider reads those)."""
        step = self.layout.step_hours
        newer = lead - YESTERDAY_HOURS
        if not self.spec.yesterday_change or newer <= 1e-9:
            return None
        channels = [self.layout.channel_names.index(c) for c in self.spec.yesterday_change]
        repeat = self.members

        def state_at(rel: float) -> torch.Tensor:
            if rel <= 1e-9:
                idx = np.asarray(init_idx) + round(rel / step)
                arr = normalize(self.reader.read(idx), self.stats.mean, self.stats.std)
                return torch.from_numpy(arr).repeat_interleave(repeat, dim=0)
            if float(rel) not in known:
                raise WxemuError(
                    f"{self.header.get('model_kind')}: the yesterday_change forcing at +{lead:g} h needs the forecast "
                    f"at +{rel:g} h, which the model's steps {self.steps} h do not produce"
                )
            return known[float(rel)].detach().float().cpu()

        diff = state_at(newer) - state_at(newer - step)
        return diff[:, channels].numpy()

    def __call__(
        self,
        init_idx: list[int],
        lags: dict[float, float] | None = None,
        normalized: bool = False,
        leads: list[float] | None = None,
    ) -> np.ndarray:
        """Forecasts (n_init, n_lead, [M,] C, H, W) in physical units (``normalized``: as the model sees them) for
        the store's initial-time indices ``init_idx``, with ``lags`` (default: this forecaster's), at ``leads``
        (default: this forecaster's)."""
        leads = self.leads if leads is None else leads
        lags = self.lags if lags is None else lags
        lagged = {}
        for k in sorted(set(lags.values())):
            back = np.asarray(init_idx) - round(k / self.layout.step_hours)
            lagged[k] = torch.from_numpy(normalize(self.reader.read(back), self.stats.mean, self.stats.std))[
                :, None
            ].to(self.device)

        stride = stride_for(self.step0, self.layout)
        offsets = np.arange(-(self.history - 1), 1) * stride
        idx = np.asarray(init_idx)[:, None] + offsets[None, :]
        states = self.reader.read(idx.ravel())
        states = normalize(states, self.stats.mean, self.stats.std).reshape(
            len(init_idx), self.history, *states.shape[1:]
        )
        hist = torch.from_numpy(states)
        m = self.members
        if m > 1:
            hist = hist.repeat_interleave(m, dim=0)  # (n_init*M, h, C, H, W), member fastest
            pert = perturb(hist, self.stats, self.step0, self.scale, self.generator)
            is_member0 = (torch.arange(hist.shape[0]) % m == 0)[:, None, None, None, None]
            hist = torch.where(is_member0, hist, pert)
        hist = hist.to(self.device)
        init_times = self.layout.times[np.asarray(init_idx)]

        def forcing_at(lead: float, known: dict[float, torch.Tensor]) -> torch.Tensor:
            valid = init_times + np.timedelta64(int(round(lead * 3600)), "s")
            yesterday = self._forecast_yesterday(init_idx, lead, known)  # (B*M, ...): every member its own
            if yesterday is not None:
                return torch.from_numpy(self.forcings(np.repeat(valid, m), yesterday=yesterday)).to(self.device)
            f = torch.from_numpy(self.forcings(valid))
            if m > 1:
                f = f.repeat_interleave(m, dim=0)
            return f.to(self.device)

        if lagged and m > 1:
            raise WxemuError("lagged paths are not available for ensembles (--members > 1)")
        out = rollout(
            self.model, hist, forcing_at, leads, self.steps, self.stats, self.autocast, lags=lags, lagged_states=lagged
        )
        arr = as_numpy(out, leads)
        if not normalized:
            arr = denormalize(arr, self.stats.mean, self.stats.std)  # (B, L, C, H, W)
        if m > 1:
            arr = arr.reshape(len(init_idx), m, *arr.shape[1:]).transpose(0, 2, 1, 3, 4, 5)
        return arr


def select_lags(
    forecaster: ModelForecaster, val_idx: list[int], batch_size: int = 24
) -> tuple[dict[float, float], dict[float, dict[float, float]]]:
    """Choose each lead's path on validation initial times ``val_idx`` (store indices; their analyses
    ``lag`` hours earlier and at every lead must be in the store): the greedy path from the initial time (lag 0)
    or one trained step from ``lag`` hours before it (:func:`pipeline.rollout.lag_candidates`), by area-weighted
    RMSE of the normalised state (every channel counts once). Returns ({lead: lag} of the lagged leads,
    {lead: {lag: RMSE}} of every candidate)."""
    layout = forecaster.layout
    per_step = layout.step_hours
    cands = {lead: lag_candidates(lead, forecaster.steps) for lead in forecaster.leads}
    max_lag = max((k for ks in cands.values() for k in ks), default=0.0)
    first = min(val_idx) - round(max_lag / per_step)
    last = max(val_idx) + round(max(forecaster.leads) / per_step)
    if first < 0 or last >= len(layout.times):
        raise WxemuError(
            f"{layout.path}: --lagged-paths needs analyses from {max_lag:g} h before the first "
            f"validation initial time to {max(forecaster.leads):g} h after the last; the store covers "
            f"{pd.Timestamp(layout.times[0])} .. {pd.Timestamp(layout.times[-1])}"
        )
    w = latitude_weights(layout.latitude)[:, None]
    passes = [{}] + [
        {lead: ks[j] for lead, ks in cands.items() if len(ks) > j}
        for j in range(max((len(ks) for ks in cands.values()), default=0))
    ]
    scores: dict[float, dict[float, float]] = {lead: {} for lead in forecaster.leads}
    sq: dict[tuple[int, float], list[np.ndarray]] = {}  # (pass, lead) -> per-init weighted MSE
    for group in batches(list(val_idx), batch_size):
        truth = {
            lead: normalize(
                forecaster.reader.read(np.asarray(group) + round(lead / per_step)),
                forecaster.stats.mean,
                forecaster.stats.std,
            )
            for lead in forecaster.leads
        }
        for i, lags in enumerate(passes):  # every lead's greedy path, then one lagged candidate per lead and pass
            leads = sorted(lags) if lags else list(forecaster.leads)
            pred = forecaster(group, lags=lags, normalized=True, leads=leads)  # (B, L, C, H, W)
            for j, lead in enumerate(leads):
                sq.setdefault((i, lead), []).append((((pred[:, j] - truth[lead]) ** 2) * w).mean(axis=(1, 2, 3)))
    for (i, lead), parts in sq.items():
        scores[lead][passes[i].get(lead, 0.0)] = float(np.sqrt(np.concatenate(parts).mean()))
    return choose_lags(scores), scores


class PersistenceForecaster:
    """The state at the initial time for every lead (models.baselines.persistence_forecast)."""

    model_name = "persistence"

    def __init__(self, layout: StoreLayout, leads: list[float]) -> None:
        self.reader = StoreReader(layout)
        self.leads = leads

    def needed_history(self) -> int:
        return 0

    def __call__(self, init_idx: list[int]) -> np.ndarray:
        states = self.reader.read(init_idx)  # (B, C, H, W)
        return np.moveaxis(persistence_forecast(states, len(self.leads)), 0, 1)


class ClimatologyForecaster:
    """The store's climatology at each valid time's day of year and hour (pipeline.store_reader.ClimatologyReader)."""

    model_name = "climatology"

    def __init__(self, layout: StoreLayout, leads: list[float]) -> None:
        self.clim = ClimatologyReader(layout)
        self.layout = layout
        self.leads = leads

    def needed_history(self) -> int:
        return 0

    def __call__(self, init_idx: list[int]) -> np.ndarray:
        init = pd.DatetimeIndex(self.layout.times[np.asarray(init_idx)])
        valid = np.stack([init + pd.Timedelta(hours=h) for h in self.leads], axis=1).ravel()  # (B*L,)
        arr = self.clim(valid)
        return arr.reshape(len(init_idx), len(self.leads), *arr.shape[1:])
