"""`wxemu forecast`: roll a checkpoint (or a baseline) forward from many initial times into a forecast store.

Output layout (WeatherBench2's, docs/architecture.md): dims ``time`` (initialisation), ``prediction_timedelta``
(leads ``step, 2*step, ..., lead``; lead 0 is NOT included — verify matches on valid time), [``number``] when
``--members`` > 1, [``level``], ``latitude``, ``longitude``; one data variable per state variable, physical units,
float32. Chunks: one initial time per chunk. Batches of initial times are written with region writes as they
complete; the indices of completed initial times are recorded in the root attribute ``wxemu_inits_done``, so a
killed run re-run with the same arguments resumes where it stopped; ``wxemu_complete`` becomes True at the end.

Ensembles (``--members N``): member 0 is unperturbed; members 1..N-1 add Gaussian noise with standard deviation
``--perturbation-scale`` x the per-channel ``diff_std`` of the smallest trained step, spatially smoothed with a
Gaussian of 2 grid cells (pipeline.rollout.perturb), to the initial history.

Baselines: ``persistence`` (the state at the initial time for every lead) and ``climatology`` (the store's
``climatology`` group at each valid time's day of year and hour).
"""

from __future__ import annotations

import argparse
import json
import logging
import time as _time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from data_catalog.errors import WxemuError

HELP = "roll a checkpoint (or a baseline) forward into a forecast store"
BASELINES = ("persistence", "climatology")
DONE_ATTR = "wxemu_inits_done"
REQUEST_ATTR = "wxemu_forecast_request"
log = logging.getLogger(__name__)


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


# ------------------------------------------------------------------------------------------------ pure helpers
def parse_duration_hours(text: str, what: str) -> float:
    """'24h', '2d', '90min' -> hours (float). WxemuError when unparsable or not positive."""
    try:
        hours = pd.Timedelta(text) / pd.Timedelta(hours=1)
    except (ValueError, TypeError):
        raise WxemuError(f"{what}: cannot parse duration {text!r} (use e.g. 24h, 6h, 2d)") from None
    if hours <= 0:
        raise WxemuError(f"{what}: duration must be positive, got {text!r}")
    return float(hours)


def parse_init_times(spec: str, what: str = "--init") -> np.ndarray:
    """'START' or 'START/END/EVERY' (END inclusive) -> datetime64[ns] array; errors name the option ``what``."""
    parts = spec.split("/")
    try:
        if len(parts) == 1:
            return np.array([pd.Timestamp(parts[0]).to_datetime64()], dtype="datetime64[ns]")
        if len(parts) == 3:
            rng = pd.date_range(pd.Timestamp(parts[0]), pd.Timestamp(parts[1]), freq=pd.Timedelta(parts[2]))
            if len(rng) == 0:
                raise WxemuError(f"{what} {spec!r}: END is before START")
            return rng.values.astype("datetime64[ns]")
    except (ValueError, TypeError) as exc:
        raise WxemuError(f"{what} {spec!r}: {exc}") from None
    raise WxemuError(f"{what} {spec!r}: expected START or START/END/EVERY")


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


# ------------------------------------------------------------------------------------------------ output store
def _channel_slices(layout: Any) -> list[tuple[str, slice, list[int] | None]]:
    out, c = [], 0
    for name, order in layout.variables:
        n = 1 if order is None else len(order)
        out.append((name, slice(c, c + n), order))
        c += n
    return out


def create_forecast_store(
    out: str, layout: Any, init_times: np.ndarray, leads_hours: list[float], members: int, attrs: dict[str, Any]
) -> None:
    """Write the metadata and coordinates of an empty forecast store (data chunks are written later)."""
    import dask.array as da
    import xarray as xr

    from data_catalog.store import open_store

    src = open_store(layout.path, storage_options=layout.storage_options or None)
    lead_td = np.array([np.timedelta64(int(round(h * 3600)), "s") for h in leads_hours]).astype("timedelta64[ns]")
    coords: dict[str, Any] = {
        "time": init_times,
        "prediction_timedelta": lead_td,
        "latitude": layout.latitude,
        "longitude": layout.longitude,
    }
    if members > 1:
        coords["number"] = np.arange(members)
    data_vars = {}
    for name, order in layout.variables:
        dims = ["time", "prediction_timedelta"] + (["number"] if members > 1 else [])
        shape = [len(init_times), len(lead_td)] + ([members] if members > 1 else [])
        if order is not None:
            levels = np.sort(np.asarray(src[name]["level"].values))
            coords["level"] = levels
            dims.append("level")
            shape.append(len(levels))
        dims += ["latitude", "longitude"]
        shape += [len(layout.latitude), len(layout.longitude)]
        chunks = [1] + shape[1:]
        arr = da.full(shape, np.nan, dtype=np.float32, chunks=chunks)
        data_vars[name] = (dims, arr, dict(src[name].attrs))
    ds = xr.Dataset(data_vars, coords=coords, attrs=attrs)
    encoding = {name: {"chunks": tuple([1] + list(ds[name].shape[1:]))} for name in data_vars}
    ds.to_zarr(out, mode="w", compute=False, zarr_format=3, consolidated=True, encoding=encoding)


