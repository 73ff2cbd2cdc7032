"""The forecast-cycle stages in one process, over hourly cycles of the real ERA5 UK sample: config validation,
outputs, verified leads, idempotence (no byte changes on a re-run), housekeeping and missing data."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pandas as pd
import pytest
import xarray as xr

from data_catalog import store as st
from data_catalog.errors import ConfigError, WxemuError
from data_catalog.ingestion import CRASH_ENV, SimulatedCrash
from workflows.cycle import CycleConfig, run_stage
from workflows.cycle.layout import DataNotArrivedError

POINTS = ["20190315T0000Z", "20190315T0100Z", "20190315T0200Z"]


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def write_config(tmp: Path, grib: str, **extra) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    lines = [
        f"source: [{grib}]",
        "store: analysis.zarr",
        "work_dir: out",
        "lead: 2h",
        "cycle_hours: 1",
        "analysis_start: 2019-03-01T00",
    ] + [f"{k}: {v}" for k, v in extra.items()]
    path = tmp / "cycle.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_config_errors_name_the_key(tmp_path):
    ok = {"source": ["a.grib"], "store": "s.zarr", "work_dir": "w"}
    assert CycleConfig.from_dict(ok).models == ("persistence", "climatology")
    cases = [
        ({**ok, "leed": "24h"}, "leed"),
        ({"source": ["a.grib"], "work_dir": "w"}, "store"),
        ({**ok, "lead": "soon"}, "lead"),
        ({**ok, "lead": "24h", "step": "5h"}, "step"),
        ({**ok, "cycle_hours": 0}, "cycle_hours"),
        ({**ok, "retention_hours": 6}, "retention_hours"),
        ({**ok, "models": ["persistence", "persistence"]}, "models"),
        ({**ok, "chunk_time": 0}, "chunk_time"),
        ({**ok, "ingest_region": "extra-tropics"}, "ingest_region.*not one box"),
        ({**ok, "ingest_region": "1,2,3"}, "ingest_region.*four numbers"),
    ]
    for data, key in cases:
        with pytest.raises(ConfigError, match=key):
            CycleConfig.from_dict(data)
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: [a.grib]\nstore: s.zarr\nwork_dir: w\nlead: [1, 2\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        CycleConfig.from_yaml(bad)
    rel = tmp_path / "rel.yaml"
    rel.write_text("source: [in/a.grib]\nstore: s.zarr\nwork_dir: w\nmodels: [persistence, runs/m1]\n")
    cfg = CycleConfig.from_yaml(rel)
    assert cfg.store == str(tmp_path / "s.zarr") and cfg.source == (str(tmp_path / "in/a.grib"),)
    assert cfg.models == ("persistence", str(tmp_path / "runs/m1")) and cfg.model_names == ("persistence", "m1")


def test_cycle_ingests_its_region(tmp_path, sample):
    cfg = CycleConfig.from_yaml(write_config(tmp_path, sample("era5-2mt-2019-03-uk.grib"), ingest_region="52,56,-6,1"))
    assert run_stage("ingest", cfg, "20190301T0500Z").status == "done"
    store = xr.open_zarr(cfg.store, consolidated=None)
    assert dict(store.sizes) == {"time": 6, "latitude": 17, "longitude": 29}
    assert store["longitude"].values[[0, -1]].tolist() == [354.0, 361.0]  # 6W..1E, canonical
    assert run_stage("ingest", cfg, "20190301T0700Z").status == "done"  # the next cycle appends the same box
    assert xr.open_zarr(cfg.store, consolidated=None).sizes["time"] == 8


def test_cycles_in_process(tmp_path, sample):
    cfg = CycleConfig.from_yaml(write_config(tmp_path, sample("era5-2mt-2019-03-uk.grib"), retention_hours=2))
    out = tmp_path / "out"
    assert run_stage("ingest", cfg, "20190314T2300Z").status == "done"  # creates the store: 2019-03-01 .. 14T23
    for point in POINTS:
        for stage in ("ingest", "forecast", "verify", "dashboard"):
            run_stage(stage, cfg, point)
    times = xr.open_zarr(cfg.store, consolidated=None)["time"].values
    assert pd.Timestamp(times[-1]) == pd.Timestamp("2019-03-15T02") and len(times) == 14 * 24 + 3
    for point in POINTS:
        for name in ("persistence", "climatology"):
            fc = xr.open_zarr(out / "forecasts" / point / f"{name}.zarr", consolidated=None)
            assert fc.attrs["wxemu_complete"] and fc.sizes["prediction_timedelta"] == 2
            assert pd.Timestamp(fc["time"].values[0]) == pd.Timestamp(point[:-1])
    # scores of each initial cycle hold exactly the leads verified by the last point (T02)
    expected = {"20190315T0000Z": [1, 2], "20190315T0100Z": [1]}
    assert sorted(p.name for p in (out / "scores").iterdir()) == [f"{p}.zarr" for p in expected]
    for init, leads in expected.items():
        sc = xr.open_zarr(out / "scores" / f"{init}.zarr", consolidated=False)
        assert [pd.Timedelta(x) / pd.Timedelta("1h") for x in sc["prediction_timedelta"].values] == leads
        assert set(sc["forecast"].values) == {"persistence", "climatology"}
        assert bool(sc["2m_temperature"].notnull().all())
    # persistence at +1 h from T00 is the RMSE between the T00 and T01 analyses
    truth = xr.open_zarr(cfg.store, consolidated=None)["2m_temperature"]
    diff = truth.sel(time="2019-03-15T01") - truth.sel(time="2019-03-15T00")
    sc = xr.open_zarr(out / "scores" / "20190315T0000Z.zarr", consolidated=False)
    rmse = float(sc["2m_temperature"].sel(metric="rmse", forecast="persistence", region="global")[0])
    assert 0 < rmse < float(abs(diff).max())

    # re-running every stage of every cycle changes no byte, in any order
    before = tree_digest(tmp_path)
    for point in reversed(POINTS):
        for stage in ("ingest", "forecast", "verify", "dashboard"):
            assert run_stage(stage, cfg, point).status == "skipped"
    assert tree_digest(tmp_path) == before

    # retention 2 h at T03: the forecasts initialised before T01 go, the scores stay
    assert run_stage("housekeep", cfg, "20190315T0300Z").status == "done"
    assert sorted(p.name for p in (out / "forecasts").iterdir()) == POINTS[1:]
    assert (out / "scores" / "20190315T0000Z.zarr").is_dir()
    assert run_stage("housekeep", cfg, "20190315T0300Z").status == "skipped"

    # an analysis not in the source yet: the data trigger says so and the ingest writes nothing
    before = tree_digest(tmp_path / "analysis.zarr")
    for stage in ("available", "ingest"):
        with pytest.raises(DataNotArrivedError, match="2019-04-01"):
            run_stage(stage, cfg, "20190401T0000Z")
    assert tree_digest(tmp_path / "analysis.zarr") == before
    with pytest.raises(WxemuError, match="no analysis at 2019-03-16"):
        run_stage("forecast", cfg, "20190316T0000Z")
    with pytest.raises(WxemuError, match="unknown cycle stage"):
        run_stage("train", cfg, POINTS[0])


def test_ingest_completes_an_interrupted_append(tmp_path, sample, monkeypatch):
    """A cycle's ingest killed after writing its region leaves the store incomplete; re-running the cycle's
    ingest completes that append (with its own command) and gives the store an uninterrupted run gives."""
    grib = sample("era5-2mt-2019-03-uk.grib")
    runs = {}
    for name in ("crashed", "clean"):
        cfg = CycleConfig.from_yaml(write_config(tmp_path / name, grib))
        run_stage("ingest", dataclasses.replace(cfg, analysis_start="2019-03-10T00"), "20190314T2300Z")
        runs[name] = cfg
    cfg = runs["crashed"]
    monkeypatch.setenv(CRASH_ENV, "1")
    with pytest.raises(SimulatedCrash):
        run_stage("ingest", cfg, POINTS[0])
    assert not st.is_complete(cfg.store)
    for stage in ("forecast", "verify"):  # an incomplete store is neither forecast from nor verified against
        with pytest.raises(WxemuError, match="incomplete"):
            run_stage(stage, cfg, POINTS[0])
    monkeypatch.delenv(CRASH_ENV)
    assert run_stage("ingest", cfg, POINTS[0]).status == "skipped"  # completed the append, nothing more to add
    assert run_stage("ingest", runs["clean"], POINTS[0]).status == "done"
    for group in (None, "stats", "climatology"):
        xr.testing.assert_equal(
            xr.open_zarr(cfg.store, group=group, consolidated=False).load(),
            xr.open_zarr(runs["clean"].store, group=group, consolidated=False).load(),
        )
