"""Issue 22: nothing silently wrong. Bad input built from the bundled samples (relabelled units, edited GRIB
headers, truncated copies, unreachable hosts) through the public ingest functions and the `wxemu` command, the
plausibility bounds on arrays, and the table of docs/reliability.md held to the tests it names."""

from __future__ import annotations

import ast
import re
import socket
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from data_catalog import store as st
from data_catalog.damaged import edit_grib, relabel_units, truncated_copy
from data_catalog.errors import IncompleteStoreError, InputDataError
from data_catalog.forecast_ingest import ingest_forecast
from data_catalog.ingestion import IngestConfig, ingest
from data_catalog.plausibility import BOUNDS, check_values
from data_catalog.readers import open_source
from workflows.cli import main

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "reliability.md"


def _ingest(sources, out, **kw):
    return ingest(IngestConfig(sources=tuple(sources), out=str(out), **kw))


def _refused_and_nothing_complete(out: Path) -> None:
    """After a refusal: no store, or one that every reader refuses as incomplete."""
    if out.exists():
        assert not st.is_complete(str(out))
        with pytest.raises(IncompleteStoreError):
            st.open_store(str(out))


# ------------------------------------------------------------------------------------------------ plausibility
def test_plausibility_bounds_on_arrays():
    t = np.full((2, 3, 4), 280.0, dtype="f4")
    assert check_values("2m_temperature", t) is None
    t[1, 2, 0], t[1, 2, 3] = -4.8, 14.0  # degrees Celsius labelled K
    found = check_values("2m_temperature", t)
    assert (found.count, found.size, found.first_index, found.first_value) == (2, 24, (1, 2, 0), pytest.approx(-4.8))
    assert (found.bounds.low, found.bounds.high, found.bounds.units) == (150.0, 350.0, "K")
    t[0, 0, 0] = np.nan  # NaN is the NaN check's business
    assert check_values("2m_temperature", t).count == 2
    assert check_values("2m_temperature", np.full(5, np.nan)) is None
    assert check_values("boundary_layer_height", np.array([-1e9])) is None  # no bounds: not judged
    cases = {
        "temperature": (200.0, 1000.0),
        "mean_sea_level_pressure": (101_325.0, 1013.25),  # hPa labelled Pa
        "surface_pressure": (95_000.0, 950.0),
        "specific_humidity": (0.012, 12.0),  # g/kg labelled kg/kg
        "relative_humidity": (85.0, 8500.0),
        "u_component_of_wind": (35.0, 350.0),
        "10m_v_component_of_wind": (-12.0, -180.0),
        "geopotential": (5.5e4, 5.5e6),
        "sea_surface_temperature": (290.0, 17.0),
        "land_sea_mask": (1.0, 100.0),
    }
    for name, (good, bad) in cases.items():
        assert check_values(name, np.array([good, good])) is None, name
        found = check_values(name, np.array([good, bad, good]))
        assert found is not None and found.count == 1 and found.first_index == (1,), name


@pytest.mark.parametrize(
    "name, source_vars",
    [
        ("era5-2mt-2019-03-uk.grib", {"t2m": "2m_temperature"}),
        ("era5-levels-members.grib", {"t": "temperature", "z": "geopotential"}),
        ("eraint_uvz.nc", {"z": "geopotential", "u": "u_component_of_wind", "v": "v_component_of_wind"}),
    ],
)
def test_plausibility_accepts_the_real_samples(sample, name, source_vars):
    """The bounds never refuse real data: every bundled analysis passes (canonical units are the samples')."""
    ds = open_source(sample(name))
    for source_name, canonical in source_vars.items():
        assert canonical in BOUNDS
        assert check_values(canonical, ds[source_name].values) is None, (name, source_name)


def test_celsius_labelled_kelvin_is_refused_with_count_and_position(sample, tmp_path, capsys):
    """2 m temperatures of 2..13 labelled K (issue 22: accepted and stored); refused during the write with the
    file, the variable, the count and the first position; stored when overridden."""
    path = relabel_units(
        sample("era5-2mt-2019-03-uk.grib"),
        str(tmp_path / "t2m_celsius.nc"),
        {"t2m": "K"},
        offsets={"t2m": -273.15},
        isel={"time": slice(0, 24)},
    )
    out = tmp_path / "t2m.zarr"
    first = float(xr.open_dataset(path)["t2m"].isel(time=0).values[::-1][0, 0])  # south-west corner, as stored
    with pytest.raises(
        InputDataError,
        match=rf"t2m_celsius.nc: 38808 of 38808 values of 2m_temperature in times 2019-03-01 00:00:00 .. "
        rf"2019-03-01 23:00:00 are physically impossible \(outside "
        rf"150 .. 350 K; first {first:g} at time=2019-03-01 00:00:00, latitude=50.0, longitude=350.0\).*"
        r"--units.*--allow-implausible",
    ):
        _ingest([path], out)
    _refused_and_nothing_complete(out)
    assert main(["ingest", path, "--out", str(out), "--overwrite", "--allow-implausible"]) == 0
    capsys.readouterr()
    stored = st.open_store(str(out))
    assert stored.sizes["time"] == 24 and float(stored["2m_temperature"].max()) < 20
    assert "--allow-implausible" in stored.attrs["wxemu_recipe"]["command"]


