"""``wxemu study STUDY.yaml``: a comparison study, from sources to scores, scorecards and a site, repeatably.

``run_study(config)`` (config: :class:`workflows.study_config.StudyConfig`) writes into ``config.out``:

* ``truth.zarr``: the truth (ingested from sources with ``wxemu ingest``, or the member of a forecast given by
  ``truth_member`` at its validity times), unless ``truth`` already is a Zarr store (then used in place);
* ``forecasts/NAME.zarr``: the baselines and emulators run from the truth (``wxemu forecast``) and the
  physics-model forecasts ingested with ``wxemu ingest --forecast`` (PP, GRIB, NetCDF, WeatherBench2 Zarr);
* ``scores.zarr``: every forecast scored together against the truth by ``pipeline.verification.verify``, which brings
  each onto the truth's grid (bilinear) and matches valid times (time + lead);
* ``scorecards/NAME-vs-REFERENCE.nc`` and ``.txt``: ``pipeline.scorecard`` against ``reference``, with
  significance (paired t-test with an effective sample size);
* ``site/``: the dashboard of the scores;
* ``study.json``: the study as run (the config, the truth note, the paths).

Returns a :class:`StudyResult`.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import pipeline.forecasting as forecast_stage
from data_catalog.errors import ConfigError, InputDataError, WxemuError
from data_catalog.forecast_ingest import ingest_forecast
from data_catalog.ingestion import IngestConfig, ingest
from data_catalog.readers import detect_format
from data_catalog.samples import sample_path
from data_catalog.um import iris_sample_dir
from pipeline.dashboard import DashboardConfig, build_dashboard
from pipeline.scorecard import render_scorecard, scorecard
from pipeline.verification import VerifyConfig, verify
from workflows.study_config import StudyConfig

HELP = "run a comparison study (truth, emulators, baselines, physics forecasts) into scores and scorecards"
__all__ = ["StudyConfig", "StudyResult", "run_study", "resolve_path"]


@dataclasses.dataclass(frozen=True)
class StudyResult:
    """What a study wrote: the study folder, the truth store, {forecast name: forecast store}, the scores store,
    {forecast name: scorecard .nc} against ``reference``, the site folder."""

    out: str
    truth: str
    forecasts: dict[str, str]
    scores: str
    scorecards: dict[str, str]
    site: str
    reference: str | None


def resolve_path(path: str) -> str:
    """``sample:NAME`` -> the bundled sample file; ``iris-sample:GLOB`` -> inside iris-sample-data; else as is."""
    if path.startswith("sample:"):
        return sample_path(path[len("sample:") :])
    if path.startswith("iris-sample:"):
        return str(Path(iris_sample_dir()) / path[len("iris-sample:") :])
    return path


def _is_store(path: str, options: dict | None) -> bool:
    try:
        return detect_format(path, options) == "zarr"
    except InputDataError:
        return False


def _truth_from_member(cfg: StudyConfig, sources: list[str], work: Path) -> str:
    """The truth as member ``truth_member`` of a forecast at its validity times (time = init + lead)."""
    fc = ingest_forecast(
        sources,
        str(work / "truth-forecast.zarr"),
        variables=list(cfg.variables) if cfg.variables else None,
        start=cfg.truth_start,
        end=cfg.truth_end,
        overwrite=True,
        storage_options=cfg.options,
        region=cfg.ingest_region,
    )
    if "number" in fc.dims:  # an ensemble: select the member (a single-member source is that member)
        if cfg.truth_member not in fc["number"].values:
            have = fc["number"].values.tolist()
            raise ConfigError(f"truth_member: {cfg.truth_member} is not a member of {cfg.truth}; members {have}")
        fc = fc.sel(number=cfg.truth_member, drop=True)
    member = fc.stack(valid=("time", "prediction_timedelta"))
    valid = member["time"].values + member["prediction_timedelta"].values
    member = member.drop_vars(["valid", "time", "prediction_timedelta"]).rename(valid="time")
    truth = member.assign_coords(time=valid).sortby("time").transpose("time", ...)
    if pd.Index(truth["time"].values).duplicated().any():
        raise ConfigError(f"truth_member: {cfg.truth} has two fields for one validity time; select initial times")
    truth.attrs = {
        "wxemu_complete": True,
        "wxemu_model": f"{fc.attrs.get('wxemu_model', 'forecast')} member {cfg.truth_member}",
        "wxemu_truth_note": cfg.truth_note,
    }
    out = work / "truth.zarr"
    if out.exists():
        shutil.rmtree(out)
    with warnings.catch_warnings():  # zarr: consolidated metadata is not yet in the v3 specification
        warnings.simplefilter("ignore")
        truth.chunk({"time": 1}).to_zarr(out, mode="w", zarr_format=3, consolidated=True)
    shutil.rmtree(work / "truth-forecast.zarr")
    return str(out)


def prepare_truth(cfg: StudyConfig, work: Path) -> str:
    """The truth store's path: ``cfg.truth`` itself when it is a Zarr store, else ingested into ``work``."""
    truth = resolve_path(cfg.truth)
    if _is_store(truth, cfg.options):
        return truth
    if cfg.truth_member is not None:
        return _truth_from_member(cfg, [truth], work)
    result = ingest(
        IngestConfig(
            sources=(truth,),
            out=str(work / "truth.zarr"),
            variables=cfg.variables,
            start=cfg.truth_start,
            end=cfg.truth_end,
            region=cfg.ingest_region,
            storage_options=cfg.storage_options,
            overwrite=True,
        )
    )
    return str(result.out)


