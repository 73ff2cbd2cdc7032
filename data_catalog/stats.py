"""Normalisation statistics: mean/std of each variable and level, and of its one-step differences.

Unweighted over (time, latitude, longitude), as WeatherBench2 and GraphCast compute their per-level normalisation
statistics: every grid point counts once. (An optional latitude weight vector gives area-weighted moments; the
ingest does not use it.) Differences are x[t+1] - x[t] between consecutive *regular* steps only: a pair of times
further apart than the dataset's time step (a gap) contributes no difference.

All moments are accumulated as sums, sums of squares and counts in float64 in one pass over the data: the ingest
adds per-block sums (:func:`block_sums`) and the differences across block edges (:func:`boundary_sums`) while it
writes; :func:`compute_stats` evaluates every variable's sums of a dataset in one ``dask.compute``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import dask
import numpy as np
import xarray as xr

STAT_NAMES = ("mean", "std", "diff_mean", "diff_std")


def regular_pairs(times: np.ndarray, step: np.timedelta64 | None = None) -> np.ndarray:
    """Boolean (nt-1,): True where times[i+1] - times[i] equals ``step`` (default: the smallest positive step)."""
    t = np.asarray(times, dtype="datetime64[ns]")
    if t.size < 2:
        return np.zeros(0, dtype=bool)
    dt = np.diff(t)
    if step is None:
        positive = dt[dt > np.timedelta64(0, "ns")]
        if positive.size == 0:
            return np.zeros(dt.shape, dtype=bool)
        step = positive.min()
    return dt == np.asarray(step, dtype="timedelta64[ns]")


@dataclass
class MomentSums:
    """Sums accumulated over the reduced axes; every array has the kept shape (e.g. (level,) or ()).

    ``n``/``s``/``ss``: count, sum and sum of squares of the values; ``dn``/``ds``/``dss``: the same for the
    one-step differences. float64.
    """

    n: np.ndarray
    s: np.ndarray
    ss: np.ndarray
    dn: np.ndarray
    ds: np.ndarray
    dss: np.ndarray

    FIELDS: ClassVar[tuple[str, ...]] = ("n", "s", "ss", "dn", "ds", "dss")

    def __add__(self, other: MomentSums) -> MomentSums:
        return MomentSums(*(getattr(self, f) + getattr(other, f) for f in self.FIELDS))

    def to_json(self) -> dict[str, Any]:
        """The sums as JSON-able lists/numbers (float64 round-trips exactly through JSON)."""
        return {f: np.asarray(getattr(self, f), dtype="f8").tolist() for f in self.FIELDS}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MomentSums:
        return cls(*(np.asarray(d[f], dtype="f8") for f in cls.FIELDS))

    def diffs_only(self) -> MomentSums:
        """The same sums with the value part zeroed (only the difference sums kept)."""
        zero = np.zeros_like(np.asarray(self.n, dtype="f8"))
        return MomentSums(zero, zero.copy(), zero.copy(), self.dn, self.ds, self.dss)

    def finalize(self) -> np.ndarray:
        """(4, *kept) float64: mean, std, diff_mean, diff_std (population std, ddof=0); NaN where count is 0."""
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.s / self.n
            var = np.maximum(self.ss / self.n - mean**2, 0.0)
            dmean = self.ds / self.dn
            dvar = np.maximum(self.dss / self.dn - dmean**2, 0.0)
        return np.stack([mean, np.sqrt(var), dmean, np.sqrt(dvar)])


def moment_sums(
    x,
    pairs: np.ndarray,
    *,
    keep_axes: tuple[int, ...] = (),
    lat_weights: np.ndarray | None = None,
    lat_axis: int = -2,
    shift: np.ndarray | float = 0.0,
    value_start: int = 0,
) -> MomentSums:
    """Sums for the moments of ``x`` (numpy or dask array, time on axis 0) and of its regular one-step differences.

    ``pairs``: bool (nt-1,) from :func:`regular_pairs`. ``keep_axes``: axes not reduced (e.g. the level axis).
    ``lat_weights``: optional weights along ``lat_axis`` (area weighting); None = every point counts once.
    ``shift``: a constant (broadcast to the kept shape) subtracted before squaring for numerical safety; the
    sums returned are of ``x - shift``; :meth:`MomentSums.finalize` adds it back through :func:`stats_from_sums`.
    NaNs are skipped (not counted). The result holds lazy arrays when ``x`` is a dask array.
    ``value_start``: the value sums skip the first steps (context, e.g. the previous block's last step, that
    only serves the first difference).
    """
    ndim = x.ndim
    keep = tuple(a % ndim for a in keep_axes)
    axes = tuple(a for a in range(ndim) if a not in keep)
    shape_kept = [x.shape[a] if a in keep else 1 for a in range(ndim)]
    shift_b = np.broadcast_to(np.asarray(shift, dtype="f8"), [x.shape[a] for a in keep]).reshape(shape_kept)
    w = np.ones(1)
    if lat_weights is not None:
        wshape = [1] * ndim
        wshape[lat_axis % ndim] = x.shape[lat_axis % ndim]
        w = np.asarray(lat_weights, dtype="f8").reshape(wshape)

    pmask = np.asarray(pairs, dtype=bool)
    if isinstance(x, np.ndarray) and lat_weights is None and not (x.size and np.isnan(x.min())):  # min: NaN if any
        # fast path (no NaN, unweighted, in memory): arithmetic in the input precision, float64 accumulators,
        # a few time steps at a time through one small buffer (cache-resident, no fresh memory per block)
        shift_x = shift_b.astype(x.dtype)
        s_shape = tuple(x.shape[a] for a in keep)
        nt = x.shape[0]
        per_block = max(1, (1 << 20) // max(1, x[0].nbytes)) if nt else 1
        buf = np.empty((min(per_block, max(nt, 1)), *x.shape[1:]), dtype=x.dtype)
        s, ss, ds, dss = (np.zeros(s_shape) for _ in range(4))
        for i in range(value_start, nt, per_block):
            b = np.subtract(x[i : i + per_block], shift_x, out=buf[: min(per_block, nt - i)])
            s += b.sum(axis=axes, dtype="f8")
            ss += np.square(b, out=b).sum(axis=axes, dtype="f8")
        n_pairs = 0
        for i in range(0, nt - 1, per_block):
            j = min(nt - 1, i + per_block)
            b = np.subtract(x[i + 1 : j + 1], x[i:j], out=buf[: j - i])
            if not pmask[i:j].all():
                b = b[pmask[i:j]]
            n_pairs += b.shape[0]
            ds += b.sum(axis=axes, dtype="f8")
            dss += np.square(b, out=b).sum(axis=axes, dtype="f8")
        per_step = float(np.prod([x.shape[a] for a in axes if a != 0]))
        n = np.full(s_shape, per_step * max(0, nt - value_start))
        dn = np.full(s_shape, per_step * n_pairs)
        # the sums are of x - shift rounded to x's precision: re-centre them exactly on ``shift`` (float64)
        delta = (shift_x.astype("f8") - shift_b).reshape(s_shape)
        s, ss = s + n * delta, ss + 2.0 * delta * s + n * delta**2
        return MomentSums(n, s, ss, dn, ds, dss)

    xf = x[value_start:].astype("f8") - shift_b
    valid = ~np.isnan(xf)
    x0 = np.where(valid, xf, 0.0)
    n = (valid * w).sum(axis=axes)
    s = (x0 * w).sum(axis=axes)
    ss = (x0 * x0 * w).sum(axis=axes)

    d = x[1:].astype("f8") - x[:-1].astype("f8")
    dvalid = ~np.isnan(d) & pmask.reshape([-1] + [1] * (ndim - 1))
    d0 = np.where(dvalid, d, 0.0)
    dn = (dvalid * w).sum(axis=axes)
    ds = (d0 * w).sum(axis=axes)
    dss = (d0 * d0 * w).sum(axis=axes)
    return MomentSums(n, s, ss, dn, ds, dss)


def first_step_shift(first: np.ndarray, *, has_level: bool) -> np.ndarray:
    """The conditioning constant of :func:`moment_sums`: the spatial mean of one time step ``first``
    ((level, lat, lon) when ``has_level``, else (lat, lon)), per level; float64 (level,) or (), NaN-skipping
    (0 where all NaN). Computed in float64 from the values as stored (float32)."""
    x = np.asarray(first, dtype="f8")
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slice
        shift = np.nanmean(x.reshape(x.shape[0], -1), axis=1) if has_level else np.nanmean(x)
    return np.nan_to_num(shift)


def block_sums(
    x: np.ndarray,
    times: np.ndarray,
    step: np.timedelta64,
    shift: np.ndarray | float,
    *,
    keep_axes: tuple[int, ...] = (),
) -> MomentSums:
    """:func:`moment_sums` of one time block ``x`` (time first) at ``times`` (datetime64, ascending): values and
    the differences between consecutive steps ``step`` apart inside the block. Blocks that tile a period, plus
    :func:`boundary_sums` at each inner block edge, add up to the sums of the whole period."""
    pairs = regular_pairs(times, step) if len(times) > 1 else np.zeros(0, bool)
    return moment_sums(x, pairs, keep_axes=keep_axes, shift=shift)


def boundary_sums(prev: np.ndarray, nxt: np.ndarray, regular: bool, *, keep_axes: tuple[int, ...] = ()) -> MomentSums:
    """Sums of the one difference ``nxt - prev`` across a block edge (``prev``/``nxt``: one time step each, shape
    (1, ...) with the time axis kept, so ``keep_axes`` are those of the blocks); zero counts when the two steps are
    not ``regular`` (a gap). The value sums are zero."""
    x = np.concatenate([np.asarray(prev), np.asarray(nxt)])
    return moment_sums(x, np.array([bool(regular)]), keep_axes=keep_axes, value_start=2).diffs_only()


def stats_from_sums(sums: MomentSums, shift: np.ndarray | float = 0.0) -> np.ndarray:
    """(4, *kept) float64 statistics from (computed) sums of values shifted by ``shift``."""
    out = sums.finalize()
    out[0] = out[0] + np.asarray(shift, dtype="f8")
    return out


class StatsAccumulator:
    """Streaming version of :func:`compute_stats` for numpy blocks fed in time order (one pass shared with the
    climatology): the previous block's last step is kept so the difference across block edges counts."""

    def __init__(self) -> None:
        self._sums: dict[str, MomentSums] = {}
        self._shift: dict[str, np.ndarray] = {}
        self._last: dict[str, tuple[np.ndarray, np.datetime64]] = {}
        self.step: np.timedelta64 | None = None

    def add(self, name: str, block: np.ndarray, times: np.ndarray, *, has_level: bool) -> None:
        """``block``: (time, [level], lat, lon) values at ``times`` (datetime64, ascending)."""
        times = np.asarray(times, dtype="datetime64[ns]")
        keep = (1,) if has_level else ()
        if name not in self._shift:
            first = np.asarray(block[0], dtype="f8")
            shift = np.nanmean(first.reshape(first.shape[0], -1), axis=1) if has_level else np.nanmean(first)
            self._shift[name] = np.nan_to_num(shift)
        if self.step is None and len(times) > 1:
            self.step = np.diff(times).min()
        if name in self._last:
            prev, t_prev = self._last[name]
            x = np.concatenate([prev[None], block])
            t = np.concatenate([[t_prev], times])
            start = 1
        else:
            x, t, start = block, times, 0
        sums = moment_sums(
            x,
            regular_pairs(t, self.step) if len(t) > 1 else np.zeros(0, bool),
            keep_axes=keep,
            shift=self._shift[name],
            value_start=start,
        )
        self._sums[name] = self._sums[name] + sums if name in self._sums else sums
        self._last[name] = (np.asarray(block[-1]), times[-1])

    def result(self, name: str) -> np.ndarray:
        """(4, [level]) float64: mean, std, diff_mean, diff_std."""
        return stats_from_sums(self._sums[name], self._shift[name])


