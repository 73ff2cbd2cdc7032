"""Small canonical stores for tests and examples (the layout of docs/architecture.md), as WeatherBench2's
``schema.mock_*`` do: fakes other packages' tests can build on.

:func:`synthetic_dataset` makes a tiny smooth random dataset; :func:`uk_sample_dataset` maps the real ERA5 UK GRIB
sample onto the canonical convention with plain cfgrib (an ingest-independent reference);
:func:`write_canonical_store` writes any canonical ``xr.Dataset`` as a complete store with its ``stats`` and
``climatology`` groups; :func:`ingest_uk_sample` ingests the UK sample with :func:`data_catalog.ingestion.ingest`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from data_catalog.ingestion import IngestConfig, ingest
from data_catalog.samples import sample_path
from data_catalog.store import data_encoding

#: The bundled ERA5 UK 2 m temperature sample (March 2019, hourly, 0.25 deg).
UK_SAMPLE = "era5-2mt-2019-03-uk.grib"


def synthetic_dataset(
    n_time: int = 48,
    n_lat: int = 8,
    n_lon: int = 12,
    levels: tuple[int, ...] = (500, 850),
    start: str = "2020-01-01T00",
    freq: str = "1h",
    static: bool = True,
    seed: int = 0,
) -> xr.Dataset:
    """A global-ish dataset with one surface and one pressure-level variable following a smooth diurnal cycle."""
    rng = np.random.default_rng(seed)
    time = pd.date_range(start, periods=n_time, freq=freq).values
    lat = np.linspace(-80.0, 80.0, n_lat)
    lon = np.arange(n_lon) * (360.0 / n_lon)
    hours = (time - time[0]) / np.timedelta64(1, "h")
    phase = np.sin(2 * np.pi * hours / 24.0)[:, None, None]
    base = 280.0 + 10.0 * np.cos(np.deg2rad(lat))[None, :, None] + np.zeros((1, 1, n_lon))
    t2m = base + 3.0 * phase + rng.normal(0.0, 0.3, (n_time, n_lat, n_lon))
    temp = np.stack(
        [
            base - 40.0 + i * 20.0 + 2.0 * phase + rng.normal(0.0, 0.3, (n_time, n_lat, n_lon))
            for i in range(len(levels))
        ],
        axis=1,
    )
    ds = xr.Dataset(
        {
            "2m_temperature": (("time", "latitude", "longitude"), t2m.astype(np.float32), {"units": "K"}),
            "temperature": (("time", "level", "latitude", "longitude"), temp.astype(np.float32), {"units": "K"}),
        },
        coords={"time": time, "level": np.array(levels, dtype=np.int64), "latitude": lat, "longitude": lon},
    )
    if static:
        lsm = (rng.random((n_lat, n_lon)) > 0.6).astype(np.float32)
        ds["land_sea_mask"] = (("latitude", "longitude"), lsm, {"units": "1"})
    return ds


def uk_sample_dataset() -> xr.Dataset:
    """The ERA5 UK 2 m temperature GRIB sample in the canonical convention (latitude 50..58, longitude 350..362)."""
    src = xr.open_dataset(sample_path(UK_SAMPLE), engine="cfgrib", backend_kwargs={"indexpath": ""})
    da = src["t2m"].load().sortby("latitude")
    da = da.assign_coords(longitude=da.longitude.values.astype(np.float64) + 360.0)  # -10..2 -> 350..362
    da = da.drop_vars([c for c in da.coords if c not in ("time", "latitude", "longitude")])
    da.attrs = {"units": "K", "standard_name": "air_temperature", "long_name": "2 metre temperature"}
    return xr.Dataset({"2m_temperature": da.astype(np.float32)})


def compute_stats(ds: xr.Dataset) -> xr.Dataset:
    """Per-variable/level mean, std, diff_mean, diff_std with dims (stat, [level])."""
    out = {}
    for name, da in ds.data_vars.items():
        if "time" not in da.dims:
            continue
        spatial = [d for d in da.dims if d not in ("level",)]
        diff = da.diff("time")
        vals = [da.mean(spatial), da.std(spatial), diff.mean(spatial), diff.std(spatial)]
        out[name] = xr.concat(vals, dim="stat").astype(np.float32)
    return xr.Dataset(out).assign_coords(stat=np.array(["mean", "std", "diff_mean", "diff_std"], dtype=object))


def compute_climatology(ds: xr.Dataset) -> xr.Dataset:
    """A (dayofyear, hour, [level], latitude, longitude) climatology (plain mean per day of year and hour)."""
    out = {}
    dayofyear = np.arange(1, 367)
    for name, da in ds.data_vars.items():
        if "time" not in da.dims:
            continue
        grouped = da.groupby(da.time.dt.hour).mean("time")  # (hour, ...)
        clim = grouped.expand_dims(dayofyear=dayofyear).astype(np.float32)
        out[name] = clim.transpose("dayofyear", "hour", ...)
    return xr.Dataset(out)


def write_canonical_store(
    ds: xr.Dataset, path: str | Path, *, stats_period: tuple[str, str] | None = None, climatology: bool = True
) -> Path:
    """Write ``ds`` as a complete canonical store (one time step per chunk) with ``stats`` and ``climatology``."""
    path = Path(path)
    period = ds if stats_period is None else ds.sel(time=slice(*stats_period))
    encoding = data_encoding(ds)  # the ingest's codec and chunking: one time step per chunk, blosc-lz4
    ds = ds.copy()
    ds.attrs.update(
        {
            "wxemu_complete": False,
            "wxemu_version": "test",
            "wxemu_recipe": {"test": "synthetic"},
            "wxemu_sources": [],
            "wxemu_stats_period": [str(period.time.values[0])[:19], str(period.time.values[-1])[:19]],
        }
    )
    ds.to_zarr(path, mode="w", zarr_format=3, consolidated=False, encoding=encoding)
    compute_stats(period).to_zarr(path, group="stats", mode="w", zarr_format=3, consolidated=False)
    if climatology:  # (366 x 24 x grid per channel: skip it for big benchmark stores)
        compute_climatology(period).to_zarr(path, group="climatology", mode="w", zarr_format=3, consolidated=False)
    group = zarr.open_group(path, mode="r+")
    group.attrs["wxemu_complete"] = True
    zarr.consolidate_metadata(path)
    return path


def ingest_uk_sample(out: str | Path) -> Path:
    """The UK sample ingested into ``out`` with statistics over 2019-03-01..21 (what ``wxemu ingest SAMPLE --out
    OUT --stats-start 2019-03-01T00 --stats-end 2019-03-21T23`` writes; the store the demo uses)."""
    cfg = IngestConfig(
        sources=(sample_path(UK_SAMPLE),),
        out=str(out),
        stats_start="2019-03-01T00",
        stats_end="2019-03-21T23",
    )
    return Path(ingest(cfg).out)
