"""The canonical variable table and coordinate aliases (WeatherBench2 names, CF attributes).

Pure data plus tiny helpers; no I/O. ``data_catalog.canonical`` uses these tables to map a source dataset onto
the canonical convention of docs/conventions.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Standard gravity (m s-2), used to turn geopotential height (m) into geopotential (m2 s-2).
STANDARD_GRAVITY = 9.80665


@dataclass(frozen=True)
class VariableSpec:
    """One canonical variable.

    name: WeatherBench2 name; units: canonical units (a key of ``UNIT_CONVERSIONS``); standard_name/long_name:
    CF attributes; aliases: source names mapped onto it; levels: True for pressure-level variables;
    static: True for time-invariant fields (no ``time`` dimension).
    """

    name: str
    units: str
    standard_name: str
    long_name: str
    aliases: tuple[str, ...] = ()
    levels: bool = False
    static: bool = False


VARIABLES: dict[str, VariableSpec] = {
    v.name: v
    for v in [
        VariableSpec("geopotential", "m2 s-2", "geopotential", "Geopotential", ("z", "geopotential"), True),
        VariableSpec("temperature", "K", "air_temperature", "Temperature", ("t", "air", "ta", "temp"), True),
        VariableSpec("u_component_of_wind", "m s-1", "eastward_wind", "U component of wind", ("u", "ua", "uwnd"), True),
        VariableSpec(
            "v_component_of_wind", "m s-1", "northward_wind", "V component of wind", ("v", "va", "vwnd"), True
        ),
        VariableSpec(
            "vertical_velocity",
            "Pa s-1",
            "lagrangian_tendency_of_air_pressure",
            "Vertical velocity",
            ("w", "omega", "wap"),
            True,
        ),
        VariableSpec(
            "specific_humidity", "kg kg-1", "specific_humidity", "Specific humidity", ("q", "hus", "shum"), True
        ),
        VariableSpec("relative_humidity", "%", "relative_humidity", "Relative humidity", ("r", "hur", "rhum"), True),
        VariableSpec("2m_temperature", "K", "air_temperature", "2 metre temperature", ("t2m", "2t", "tas")),
        VariableSpec(
            "2m_dewpoint_temperature", "K", "dew_point_temperature", "2 metre dewpoint temperature", ("d2m", "2d")
        ),
        VariableSpec(
            "10m_u_component_of_wind", "m s-1", "eastward_wind", "10 metre U wind component", ("u10", "10u", "uas")
        ),
        VariableSpec(
            "10m_v_component_of_wind", "m s-1", "northward_wind", "10 metre V wind component", ("v10", "10v", "vas")
        ),
        VariableSpec(
            "mean_sea_level_pressure",
            "Pa",
            "air_pressure_at_mean_sea_level",
            "Mean sea level pressure",
            ("msl", "mslp", "psl", "prmsl"),
        ),
        VariableSpec("surface_pressure", "Pa", "surface_air_pressure", "Surface pressure", ("sp", "ps", "pres")),
        VariableSpec(
            "total_precipitation",
            "m",
            "lwe_thickness_of_precipitation_amount",
            "Total precipitation (accumulated over the source's own period)",
            ("tp",),
        ),
        VariableSpec(
            "total_precipitation_6hr",
            "m",
            "lwe_thickness_of_precipitation_amount",
            "Total precipitation accumulated over 6 hours",
            ("tp6", "tp_6hr"),
        ),
        VariableSpec(
            "total_precipitation_24hr",
            "m",
            "lwe_thickness_of_precipitation_amount",
            "Total precipitation accumulated over 24 hours",
            ("tp24", "tp_24hr"),
        ),
        VariableSpec(
            "total_column_water_vapour",
            "kg m-2",
            "atmosphere_mass_content_of_water_vapor",
            "Total column water vapour",
            ("tcwv", "prw"),
        ),
        VariableSpec("skin_temperature", "K", "surface_temperature", "Skin temperature", ("skt", "ts")),  # metoffice
        VariableSpec(
            "sea_surface_temperature", "K", "sea_surface_temperature", "Sea surface temperature", ("sst", "tos")
        ),
        VariableSpec(
            "toa_incident_solar_radiation",
            "J m-2",
            "toa_incoming_shortwave_flux",
            "TOA incident solar radiation (accumulated)",
            ("tisr",),
        ),
        VariableSpec("land_sea_mask", "1", "land_binary_mask", "Land-sea mask", ("lsm", "sftlf"), static=True),
        VariableSpec(
            "geopotential_at_surface",
            "m2 s-2",
            "surface_geopotential",
            "Geopotential at surface",
            ("orography", "zs"),
            static=True,
        ),
    ]
}

#: Source names whose values are geopotential *height* (m); converted to geopotential by multiplying by g.
GEOPOTENTIAL_HEIGHT_ALIASES: dict[str, str] = {"gh": "geopotential", "hgt": "geopotential", "zg": "geopotential"}

#: source alias -> canonical name (built from ``VARIABLES``; canonical names map to themselves).
VARIABLE_ALIASES: dict[str, str] = {
    **{alias: spec.name for spec in VARIABLES.values() for alias in spec.aliases},
    **{name: name for name in VARIABLES},
}

#: Coordinate aliases: source coordinate name -> canonical name.
COORD_ALIASES: dict[str, str] = {
    "lat": "latitude",
    "latitude": "latitude",
    "nav_lat": "latitude",
    "lon": "longitude",
    "long": "longitude",
    "longitude": "longitude",
    "nav_lon": "longitude",
    "time": "time",
    "valid_time": "time",
    "date": "time",
    "isobaricInhPa": "level",
    "isobaricInPa": "level",
    "level": "level",
    "plev": "level",
    "lev": "level",
    "pressure_level": "level",
    "pressure": "level",
    "number": "number",
    "realization": "number",
    "member": "number",
    "ensemble_member": "number",
    "step": "prediction_timedelta",
    "lead_time": "prediction_timedelta",
    "prediction_timedelta": "prediction_timedelta",
}

#: Dimensions that stand for a period of a year without a date; refused unless ``time_from`` maps them.
DATELESS_TIME_DIMS: tuple[str, ...] = ("month", "season", "dayofyear", "doy", "week", "hour_of_day")

#: Canonical dimension order; data variables are transposed into this order (absent dims skipped).
DIM_ORDER: tuple[str, ...] = ("time", "prediction_timedelta", "number", "level", "latitude", "longitude")

#: Unit conversions onto the canonical units: canonical -> {normalised source unit: (scale, offset)},
#: canonical = source * scale + offset. Source units are normalised with ``normalise_units`` first.
UNIT_CONVERSIONS: dict[str, dict[str, tuple[float, float]]] = {
    "K": {
        "k": (1.0, 0.0),
        "kelvin": (1.0, 0.0),
        "degk": (1.0, 0.0),
        "degc": (1.0, 273.15),
        "c": (1.0, 273.15),
        "celsius": (1.0, 273.15),
        "degreesc": (1.0, 273.15),
    },
    "m2 s-2": {"m2s-2": (1.0, 0.0), "m2/s2": (1.0, 0.0)},
    "Pa": {
        "pa": (1.0, 0.0),
        "hpa": (100.0, 0.0),
        "mb": (100.0, 0.0),
        "mbar": (100.0, 0.0),
        "millibars": (100.0, 0.0),
        "millibar": (100.0, 0.0),
        "kpa": (1000.0, 0.0),
    },
    "Pa s-1": {"pas-1": (1.0, 0.0), "pa/s": (1.0, 0.0), "hpas-1": (100.0, 0.0)},
    "m s-1": {"ms-1": (1.0, 0.0), "m/s": (1.0, 0.0), "kmh-1": (1 / 3.6, 0.0), "km/h": (1 / 3.6, 0.0)},
    "kg kg-1": {"kgkg-1": (1.0, 0.0), "kg/kg": (1.0, 0.0), "1": (1.0, 0.0), "gkg-1": (1e-3, 0.0), "g/kg": (1e-3, 0.0)},
    "%": {"%": (1.0, 0.0), "percent": (1.0, 0.0)},
    "m": {"m": (1.0, 0.0), "mm": (1e-3, 0.0), "kgm-2": (1e-3, 0.0), "kg/m2": (1e-3, 0.0)},
    "kg m-2": {"kgm-2": (1.0, 0.0), "kg/m2": (1.0, 0.0), "mm": (1.0, 0.0)},
    "J m-2": {"jm-2": (1.0, 0.0), "j/m2": (1.0, 0.0)},
    "1": {
        "1": (1.0, 0.0),
        "(0-1)": (1.0, 0.0),
        "0-1": (1.0, 0.0),
        "fraction": (1.0, 0.0),
        "": (1.0, 0.0),
        "%": (0.01, 0.0),
    },
}

#: Geopotential height units accepted when a variable is declared as geopotential height (``gh``/``hgt``/``zg``
#: or standard_name ``geopotential_height``): metres (or gpm) times g give m2 s-2.
GEOPOTENTIAL_HEIGHT_UNITS: dict[str, tuple[float, float]] = {
    "m": (STANDARD_GRAVITY, 0.0),
    "gpm": (STANDARD_GRAVITY, 0.0),
    "dam": (10 * STANDARD_GRAVITY, 0.0),
}

#: Units of a pressure coordinate, normalised -> factor to hPa.
LEVEL_UNITS_TO_HPA: dict[str, float] = {
    "hpa": 1.0,
    "mb": 1.0,
    "mbar": 1.0,
    "millibars": 1.0,
    "millibar": 1.0,
    "pa": 0.01,
    "kpa": 10.0,
}


def normalise_units(units: str) -> str:
    """A comparable spelling of a units string: lower case, no spaces, ``**``/``^`` dropped, degree signs unified.

    ``"m**2 s**-2"`` -> ``"m2s-2"``; ``"m s^-1"`` -> ``"ms-1"``; ``"°C"``/``"deg_C"``/``"degrees_Celsius"`` ->
    ``"degc"``.
    """
    u = units.strip().lower().replace("**", "").replace("^", "")
    u = u.replace("°", "deg").replace("degrees", "deg").replace("degree", "deg").replace("_", "")
    u = re.sub(r"\s+", "", u)
    return {"degcelsius": "degc", "degkelvin": "degk"}.get(u, u)


def conversion_for(canonical_units: str, source_units: str) -> tuple[float, float] | None:
    """(scale, offset) taking ``source_units`` to ``canonical_units``, or None when they are not convertible."""
    return UNIT_CONVERSIONS.get(canonical_units, {}).get(normalise_units(source_units))
