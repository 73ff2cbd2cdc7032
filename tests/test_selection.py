"""benchmarks/selection.py (the protocol the demo's configs are adopted by) on the demo's store: it reproduces the
`linear` baseline's validation score of docs/models.md and scores the variable it is asked for."""

import sys
import warnings
from pathlib import Path

import _synthetic
import pytest

from data_catalog.errors import WxemuError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from selection import fold_rmse, main  # noqa: E402

LINEAR = str(ROOT / "pipeline" / "configs" / "demo_linear.yaml")


def test_selection_reproduces_the_linear_validation_score(capsys, tmp_path):
    store = str(_synthetic.cached_uk_store())
    with warnings.catch_warnings():  # the script quietens warnings for its own output
        code = main([LINEAR, "--baseline", LINEAR, "--store", store, "--folds", "validation", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "RMSE of 2m_temperature" in out and "no verdict: run every fold" in out
    (row,) = [line for line in out.splitlines() if line.startswith("validation  candidate")]
    assert row.split()[2:7] == ["0.2404", "1.0195", "1.3519", "1.3111", "1.1647"]  # docs/models.md's `linear`
    with pytest.raises(WxemuError, match="mean_sea_level_pressure"):  # a variable the store does not hold
        fold_rmse(LINEAR, "validation", store=store, out=tmp_path / "msl", variable="mean_sea_level_pressure")
    with pytest.raises(SystemExit):
        main([LINEAR, "--store", store, "--folds", "week9"])