def write_batch(out: str, layout: Any, start: int, values: np.ndarray) -> None:
    """Write physical values (n_init, n_lead, [members,] C, H, W) at initial-time index ``start``."""
    import zarr

    group = zarr.open_group(out, mode="r+")
    for name, sl, order in _channel_slices(layout):
        block = values[..., sl, :, :]
        if order is None:
            block = block[..., 0, :, :]
        group[name][start : start + values.shape[0]] = block.astype(np.float32)


def _update_attrs(out: str, **attrs: Any) -> None:
    import zarr

    group = zarr.open_group(out, mode="r+")
    group.attrs.update(attrs)
    zarr.consolidate_metadata(out)


def _read_attrs(out: str) -> dict[str, Any] | None:
    p = Path(out) / "zarr.json"
    if not p.exists():
        return None
    return dict(json.loads(p.read_text()).get("attributes", {}))


# ------------------------------------------------------------------------------------------------ forecasters
class ModelForecaster:
    """Rolls a checkpoint forward; ``__call__(init_indices) -> (n_init, n_lead, [M,] C, H, W)`` physical."""

    def __init__(
        self, checkpoint: str, layout: Any, leads: list[float], members: int, scale: float, device: str, seed: int
    ) -> None:
        from models.forcings import ForcingSpec
        from pipeline.checkpoint import load_checkpoint, stats_from_header
        from pipeline.datamodule import ForcingProvider, StoreReader

        self.model, self.header = load_checkpoint(checkpoint, device=device)
        self.stats = stats_from_header(self.header)
        self.layout = layout
        if list(self.header["channel_names"]) != list(layout.channel_names):
            raise WxemuError(
                f"{layout.path}: channels {layout.channel_names} differ from the checkpoint's "
                f"{self.header['channel_names']} ({checkpoint})"
            )
        grid = self.header["grid"]
        if (
            len(grid["latitude"]) != len(layout.latitude)
            or len(grid["longitude"]) != len(layout.longitude)
            or not np.allclose(grid["latitude"], layout.latitude)
            or not np.allclose(grid["longitude"], layout.longitude)
        ):
            raise WxemuError(f"{layout.path}: grid differs from the grid {checkpoint} was trained on")
        missing = sorted(set(self.header.get("static_fields", [])) - set(layout.static))
        if missing:
            raise WxemuError(f"{layout.path}: the checkpoint needs static fields {missing} that the store lacks")
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
        from pipeline.rollout import plan_rollout

        try:
            plan_rollout(leads, self.steps, self.history)
        except ValueError as exc:
            raise WxemuError(f"{checkpoint}: {exc}") from None
        self.step0 = min(self.steps)
        self.model_name = self.header["model_kind"]
        self.lags: dict[float, float] = {}  # {lead: hours before the init of its one-step start} (lagged paths)

    def needed_history(self) -> int:
        """Store steps needed before the initial time (history > 1, lagged paths)."""
        from pipeline.datamodule import stride_for

        lag_steps = max((round(k / self.layout.step_hours) for k in self.lags.values()), default=0)
        return max((self.history - 1) * stride_for(self.step0, self.layout), lag_steps)

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
        from pipeline.datamodule import stride_for
        from pipeline.normalization import denormalize, normalize
        from pipeline.rollout import as_numpy, perturb, rollout

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

        def forcing_at(lead: float) -> torch.Tensor:
            valid = init_times + np.timedelta64(int(round(lead * 3600)), "s")
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
    from pipeline.normalization import normalize
    from pipeline.rollout import choose_lags, lag_candidates
    from pipeline.weights import latitude_weights

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
    for group in _batches(list(val_idx), batch_size):
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
    model_name = "persistence"

    def __init__(self, layout: Any, leads: list[float]) -> None:
        from pipeline.datamodule import StoreReader

        self.reader = StoreReader(layout)
        self.leads = leads

    def needed_history(self) -> int:
        return 0

    def __call__(self, init_idx: list[int]) -> np.ndarray:
        states = self.reader.read(init_idx)  # (B, C, H, W)
        return np.repeat(states[:, None], len(self.leads), axis=1)


class ClimatologyForecaster:
    model_name = "climatology"

    def __init__(self, layout: Any, leads: list[float]) -> None:
        from pipeline.datamodule import ClimatologyReader

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


