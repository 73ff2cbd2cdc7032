"""Raw GRIB messages read with eccodes directly: the independent reference the ingest tests compare against."""

from __future__ import annotations

import eccodes
import pandas as pd


def eccodes_messages(path: str) -> list[dict]:
    """Every GRIB message: init time, lead, member, shortName, level, first latitude and values (Nj, Ni) as
    stored."""
    out = []
    with open(path, "rb") as f:
        while (h := eccodes.codes_grib_new_from_file(f)) is not None:
            date, time = eccodes.codes_get(h, "dataDate"), eccodes.codes_get(h, "dataTime")
            out.append({
                "init": pd.Timestamp(f"{date}T{time:04d}"),
                "lead": pd.Timedelta(hours=eccodes.codes_get(h, "endStep")),
                "number": eccodes.codes_get(h, "number"),
                "shortName": eccodes.codes_get(h, "shortName"),
                "level": eccodes.codes_get(h, "level"),
                "first_lat": eccodes.codes_get(h, "latitudeOfFirstGridPointInDegrees"),
                "values": eccodes.codes_get_values(h).reshape(eccodes.codes_get(h, "Nj"), eccodes.codes_get(h, "Ni")),
            })
            eccodes.codes_release(h)
    return out
