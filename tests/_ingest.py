"""Helpers shared by the `wxemu ingest` tests (test_ingest*.py): the real UK GRIB sample and its directory, the
repository root, the raw GRIB opened with cfgrib, a config builder and small damaged NetCDF files. The session
fixtures built from them (``uk_raw``, ``uk_nc``, ``uk_store``) are in conftest.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from data_catalog import ingestion as ing
from data_catalog.samples import sample_path

UK_GRIB = Path(sample_path("era5-2mt-2019-03-uk.grib"))
DATA = UK_GRIB.parent
ROOT = Path(__file__).resolve().parents[1]  # the repository (what the wxemu processes import)


def raw_uk() -> xr.Dataset:
    """The UK GRIB opened lazily with cfgrib, as the file has it (latitude descending, longitude -10..2)."""
    return xr.open_dataset(UK_GRIB, engine="cfgrib", backend_kwargs={"indexpath": ""})


def make_cfg(sources, out, **kw) -> ing.IngestConfig:
    """``IngestConfig`` for ``sources`` (paths, made strings) written to ``out``; ``kw``: further fields."""
    return ing.IngestConfig(sources=tuple(map(str, sources)), out=str(out), **kw)


def bad_netcdf(tmp_path: Path, uk_raw: xr.Dataset, kind: str) -> Path:
    """Six hours of the UK sample written to ``tmp_path/bad-KIND.nc`` with one defect: ``nan`` (one NaN value),
    ``units`` (unknown units), ``gap`` (a missing hour) or ``irregular`` (an uneven latitude step). Edits a deep
    copy: ``uk_raw`` (a session fixture) is left as it was."""
    ds = uk_raw[["t2m"]].isel(time=slice(0, 6)).load().copy(deep=True)
    ds = ds.drop_vars([c for c in ds.coords if c not in ds.dims])
    if kind == "nan":
        ds["t2m"][2, 5, 7] = np.nan
    elif kind == "units":
        ds["t2m"].attrs["units"] = "furlongs"
    elif kind == "gap":
        ds = ds.isel(time=[0, 1, 2, 4, 5])
    elif kind == "irregular":
        lat = ds["latitude"].values.copy()
        lat[3] += 0.1
        ds = ds.assign_coords(latitude=lat)
    path = tmp_path / f"bad-{kind}.nc"
    ds.to_netcdf(path)
    return path
