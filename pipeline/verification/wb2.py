"""Export scores in WeatherBench2's results layout, so WeatherBench2's own plotting code reads them.

WeatherBench2's ``evaluate`` writes one NetCDF file per evaluation (``{prefix}deterministic.nc``,
``{prefix}probabilistic.nc``) with one variable per forecast variable, dims (``metric``, ``region``, ``lead_time``,
[``level``]), NetCDF3 (what its ``to_netcdf()`` without a path writes, and what its ``open_nc`` reads from a file
object without h5py), its metric names (``mse``, ``rmse``, ``acc``, ``bias``, ``mae``, ``rmse_sqrt_before_time_avg``;
``crps``, ``ensemble_mean_rmse``, ``ensemble_mean_mse``, ``ensemble_variance``) and its region names.
:func:`export_wb2` writes that layout for each forecast, ``{forecast}_{evaluation}.nc``, into a directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

from pipeline.verification.config import VerifyError

#: WeatherBench2 metric name -> (wxemu metric, power applied): the same quantity, e.g. mse = rmse ** 2.
DETERMINISTIC = {
    "mse": (("mse", 1), ("rmse", 2)),
    "rmse": (("rmse", 1),),
    "mae": (("mae", 1),),
    "bias": (("bias", 1),),
    "acc": (("acc", 1),),
    "rmse_sqrt_before_time_avg": (("rmse_sqrt_before_time_avg", 1),),
}
PROBABILISTIC = {
    "crps": (("crps", 1),),
    "ensemble_mean_rmse": (("ens_mean_rmse", 1),),
    "ensemble_mean_mse": (("ens_mean_rmse", 2),),
    "ensemble_variance": (("spread", 2),),
}
EVALUATIONS = {"deterministic": DETERMINISTIC, "probabilistic": PROBABILISTIC}


def wb2_results(scores: xr.Dataset, forecast: str, evaluation: str = "deterministic") -> xr.Dataset:
    """One forecast's scores as a WeatherBench2 results Dataset (float64, ``lead_time``); only the metrics of
    ``evaluation`` that can be derived from those computed; empty if none can."""
    table = EVALUATIONS[evaluation]
    have = [str(m) for m in scores["metric"].values]
    picked = {}
    for wb2_name, sources in table.items():
        for name, power in sources:
            if name in have:
                picked[wb2_name] = (name, power)
                break
    out = {}
    for var, da in scores.data_vars.items():
        one = da.sel(forecast=forecast, drop=True)
        parts = [one.sel(metric=name, drop=True) ** power for name, power in picked.values()]
        if not parts:
            continue
        stacked = xr.concat(parts, dim="metric").assign_coords(metric=list(picked))
        stacked = stacked.rename(prediction_timedelta="lead_time").astype(np.float64)
        out[var] = stacked.transpose("metric", "region", "lead_time", ...).assign_attrs(da.attrs)
    ds = xr.Dataset(out)
    for c in [c for c in ds.coords if c not in ("metric", "region", "lead_time", "level")]:
        ds = ds.drop_vars(c)
    if "region" in ds.coords:
        ds = ds.assign_coords(region=ds["region"].values.astype(object))
    if "metric" in ds.coords:
        ds = ds.assign_coords(metric=np.array(list(picked), dtype=object))
    return ds.assign_attrs(source="wxemu verify", forecast=forecast)


def export_wb2(scores: xr.Dataset, out_dir: str, *, overwrite: bool = False) -> list[str]:
    """Write ``{forecast}_{deterministic|probabilistic}.nc`` for each forecast of ``scores`` into ``out_dir``
    (created; replaced only with ``overwrite``), atomically. Returns the files written."""
    target = Path(out_dir)
    if target.exists() and not overwrite:
        raise VerifyError(f"output {out_dir} exists; pass --overwrite to replace it")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    names = []
    try:
        for forecast in [str(f) for f in scores["forecast"].values]:
            safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in forecast)
            for evaluation in EVALUATIONS:
                ds = wb2_results(scores, forecast, evaluation)
                if ds.data_vars:
                    name = f"{safe}_{evaluation}.nc"
                    ds.to_netcdf(tmp / name, engine="scipy")  # NetCDF3, as WB2's own ``dataset.to_netcdf()``
                    names.append(name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return [str(target / n) for n in names]
