"""The README's Python quick start, as written there, end to end on the bundled sample (a short training and a
short range of initial times so that it runs in about a minute)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def quickstart_code() -> str:
    """The first ```python block of the README."""
    text = README.read_text()
    start = text.index("```python\n") + len("```python\n")
    return text[start : text.index("```", start)]


def test_readme_quickstart_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.verification import open_scores

    code = quickstart_code()
    for name in (
        "ingest(IngestConfig(",
        "train(TrainConfig.from_yaml(",
        "forecast(ForecastConfig(",
        "verify(VerifyConfig(",
    ):
        assert name in code, name
    # the same code, made small: 3 training steps, 4 initial times, 6 h leads
    small = code.replace(
        'TrainConfig.from_yaml("pipeline/configs/demo_graph.yaml")',
        'TrainConfig.from_yaml(CONFIG).override({"trainer": {"max_steps": 3, "limit_val_batches": 1}})',
    )
    small = small.replace('init = "2019-03-25T00/2019-03-30T23/1h"', 'init = "2019-03-25T00/2019-03-25T03/1h"')
    small = small.replace('lead="24h"', 'lead="6h"')
    assert small.count("override") == 1 and 'lead="6h"' in small and "2019-03-25T03" in small
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"CONFIG": str(README.parent / "pipeline" / "configs" / "demo_graph.yaml")}
    exec(compile(small, str(README), "exec"), namespace)  # noqa: S102 - the README's own code

    assert namespace["run"].steps == 3 and Path(namespace["run"].checkpoint).is_file()
    assert namespace["fc"].n_inits == 4 and namespace["fc"].model == "graph"
    scores, per_init = open_scores(str(tmp_path / "scores.zarr"))
    rmse = scores["2m_temperature"].sel(metric="rmse", region="global").values
    assert rmse.shape[-1] == 6 and np.isfinite(rmse).all() and (rmse > 0).all()


def test_stage_names_are_the_functions_whatever_was_imported_before() -> None:
    """``from pipeline import train`` gives the stage function even after its module was imported: the stages live
    in modules of other names, so no submodule shadows an exported name."""
    import data_catalog.ingestion
    import pipeline.forecasting
    import pipeline.training
    import pipeline.verification
    from data_catalog import IngestConfig, ingest
    from pipeline import ForecastConfig, TrainConfig, forecast, train, verify

    assert (train, forecast, verify) == (
        pipeline.training.train,
        pipeline.forecasting.forecast,
        pipeline.verification.verify,
    )
    assert ingest is data_catalog.ingestion.ingest and IngestConfig is data_catalog.ingestion.IngestConfig
    assert ForecastConfig is pipeline.forecasting.ForecastConfig and TrainConfig().model.kind == "graph"
