"""Verification metrics, WeatherBench2's definitions, in two forms that must agree.

Every metric is a small frozen dataclass. Its *reference* form, :meth:`Metric.compute_chunk`, works on xarray
objects exactly as WeatherBench2's ``metrics.py`` does: pointwise quantity -> area-weighted spatial mean over a
region (per initial time and lead) -> later averaged over initial times (:meth:`Metric.compute`).

Its *fast* form splits the same computation into named *statistics*: spatial means, per initial time and lead,
of pointwise quantities (``se`` = (f - t)^2, ``ae`` = |f - t|, ``err`` = f - t, anomaly products, CRPS terms, ...)
that :func:`pointwise_statistics` computes from a plain numpy block and :func:`spatial_means` reduces over the grid
for all regions at once (one matrix product). The metric then turns those spatial means into a per-init score
(:meth:`Metric.per_init`) and a time-averaged score (:meth:`Metric.reduce_time`). The verify stage uses the fast
form; the tests check it against the reference form and against the ``scores`` and ``xskillscore`` packages.

Conventions (WeatherBench2): RMSE = sqrt(mean over inits of the per-init area-mean squared error); ACC per init
= <f'a t'a> / sqrt(<f'a^2><t'a^2>) with anomalies from the climatology at the valid time (uncentred, area
weighted), then averaged over inits; CRPS is the fair (unbiased) ensemble estimator, E|X - Y| - E|X - X'| / 2 with
E|X - X'| summed over the M(M - 1) pairs i != j; spread = sqrt(mean over inits of the area-mean unbiased ensemble
variance); spread/skill = spread / ensemble-mean RMSE. NaNs propagate within an init time (skipna=False);
initial times whose valid time has no truth are skipped in the time average.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar

import numpy as np
import xarray as xr

from data_catalog.errors import WxemuError
from data_catalog.regions import AnyRegion
from pipeline.weights import latitude_weights_da

# --------------------------------------------------------------------------------------------------------------
# Statistics: pointwise quantities whose area-weighted means the metrics are built from.
# --------------------------------------------------------------------------------------------------------------

#: statistic name -> what it is the spatial mean of (f forecast or ensemble mean, t truth, c climatology).
STATISTICS: dict[str, str] = {
    "se": "(f - t)^2",
    "ae": "|f - t|",
    "err": "f - t",
    "fa_ta": "(f - c)(t - c)",
    "fa2": "(f - c)^2",
    "ta2": "(t - c)^2",
    "crps_skill": "mean over members of |x_m - t|",
    "crps_spread": "fair E|X - X'| = sum_{i != j} |x_i - x_j| / (M (M - 1))",
    "ens_var": "unbiased ensemble variance (ddof=1)",
}
ANOMALY_STATISTICS = ("fa_ta", "fa2", "ta2")
ENSEMBLE_STATISTICS = ("crps_skill", "crps_spread", "ens_var")


def pointwise_statistics(
    forecast: np.ndarray,
    truth: np.ndarray,
    names: Sequence[str],
    *,
    member_axis: int | None = None,
    climatology: np.ndarray | None = None,
) -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(name, array)`` for each statistic in ``names``, one at a time (so memory stays ~2 blocks).

    ``forecast``: any shape ``S`` (deterministic) or ``S`` with a member axis ``member_axis`` inserted
    (ensemble); ``truth`` and ``climatology``: shape ``S``. Every yielded array has shape ``S`` and the dtype of
    the inputs. For an ensemble, ``se``/``ae``/``err``/anomaly statistics use the ensemble mean.
    """
    names = list(names)
    unknown = [n for n in names if n not in STATISTICS]
    if unknown:
        raise ValueError(f"unknown statistics {unknown}")
    ens = forecast
    if member_axis is not None:
        n_members = forecast.shape[member_axis]
        if any(n in ENSEMBLE_STATISTICS for n in names) and n_members < 2:
            raise WxemuError(f"ensemble statistics need at least 2 members, got {n_members}")
        mean = forecast.mean(axis=member_axis, dtype=forecast.dtype)
    else:
        mean = forecast
    dev = None
    anomalies = None
    need_err = any(n in ("se", "ae", "err") for n in names)
    err = mean - truth if need_err else None
    for name in names:
        if name == "se":
            yield name, np.square(err)
        elif name == "ae":
            yield name, np.abs(err)
        elif name == "err":
            yield name, err
        elif name in ANOMALY_STATISTICS:
            if climatology is None:
                raise WxemuError("anomaly statistics (ACC) need a climatology")
            if anomalies is None:
                anomalies = (mean - climatology, truth - climatology)
            fa, ta = anomalies
            if name == "fa_ta":
                yield name, fa * ta
            elif name == "fa2":
                yield name, np.square(fa)
            else:
                yield name, np.square(ta)
        else:
            if member_axis is None:
                raise WxemuError(f"statistic {name!r} needs an ensemble forecast (a 'number' dimension)")
            m = n_members
            if dev is None:  # members minus truth: small numbers, so the float32 sums below keep their precision
                dev = ens - np.expand_dims(truth, member_axis)
            if name == "crps_skill":
                yield name, np.abs(dev).mean(axis=member_axis, dtype=ens.dtype)
            elif name == "crps_spread":
                # sum_{i,j} |x_i - x_j| = 2 sum_i (2 i - M - 1) x_(i) over the sorted members (i = 1..M);
                # invariant to the shift by the truth.
                ranked = np.sort(dev, axis=member_axis)
                coef = ((2.0 * np.arange(1, m + 1) - m - 1) * 2.0 / (m * (m - 1))).astype(ens.dtype)
                yield name, np.moveaxis(ranked, member_axis, -1) @ coef
            elif name == "ens_var":
                yield name, ens.var(axis=member_axis, ddof=1, dtype=ens.dtype)


