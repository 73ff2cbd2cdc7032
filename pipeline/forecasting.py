"""`wxemu forecast`: roll a checkpoint (or a baseline) forward from many initial times into a forecast store.

``forecast(ForecastConfig(...), device=..., batch_size=..., progress=...) -> ForecastResult``. The store layout is
pipeline.forecast_store's (WeatherBench2's). Batches of initial times are written as they complete; the indices
of completed initial times are recorded in the root attribute ``wxemu_inits_done``, so a killed run re-run with
the same config resumes where it stopped (on any fsspec store; data_catalog.store_protocol, under its writer
lock); ``wxemu_complete`` becomes True at the end. A batch with non-finite values stops the run (nothing of it
written, the store left incomplete) unless ``allow_nonfinite``.

Ensembles (``members`` > 1): member 0 is unperturbed; members 1..N-1 add Gaussian noise with standard deviation
``perturbation_scale`` x the per-channel ``diff_std`` of the smallest trained step, spatially smoothed with a
Gaussian of 2 grid cells (pipeline.rollout.perturb), to the initial history.

Baselines (``checkpoint`` = ``persistence`` | ``climatology``): models.baselines, through pipeline.forecasters.
"""

from __future__ import annotations

import argparse
import dataclasses
import time as _time
from typing import Any

import fsspec
import numpy as np
import pandas as pd

from data_catalog.errors import ConfigError, WxemuError
from data_catalog.store_protocol import mark_complete, root_attrs, set_root_attrs, store_exists, writer_lock
from pipeline.checkpoint import sha256_file, weights_path
from pipeline.forecast_store import create_forecast_store, write_batch
from pipeline.forecasters import (
    ClimatologyForecaster,
    ModelForecaster,
    PersistenceForecaster,
    batches,
    select_lags,
)
from pipeline.rollout import simulated_days_per_second
from pipeline.store_reader import read_layout

HELP = "roll a checkpoint (or a baseline) forward into a forecast store"
BASELINES = ("persistence", "climatology")
DONE_ATTR = "wxemu_inits_done"
REQUEST_ATTR = "wxemu_forecast_request"


class NonFiniteForecastError(WxemuError):
    """A forecast produced NaN or infinite values (a diverged or broken model)."""


# ------------------------------------------------------------------------------------------------ parsing
def parse_duration_hours(text: str, what: str) -> float:
    """'24h', '2d', '90min' -> hours (float). WxemuError naming ``what`` when unparsable or not positive."""
    try:
        hours = pd.Timedelta(text) / pd.Timedelta(hours=1)
    except (ValueError, TypeError):
        raise ConfigError(f"{what}: cannot parse duration {text!r} (use e.g. 24h, 6h, 2d)") from None
    if not hours > 0:
        raise ConfigError(f"{what}: duration must be positive, got {text!r}")
    return float(hours)


