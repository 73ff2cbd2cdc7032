"""Forcings: fields known in advance from the time and the grid alone (pure numpy, no I/O).

- Top-of-atmosphere incident solar radiation. ``toa_incident_solar`` is the INSTANTANEOUS flux in W m-2 at
  the given times: S0 * (1 au / d)^2 * max(cos(solar zenith angle), 0), with S0 = 1361 W m-2 and the solar
  declination, hour angle and Earth-Sun distance d from the Astronomical Almanac's low-precision solar
  coordinates (~0.01 degree). ``toa_incident_solar_accumulated`` integrates it over the preceding hour in J m-2,
  the definition of ERA5's ``toa_incident_solar_radiation`` (``tisr``).
- sin/cos of the local solar hour of day (UTC hour + longitude / 15) and of the fraction of the year.
- Static fields (``land_sea_mask``, ``geopotential_at_surface``) passed in by the caller.
- Two state-derived channels, passed in normalised by the caller: the climatology of a state channel at the
  target time, and ``yesterday_change``: the change of a state channel over the store step that ended 24 h before
  the target time (the same hour yesterday; known at the initial time for leads up to 24 h).

``compute_forcings(spec, times, lat, lon, static)`` stacks them as (T, n_forcing, H, W) float32 in the order
``forcing_names(spec)``; insolation is divided by the solar constant, so it lies in [0, ~1.035].
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from data_catalog.errors import ConfigError

ONE_HOUR = np.timedelta64(1, "h")
SOLAR_CONSTANT = 1361.0  # W m-2, total solar irradiance at 1 au (Kopp and Lean 2011)

SOLAR_NAME = "toa_incident_solar_radiation"
LOCAL_HOUR_NAMES = ("sin_local_hour", "cos_local_hour")
YESTERDAY_HOURS = 24.0  # the yesterday_change forcing looks this far back from each target time
DAY_OF_YEAR_NAMES = ("sin_day_of_year", "cos_day_of_year")

# Default (offset, scale) of known static fields: normalised = (field - offset) / scale.
STATIC_NORMALISATION: dict[str, tuple[float, float]] = {
    "land_sea_mask": (0.0, 1.0),  # fraction 0..1
    "geopotential_at_surface": (0.0, 9806.65),  # m2 s-2 -> km of orography
}


def _time_parts(times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """datetime64 (T,) -> (day of year 1..366, UTC hour of day as a float, days in the year), each (T,)."""
    t = np.asarray(times).astype("datetime64[ns]")
    if t.ndim != 1:
        raise ValueError(f"times must be 1-D datetime64; got shape {t.shape}")
    day = t.astype("datetime64[D]")
    year = t.astype("datetime64[Y]")
    doy = (day - year.astype("datetime64[D]")).astype(np.int64) + 1
    hour = (t - day.astype("datetime64[ns]")).astype(np.int64) / 3.6e12
    next_year = (year + 1).astype("datetime64[D]")
    days_in_year = (next_year - year.astype("datetime64[D]")).astype(np.int64)
    return doy, hour, days_in_year


def _days_since_j2000(times: np.ndarray) -> np.ndarray:
    t = np.asarray(times).astype("datetime64[ns]").reshape(-1)
    return (t - np.datetime64("2000-01-01T12:00", "ns")).astype(np.int64) / 86400e9


def solar_geometry(times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Declination (radians), Greenwich hour angle of the sun (radians) and the inverse squared Earth-Sun
    distance factor (1 au / d)^2 at each time, each (T,).

    The Astronomical Almanac's low-precision solar coordinates (accurate to ~0.01 degree for 1950-2050):
    mean longitude and anomaly from the days since J2000.0, ecliptic longitude with the equation of centre,
    then right ascension and declination; the Greenwich hour angle is the sidereal time minus the right
    ascension. UTC is used for UT1/TT (an error of ~1 minute of time, i.e. 0.3 degrees of hour angle at most).
    """
    n = _days_since_j2000(times)
    mean_lon = np.radians(np.mod(280.460 + 0.9856474 * n, 360.0))
    anomaly = np.radians(np.mod(357.528 + 0.9856003 * n, 360.0))
    ecl_lon = mean_lon + np.radians(1.915) * np.sin(anomaly) + np.radians(0.020) * np.sin(2 * anomaly)
    obliquity = np.radians(23.439 - 4e-7 * n)
    ra = np.arctan2(np.cos(obliquity) * np.sin(ecl_lon), np.cos(ecl_lon))
    decl = np.arcsin(np.sin(obliquity) * np.sin(ecl_lon))
    gmst = np.radians(np.mod(280.46061837 + 360.98564736629 * n, 360.0))
    hour_angle = gmst - ra
    dist_au = 1.00014 - 0.01671 * np.cos(anomaly) - 0.00014 * np.cos(2 * anomaly)
    return decl, hour_angle, 1.0 / dist_au**2


