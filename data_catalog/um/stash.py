"""Which canonical variable a Unified Model field is: STASH codes first, then CF standard names.

Pure tables; no I/O. A STASH code is ``mXXsYYiZZZ`` (model, section, item). A field whose code is not in
``STASH_TO_CANONICAL`` is mapped by its CF standard name and vertical coordinate (``CF_RULES``): e.g.
``air_temperature`` at a height of 1.5 or 2 m is ``2m_temperature``, on pressure levels ``temperature``.
"""

from __future__ import annotations

#: STASH code -> canonical variable (conventions.VARIABLES). UM section 0: prognostics, 3: boundary layer,
#: 5: convection/precipitation, 15/16: diagnostics on pressure levels, 30: climate diagnostics on pressure levels.
STASH_TO_CANONICAL: dict[str, str] = {
    "m01s00i024": "skin_temperature",  # surface temperature after timestep
    "m01s00i030": "land_sea_mask",
    "m01s00i033": "geopotential_at_surface",  # orography (m): times g
    "m01s00i409": "surface_pressure",
    "m01s00i507": "sea_surface_temperature",  # open-sea surface temperature
    "m01s03i225": "10m_u_component_of_wind",
    "m01s03i226": "10m_v_component_of_wind",
    "m01s03i236": "2m_temperature",  # 1.5 m temperature
    "m01s03i250": "2m_dewpoint_temperature",  # 1.5 m dewpoint
    "m01s05i226": "total_precipitation",  # total precipitation amount (kg m-2) over the field's period
    "m01s15i201": "u_component_of_wind",
    "m01s15i202": "v_component_of_wind",
    "m01s16i202": "geopotential",  # geopotential height (m) on pressure levels: times g
    "m01s16i203": "temperature",
    "m01s16i204": "relative_humidity",
    "m01s16i222": "mean_sea_level_pressure",
    "m01s16i256": "relative_humidity",
    "m01s30i201": "u_component_of_wind",
    "m01s30i202": "v_component_of_wind",
    "m01s30i204": "temperature",
    "m01s30i205": "specific_humidity",
    "m01s30i206": "relative_humidity",
    "m01s30i207": "geopotential",  # geopotential height (m): times g
    "m01s30i208": "vertical_velocity",  # omega (Pa s-1)
    "m01s30i461": "total_column_water_vapour",
}

#: STASH codes (and CF names) whose values are heights in metres that become geopotential (m2 s-2) times g.
HEIGHT_FIELDS: frozenset[str] = frozenset({"m01s00i033", "m01s16i202", "m01s30i207"})

#: (CF standard name, vertical kind) -> canonical variable; vertical kind is "pressure" (a pressure coordinate),
#: "2m" (height 1.5 or 2 m), "10m" (height 10 m) or "surface" (no vertical coordinate, or any other height).
CF_RULES: dict[tuple[str, str], str] = {
    ("air_temperature", "pressure"): "temperature",
    ("air_temperature", "2m"): "2m_temperature",
    ("dew_point_temperature", "2m"): "2m_dewpoint_temperature",
    ("x_wind", "pressure"): "u_component_of_wind",
    ("eastward_wind", "pressure"): "u_component_of_wind",
    ("y_wind", "pressure"): "v_component_of_wind",
    ("northward_wind", "pressure"): "v_component_of_wind",
    ("x_wind", "10m"): "10m_u_component_of_wind",
    ("eastward_wind", "10m"): "10m_u_component_of_wind",
    ("y_wind", "10m"): "10m_v_component_of_wind",
    ("northward_wind", "10m"): "10m_v_component_of_wind",
    ("geopotential_height", "pressure"): "geopotential",
    ("geopotential", "pressure"): "geopotential",
    ("specific_humidity", "pressure"): "specific_humidity",
    ("relative_humidity", "pressure"): "relative_humidity",
    ("lagrangian_tendency_of_air_pressure", "pressure"): "vertical_velocity",
    ("air_pressure_at_sea_level", "surface"): "mean_sea_level_pressure",
    ("surface_air_pressure", "surface"): "surface_pressure",
    ("surface_temperature", "surface"): "skin_temperature",
    ("sea_surface_temperature", "surface"): "sea_surface_temperature",
    ("surface_altitude", "surface"): "geopotential_at_surface",
    ("land_binary_mask", "surface"): "land_sea_mask",
    ("atmosphere_mass_content_of_water_vapor", "surface"): "total_column_water_vapour",
}

#: CF names whose values are heights (m) of a geopotential variable.
HEIGHT_CF_NAMES: frozenset[str] = frozenset({"geopotential_height", "surface_altitude"})

#: Extensive (accumulated, flux-like) canonical variables: regridded conservatively under ``regrid="auto"``.
EXTENSIVE: frozenset[str] = frozenset(
    {
        "total_precipitation",
        "total_precipitation_6hr",
        "total_precipitation_24hr",
        "toa_incident_solar_radiation",
        "total_column_water_vapour",
    }
)


def vertical_kind(has_pressure: bool, height_m: float | None) -> str:
    """``"pressure"``, ``"2m"`` (height 1.5 or 2 m), ``"10m"`` or ``"surface"`` for a field's vertical coordinate."""
    if has_pressure:
        return "pressure"
    if height_m is not None and abs(height_m - 1.75) <= 0.25 + 1e-6:
        return "2m"
    if height_m is not None and abs(height_m - 10.0) <= 1e-6:
        return "10m"
    return "surface"


def canonical_name(stash: str | None, cf_name: str | None, kind: str) -> str | None:
    """The canonical variable of a field from its STASH code (wins) or CF standard name and vertical kind."""
    if stash and stash in STASH_TO_CANONICAL:
        return STASH_TO_CANONICAL[stash]
    if cf_name:
        return CF_RULES.get((cf_name, kind))
    return None


def is_height(stash: str | None, cf_name: str | None) -> bool:
    """True when the field holds heights (m) to be turned into geopotential (m2 s-2)."""
    return (stash in HEIGHT_FIELDS) if stash and stash in STASH_TO_CANONICAL else cf_name in HEIGHT_CF_NAMES