def test_forecast_ingest_refuses_impossible_winds(sample, tmp_path):
    """u of 500 m s-1 in a forecast GRIB: refused while written, nothing left at --out."""
    path = edit_grib(
        sample("uv_on_different_levels.grib"),
        str(tmp_path / "u500.grib"),
        keep=lambda m: m["shortName"] == "u",
        values=500.0,
    )
    out = tmp_path / "fc.zarr"
    with pytest.raises(
        InputDataError,
        match=r"u500.grib: 5328 of 5328 values of u_component_of_wind in the block read are physically impossible "
        r"\(outside -250 .. "
        r"250 m s-1; first 500 at time=2017-10-18 12:00:00, prediction_timedelta=0 days 06:00:00, level=500, "
        r"latitude=-90.0",
    ):
        ingest_forecast([path], str(out), levels=[500])
    assert not out.exists() and not list(tmp_path.glob(".fc.zarr.tmp-*"))
    ds = ingest_forecast([path], str(out), levels=[500], allow_implausible=True)
    assert float(ds["u_component_of_wind"].max()) == 500.0


def test_the_cfgrib_t_sample_is_refused_as_temperature(sample, tmp_path, capsys):
    """cfgrib's t_analysis_and_fc_0.grib holds "temperatures" of -0.0004..0.03 K (a test field): refused as
    analysis and as forecast; the tests that use it as plain numbers opt out with --allow-implausible."""
    path = sample("t_analysis_and_fc_0.grib")
    for argv in (["ingest"], ["ingest", "--forecast"]):
        assert main([*argv, path, "--out", str(tmp_path / "t.zarr")]) == 2
        err = capsys.readouterr().err
        assert "2664 of 2664 values of temperature" in err and "outside 150 .. 350 K" in err
        assert not (tmp_path / "t.zarr").exists()


