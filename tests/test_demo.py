"""wxemu demo end to end on the real ERA5 sample (short training), and its table/findings helpers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from workflows.cli import main
from workflows.demo import _spans, format_table, linear_margins, rmse_table, significance_findings, skill_findings


def test_spans_and_findings() -> None:
    assert _spans([1, 2, 3, 7, 9, 10]) == "+1..+3 h, +7 h, +9..+10 h"
    table = {
        "m": {1: 0.5, 2: 2.0, 3: 1.0},
        "persistence": {1: 0.6, 2: 1.5, 3: 1.2},
        "climatology": {1: 1.9, 2: 1.9, 3: 0.9},
    }
    names = ["m", "persistence", "climatology"]
    assert skill_findings(names, table) == [
        "m does not beat persistence at +2 h",
        "m does not beat climatology at +2..+3 h",
    ]
    md = format_table(names, table, leads_h=(1, 3))
    assert md.splitlines()[2] == "| m | **0.500** | 1.000 |"
    assert md.splitlines()[4] == "| climatology | 1.900 | **0.900** |"


def test_findings_compare_the_emulators_with_the_linear_baseline_too() -> None:
    table = {
        "m": {1: 0.5, 2: 1.0},
        "linear": {1: 0.4, 2: 1.1},
        "persistence": {1: 0.6, 2: 1.5},
        "climatology": {1: 1.9, 2: 1.9},
    }
    assert skill_findings(list(table), table) == ["m does not beat linear at +1 h"]


def test_significance_findings_name_the_best_baseline_and_the_test_outcome() -> None:
    rng = np.random.default_rng(0)
    n = 200
    noise = rng.normal(0, 0.05, (n, 2))
    base = np.full((n, 2), 1.0)
    mse = {
        # lead 1: m is 0.5 lower at every init (significant); lead 2: the same as linear up to noise
        "m": np.stack([base[:, 0] - 0.5 + noise[:, 0], base[:, 1] + noise[:, 1]], axis=1),
        "linear": base.copy(),
        "persistence": base + 1.0,
        "climatology": base + 2.0,
    }
    (line,) = significance_findings(list(mse), mse)
    assert line.startswith("m against the best baseline at each lead: significantly better at +1 h (p ")
    side = "better" if mse["m"][:, 1].mean() < 1.0 else "worse"
    assert f"; {side} but not significantly at +2 h (p " in line
    # the best baseline is taken lead by lead: persistence best at lead 2 and m far worse there
    mse["persistence"][:, 1] = 0.1
    (line,) = significance_findings(list(mse), mse)
    assert "significantly worse at +2 h" in line


@pytest.mark.slow
def test_demo_runs_every_stage_and_the_emulator_beats_persistence(tmp_path: Path, capsys) -> None:
    out = tmp_path / "demo"
    rc = main(
        [
            "demo",
            "--out",
            str(out),
            "--models",
            "transformer",
            "--max-steps",
            "150",
            "--init",
            "2019-03-25T00/2019-03-30T18/6h",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    for stage in ("$ wxemu ingest", "$ wxemu train", "$ wxemu forecast", "$ wxemu verify", "$ wxemu explain"):
        assert stage in printed
    assert "deletion area ratio" in (out / "dashboard" / "explanations.html").read_text()
    summary = (out / "summary.md").read_text()
    names, table = rmse_table(str(out / "scores.zarr"))
    assert names == ["transformer", "linear", "persistence", "climatology"]
    assert sorted(table["transformer"]) == list(range(1, 25))
    assert f"{table['transformer'][1]:.3f}" in summary
    assert "\n- transformer against the best baseline at each lead: " in summary
    assert "\n- transformer minus linear: " in summary
    # skill on the held-out week, even after a short training: better than persistence at +1 h and +6 h
    for lead in (1, 6):
        assert table["transformer"][lead] < table["persistence"][lead], (lead, table)


def test_paths_note_lists_the_lagged_leads(tmp_path: Path) -> None:
    import zarr

    from workflows.demo import paths_note

    for name, lagged in (("a", {"13": 11.0, "14": 10.0, "16": 8.0}), ("b", {})):
        zarr.open_group(str(tmp_path / f"{name}.zarr"), mode="w").attrs["wxemu_lead_paths"] = {
            "validation": "2019-03-22T00/2019-03-23T23",
            "lagged": lagged,
            "rmse_normalised": {},
        }
    zarr.open_group(str(tmp_path / "c.zarr"), mode="w")
    note = paths_note([(n, str(tmp_path / f"{n}.zarr")) for n in ("a", "b", "c")])
    assert note.splitlines()[1:] == [
        "Paths (`wxemu forecast --lagged-paths`):",
        (
            "- a: +13..+14 h, +16 h one trained step from an earlier analysis, other leads greedy from the initial "
            "time (chosen on the validation inits 2019-03-22T00/2019-03-23T23)"
        ),
        "- b: every lead greedy from the initial time (chosen on the validation inits 2019-03-22T00/2019-03-23T23)",
    ]
    assert paths_note([("c", str(tmp_path / "c.zarr"))]) == ""


def test_linear_margins_give_each_emulators_range_against_the_linear_baseline() -> None:
    table = {
        "m": {1: 0.5, 2: 1.01, 3: 1.98},
        "linear": {1: 0.5, 2: 1.0, 3: 2.0},
        "persistence": {1: 0.6, 2: 1.5, 3: 1.7},
    }
    assert linear_margins(list(table), table) == [
        "m minus linear: -0.0200 .. +0.0100 K (-1.00 .. +1.00 %) over +1..+3 h"
    ]
    assert linear_margins(["m", "persistence"], {k: table[k] for k in ("m", "persistence")}) == []
