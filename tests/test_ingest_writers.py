"""`wxemu ingest` and its writers: two ingests into one store at once (real processes released together), a stale
lock of a killed ingest taken over, locked fsspec stores and `wxemu ingest --forecast` refused, an ingest into an
fsspec memory store, the re-run command suggested for an interrupted ingest (complete, and it resumes), an
interrupted append resumed with another block size refused, the deprecated --region-mb alias and YAML config.

The daily NetCDF files cut from the real ERA5 UK GRIB are session fixtures (conftest.py).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _ingest import ROOT, UK_GRIB, make_cfg, raw_uk

from data_catalog import ingestion as ing
from data_catalog import store
from data_catalog import store_protocol as sp
from data_catalog.errors import ConfigError, IncompleteStoreError, WxemuError
from data_catalog.forecast_ingest import ingest_forecast
from workflows.cli import main as wxemu


def test_ingest_into_fsspec_memory_store(uk_nc) -> None:
    url = "memory://wxemu-ingest-test/uk.zarr"
    try:
        ing.ingest(make_cfg([uk_nc["01"]], url))
        ds = store.open_store(url)
        assert ds.sizes["time"] == 24 and store.is_complete(url)
        assert store.open_stats(url)["2m_temperature"].sel(stat="std") > 0
    finally:
        store.remove_store(url)


_WXEMU_PROCESS = """
import sys
try:
    from workflows.cli import main
except ImportError:
    from workflows.cli import main
print("ready", flush=True)
sys.stdin.readline()
sys.exit(main(sys.argv[1:]))
"""


def _wxemu_processes(argvs: list[list[str]]) -> list[subprocess.CompletedProcess]:
    """Run ``wxemu ARGV`` in one real process each, started together: every process imports wxemu first and
    reports ready; then all are released at the same instant (one line on their stdin)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WXEMU_PROCESS, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for argv in argvs
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    out = []
    for p, argv in zip(procs, argvs):
        stdout, stderr = p.communicate(timeout=300)
        out.append(subprocess.CompletedProcess(argv, p.returncode, stdout, stderr))
    return out


def test_two_concurrent_ingests_into_one_store(tmp_path) -> None:
    """Two `wxemu ingest` processes to the same --out at once: exactly one writes the store (complete, right times
    and values); the other fails at once with the lock error naming the owner, exit code 2, no traceback."""
    out = tmp_path / "uk.zarr"
    argv = ["ingest", str(UK_GRIB), "--out", str(out), "--end", "2019-03-07T23", "--block-mb", "0.02", "--quiet"]
    runs = _wxemu_processes([argv, argv])
    assert sorted(r.returncode for r in runs) == [0, 2], [r.stderr for r in runs]
    won, lost = sorted(runs, key=lambda r: r.returncode)
    assert "written: 168 times" in won.stdout
    assert "wxemu ingest: error:" in lost.stderr and "Traceback" not in lost.stderr, lost.stderr
    assert re.search(r"another writer holds the store: wxemu ingest on host \S+ \(PID \d+\) since ", lost.stderr)
    assert f"delete the lock {out}.lock" in lost.stderr
    assert not Path(f"{out}.lock").exists()  # released by the winner
    ds = store.open_store(str(out)).load()  # complete (readers accept it)
    raw = raw_uk()["t2m"].isel(time=slice(0, 168)).sortby("latitude")
    np.testing.assert_array_equal(ds["time"].values, raw["time"].values)
    np.testing.assert_allclose(ds["2m_temperature"].values, raw.values, atol=1e-4)


def test_stale_lock_of_a_killed_ingest_is_taken_over(tmp_path, uk_nc, capsys, caplog) -> None:
    """A lock left by a killed ingest (same host, its PID gone) is taken over with a message; a live one is not."""
    out = tmp_path / "uk.zarr"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = {"host": socket.gethostname(), "pid": dead.pid, "stage": "ingest", "started": "2026-01-01T00:00:00"}
    Path(f"{out}.lock").write_text(json.dumps(record))
    with caplog.at_level("WARNING", logger="wxemu"):
        assert wxemu(["ingest", uk_nc["01"], "--out", str(out), "--quiet"]) == 0
    assert f"taking over the stale lock of wxemu ingest on host {socket.gethostname()} (PID {dead.pid})" in caplog.text
    assert store.is_complete(str(out)) and not Path(f"{out}.lock").exists()
    with sp.writer_lock(str(out), stage="forecast"):  # held by this (live) process: an ingest is refused at once
        assert wxemu(["ingest", uk_nc["01"], "--out", str(out), "--overwrite", "--quiet"]) == 2
    assert f"wxemu forecast on host {socket.gethostname()} (PID {os.getpid()})" in capsys.readouterr().err
    assert store.is_complete(str(out))


def test_ingest_into_a_locked_fsspec_store_is_refused(uk_nc) -> None:
    url = f"memory://wxemu-ingest-lock-{os.getpid()}/uk.zarr"
    try:
        with sp.writer_lock(url, stage="ingest"):
            with pytest.raises(sp.StoreLockedError, match=r"memory://.*uk\.zarr: another writer holds the store"):
                ing.ingest(make_cfg([uk_nc["01"]], url))
            assert not store.store_exists(url)
        ing.ingest(make_cfg([uk_nc["01"]], url))
        assert store.is_complete(url)
    finally:
        store.remove_store(url)


