"""Met Office PP forecasts for ``wxemu ingest --forecast``: the PP files of all SOURCEs read as one group.

An ensemble is often spread over files (one member per file: GloSea4), so ``forecast_ingest`` hands every
SOURCE that is a PP file (or a glob of them) here at once instead of one file at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import xarray as xr

from data_catalog.catalog import is_catalog_name
from data_catalog.errors import InputDataError
from data_catalog.forecasts import to_canonical_forecast
from data_catalog.readers import detect_format, expand_paths, open_pp_group

#: The model name of Met Office PP forecasts in scores (as GRIB centre ``egrr``).
MODEL = "ukmo"


def pp_group(sources: Sequence[str], fmt: str | None, options: dict | None) -> list[str] | None:
    """The expanded paths of ``sources`` when all of them are PP files (or ``fmt`` is ``"pp"``), else None."""
    if fmt not in (None, "pp") or any(is_catalog_name(s) for s in sources):
        return None
    paths = expand_paths(list(sources), storage_options=options)
    if fmt == "pp" or all(detect_format(p, options) == "pp" for p in paths):
        return paths
    return None


def open_pp_forecast(
    paths: Sequence[str],
    *,
    storage_options: dict | None = None,
    mapping: Mapping[str, str] | None = None,
    units: Mapping[str, str] | None = None,
    **selection,
) -> tuple[str, xr.Dataset, str]:
    """``(label, canonical forecast, model name)`` of PP files read together (``readers.open_pp_group``) and
    mapped by ``forecasts.to_canonical_forecast`` (``selection``: its variables, levels, start, end,
    lead_times, allow_nan). The dataset's ``source_files`` attribute lists the files. Raises InputDataError
    naming the files when only static fields (orography, land mask) are selected: they make no forecast."""
    paths = list(paths)
    label = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    raw = open_pp_group(paths, storage_options=storage_options)
    ds = to_canonical_forecast(
        raw, source=label, mapping=dict(mapping) if mapping else None, units=dict(units) if units else None, **selection
    )
    if not any("prediction_timedelta" in ds[v].dims for v in ds.data_vars):
        raise InputDataError(
            f"{label}: variables {sorted(map(str, ds.data_vars))} are static fields (no forecast time); "
            "a forecast store needs time-dependent variables"
        )
    return label, ds, MODEL