# ------------------------------------------------------------------------------------------ valid time, members
def test_forecast_fields_ingested_as_analysis_are_refused(sample, tmp_path, capsys):
    """Issue 22 case 1: +3 h fields were stored 3 h early. Refused with the hint --forecast, which stores them
    as init + lead."""
    path = edit_grib(
        sample("era5-2mt-2019-03-uk.grib"), str(tmp_path / "fc3.grib"), limit=1, dataType="fc", stepRange="3"
    )
    out = tmp_path / "an.zarr"
    assert main(["ingest", path, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "fc3.grib: holds forecast fields, not analyses (lead +3h from reference time" in err
    assert "ingest it with --forecast" in err and not out.exists()
    fc = ingest_forecast([path], str(tmp_path / "fc.zarr"))
    assert pd.Timestamp(fc["time"].values[0]) == pd.Timestamp("2019-03-01T00")
    assert pd.Timedelta(fc["prediction_timedelta"].values[0]) == pd.Timedelta("3h")


def _member3(sample, tmp_path, name, **keys):
    return edit_grib(
        sample("era5-levels-members.grib"),
        str(tmp_path / name),
        keep=lambda m: m["number"] == 3 and m["shortName"] == "t" and m["dataDate"] == 20170101,
        dataType="pf",
        **keys,
    )


def test_one_member_needs_member_and_forecast_keeps_number(sample, tmp_path, capsys):
    """Issue 22 case 2: one perturbed member was stored as an analysis, and --forecast dropped its number."""
    path = _member3(sample, tmp_path, "pf.grib")
    out = tmp_path / "an.zarr"
    with pytest.raises(InputDataError, match=r"pf.grib: holds ensemble member 3 alone .*--member 3"):
        _ingest([path], out)
    assert not out.exists()
    with pytest.raises(InputDataError, match=r"member 5 not found; the source has members \[3\]"):
        _ingest([path], out, member=5)
    result = _ingest([path], out, member=3)
    raw = open_source(path)["t"].sel(isobaricInhPa=850).values[0, ::-1]  # 00 UTC, south to north
    np.testing.assert_array_equal(st.open_store(result.out)["temperature"].sel(level=850).values[0], raw)
    fc_path = _member3(sample, tmp_path, "pf72.grib", stepRange="72")
    assert main(["ingest", fc_path, "--out", str(tmp_path / "a72.zarr")]) == 2
    assert "--forecast" in capsys.readouterr().err
    fc = ingest_forecast([fc_path], str(tmp_path / "fc.zarr"))
    assert fc["number"].values.tolist() == [3] and fc["temperature"].dims[:3] == (
        "time",
        "prediction_timedelta",
        "number",
    )


def test_grib_filter_without_forecast_is_refused(sample, tmp_path, capsys):
    """--grib-filter was silently ignored without --forecast."""
    out = tmp_path / "o.zarr"
    assert main(["ingest", sample("era5-2mt-2019-03-uk.grib"), "--grib-filter", "shortName=2t", "--out", str(out)]) == 2
    assert "--grib-filter applies to --forecast only" in capsys.readouterr().err
    assert not out.exists()


# ------------------------------------------------------------------------------------------- truncation, network
def test_truncated_netcdf3_ingest_is_refused(sample, tmp_path, capsys):
    """Issue 22 case 3: a NetCDF3 cut at half its size was ingested (61 of 120 steps zeros) and marked complete."""
    full = relabel_units(sample("era5-2mt-2019-03-uk.grib"), str(tmp_path / "t2m.nc"), {}, isel={"time": slice(0, 120)})
    cut = truncated_copy(full, str(tmp_path / "t2m_cut.nc"), 0.5)
    out = tmp_path / "o.zarr"
    assert main(["ingest", cut, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "t2m_cut.nc: truncated NetCDF3 file: its header promises" in err and "(50%)" in err
    _refused_and_nothing_complete(out)
    assert main(["ingest", full, "--out", str(out)]) == 0  # the intact file goes through


def test_unreachable_cloud_source_fails_at_once(tmp_path, monkeypatch, capsys):
    """A cloud source without network: one clear error within seconds (today: 66 s of retries, 4 tracebacks)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for var in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    out = tmp_path / "o.zarr"
    assert main(["ingest", "wb2-era5-64x32", "--out", str(out), "--end", "1959-01-02"]) == 2
    assert main(["ingest", "--forecast", "wb2-hres-forecast", "--out", str(out)]) == 2
    assert time.monotonic() - t0 < 15
    err = capsys.readouterr().err
    assert err.count(f"cannot reach 127.0.0.1:{port}") == 2 and "Traceback" not in err
    assert not out.exists()


# --------------------------------------------------------------------------------------------- the table
_REF = re.compile(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]]*\])?`")


def _table_rows(text: str) -> list[list[str]]:
    rows = []
    for line in text.splitlines():
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0].lower().startswith("input or fault"):
            assert cells == ["input or fault", "what the user sees", "what is left on disk", "enforcing test"]
            continue
        rows.append(cells)
    return rows


def _defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}


def _unenforced(rows: list[list[str]]) -> list[str]:
    """The tests named by the rows that do not exist (each as ``file::name (row)``)."""
    missing = []
    for cells in rows:
        assert len(cells) == 4 and all(cells), cells
        refs = _REF.findall(cells[3])
        assert refs, f"row {cells[0]!r}: no `tests/file.py::test_name` in {cells[3]!r}"
        for file, name in refs:
            path = ROOT / file
            if not (path.exists() and name in _defined_tests(path)):
                missing.append(f"{file}::{name} ({cells[0]})")
    return missing


def test_reliability_table_check_catches_a_missing_test():
    """The check itself: a row naming a test that does not exist is reported."""
    head = (
        "| input or fault | what the user sees | what is left on disk | enforcing test |\n| --- | --- | --- | --- |\n"
    )
    real = "| a | b | c | `tests/test_reliability.py::test_reliability_table_check_catches_a_missing_test` |\n"
    ghost = "| a | b | c | `tests/test_reliability.py::test_that_does_not_exist` |\n"
    assert _unenforced(_table_rows(head + real)) == []
    assert _unenforced(_table_rows(head + real + ghost)) == ["tests/test_reliability.py::test_that_does_not_exist (a)"]
    with pytest.raises(AssertionError, match="no `tests/file.py::test_name`"):
        _unenforced(_table_rows(head + "| a | b | c | some test |\n"))


def test_reliability_table_names_existing_tests():
    """Every row of docs/reliability.md names the test that enforces it, and that test exists."""
    rows = _table_rows(TABLE.read_text())
    assert len(rows) >= 30
    missing = _unenforced(rows)
    assert not missing, "tests named in docs/reliability.md that do not exist:\n" + "\n".join(missing)
