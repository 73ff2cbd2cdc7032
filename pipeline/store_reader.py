"""Reading a canonical store for training and inference: layout, states, channel statistics and forcings.

- :class:`StoreLayout` / :func:`read_layout`: what the store holds (variables, channel order, times, grid, static
  fields), picklable, no open handles;
- :class:`StoreReader`: physical-unit states (N, C, H, W) float32 at arbitrary time indices (zarr-python);
- :func:`store_channel_stats`: the store's per-channel mean/std and one-step difference statistics;
- :class:`ClimatologyReader` and :class:`ForcingProvider`: the store's climatology and the model forcings
  (models.forcings) at given valid times.

Used by ``pipeline.datamodule`` (training) and ``pipeline.forecasting`` (inference), which do not depend on each other.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr
from zarr.core.buffer import default_buffer_prototype

from data_catalog.errors import WxemuError
from data_catalog.store import channel_names, open_climatology, open_stats, open_store, static_variables, time_variables
from models.baselines import N_DAYS, climatology_indices
from models.forcings import YESTERDAY_HOURS, ForcingSpec, compute_forcings
from pipeline.normalization import ChannelStats


# ------------------------------------------------------------------------------------------------ store layout
@dataclass
class StoreLayout:
    """What a worker needs to read windows: picklable, no open handles.

    ``variables``: (name, level order or None) of the time-dependent variables in channel order;
    ``times`` datetime64[ns] (T,); ``latitude``/``longitude`` degrees (H,), (W,); ``static`` name -> (H, W).
    """

    path: str
    storage_options: dict[str, Any]
    variables: list[tuple[str, list[int] | None]]
    channel_names: list[str]
    times: np.ndarray
    latitude: np.ndarray
    longitude: np.ndarray
    static: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def step_hours(self) -> float:
        """The store's time step in hours (the first difference; the store must be regular)."""
        if len(self.times) < 2:
            raise WxemuError(f"{self.path}: the store needs at least two times to train or forecast")
        return float((self.times[1] - self.times[0]) / np.timedelta64(1, "h"))

    def time_index(self, when: Any) -> int:
        """Index of time ``when`` (anything pandas parses), exact match, else WxemuError."""
        t = np.datetime64(pd.Timestamp(when).tz_localize(None), "ns")
        i = int(np.searchsorted(self.times, t))
        if i >= len(self.times) or self.times[i] != t:
            raise WxemuError(
                f"{self.path}: time {pd.Timestamp(t)} is not in the store "
                f"({pd.Timestamp(self.times[0])} .. {pd.Timestamp(self.times[-1])})"
            )
        return i

    def index_range(self, start: Any, end: Any) -> tuple[int, int]:
        """Half-open index range [i0, i1) of the store times within [start, end] (inclusive dates)."""
        t0 = np.datetime64(pd.Timestamp(start), "ns")
        t1 = np.datetime64(pd.Timestamp(end), "ns")
        return int(np.searchsorted(self.times, t0, "left")), int(np.searchsorted(self.times, t1, "right"))


def read_layout(path: str, storage_options: dict[str, Any] | None = None) -> StoreLayout:
    """Inspect a complete canonical store (metadata and static fields only)."""

    ds = open_store(str(path), storage_options=storage_options)
    variables: list[tuple[str, list[int] | None]] = []
    for name in time_variables(ds):
        da = ds[name]
        want = ("time", "level", "latitude", "longitude") if "level" in da.dims else ("time", "latitude", "longitude")
        if tuple(da.dims) != want:
            raise WxemuError(f"{path}: variable {name!r} has dims {da.dims}, expected {want}")
        order = np.argsort(np.asarray(da["level"].values)).tolist() if "level" in da.dims else None
        variables.append((name, order))
    times = np.asarray(ds["time"].values).astype("datetime64[ns]")
    if len(times) > 2 and not np.all(np.diff(times) == times[1] - times[0]):
        raise WxemuError(f"{path}: the store's times are not regularly spaced")
    static = {name: np.asarray(ds[name].values, dtype=np.float32) for name in static_variables(ds)}
    return StoreLayout(
        path=str(path),
        storage_options=dict(storage_options or {}),
        variables=variables,
        channel_names=channel_names(ds),
        times=times,
        latitude=np.asarray(ds["latitude"].values, dtype=np.float64),
        longitude=np.asarray(ds["longitude"].values, dtype=np.float64),
        static=static,
    )