def cos_solar_zenith(times: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Cosine of the solar zenith angle (T, H, W) for 1-D ``lat``, ``lon`` in degrees (negative at night)."""
    decl, gha, _ = solar_geometry(times)
    la = np.radians(np.asarray(lat, dtype=np.float64))[None, :, None]
    hour_angle = gha[:, None, None] + np.radians(np.asarray(lon, dtype=np.float64))[None, None, :]
    d = decl[:, None, None]
    return np.sin(la) * np.sin(d) + np.cos(la) * np.cos(d) * np.cos(hour_angle)


def toa_incident_solar(
    times: np.ndarray, lat: np.ndarray, lon: np.ndarray, solar_constant: float = SOLAR_CONSTANT
) -> np.ndarray:
    """Instantaneous top-of-atmosphere incident solar flux in W m-2, (T, H, W) float64.

    times: (T,) datetime64 (UTC); lat, lon: 1-D degrees (any longitude convention).
    """
    _, _, dist = solar_geometry(times)
    cz = cos_solar_zenith(times, lat, lon)
    return solar_constant * dist[:, None, None] * np.maximum(cz, 0.0)


def toa_incident_solar_accumulated(
    times: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    *,
    period: np.timedelta64 = ONE_HOUR,
    n_samples: int = 12,
    solar_constant: float = SOLAR_CONSTANT,
) -> np.ndarray:
    """Incident solar energy in J m-2 accumulated over ``period`` ending at each time (ERA5's ``tisr``),
    by the midpoint rule with ``n_samples`` sub-intervals. (T, H, W) float64."""
    t = np.asarray(times).astype("datetime64[ns]")
    step = period.astype("timedelta64[ns]") / n_samples
    seconds = period / np.timedelta64(1, "s")
    out = np.zeros((t.size, len(lat), len(lon)))
    for k in range(n_samples):
        mid = t - period.astype("timedelta64[ns]") + (step * k + step / 2).astype("timedelta64[ns]")
        out += toa_incident_solar(mid, lat, lon, solar_constant)
    return out * (seconds / n_samples)


def time_features(times: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(T, 4, W) float32: sin, cos of the local hour of day (UTC hour + lon / 15, period 24 h) and sin, cos
    of the fraction of the year ((day of year - 1 + hour / 24) / days in year). Broadcast over latitude."""
    doy, hour, ndays = _time_parts(times)
    local = np.mod(hour[:, None] + np.asarray(lon, dtype=np.float64)[None, :] / 15.0, 24.0)
    a = 2 * np.pi * local / 24.0
    y = 2 * np.pi * (doy - 1 + hour / 24.0) / ndays
    ones = np.ones_like(a)
    return np.stack([np.sin(a), np.cos(a), np.sin(y)[:, None] * ones, np.cos(y)[:, None] * ones], axis=1).astype(
        np.float32
    )


@dataclasses.dataclass
class ForcingSpec:
    """Which forcing channels a model sees, and how they are normalised.

    static_normalisation maps a static field name to (offset, scale); fields missing from it and from
    ``STATIC_NORMALISATION`` are standardised by their own mean and standard deviation over the grid.
    """

    toa_solar: bool = True
    local_hour: bool = True
    day_of_year: bool = True
    static: tuple[str, ...] = ()
    climatology: tuple[str, ...] = ()
    yesterday_change: tuple[str, ...] = ()  # state channels whose change over the same hour yesterday is a forcing
    solar_constant: float = SOLAR_CONSTANT
    static_normalisation: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.static = tuple(self.static)
        self.climatology = tuple(self.climatology)
        self.yesterday_change = tuple(self.yesterday_change)
        self.static_normalisation = {k: (float(v[0]), float(v[1])) for k, v in self.static_normalisation.items()}
        for name, (_, scale) in self.static_normalisation.items():
            if scale == 0:
                raise ConfigError(f"forcing spec: static_normalisation scale of {name!r} is zero")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> ForcingSpec:
        """Validate a dict (e.g. from a checkpoint header): unknown keys raise ``ConfigError`` naming them."""
        d = dict(d or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(
                f"forcing spec: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(sorted(names))}"
            )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict that ``from_dict`` reads back."""
        d = dataclasses.asdict(self)
        d["static"] = list(self.static)
        d["climatology"] = list(self.climatology)
        d["yesterday_change"] = list(self.yesterday_change)
        d["static_normalisation"] = {k: list(v) for k, v in self.static_normalisation.items()}
        return d


def forcing_names(spec: ForcingSpec) -> list[str]:
    """Channel names of ``compute_forcings(spec, ...)`` in order."""
    names: list[str] = []
    if spec.toa_solar:
        names.append(SOLAR_NAME)
    if spec.local_hour:
        names.extend(LOCAL_HOUR_NAMES)
    if spec.day_of_year:
        names.extend(DAY_OF_YEAR_NAMES)
    names.extend(spec.static)
    names.extend(f"climatology/{c}" for c in spec.climatology)
    names.extend(f"yesterday_change/{c}" for c in spec.yesterday_change)
    return names


def compute_forcings(
    spec: ForcingSpec,
    times: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    static: dict[str, np.ndarray] | None = None,
    climatology: np.ndarray | None = None,
    yesterday_change: np.ndarray | None = None,
) -> np.ndarray:
    """Normalised forcings (T, n_forcing, H, W) float32 in the order of ``forcing_names(spec)``.

    times (T,) datetime64 UTC; lat (H,), lon (W,) degrees; static: name -> (H, W) array for ``spec.static``;
    climatology: (T, len(spec.climatology), H, W), the climatology of those state channels at each time, already
    normalised like the state (the caller reads it from the store's ``climatology`` group); yesterday_change:
    (T, len(spec.yesterday_change), H, W), the change of those channels over the store step that ends
    ``YESTERDAY_HOURS`` before each time, divided by the state's std (the caller reads it from the analyses, or
    from the forecast itself beyond +24 h: ``pipeline.forecasters``).
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    t = np.asarray(times).astype("datetime64[ns]").reshape(-1)
    h, w = lat.size, lon.size
    out = np.empty((t.size, len(forcing_names(spec)), h, w), dtype=np.float32)
    c = 0
    if spec.toa_solar:
        out[:, c] = toa_incident_solar(t, lat, lon, spec.solar_constant) / spec.solar_constant
        c += 1
    if spec.local_hour or spec.day_of_year:
        tf = time_features(t, lon)
        if spec.local_hour:
            out[:, c : c + 2] = tf[:, 0:2, None, :]
            c += 2
        if spec.day_of_year:
            out[:, c : c + 2] = tf[:, 2:4, None, :]
            c += 2
    static = static or {}
    for name in spec.static:
        if name not in static:
            raise ConfigError(
                f"forcings: static field {name!r} is required by the forcing spec but was not "
                f"given (have: {', '.join(sorted(static)) or 'none'})"
            )
        field = np.asarray(static[name], dtype=np.float64)
        if field.shape != (h, w):
            raise ConfigError(f"forcings: static field {name!r} has shape {field.shape}, expected {(h, w)}")
        if name in spec.static_normalisation:
            offset, scale = spec.static_normalisation[name]
        elif name in STATIC_NORMALISATION:
            offset, scale = STATIC_NORMALISATION[name]
        else:
            offset, scale = float(np.nanmean(field)), float(np.nanstd(field)) or 1.0
        out[:, c] = ((field - offset) / scale)[None]
        c += 1
    if spec.climatology:
        n = len(spec.climatology)
        if climatology is None or np.shape(climatology) != (t.size, n, h, w):
            got = None if climatology is None else np.shape(climatology)
            raise ConfigError(
                f"forcings: the spec asks for the climatology of {list(spec.climatology)}: "
                f"expected an array of shape {(t.size, n, h, w)}, got {got}"
            )
        clim = np.asarray(climatology, dtype=np.float32)
        if not np.all(np.isfinite(clim)):
            raise ConfigError(
                "forcings: the climatology is undefined (NaN) at some of the requested times: "
                "they lie outside the climatology's day-of-year window"
            )
        out[:, c : c + n] = clim
        c += n
    if spec.yesterday_change:
        out[:, c:] = _checked_array(yesterday_change, (t.size, len(spec.yesterday_change), h, w), "yesterday_change")
    return out


def _checked_array(values: np.ndarray | None, shape: tuple[int, ...], what: str) -> np.ndarray:
    """``values`` as float32 after checking its shape and that it is finite (ConfigError otherwise)."""
    if values is None or np.shape(values) != shape:
        got = None if values is None else np.shape(values)
        raise ConfigError(f"forcings: the spec asks for {what} channels: expected an array of shape {shape}, got {got}")
    arr = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(arr)):
        raise ConfigError(f"forcings: {what} is not finite (NaN or inf) at some of the requested times")
    return arr