def compute_stats(ds: xr.Dataset, *, lat_weights: np.ndarray | None = None) -> xr.Dataset:
    """Statistics of every time-dependent data variable of a canonical dataset, in one dask pass.

    Returns a dataset with one float64 variable per time-dependent variable, dims (``stat``, [``level``]),
    ``stat`` = mean, std, diff_mean, diff_std, in the variable's units (attribute ``units`` copied). Static fields
    (no ``time``) get their spatial mean/std and NaN for diff_mean/diff_std (they have no differences).
    """
    pairs = regular_pairs(ds["time"].values) if "time" in ds.dims else np.zeros(0, bool)
    lazy: dict[str, tuple[MomentSums, np.ndarray, tuple[str, ...]]] = {}
    for name in ds.data_vars:
        da = ds[name]
        if "time" not in da.dims:
            continue  # static: handled below
        order = (
            ("time",)
            + tuple(d for d in ("level",) if d in da.dims)
            + tuple(d for d in da.dims if d not in ("time", "level"))
        )
        da = da.transpose(*order)
        data = da.data
        keep = (1,) if "level" in da.dims else ()
        # shift by the first step's spatial mean, so sums of squares stay well conditioned
        first = np.asarray(da.isel(time=0).values, dtype="f8")
        shift = np.nanmean(first.reshape(first.shape[0], -1), axis=1) if keep else np.nanmean(first)
        shift = np.nan_to_num(shift)
        lazy[str(name)] = (
            moment_sums(
                data,
                pairs,
                keep_axes=keep,
                lat_weights=lat_weights,
                lat_axis=order.index("latitude") if lat_weights is not None else -2,
                shift=shift,
            ),
            shift,
            ("level",) if keep else (),
        )
    computed = dask.compute({k: v[0].__dict__ for k, v in lazy.items()})[0]
    values = {
        name: stats_from_sums(MomentSums(**{k: np.asarray(v) for k, v in computed[name].items()}), shift)
        for name, (_, shift, _) in lazy.items()
    }
    return stats_dataset(ds, values)


def stats_dataset(ds: xr.Dataset, values: dict[str, np.ndarray]) -> xr.Dataset:
    """The ``stats`` group: ``values`` {name: (4, [level]) array} of the time-dependent variables of ``ds``,
    plus spatial mean/std (diff_* NaN) of its static fields; attributes ``units``/``long_name`` copied."""
    out = xr.Dataset(coords={"stat": np.array(STAT_NAMES, dtype=object)})
    if "level" in ds.coords:
        out = out.assign_coords(level=ds["level"].values)
    keep = ("units", "long_name")
    for name, v in values.items():
        dims = ("stat", "level") if "level" in ds[name].dims else ("stat",)
        out[name] = (dims, v, {k: a for k, a in ds[name].attrs.items() if k in keep})
    for name in ds.data_vars:
        if "time" in ds[name].dims:
            continue
        x = np.asarray(ds[name].values, dtype="f8")
        out[str(name)] = (
            ("stat",),
            np.array([np.nanmean(x), np.nanstd(x), np.nan, np.nan]),
            {k: a for k, a in ds[name].attrs.items() if k in keep},
        )
    return out