def _timestamp(text: str, spec: str, what: str, part: str) -> pd.Timestamp:
    try:
        stamp = pd.Timestamp(text.strip()) if text.strip() else pd.NaT
    except (ValueError, TypeError, OverflowError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise ConfigError(f"{what} {spec!r}: {part} {text!r} is not a date (e.g. 2019-03-25T00)")
    return stamp.tz_localize(None) if stamp.tzinfo is not None else stamp


def parse_init_times(spec: str, what: str = "init") -> np.ndarray:
    """'START' or 'START/END/EVERY' (END inclusive) -> datetime64[ns] array; ConfigError naming ``what``."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"{what}: empty; expected START or START/END/EVERY (e.g. 2019-03-25T00/2019-03-30T00/12h)")
    parts = spec.split("/")
    if len(parts) == 1:
        return np.array([_timestamp(parts[0], spec, what, "START").to_datetime64()], dtype="datetime64[ns]")
    if len(parts) != 3:
        raise ConfigError(f"{what} {spec!r}: expected START or START/END/EVERY (e.g. 2019-03-25T00/2019-03-30T00/12h)")
    start = _timestamp(parts[0], spec, what, "START")
    end = _timestamp(parts[1], spec, what, "END")
    try:
        every = pd.Timedelta(parts[2])
    except (ValueError, TypeError):
        every = pd.NaT
    if every is pd.NaT or not every > pd.Timedelta(0):
        raise ConfigError(f"{what} {spec!r}: EVERY {parts[2]!r} is not a positive duration (e.g. 1h, 6h, 1d)")
    rng = pd.date_range(start, end, freq=every)
    if len(rng) == 0:
        raise ConfigError(f"{what} {spec!r}: END is before START")
    return rng.values.astype("datetime64[ns]")


# ------------------------------------------------------------------------------------------------ config
@dataclasses.dataclass(frozen=True, kw_only=True)
class ForecastConfig:
    """What a forecast store holds.

    ``checkpoint``: RUN_DIR/model.safetensors, a run directory, or a baseline (``persistence`` | ``climatology``);
    ``store``: the canonical analysis store with the initial conditions; ``init``: ``START[/END/EVERY]`` (END
    inclusive); ``lead``: the longest lead (leads are ``step, 2*step, ..., lead``; ``step`` defaults to the store's
    time step); ``out``: the forecast store (path or fsspec URL; resumed when it holds the same request);
    ``members``/``perturbation_scale``/``seed``: the ensemble; ``lagged_paths``: ``START/END`` validation initial
    times on which each lead's path is chosen (None: greedy paths); ``allow_nonfinite``: write NaN/inf values
    instead of refusing them.
    """

    checkpoint: str
    store: str
    init: str
    out: str
    lead: str = "24h"
    step: str | None = None
    members: int = 1
    perturbation_scale: float = 0.5
    seed: int = 0
    lagged_paths: str | None = None
    allow_nonfinite: bool = False

    def __post_init__(self) -> None:
        for name in ("checkpoint", "store", "out"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{name}: expected a path, got {value!r}")
        parse_init_times(self.init)
        parse_duration_hours(self.lead, "lead")
        if self.step is not None:
            parse_duration_hours(self.step, "step")
        if isinstance(self.members, bool) or not isinstance(self.members, int) or self.members < 1:
            raise ConfigError(f"members: must be an integer >= 1, got {self.members!r}")
        if not np.isfinite(self.perturbation_scale) or self.perturbation_scale < 0:
            raise ConfigError(f"perturbation_scale: must be a finite number >= 0, got {self.perturbation_scale!r}")
        if self.lagged_paths is not None and self.lagged_paths.count("/") not in (1, 2):
            raise ConfigError(f"lagged_paths {self.lagged_paths!r}: expected START/END")
        if self.lagged_paths is not None and self.checkpoint in BASELINES:
            raise ConfigError(f"lagged_paths: is for emulators, not the {self.checkpoint} baseline")
        if self.members > 1 and self.checkpoint in BASELINES:
            raise ConfigError(f"members: > 1 is for emulators, not the {self.checkpoint} baseline")


@dataclasses.dataclass(frozen=True)
class ForecastResult:
    """``path``: the complete forecast store; ``model``: the model kind or baseline name; ``n_inits``: initial
    times in the store; ``checkpoint``/``checkpoint_sha256``: the weights used (None for baselines);
    ``n_written``: initial times computed by this call (0 when the store was already complete);
    ``elapsed_s``/``days_per_second``: wall time and simulated days per second of this call."""

    path: str
    model: str
    n_inits: int
    n_leads: int
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    n_written: int = 0
    elapsed_s: float = 0.0
    days_per_second: float = 0.0
    lead_paths: dict[str, Any] | None = None


# ------------------------------------------------------------------------------------------------ stage
def _existing_request(out: str) -> dict[str, Any] | None:
    """The root attributes of a forecast store at ``out``; None when nothing is there. WxemuError when ``out``
    holds something that ``forecast`` must not overwrite (a file, a non-empty folder, another kind of store)."""
    if store_exists(out):
        attrs = root_attrs(out)
        if REQUEST_ATTR not in attrs:
            raise WxemuError(f"{out}: holds a Zarr store that wxemu forecast did not write; choose another out")
        return attrs
    fs, path = fsspec.core.url_to_fs(out)
    if fs.exists(path) and (not fs.isdir(path) or fs.ls(path)):
        raise WxemuError(f"{out}: exists and is not a forecast store; remove it or choose another out")
    return None


def _first_nonfinite(values: np.ndarray) -> tuple[int, int, int]:
    """(batch position, lead position, count) of the first non-finite value of (B, L, ...) ``values``."""
    bad = ~np.isfinite(values)
    b, lead = np.argwhere(bad)[0][:2]
    return int(b), int(lead), int(bad.sum())


def forecast(
    config: ForecastConfig, *, device: str = "cpu", batch_size: int = 4, progress: bool = False
) -> ForecastResult:
    """Write (or complete) the forecast store ``config.out`` and return what it holds.

    ``device``: torch device of the model (cpu, cuda, cuda:N); ``batch_size``: initial times per model call;
    ``progress``: print the model loaded, the paths chosen and each batch written.
    """
    say = print if progress else (lambda *a, **k: None)
    layout = read_layout(config.store)
    lead = parse_duration_hours(config.lead, "lead")
    step = parse_duration_hours(config.step, "step") if config.step else layout.step_hours
    n = lead / step
    if abs(n - round(n)) > 1e-9:
        raise ConfigError(f"lead {config.lead} is not a multiple of step {config.step or step}")
    leads = [step * (i + 1) for i in range(int(round(n)))]
    init_times = parse_init_times(config.init)
    init_idx = [layout.time_index(t) for t in init_times]

    ckpt = config.checkpoint
    provenance: dict[str, Any]
    if ckpt in BASELINES:
        forecaster: Any = (
            PersistenceForecaster(layout, leads) if ckpt == "persistence" else ClimatologyForecaster(layout, leads)
        )
        provenance = {"wxemu_model": ckpt, "wxemu_checkpoint": None, "wxemu_checkpoint_sha256": None}
        say(f"wxemu forecast: {ckpt} baseline")
    else:
        wpath = weights_path(ckpt)
        forecaster = ModelForecaster(
            str(wpath), layout, leads, config.members, config.perturbation_scale, device, config.seed
        )
        provenance = {
            "wxemu_model": forecaster.model_name,
            "wxemu_checkpoint": str(wpath.resolve()),
            "wxemu_checkpoint_sha256": sha256_file(wpath),
        }
        say(
            f"wxemu forecast: loaded the {forecaster.model_name} model {provenance['wxemu_checkpoint']} "
            f"(sha256 {provenance['wxemu_checkpoint_sha256'][:12]}, trained "
            f"{forecaster.header.get('global_step', '?')} steps)"
        )
        if config.lagged_paths:
            if config.members > 1:
                raise ConfigError("lagged_paths: not available for ensembles (members > 1)")
            if forecaster.history > 1:
                raise WxemuError(f"{ckpt}: lagged_paths needs a model with history 1")
            spec = config.lagged_paths + (f"/{layout.step_hours:g}h" if config.lagged_paths.count("/") == 1 else "")
            val_times = parse_init_times(spec, "lagged_paths")
            lags, scores = select_lags(forecaster, [layout.time_index(t) for t in val_times], batch_size)
            forecaster.lags = lags
            provenance["wxemu_lead_paths"] = {
                "validation": config.lagged_paths,
                "lagged": {f"{lead:g}": lag for lead, lag in sorted(lags.items())},
                "rmse_normalised": {
                    f"{lead:g}": {f"{k:g}": round(v, 5) for k, v in sorted(by.items())}
                    for lead, by in sorted(scores.items())
                },
            }
            say(
                f"wxemu forecast: lagged paths chosen on {config.lagged_paths}: "
                + (", ".join(f"+{lead:g} h from -{lag:g} h" for lead, lag in sorted(lags.items())) or "none")
            )
    need = forecaster.needed_history()
    for t, i in zip(init_times, init_idx):
        if i - need < 0:
            raise WxemuError(
                f"{config.store}: initial time {pd.Timestamp(t)} needs {need} earlier time steps of "
                f"history; the store starts at {pd.Timestamp(layout.times[0])}"
            )

    request = {
        "init": [str(t) for t in init_times],
        "leads_hours": leads,
        "members": config.members,
        "perturbation_scale": config.perturbation_scale,
        "seed": config.seed,
        "store": str(config.store),
        **provenance,
    }
    result = {
        "path": config.out,
        "model": provenance["wxemu_model"],
        "n_inits": len(init_times),
        "n_leads": len(leads),
        "checkpoint": provenance["wxemu_checkpoint"],
        "checkpoint_sha256": provenance["wxemu_checkpoint_sha256"],
        "lead_paths": provenance.get("wxemu_lead_paths"),
    }
    with writer_lock(config.out, stage="forecast"):  # one writer at a time; the loser fails at once
        attrs = _existing_request(config.out)
        if attrs is not None and attrs.get(REQUEST_ATTR) == request:
            done = {int(i) for i in attrs.get(DONE_ATTR, [])}
            if attrs.get("wxemu_complete"):
                return ForecastResult(**result)
            say(f"wxemu forecast: resuming {config.out} ({len(done)} of {len(init_idx)} initial times written)")
        else:
            done = set()
            settings = {
                "lead": config.lead,
                "step_hours": step,
                "init": config.init,
                "members": config.members,
                "perturbation_scale": config.perturbation_scale,
                "batch_size": batch_size,
                "seed": config.seed,
                "allow_nonfinite": config.allow_nonfinite,
            }
            create_forecast_store(
                config.out,
                layout,
                init_times,
                leads,
                config.members,
                {
                    "wxemu_complete": False,
                    REQUEST_ATTR: request,
                    DONE_ATTR: [],
                    "wxemu_config": settings,
                    "wxemu_source_store": str(config.store),
                    **provenance,
                },
            )
        todo = [j for j in range(len(init_idx)) if j not in done]
        t0 = _time.perf_counter()
        computed = 0
        for group in batches(todo, max(1, batch_size)):
            values = forecaster([init_idx[j] for j in group])
            if not config.allow_nonfinite and not np.isfinite(values).all():
                b, lead_pos, count = _first_nonfinite(values)
                raise NonFiniteForecastError(
                    f"{config.out}: the {provenance['wxemu_model']} forecast from initial time "
                    f"{pd.Timestamp(init_times[group[b]])} has non-finite values from lead +{leads[lead_pos]:g} h "
                    f"({count} values in this batch of {len(group)} initial times); the batch was not written and the "
                    "store is left incomplete (allow_nonfinite / --allow-nonfinite writes them anyway)"
                )
            # write contiguous runs of output indices (a resumed run may have holes)
            runs = np.split(np.arange(len(group)), np.where(np.diff(group) != 1)[0] + 1)
            for r in runs:
                write_batch(config.out, layout, group[r[0]], values[r[0] : r[-1] + 1])
            done.update(group)
            computed += len(group)
            set_root_attrs(config.out, {DONE_ATTR: sorted(done)})
            say(f"  {len(done)}/{len(init_idx)} initial times")
        elapsed = _time.perf_counter() - t0
        mark_complete(config.out)
        speed = simulated_days_per_second(computed * config.members, lead, elapsed) if computed else 0.0
        return ForecastResult(**result, n_written=computed, elapsed_s=elapsed, days_per_second=speed)


# ------------------------------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="RUN_DIR/model.safetensors (or RUN_DIR), or a baseline: persistence | climatology",
    )
    parser.add_argument("--store", required=True, help="analysis store with the initial conditions (canonical)")
    parser.add_argument("--init", required=True, help="START[/END/EVERY], e.g. 2019-03-25T00/2019-03-30T00/12h")
    parser.add_argument("--lead", default="24h", help="longest lead (e.g. 24h, 2d)")
    parser.add_argument("--step", default=None, help="output lead spacing (default: the store's time step)")
    parser.add_argument("--out", required=True, help="forecast Zarr store to write (resumed if it exists)")
    parser.add_argument("--members", type=int, default=1, help="ensemble members (member 0 unperturbed)")
    parser.add_argument(
        "--perturbation-scale", type=float, default=0.5, help="perturbation std in units of each channel's diff_std"
    )
    parser.add_argument("--batch-size", type=int, default=4, help="initial times per batch")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    parser.add_argument("--seed", type=int, default=0, help="seed of the ensemble perturbations")
    parser.add_argument(
        "--lagged-paths",
        default=None,
        metavar="START/END",
        help="choose, lead by lead, between the greedy path from the initial time and one trained "
        "step from an earlier analysis (up to the longest step before it), by RMSE on the "
        "validation initial times START..END (every store step; their leads must lie in "
        "the store); default: greedy paths only",
    )
    parser.add_argument(
        "--allow-nonfinite", action="store_true", help="write NaN/inf forecasts instead of stopping at the first"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    config = ForecastConfig(
        checkpoint=args.checkpoint,
        store=args.store,
        init=args.init,
        out=args.out,
        lead=args.lead,
        step=args.step,
        members=args.members,
        perturbation_scale=args.perturbation_scale,
        seed=args.seed,
        lagged_paths=args.lagged_paths,
        allow_nonfinite=args.allow_nonfinite,
    )
    result = forecast(config, device=args.device, batch_size=args.batch_size, progress=not args.quiet)
    if result.n_written == 0:
        print(f"wxemu forecast: {result.path} is already complete ({result.model}, {result.n_inits} initial times)")
    else:
        print(
            f"wxemu forecast: wrote {result.n_written} initial times x {result.n_leads} leads to {result.path} "
            f"({result.elapsed_s:.1f} s, {result.days_per_second:.2f} simulated days/s)"
        )
    return 0
