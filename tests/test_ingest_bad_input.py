"""`wxemu ingest` on bad input: damaged NetCDF cuts of the real ERA5 UK GRIB (a NaN, unknown units, a missing
hour, an uneven grid), the corrupted ERA5 GRIB sample, a missing variable, times duplicated across files, an
existing store, a non-finite grid, an empty stats period and an unknown --climatology-pass. Each fails with a
clear error naming the file and the problem, and leaves no store behind.

The damaged files are written by tests/_ingest.py from the session fixtures of conftest.py.
"""

from __future__ import annotations

import shutil

import pandas as pd
import pytest
from _ingest import DATA, bad_netcdf, make_cfg

from data_catalog import ingestion as ing
from data_catalog import store
from data_catalog.errors import InputDataError, WxemuError
from workflows.cli import main as wxemu


def test_empty_stats_period_writes_nothing(tmp_path, uk_nc) -> None:
    out = tmp_path / "uk.zarr"
    with pytest.raises(InputDataError, match="no times in the stats period"):
        ing.ingest(make_cfg([uk_nc["01"]], out, stats_start="2020-01-01"))
    assert not out.exists()


@pytest.mark.parametrize(
    "kind, message",
    [
        ("nan", r"NaN"),
        ("units", r"units 'furlongs'"),
        ("gap", r"missing times"),
        ("irregular", r"latitude grid is not regular"),
    ],
)
def test_bad_input_names_file_and_leaves_no_store(tmp_path, uk_raw, capsys, kind, message) -> None:
    path = bad_netcdf(tmp_path, uk_raw, kind)
    out = tmp_path / "bad.zarr"
    assert wxemu(["ingest", str(path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and pytest.importorskip("re").search(message, err), err
    assert not out.exists()


def test_corrupt_grib_and_missing_variable(tmp_path, capsys, uk_nc) -> None:
    out = tmp_path / "bad.zarr"
    corrupt = DATA / "era5-levels-corrupted.grib"
    assert wxemu(["ingest", str(corrupt), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "era5-levels-corrupted.grib" in err and "corrupt" in err.lower()
    assert wxemu(["ingest", uk_nc["01"], "--out", str(out), "--variables", "temperature", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert uk_nc["01"] in err and "temperature" in err and "not found" in err
    assert not out.exists()


def test_duplicated_times_across_files(tmp_path, uk_nc) -> None:
    copy = tmp_path / "copy-of-day1.nc"
    shutil.copy(uk_nc["01"], copy)
    with pytest.raises(
        InputDataError,
        match=r"copy-of-day1\.nc.*uk-20190301\.nc.*duplicated time|"
        r"uk-20190301\.nc.*copy-of-day1\.nc.*duplicated time",
    ):
        ing.ingest(make_cfg([uk_nc["01"], copy], tmp_path / "dup.zarr"))
    assert not (tmp_path / "dup.zarr").exists()


def test_existing_store_needs_overwrite(tmp_path, uk_nc) -> None:
    out = tmp_path / "s.zarr"
    ing.ingest(make_cfg([uk_nc["01"]], out))
    with pytest.raises(WxemuError, match="complete store exists.*--overwrite"):
        ing.ingest(make_cfg([uk_nc["02"]], out))
    ing.ingest(make_cfg([uk_nc["02"]], out, overwrite=True))
    assert pd.Timestamp(store.open_store(str(out))["time"].values[0]) == pd.Timestamp("2019-03-02")


def test_climatology_pass_option_is_validated() -> None:
    from data_catalog.errors import ConfigError

    with pytest.raises(ConfigError, match="--climatology-pass must be one of auto, memory, store, got 'disk'"):
        ing.IngestConfig(sources=("x",), out="y.zarr", climatology_pass="disk")


@pytest.mark.parametrize("grid", ["nan", "inf", "-inf", "0"])
def test_non_finite_grid_is_a_clear_error(tmp_path, uk_nc, capsys, grid) -> None:
    out = tmp_path / "uk.zarr"
    assert wxemu(["ingest", uk_nc["01"], "--out", str(out), f"--grid={grid}", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--grid must be a positive resolution in degrees" in err and "Traceback" not in err
    assert not out.exists()
