"""Raw GRIB messages read with eccodes directly: the independent reference the ingest tests compare against."""

from __future__ import annotations

import eccodes
import numpy as np
import pandas as pd
import pytest


def eccodes_messages(path: str) -> list[dict]:
    """Every GRIB message: init time, lead, member, shortName, level, first latitude and values (Nj, Ni) as
    stored."""
    out = []
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            date, time = eccodes.codes_get(h, "dataDate"), eccodes.codes_get(h, "dataTime")
            out.append(
                {
                    "init": pd.Timestamp(f"{date}T{time:04d}"),
                    "lead": pd.Timedelta(hours=eccodes.codes_get(h, "endStep")),
                    "number": eccodes.codes_get(h, "number"),
                    "shortName": eccodes.codes_get(h, "shortName"),
                    "level": eccodes.codes_get(h, "level"),
                    "first_lat": eccodes.codes_get(h, "latitudeOfFirstGridPointInDegrees"),
                    "values": eccodes.codes_get_values(h).reshape(
                        eccodes.codes_get(h, "Nj"), eccodes.codes_get(h, "Ni")
                    ),
                }
            )
            eccodes.codes_release(h)
    return out


UV_NAMES = {"u": "u_component_of_wind", "v": "v_component_of_wind"}


def check_uv_forecast(ds, path: str, levels=(500, 700, 1000)) -> int:
    """Compare the canonical forecast dataset ``ds`` of the ECMWF u/v sample (5 deg, rows north to south in the
    file, south to north in ``ds``) with every eccodes message on ``levels``: the whole field, and points looked
    up by their coordinates. Returns the number of messages checked."""
    checked = 0
    for m in eccodes_messages(path):
        if m["level"] not in levels:
            continue
        field = ds[UV_NAMES[m["shortName"]]].sel(time=m["init"], prediction_timedelta=m["lead"], level=m["level"])
        assert m["first_lat"] == 90.0  # GRIB rows run north to south; the store's south to north
        np.testing.assert_allclose(field.values, m["values"][::-1], atol=1e-4)
        for row, col in ((0, 0), (9, 2), (18, 36), (30, 71), (36, 50)):
            lat, lon = 90.0 - 5 * row, 5.0 * col
            assert float(field.sel(latitude=lat, longitude=lon)) == pytest.approx(m["values"][row, col], abs=1e-5)
        checked += 1
    return checked