def spatial_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Area-weighted means over the last axis for every region at once.

    ``values``: shape ``(..., npoints)`` (the grid flattened, latitude-major); ``weights``: ``(npoints,
    n_regions)``, each column summing to 1 (:func:`data_catalog.regions.region_weights` reshaped). Returns ``(...,
    n_regions)``. One BLAS matrix product, in the dtype of ``values``.

    Computed as ``weights.T @ values.T`` with ``weights.T`` contiguous: OpenBLAS's sgemm with a skinny (few
    regions) right-hand side was measured 10x slower (11 ms vs 1 ms for 13 x 29040 values); with single rows
    (one init, lead and level) the benchmark's RMSEs were 2.1e-6 off naive xarray's that way, 8.5e-8 this way.
    """
    lead = values.shape[:-1]
    wt = np.ascontiguousarray(weights.T, dtype=values.dtype)
    out = (wt @ values.reshape(-1, values.shape[-1]).T).T
    return out.reshape(*lead, weights.shape[1])


# --------------------------------------------------------------------------------------------------------------
# Reference (xarray) helpers, as WeatherBench2 computes them.
# --------------------------------------------------------------------------------------------------------------


def spatial_average(data: xr.DataArray | xr.Dataset, region: AnyRegion | None = None) -> xr.DataArray | xr.Dataset:
    """Area-weighted mean over ``latitude``/``longitude`` (weights of the full grid, masked to ``region``)."""
    weights = latitude_weights_da(data["latitude"]) * xr.ones_like(data["longitude"], dtype=float)
    if region is not None:
        mask = xr.DataArray(
            region.mask(data["latitude"].values, data["longitude"].values),
            dims=("latitude", "longitude"),
            coords={"latitude": data["latitude"], "longitude": data["longitude"]},
        )
        weights = weights * mask
        data = data.where(mask, 0)  # as WeatherBench2: ignore NaN/Inf outside the region
    return data.weighted(weights).mean(("latitude", "longitude"))


def climatology_at(climatology: xr.DataArray | xr.Dataset, valid_time: xr.DataArray) -> xr.DataArray | xr.Dataset:
    """Climatology (dims dayofyear, [hour], ...) at each valid time (its day of year and hour)."""
    sel = {"dayofyear": valid_time.dt.dayofyear}
    if "hour" in climatology.dims:
        sel["hour"] = valid_time.dt.hour
    return climatology.sel(sel)


def _valid_truth(forecast: xr.DataArray, truth: xr.DataArray) -> xr.DataArray:
    """Truth at valid time ``time + prediction_timedelta`` (truth may have a ``time`` axis of valid times)."""
    if "prediction_timedelta" in forecast.dims and "prediction_timedelta" not in truth.dims:
        valid = forecast["time"] + forecast["prediction_timedelta"]
        aligned = truth.sel(time=valid.rename({"time": "_init"})).drop_vars("time")
        return aligned.rename({"_init": "time"}).assign_coords(time=forecast["time"])
    return truth


# --------------------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Metric:
    """Base class. ``statistics``: the spatial-mean statistics the fast form needs; ``ensemble``: needs members."""

    name: ClassVar[str] = ""
    statistics: ClassVar[tuple[str, ...]] = ()
    ensemble: ClassVar[bool] = False
    higher_is_better: ClassVar[bool] = False
    ensemble_dim: str = "number"

    # ---- fast form -------------------------------------------------------------------------------------------
    def per_init(self, stats: Mapping[str, np.ndarray]) -> np.ndarray:
        """Per-initial-time score (the quantity averaged over initial times) from spatial-mean statistics."""
        return stats[self.statistics[0]]

    def finalize(self, time_mean: np.ndarray) -> np.ndarray:
        """The score from the time mean of :meth:`per_init` (e.g. the square root for RMSE)."""
        return time_mean

    def reduce_time(self, stats: Mapping[str, np.ndarray], axis: int = 0) -> np.ndarray:
        """Score averaged over initial times (``axis``), skipping init times without truth (NaN)."""
        return self.finalize(_nanmean(self.per_init(stats), axis))

    # ---- reference form (xarray) -----------------------------------------------------------------------------
    def pointwise(
        self, forecast: xr.DataArray, truth: xr.DataArray, climatology: xr.DataArray | None = None
    ) -> dict[str, xr.DataArray]:
        """The pointwise fields of :attr:`statistics` computed with xarray (independent of the numpy kernel)."""
        out: dict[str, xr.DataArray] = {}
        ens = forecast
        mean = forecast.mean(self.ensemble_dim) if self.ensemble_dim in forecast.dims else forecast
        for name in self.statistics:
            if name == "se":
                out[name] = (mean - truth) ** 2
            elif name == "ae":
                out[name] = abs(mean - truth)
            elif name == "err":
                out[name] = mean - truth
            elif name in ANOMALY_STATISTICS:
                if climatology is None:
                    raise WxemuError(f"metric {self.name!r} needs a climatology")
                fa, ta = mean - climatology, truth - climatology
                out[name] = {"fa_ta": fa * ta, "fa2": fa**2, "ta2": ta**2}[name]
            elif name == "crps_skill":
                out[name] = abs(ens - truth).mean(self.ensemble_dim)
            elif name == "crps_spread":
                m = ens.sizes[self.ensemble_dim]
                other = ens.rename({self.ensemble_dim: "_other"})
                out[name] = abs(ens - other).sum((self.ensemble_dim, "_other")) / (m * (m - 1))
            elif name == "ens_var":
                out[name] = ens.var(self.ensemble_dim, ddof=1)
        return out

    def chunk_statistics(
        self,
        forecast: xr.DataArray,
        truth: xr.DataArray,
        region: AnyRegion | None = None,
        climatology: xr.DataArray | None = None,
    ) -> dict[str, np.ndarray]:
        truth = _valid_truth(forecast, truth)
        if climatology is not None and "dayofyear" in climatology.dims:
            valid = (
                forecast["time"] + forecast["prediction_timedelta"]
                if "prediction_timedelta" in forecast.dims
                else forecast["time"]
            )
            climatology = climatology_at(climatology, valid).drop_vars(["dayofyear", "hour"], errors="ignore")
        fields = self.pointwise(forecast, truth, climatology)
        return {k: spatial_average(v, region) for k, v in fields.items()}

    def compute_chunk(
        self,
        forecast: xr.DataArray,
        truth: xr.DataArray,
        region: AnyRegion | None = None,
        climatology: xr.DataArray | None = None,
    ) -> xr.DataArray:
        """Per-initial-time score (spatially averaged), as WeatherBench2's ``Metric.compute_chunk``.

        ``forecast``: dims (time, [prediction_timedelta], ..., latitude, longitude, [number]); ``truth``: dims
        (time, ..., latitude, longitude) indexed by *valid* time (or already aligned with ``forecast``).
        """
        stats = self.chunk_statistics(forecast, truth, region, climatology)
        return xr.apply_ufunc(lambda *a: self.per_init(dict(zip(stats, a))), *stats.values())

    def compute(
        self,
        forecast: xr.DataArray,
        truth: xr.DataArray,
        region: AnyRegion | None = None,
        climatology: xr.DataArray | None = None,
    ) -> xr.DataArray:
        """Score averaged over initial times (``time``), the reference form of :meth:`reduce_time`."""
        stats = self.chunk_statistics(forecast, truth, region, climatology)
        keys = list(stats)
        arrays = [stats[k].transpose("time", ...) for k in keys]
        template = arrays[0].isel(time=0, drop=True)
        value = self.reduce_time({k: a.values for k, a in zip(keys, arrays)}, axis=0)
        return template.copy(data=value)


def _nanmean(x: np.ndarray, axis: int) -> np.ndarray:
    """Mean over ``axis`` of the init times that have truth (NaN rows are skipped); NaN if none has."""
    with np.errstate(invalid="ignore", divide="ignore"):
        x = np.asarray(x)
        valid = ~np.isnan(x)
        count = valid.sum(axis=axis)
        total = np.where(valid, x, 0).sum(axis=axis, dtype=np.float64)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


@dataclasses.dataclass(frozen=True)
class MSE(Metric):
    """Mean squared error (units^2)."""

    name: ClassVar[str] = "mse"
    statistics: ClassVar[tuple[str, ...]] = ("se",)


@dataclasses.dataclass(frozen=True)
class RMSE(Metric):
    """Root mean squared error: sqrt of the time-mean of the per-init area-mean squared error (WB2 headline)."""

    name: ClassVar[str] = "rmse"
    statistics: ClassVar[tuple[str, ...]] = ("se",)

    def finalize(self, time_mean: np.ndarray) -> np.ndarray:
        return np.sqrt(time_mean)


@dataclasses.dataclass(frozen=True)
class RMSESqrtBeforeTimeAvg(Metric):
    """RMSE with the square root taken per init time, then averaged over init times (WB2's
    ``rmse_sqrt_before_time_avg``); per-init score: the area-mean RMSE (units)."""

    name: ClassVar[str] = "rmse_sqrt_before_time_avg"
    statistics: ClassVar[tuple[str, ...]] = ("se",)

    def per_init(self, stats: Mapping[str, np.ndarray]) -> np.ndarray:
        return np.sqrt(stats["se"])


@dataclasses.dataclass(frozen=True)
class MAE(Metric):
    """Mean absolute error (units)."""

    name: ClassVar[str] = "mae"
    statistics: ClassVar[tuple[str, ...]] = ("ae",)


@dataclasses.dataclass(frozen=True)
class Bias(Metric):
    """Mean error, forecast minus truth (units)."""

    name: ClassVar[str] = "bias"
    statistics: ClassVar[tuple[str, ...]] = ("err",)


@dataclasses.dataclass(frozen=True)
class ACC(Metric):
    """Anomaly correlation coefficient (dimensionless), per init time then averaged (WeatherBench2's ACC)."""

    name: ClassVar[str] = "acc"
    statistics: ClassVar[tuple[str, ...]] = ANOMALY_STATISTICS
    higher_is_better: ClassVar[bool] = True

    def per_init(self, stats: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return stats["fa_ta"] / np.sqrt(stats["fa2"] * stats["ta2"])


@dataclasses.dataclass(frozen=True)
class CRPS(Metric):
    """Continuous ranked probability score, fair estimator (units): E|X - Y| - E|X - X'| / 2."""

    name: ClassVar[str] = "crps"
    statistics: ClassVar[tuple[str, ...]] = ("crps_skill", "crps_spread")
    ensemble: ClassVar[bool] = True

    def per_init(self, stats: Mapping[str, np.ndarray]) -> np.ndarray:
        return stats["crps_skill"] - 0.5 * stats["crps_spread"]


@dataclasses.dataclass(frozen=True)
class EnsembleMeanRMSE(Metric):
    """RMSE of the ensemble mean (units)."""

    name: ClassVar[str] = "ens_mean_rmse"
    statistics: ClassVar[tuple[str, ...]] = ("se",)
    ensemble: ClassVar[bool] = True

    def finalize(self, time_mean: np.ndarray) -> np.ndarray:
        return np.sqrt(time_mean)


@dataclasses.dataclass(frozen=True)
class Spread(Metric):
    """Ensemble spread (units): sqrt of the time-mean of the area-mean unbiased ensemble variance."""

    name: ClassVar[str] = "spread"
    statistics: ClassVar[tuple[str, ...]] = ("ens_var",)
    ensemble: ClassVar[bool] = True

    def finalize(self, time_mean: np.ndarray) -> np.ndarray:
        return np.sqrt(time_mean)


@dataclasses.dataclass(frozen=True)
class SpreadSkillRatio(Metric):
    """Spread / ensemble-mean RMSE (dimensionless; 1 for a reliable ensemble, ignoring the finite-M factor)."""

    name: ClassVar[str] = "spread_skill"
    statistics: ClassVar[tuple[str, ...]] = ("ens_var", "se")
    ensemble: ClassVar[bool] = True
    higher_is_better: ClassVar[bool] = True  # not really: closer to 1 is better; scorecards skip it

    def per_init(self, stats: Mapping[str, np.ndarray]) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(stats["ens_var"] / stats["se"])

    def reduce_time(self, stats: Mapping[str, np.ndarray], axis: int = 0) -> np.ndarray:
        valid = ~np.isnan(stats["ens_var"]) & ~np.isnan(stats["se"])
        var = _nanmean(np.where(valid, stats["ens_var"], np.nan), axis)
        se = _nanmean(np.where(valid, stats["se"], np.nan), axis)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.sqrt(var) / np.sqrt(se)


METRICS: dict[str, type[Metric]] = {
    m.name: m
    for m in (MSE, RMSE, RMSESqrtBeforeTimeAvg, MAE, Bias, ACC, CRPS, EnsembleMeanRMSE, Spread, SpreadSkillRatio)
}
DETERMINISTIC_DEFAULT = ("rmse", "mae", "bias", "acc")
ENSEMBLE_DEFAULT = ("rmse", "mae", "bias", "acc", "crps", "ens_mean_rmse", "spread", "spread_skill")
#: Named metric sets: ``wb2`` is WeatherBench2's deterministic evaluation (scripts/evaluate.py) plus rmse.
PRESETS: dict[str, tuple[str, ...]] = {
    "wb2": ("mse", "rmse", "acc", "bias", "mae", "rmse_sqrt_before_time_avg"),
}


def get_metrics(names: Sequence[str]) -> list[Metric]:
    """Metric instances from names (see :data:`METRICS`) or presets (:data:`PRESETS`), each once, in order;
    unknown names raise :class:`WxemuError`."""
    out: list[Metric] = []
    for n in names:
        key = n.strip().lower()
        for k in PRESETS.get(key, (key,)):
            if k not in METRICS:
                raise WxemuError(
                    f"unknown metric {n!r}; known: {', '.join(METRICS)} (or the set: {', '.join(PRESETS)})"
                )
            if all(m.name != k for m in out):
                out.append(METRICS[k]())
    return out


def needs_climatology(metric: Metric) -> bool:
    """True when ``metric`` is computed from anomalies against a climatology (ACC)."""
    return any(s in ANOMALY_STATISTICS for s in metric.statistics)


def required_statistics(metrics: Sequence[Metric]) -> list[str]:
    """The statistics the metrics need, each once, in :data:`STATISTICS` order."""
    need = {s for m in metrics for s in m.statistics}
    return [s for s in STATISTICS if s in need]