class StoreReader:
    """Reads physical-unit states (N, C, H, W) float32 for arbitrary time indices, zarr-python directly."""

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        group = zarr.open_group(layout.path, mode="r", storage_options=layout.storage_options or None)
        self._arrays = [(group[name], order) for name, order in layout.variables]

    def read(self, time_indices: Sequence[int] | np.ndarray) -> np.ndarray:
        """States at the given time indices (any order, duplicates allowed), physical units, (N, C, H, W)."""
        uniq, inverse = self.read_unique(time_indices)
        return uniq[inverse]

    def read_unique(self, time_indices: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each distinct time read once: (states (U, C, H, W) float32 ascending in time, inverse) such that
        ``states[inverse]`` are the states at ``time_indices`` (``inverse`` has the shape of ``time_indices``).

        One zarr selection per variable (a slice when the times are consecutive, else an orthogonal selection;
        zarr fetches the chunks concurrently), decoded straight into the output array (no concatenation).
        """
        idx = np.asarray(time_indices, dtype=np.int64)
        uniq, inverse = np.unique(idx, return_inverse=True)
        h, w = len(self.layout.latitude), len(self.layout.longitude)
        out = np.empty((len(uniq), len(self.layout.channel_names), h, w), dtype=np.float32)
        consecutive = len(uniq) > 0 and bool(np.all(np.diff(uniq) == 1))
        c = 0
        for arr, order in self._arrays:
            n = 1 if order is None else len(order)
            view = out[:, c] if order is None else out[:, c : c + n]
            sel = (slice(int(uniq[0]), int(uniq[-1]) + 1),) if consecutive else (uniq,)
            if (order is None or order == list(range(n))) and arr.dtype == np.float32:
                buf = default_buffer_prototype().nd_buffer.from_numpy_array(view)
                if consecutive:
                    arr.get_basic_selection(sel, out=buf)
                else:
                    arr.get_orthogonal_selection(sel, out=buf)
            else:
                block = arr[sel[0]] if consecutive else arr.get_orthogonal_selection(sel)
                view[...] = block if order is None else block[:, order]
            c += n
        return out, inverse.reshape(idx.shape)


# ------------------------------------------------------------------------------------------------ statistics
def store_channel_stats(layout: StoreLayout) -> ChannelStats:
    """Channel stats from the store's ``stats`` group; difference stats for the store's own time step."""
    st = open_stats(layout.path, storage_options=layout.storage_options or None)
    rows: dict[str, list[float]] = {k: [] for k in ("mean", "std", "diff_mean", "diff_std")}
    for name, order in layout.variables:
        if name not in st:
            raise WxemuError(f"{layout.path}: the stats group has no variable {name!r}")
        da = st[name]
        for key in rows:
            vals = np.atleast_1d(np.asarray(da.sel(stat=key).values, dtype=np.float64))
            if order is not None:
                vals = vals[np.argsort(np.asarray(da["level"].values))]
            rows[key].extend(vals.tolist())
    dt = layout.step_hours
    return ChannelStats(
        names=list(layout.channel_names),
        mean=np.array(rows["mean"]),
        std=np.array(rows["std"]),
        diff_mean={dt: np.array(rows["diff_mean"])},
        diff_std={dt: np.array(rows["diff_std"])},
    )


def stride_for(dt_hours: float, layout: StoreLayout) -> int:
    """Number of store steps in ``dt_hours``; WxemuError unless it is a positive whole multiple."""
    ratio = float(dt_hours) / layout.step_hours
    if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
        raise WxemuError(
            f"{layout.path}: step {dt_hours} h is not a multiple of the store's {layout.step_hours} h time step"
        )
    return int(round(ratio))


# ------------------------------------------------------------------------------------------------ forcings
class ClimatologyReader:
    """The store's climatology (group ``climatology``) of every state channel at given valid times.

    ``__call__(times) -> (T, C, H, W)`` float32 in physical units, channels in ``layout.channel_names`` order;
    each time takes its day of year (1 Jan = 1) and hour of day, which the climatology must hold.
    """

    def __init__(self, layout: StoreLayout) -> None:
        self.layout = layout
        self.clim = open_climatology(layout.path, storage_options=layout.storage_options or None)
        for name, _ in layout.variables:
            if name not in self.clim:
                raise WxemuError(f"{layout.path}: the climatology group has no variable {name!r}")
        self.hours = np.asarray(self.clim["hour"].values)
        if len(self.clim["dayofyear"]) != N_DAYS:
            raise WxemuError(f"{layout.path}: the climatology group does not hold days of year 1..{N_DAYS}")

    def __call__(self, times: np.ndarray) -> np.ndarray:
        valid = pd.DatetimeIndex(np.asarray(times).astype("datetime64[ns]").reshape(-1))
        try:
            day, hour = climatology_indices(valid.values, self.hours)
        except ValueError as exc:
            raise WxemuError(f"{self.layout.path}: {exc}") from None
        doy = xr.DataArray(day, dims="v")
        hour = xr.DataArray(hour, dims="v")
        parts = []
        for name, order in self.layout.variables:
            da = self.clim[name].isel(dayofyear=doy, hour=hour)
            if order is not None:
                parts.append(np.asarray(da.sortby("level").transpose("v", "level", "latitude", "longitude").values))
            else:
                parts.append(np.asarray(da.transpose("v", "latitude", "longitude").values)[:, None])
        out = np.concatenate(parts, axis=1).astype(np.float32)
        undefined = ~np.isfinite(out).reshape(len(out), -1).all(axis=1)
        if undefined.any():
            raise WxemuError(
                f"{self.layout.path}: the climatology has no value at {valid[undefined][0]} (its "
                "day of year lies outside the smoothing window of the store's statistics period)"
            )
        return out


class ForcingProvider:
    """Forcings at given times via ``models.forcings``, cached per time (LRU of ``cache_size`` times).

    When the spec asks for climatology channels, they are read from the store's climatology group and normalised
    with ``stats`` (the state's mean and std), so they live on the same scale as the state. ``yesterday_change``
    channels are read from the store's analyses 24 h (and one store step more) before each time, divided by the
    state's std; a caller that must not read analyses after an initial time passes them instead (``yesterday``).
    """

    def __init__(
        self, layout: StoreLayout, spec: Any, stats: ChannelStats | None = None, cache_size: int = 4096
    ) -> None:
        self.layout = layout
        self.spec = spec
        self._cache: OrderedDict[np.datetime64, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._clim: ClimatologyReader | None = None
        self._clim_index = self._channels(getattr(spec, "climatology", ()), stats, "climatology")
        if self._clim_index is not None:
            self._clim_mean = stats.mean[self._clim_index].astype(np.float32)[:, None, None]
            self._clim_std = stats.std[self._clim_index].astype(np.float32)[:, None, None]
        self._reader: StoreReader | None = None
        self._yday_index = self._channels(getattr(spec, "yesterday_change", ()), stats, "yesterday_change")
        if self._yday_index is not None:
            self._yday_std = stats.std[self._yday_index].astype(np.float32)[:, None, None]

    def _channels(self, names: tuple[str, ...], stats: ChannelStats | None, what: str) -> np.ndarray | None:
        """Store channel indices of the state-derived forcing ``what`` (None when the spec has none)."""
        if not names:
            return None
        if stats is None:
            raise WxemuError(f"{what} forcings need the state statistics to normalise them")
        unknown = sorted(set(names) - set(self.layout.channel_names))
        if unknown:
            raise WxemuError(f"{self.layout.path}: {what} forcings for unknown channels {unknown}")
        return np.array([self.layout.channel_names.index(c) for c in names])

    def yesterday_offsets(self) -> tuple[int, int]:
        """Store steps back from a target time to the two analyses of its ``yesterday_change``: (24 h, 24 h + 1)."""
        back = stride_for(YESTERDAY_HOURS, self.layout)
        return back, back + 1

    def _yesterday(self, times: np.ndarray) -> np.ndarray | None:
        if self._yday_index is None:
            return None
        if self._reader is None:
            self._reader = StoreReader(self.layout)
        all_times = self.layout.times
        idx = np.searchsorted(all_times, times)
        back, back1 = self.yesterday_offsets()
        exact = (idx < len(all_times)) & (all_times[np.minimum(idx, len(all_times) - 1)] == times)
        if not bool(exact.all()) or int(idx.min()) < back1:
            bad = times[~exact][0] if not bool(exact.all()) else times[int(np.argmin(idx))]
            raise WxemuError(
                f"{self.layout.path}: the yesterday_change forcing at {pd.Timestamp(bad)} needs the analyses "
                f"{YESTERDAY_HOURS:g} h and {YESTERDAY_HOURS + self.layout.step_hours:g} h before it; the store "
                f"covers {pd.Timestamp(self.layout.times[0])} .. {pd.Timestamp(self.layout.times[-1])}"
            )
        states = self._reader.read(np.concatenate([idx - back, idx - back1]))[:, self._yday_index]
        n = len(times)
        return (states[:n] - states[n:]) / self._yday_std

    def _climatology(self, times: np.ndarray) -> np.ndarray | None:
        if self._clim_index is None:
            return None
        if self._clim is None:
            self._clim = ClimatologyReader(self.layout)
        return (self._clim(times)[:, self._clim_index] - self._clim_mean) / self._clim_std

    def __call__(self, times: np.ndarray, yesterday: np.ndarray | None = None) -> np.ndarray:
        """(T,) datetime64 -> (T, F, H, W) float32. ``yesterday`` (T, n, H, W): the normalised yesterday_change
        channels to use instead of reading analyses (not cached)."""
        times = np.asarray(times).astype("datetime64[ns]")
        if yesterday is not None:
            return np.asarray(self._compute(times, yesterday), dtype=np.float32)
        missing = [t for t in dict.fromkeys(times.tolist()) if np.datetime64(t, "ns") not in self._cache]
        if missing:
            miss = np.asarray(missing, dtype="datetime64[ns]")
            values = np.asarray(self._compute(miss, self._yesterday(miss)), dtype=np.float32)
            for t, v in zip(miss, values):
                self._cache[t] = v
                if len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        out = []
        for t in times:
            self._cache.move_to_end(t)
            out.append(self._cache[t])
        n_f = out[0].shape[0] if out else 0
        return np.stack(out) if out else np.zeros((0, n_f) + self.layout.latitude.shape + self.layout.longitude.shape)

    def _compute(self, times: np.ndarray, yesterday: np.ndarray | None) -> np.ndarray:
        lat, lon = self.layout.latitude, self.layout.longitude
        return compute_forcings(self.spec, times, lat, lon, self.layout.static, self._climatology(times), yesterday)


def default_forcing_spec(layout: StoreLayout, *, climatology: bool = False, yesterday_change: bool = False) -> Any:
    """The forcing spec for a store: the default spec of ``models.forcings`` plus the store's static fields,
    with ``climatology`` the climatology of every state channel at the target time, with ``yesterday_change`` the
    change of every state channel over the same hour yesterday."""
    channels = tuple(layout.channel_names)
    return ForcingSpec(
        static=tuple(layout.static),
        climatology=channels if climatology else (),
        yesterday_change=channels if yesterday_change else (),
    )