def _run_forecast(checkpoint: str, store: str, cfg: StudyConfig, out: Path) -> None:
    """One emulator or baseline forecast through the forecast stage (its library function where there is one)."""
    if out.exists():
        shutil.rmtree(out)
    if hasattr(forecast_stage, "ForecastConfig"):  # the library function (branch api)
        forecast_stage.forecast(
            forecast_stage.ForecastConfig(
                checkpoint=checkpoint, store=store, init=cfg.inits, lead=cfg.lead, step=cfg.step, out=str(out)
            )
        )
        return
    args = argparse.Namespace(
        checkpoint=checkpoint,
        store=store,
        init=cfg.inits,
        lead=cfg.lead,
        step=cfg.step,
        out=str(out),
        members=1,
        perturbation_scale=0.5,
        batch_size=4,
        device="cpu",
        seed=0,
        lagged_paths=None,
    )
    forecast_stage.run(args)


def prepare_forecasts(cfg: StudyConfig, truth: str, work: Path) -> dict[str, str]:
    """{name: forecast store}: baselines and emulators run from ``truth``, physics forecasts ingested."""
    folder = work / "forecasts"
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    for name in cfg.baselines:
        _run_forecast(name, truth, cfg, folder / f"{name}.zarr")
        out[name] = str(folder / f"{name}.zarr")
    for checkpoint in cfg.emulators:
        path = folder / f"emulator-{len(out)}.zarr"
        _run_forecast(resolve_path(checkpoint), truth, cfg, path)
        out[xr.open_zarr(path).attrs.get("wxemu_model", path.stem)] = str(path)
    for name, sources in cfg.forecasts:
        path = folder / f"{name}.zarr"
        ingest_forecast(
            [resolve_path(s) for s in sources],
            str(path),
            variables=list(cfg.variables) if cfg.variables else None,
            start=cfg.start,
            end=cfg.end,
            model_name=name,
            overwrite=True,
            storage_options=cfg.options,
            grib_filter=dict(cfg.grib_filter) if cfg.grib_filter else None,
            fmt=cfg.forecast_format,
            region=cfg.ingest_region,
        )
        out[name] = str(path)
    return out


def write_scorecards(per_init: xr.Dataset, reference: str, metric: str, folder: Path) -> dict[str, str]:
    """Scorecards of every forecast against ``reference`` as NetCDF (the numbers) and text (the table)."""
    from rich.console import Console

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in [str(f) for f in per_init["forecast"].values]:
        if name == reference:
            continue
        card = scorecard(per_init, name, reference, metric)
        path = folder / f"{name}-vs-{reference}.nc"
        card.to_netcdf(path)
        console = Console(record=True, width=160, file=io.StringIO())
        console.print(render_scorecard(card))
        text = console.export_text() + _significant(card)
        (folder / f"{name}-vs-{reference}.txt").write_text(text)
        out[name] = str(path)
    return out