# ------------------------------------------------------------------------------------------------ stage
def run(args: argparse.Namespace) -> int:
    from pipeline.checkpoint import sha256_file, weights_path
    from pipeline.datamodule import read_layout
    from pipeline.rollout import simulated_days_per_second

    layout = read_layout(args.store)
    lead = parse_duration_hours(args.lead, "--lead")
    step = parse_duration_hours(args.step, "--step") if args.step else layout.step_hours
    n = lead / step
    if abs(n - round(n)) > 1e-9:
        raise WxemuError(f"--lead {args.lead} is not a multiple of --step {args.step or step}")
    leads = [step * (i + 1) for i in range(int(round(n)))]
    if args.members < 1:
        raise WxemuError("--members must be >= 1")
    init_times = parse_init_times(args.init)
    init_idx = [layout.time_index(t) for t in init_times]

    ckpt = args.checkpoint
    provenance: dict[str, Any]
    if ckpt in BASELINES:
        if args.members > 1:
            raise WxemuError(f"--members > 1 is for emulators, not the {ckpt} baseline")
        forecaster: Any = (
            PersistenceForecaster(layout, leads) if ckpt == "persistence" else ClimatologyForecaster(layout, leads)
        )
        provenance = {"wxemu_model": ckpt, "wxemu_checkpoint": None, "wxemu_checkpoint_sha256": None}
    else:
        wpath = weights_path(ckpt)
        forecaster = ModelForecaster(
            str(wpath), layout, leads, args.members, args.perturbation_scale, args.device, args.seed
        )
        provenance = {
            "wxemu_model": forecaster.model_name,
            "wxemu_checkpoint": str(wpath.resolve()),
            "wxemu_checkpoint_sha256": sha256_file(wpath),
        }
        if getattr(args, "lagged_paths", None):
            if args.members > 1:
                raise WxemuError("--lagged-paths is not available for ensembles (--members > 1)")
            if forecaster.history > 1:
                raise WxemuError(f"{ckpt}: --lagged-paths needs a model with history 1")
            spec = args.lagged_paths + (f"/{layout.step_hours:g}h" if args.lagged_paths.count("/") == 1 else "")
            val_times = parse_init_times(spec, "--lagged-paths")
            lags, scores = select_lags(forecaster, [layout.time_index(t) for t in val_times], args.batch_size)
            forecaster.lags = lags
            provenance["wxemu_lead_paths"] = {
                "validation": args.lagged_paths,
                "lagged": {f"{lead:g}": lag for lead, lag in sorted(lags.items())},
                "rmse_normalised": {
                    f"{lead:g}": {f"{k:g}": round(v, 5) for k, v in sorted(by.items())}
                    for lead, by in sorted(scores.items())
                },
            }
            print(
                f"wxemu forecast: lagged paths chosen on {args.lagged_paths}: "
                + (", ".join(f"+{lead:g} h from -{lag:g} h" for lead, lag in sorted(lags.items())) or "none")
            )
    need = forecaster.needed_history()
    for t, i in zip(init_times, init_idx):
        if i - need < 0:
            raise WxemuError(
                f"{args.store}: initial time {pd.Timestamp(t)} needs {need} earlier time steps of "
                f"history; the store starts at {pd.Timestamp(layout.times[0])}"
            )

    request = {
        "init": [str(t) for t in init_times],
        "leads_hours": leads,
        "members": args.members,
        "perturbation_scale": args.perturbation_scale,
        "seed": args.seed,
        "store": str(args.store),
        **provenance,
    }
    attrs = _read_attrs(args.out)
    if attrs is not None and attrs.get(REQUEST_ATTR) == request:
        done = {int(i) for i in attrs.get(DONE_ATTR, [])}
        if attrs.get("wxemu_complete"):
            print(f"wxemu forecast: {args.out} is already complete")
            return 0
    else:
        if attrs is not None and not Path(args.out).is_dir():
            raise WxemuError(f"{args.out}: exists and is not a directory")
        done = set()
        config = {
            "lead": args.lead,
            "step_hours": step,
            "init": args.init,
            "members": args.members,
            "perturbation_scale": args.perturbation_scale,
            "batch_size": args.batch_size,
            "seed": args.seed,
        }
        create_forecast_store(
            args.out,
            layout,
            init_times,
            leads,
            args.members,
            {
                "wxemu_complete": False,
                REQUEST_ATTR: request,
                DONE_ATTR: [],
                "wxemu_config": config,
                "wxemu_source_store": str(args.store),
                **provenance,
            },
        )
    todo = [j for j in range(len(init_idx)) if j not in done]
    t0 = _time.perf_counter()
    computed = 0
    for group in _batches(todo, max(1, args.batch_size)):
        # write contiguous runs of output indices (a resumed run may have holes)
        values = forecaster([init_idx[j] for j in group])
        runs = np.split(np.arange(len(group)), np.where(np.diff(group) != 1)[0] + 1)
        for r in runs:
            write_batch(args.out, layout, group[r[0]], values[r[0] : r[-1] + 1])
        done.update(group)
        computed += len(group)
        _update_attrs(args.out, **{DONE_ATTR: sorted(done)})
    elapsed = _time.perf_counter() - t0
    _update_attrs(args.out, wxemu_complete=True)
    speed = simulated_days_per_second(computed * args.members, lead, elapsed) if computed else 0.0
    print(
        f"wxemu forecast: wrote {computed} initial times x {len(leads)} leads to {args.out} "
        f"({elapsed:.1f} s, {speed:.2f} simulated days/s)"
    )
    return 0