def test_suggested_rerun_command_of_an_interrupted_ingest_is_complete(tmp_path, uk_nc, monkeypatch, capsys) -> None:
    """The command a reader suggests for an interrupted ingest carries every option the resume depends on (the
    block size: the resume checks the planned blocks) and, typed as given, completes the store."""
    out = tmp_path / "uk.zarr"
    argv = ["ingest", uk_nc["01"], uk_nc["02"], "--out", str(out), "--block-mb", "0.08", "--threads", "1"]
    monkeypatch.setenv(ing.CRASH_ENV, "2")
    with pytest.raises(ing.SimulatedCrash):
        wxemu([*argv, "--quiet"])
    monkeypatch.delenv(ing.CRASH_ENV)
    with pytest.raises(IncompleteStoreError) as err:
        store.open_store(str(out))
    suggested = re.search(r"re-run the same ingest command \('(wxemu ingest [^']*)'\)", str(err.value)).group(1)
    typed = shlex.split(suggested)
    assert typed[:2] == ["wxemu", "ingest"] and "--block-mb" in typed
    capsys.readouterr()
    assert wxemu([*typed[1:], "--quiet"]) == 0
    written, skipped = map(
        int, re.search(r"resumed: 48 times, (\d) blocks written, (\d) already", capsys.readouterr().out).groups()
    )
    assert written + skipped == 4 and skipped >= 2
    assert store.is_complete(str(out))


def test_region_mb_is_a_hidden_deprecated_alias(tmp_path, uk_nc, capsys) -> None:
    out = tmp_path / "uk.zarr"
    assert wxemu(["ingest", uk_nc["01"], "--out", str(out), "--region-mb", "0.08", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "--region-mb is deprecated; use --block-mb" in captured.err
    assert "written: 24 times, 2 blocks written" in captured.out
    assert "--block-mb 0.08" in store.root_attrs(str(out))["wxemu_recipe"]["command"]
    with pytest.raises(SystemExit):
        wxemu(["ingest", "--help"])
    help_text = capsys.readouterr().out
    assert "--block-mb" in help_text and "--region-mb" not in help_text


def test_forecast_ingest_takes_the_writer_lock(tmp_path, sample) -> None:
    """`wxemu ingest --forecast` honours the same lock: a second writer fails at once and writes nothing."""
    out = str(tmp_path / "fc.zarr")
    with sp.writer_lock(out, stage="ingest"):
        with pytest.raises(sp.StoreLockedError, match=r"fc\.zarr: another writer holds the store: wxemu ingest"):
            ingest_forecast([sample("t_analysis_and_fc_0.grib")], out, allow_implausible=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    ingest_forecast([sample("t_analysis_and_fc_0.grib")], out, allow_implausible=True)
    attrs = sp.root_attrs(out)
    assert sp.is_complete(out) and attrs["wxemu_command"].startswith("wxemu ingest --forecast")
    assert attrs["wxemu_created"] and attrs["wxemu_sources"][0]["path"].endswith("t_analysis_and_fc_0.grib")


def test_config_from_yaml(tmp_path, uk_nc) -> None:
    path = tmp_path / "ingest.yaml"
    path.write_text(f"sources: [{uk_nc['01']}]\nout: {tmp_path / 'uk.zarr'}\nblock_mb: 0.08\nunits: {{t2m: K}}\n")
    cfg = ing.IngestConfig.from_yaml(str(path))
    assert cfg.sources == (uk_nc["01"],) and cfg.block_mb == 0.08 and cfg.units == (("t2m", "K"),)
    assert ing.ingest(cfg).blocks_written == 2
    with pytest.raises(ConfigError, match="unknown field.*region_mb"):
        ing.IngestConfig.from_dict({"sources": ["x"], "out": "y", "region_mb": 1})
    with pytest.raises(ConfigError, match="--grid must be a positive resolution"):
        ing.IngestConfig.from_dict({"sources": ["x"], "out": "y", "grid": float("nan")})


def test_interrupted_append_resumed_with_another_block_size_is_refused(tmp_path, uk_nc, monkeypatch) -> None:
    """The done-markers number the planned blocks: resuming an append with another --block-mb would skip blocks
    never written (and mark the store complete with a hole); it is refused, naming the command to re-run."""
    out = tmp_path / "uk.zarr"
    ing.ingest(make_cfg([uk_nc["01"]], out))
    monkeypatch.setenv(ing.CRASH_ENV, "1")
    with pytest.raises(ing.SimulatedCrash):
        ing.ingest(make_cfg([uk_nc["02"]], out, append=True, block_mb=0.08), threads=1)
    monkeypatch.delenv(ing.CRASH_ENV)
    with pytest.raises(IncompleteStoreError, match=r"re-run the same ingest command \('wxemu ingest .*--append'\)"):
        store.open_store(str(out))
    with pytest.raises(WxemuError, match="planned blocks differ"):
        ing.ingest(make_cfg([uk_nc["02"]], out, append=True))
    ing.ingest(make_cfg([uk_nc["02"]], out, append=True, block_mb=0.08))
    ds = store.open_store(str(out))
    assert ds.sizes["time"] == 48 and not np.isnan(ds["2m_temperature"].values).any()