def _significant(card: xr.Dataset, alpha: float = 0.05) -> str:
    """The scorecard's cells significant at ``alpha`` as text lines (the table's bold does not survive as text)."""
    lines = []
    for var, da in card.data_vars.items():
        rel, p = da.sel(quantity="relative_difference"), da.sel(quantity="p_value")
        for idx in zip(*np.nonzero((p < alpha).values)):
            where = {d: p[d].values[i] for d, i in zip(p.dims, idx)}
            lead = pd.Timedelta(where.pop("prediction_timedelta"))
            cell = ", ".join(f"{k}={v}" for k, v in where.items())
            lines.append(f"  {var} {cell} lead {lead}: {100 * float(rel[idx]):+.1f}% (p={float(p[idx]):.3g})")
    head = f"significant at p < {alpha}: {len(lines)} of the cells"
    return "\n".join([head, *lines]) + "\n"


def run_study(config: StudyConfig, *, progress: bool = False) -> StudyResult:
    """Run a study (see module docstring); raises WxemuError naming the file or option on bad input, and leaves
    no scores store behind when scoring fails."""
    work = Path(config.out)
    scores_path = work / "scores.zarr"
    if scores_path.exists() and not config.overwrite:
        raise WxemuError(f"{work}: holds a study already (scores.zarr); set overwrite: true to redo it")
    work.mkdir(parents=True, exist_ok=True)
    truth = prepare_truth(config, work)
    forecasts = prepare_forecasts(config, truth, work)
    if config.reference is not None and config.reference not in forecasts:
        raise ConfigError(f"reference: {config.reference!r} is not one of the forecasts {sorted(forecasts)}")
    result = verify(
        VerifyConfig(
            forecasts=list(forecasts.values()),
            truth=truth,
            out=str(scores_path),
            regions=list(config.regions),
            variables=list(config.variables) if config.variables else None,
            metrics=list(config.metrics) if config.metrics else None,
            reference=config.reference,
            overwrite=True,
        ),
        progress=progress,
    )
    per_init = result.per_init
    cards = {}
    if config.reference is not None:
        cards = write_scorecards(per_init, config.reference, config.scorecard_metric, work / "scorecards")
    site = str(work / "site")
    build_dashboard(
        DashboardConfig(
            scores=(str(scores_path),),
            out=site,
            reference=config.reference,
            metric=config.scorecard_metric,
            title=config.name,
        )
    )
    record: dict[str, Any] = {
        "study": {k: v for k, v in dataclasses.asdict(config).items()},
        "truth": truth,
        "truth_note": config.truth_note,
        "forecasts": forecasts,
        "scores": str(scores_path),
        "scorecards": cards,
        "site": site,
    }
    (work / "study.json").write_text(json.dumps(record, indent=2, default=str))
    return StudyResult(str(work), truth, forecasts, str(scores_path), cards, site, config.reference)


# ------------------------------------------------------------------------------------------------------ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("study", metavar="STUDY.yaml", help="the study file (flat YAML, see docs/metoffice.md)")
    parser.add_argument("--out", help="the study folder (default: the file's `out`)")
    parser.add_argument("--overwrite", action="store_true", help="redo a study whose folder holds one")
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def run(args: argparse.Namespace) -> int:
    config = StudyConfig.from_yaml(args.study)
    changes = {k: v for k, v in (("out", args.out), ("overwrite", args.overwrite or None)) if v is not None}
    if changes:
        config = dataclasses.replace(config, **changes)
    result = run_study(config, progress=not args.quiet)
    scores = xr.open_zarr(result.scores)
    print(
        f"{config.name}: scored {', '.join(result.forecasts)} against {result.truth} -> {result.scores} "
        f"(variables {', '.join(map(str, scores.data_vars))}; metrics {', '.join(map(str, scores['metric'].values))})"
    )
    for name, path in result.scorecards.items():
        print(Path(path).with_suffix(".txt").read_text().rstrip())
    if result.site:
        print(f"site: {result.site}/index.html")
    return 0
