"""The forecast store's data layout (WeatherBench2's, docs/architecture.md): creation and batch writes.

Dims ``time`` (initialisation), ``prediction_timedelta`` (leads ``step, 2*step, ..., lead``; lead 0 is not
included), [``number``] for ensembles, [``level``], ``latitude``, ``longitude``; one data variable per state
variable, physical units, float32, one initial time per chunk. Works on any fsspec path or URL. Completeness and
resume records are root attributes written by ``pipeline.forecasting`` through ``data_catalog.store``.
"""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
import zarr

from data_catalog.store import open_store
from pipeline.store_reader import StoreLayout


def channel_slices(layout: StoreLayout) -> list[tuple[str, slice, list[int] | None]]:
    out, c = [], 0
    for name, order in layout.variables:
        n = 1 if order is None else len(order)
        out.append((name, slice(c, c + n), order))
        c += n
    return out


def create_forecast_store(
    out: str, layout: StoreLayout, init_times: np.ndarray, leads_hours: list[float], members: int, attrs: dict[str, Any]
) -> None:
    """Write the metadata and coordinates of an empty forecast store at ``out`` (path or fsspec URL; data chunks
    are written later by :func:`write_batch`): variables of ``layout`` with dims (time = ``init_times``,
    prediction_timedelta = ``leads_hours``, [number], [level], latitude, longitude), float32 NaN, one initial time
    per chunk, root attributes ``attrs``."""
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


def write_batch(out: str, layout: StoreLayout, start: int, values: np.ndarray) -> None:
    """Write physical values (n_init, n_lead, [members,] C, H, W) at initial-time index ``start`` of ``out``."""
    group = zarr.open_group(out, mode="r+")
    for name, sl, order in channel_slices(layout):
        block = values[..., sl, :, :]
        if order is None:
            block = block[..., 0, :, :]
        group[name][start : start + values.shape[0]] = block.astype(np.float32)
