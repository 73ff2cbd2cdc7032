"""Named regions and latitude/longitude boxes: masks on a grid (verification, explanations) and the cut of a grid
to a box (``wxemu ingest --region``).

A :class:`Region` is a latitude band times a longitude range. Longitudes are compared modulo 360, so the same
region works on grids with longitudes in [0, 360), in [-180, 180), or on a regional grid that crosses the prime
meridian stored as 350 .. 362 (the wxemu convention). Latitude bounds are inclusive, as WeatherBench2's
``SliceRegion`` (``sel(latitude=slice(lo, hi))``) and ``ExtraTropicalRegion`` (``|lat| >= 20``) are.

Pure functions on coordinate arrays: ``region.mask(latitude, longitude) -> bool (nlat, nlon)``,
``box_indices(region=, latitude=, longitude=) -> (rows, columns, longitudes of the cut)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

import numpy as np

from data_catalog.errors import WxemuError

#: Relative tolerance of a regular grid's spacing (as the canonical mapping checks it: single-precision
#: longitudes of a 3.75 deg UM grid differ by 1e-4 deg).
REGULAR_RTOL = 1e-3


class RegionError(WxemuError):
    """A region is malformed or does not overlap the grid it is applied to."""


@dataclasses.dataclass(frozen=True)
class Region:
    """A latitude band ``[lat_min, lat_max]`` (degrees north) times a longitude range (degrees east).

    The longitude range runs eastward from ``lon_min`` to ``lon_max`` (both inclusive, modulo 360); ``lon_min =
    lon_max - 360`` (the default 0 .. 360) means all longitudes. ``lon_min > lon_max`` is allowed and wraps
    (e.g. 350 .. 2 is the same as -10 .. 2).
    """

    name: str
    lat_min: float = -90.0
    lat_max: float = 90.0
    lon_min: float = 0.0
    lon_max: float = 360.0

    def __post_init__(self) -> None:
        if not -90.0 <= self.lat_min <= self.lat_max <= 90.0:
            raise RegionError(
                f"region {self.name!r}: latitudes must satisfy -90 <= lat0 <= lat1 <= 90, "
                f"got {self.lat_min}, {self.lat_max}"
            )

    @property
    def all_longitudes(self) -> bool:
        return self.lon_max - self.lon_min >= 360.0

    def longitude_mask(self, longitude: np.ndarray) -> np.ndarray:
        """Boolean mask (same shape as ``longitude``, degrees east, any convention) of columns in the region."""
        lon = np.asarray(longitude, dtype=np.float64)
        if self.all_longitudes:
            return np.ones(lon.shape, dtype=bool)
        width = (self.lon_max - self.lon_min) % 360.0
        offset = (lon - self.lon_min) % 360.0
        tol = 1e-9
        return (offset <= width + tol) | (offset >= 360.0 - tol)

    def latitude_mask(self, latitude: np.ndarray) -> np.ndarray:
        """Boolean mask of rows (degrees north) in ``[lat_min, lat_max]``."""
        lat = np.asarray(latitude, dtype=np.float64)
        tol = 1e-9
        return (lat >= self.lat_min - tol) & (lat <= self.lat_max + tol)

    def mask(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        """Boolean mask of shape ``(len(latitude), len(longitude))``: grid points inside the region."""
        return self.latitude_mask(latitude)[:, None] & self.longitude_mask(longitude)[None, :]

    def describe(self) -> str:
        lon = "all longitudes" if self.all_longitudes else f"{self.lon_min:g}..{self.lon_max:g}E"
        return f"{self.lat_min:g}..{self.lat_max:g}N, {lon}"


@dataclasses.dataclass(frozen=True)
class UnionRegion:
    """Points in any of several regions (e.g. the extra-tropics of both hemispheres)."""

    name: str
    parts: tuple[Region, ...]

    def mask(self, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
        out = np.zeros((len(latitude), len(longitude)), dtype=bool)
        for part in self.parts:
            out |= part.mask(latitude, longitude)
        return out

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)


AnyRegion = Region | UnionRegion

#: WeatherBench2's regions, under WeatherBench2's names and with its definitions (scripts/evaluate.py): latitude
#: bands inclusive, hemispheres and extra-tropics at |lat| >= 20.
WB2_REGIONS: dict[str, AnyRegion] = {
    "global": Region("global"),
    "tropics": Region("tropics", -20.0, 20.0),
    "extra-tropics": UnionRegion("extra-tropics", (Region("sh", -90.0, -20.0), Region("nh", 20.0, 90.0))),
    "northern-hemisphere": Region("northern-hemisphere", 20.0, 90.0),
    "southern-hemisphere": Region("southern-hemisphere", -90.0, -20.0),
    "europe": Region("europe", 35.0, 75.0, -12.5, 42.5),
    "north-america": Region("north-america", 25.0, 60.0, 360.0 - 120.0, 360.0 - 75.0),
    "north-atlantic": Region("north-atlantic", 25.0, 65.0, 360.0 - 70.0, 360.0 - 10.0),
    "north-pacific": Region("north-pacific", 25.0, 60.0, 145.0, 360.0 - 130.0),
    "east-asia": Region("east-asia", 25.0, 60.0, 102.5, 150.0),
    "ausnz": Region("ausnz", -45.0, -12.5, 120.0, 175.0),
    "arctic": Region("arctic", 60.0, 90.0),
    "antarctic": Region("antarctic", -90.0, -60.0),
}

#: wxemu's own regions: names WeatherBench2 does not use.
WXEMU_REGIONS: dict[str, AnyRegion] = {
    "northern_extra_tropics": Region("northern_extra_tropics", 20.0, 90.0),
    "southern_extra_tropics": Region("southern_extra_tropics", -90.0, -20.0),
    "north_of_equator": Region("north_of_equator", 0.0, 90.0),
    "south_of_equator": Region("south_of_equator", -90.0, 0.0),
    "uk": Region("uk", 49.0, 61.0, -11.0, 2.0),
}

#: Every named region. Names are matched case-insensitively with ``_`` and ``-`` alike, so
#: ``northern_hemisphere`` is WeatherBench2's ``northern-hemisphere`` (20..90N), never 0..90N.
NAMED_REGIONS: dict[str, AnyRegion] = {**WB2_REGIONS, **WXEMU_REGIONS}

ALIASES = {
    "nhextratropics": "northern_extra_tropics",
    "shextratropics": "southern_extra_tropics",
    "extratropics": "extra-tropics",
    "world": "global",
}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


_LOOKUP = {_key(k): k for k in NAMED_REGIONS} | {_key(a): k for a, k in ALIASES.items()}


def parse_region(spec: str) -> AnyRegion:
    """A region from a name (see :data:`NAMED_REGIONS`; ``-``/``_`` and case do not matter) or a box
    ``"lat0,lat1,lon0,lon1"`` (degrees).

    A box may be prefixed with a name: ``"alps=44,48,5,16"``; otherwise it is named after its numbers.
    """
    text = spec.strip()
    name, _, box = text.rpartition("=") if "=" in text else ("", "", text)
    if "," in box:
        try:
            lat0, lat1, lon0, lon1 = (float(x) for x in box.split(","))
        except ValueError:
            raise RegionError(f"region box {spec!r} must be four numbers lat0,lat1,lon0,lon1") from None
        lat_lo, lat_hi = sorted((lat0, lat1))
        return Region(name or box.replace(" ", ""), lat_lo, lat_hi, lon0, lon1)
    key = _LOOKUP.get(_key(text))
    if key is None:
        raise RegionError(f"unknown region {spec!r}; known: {', '.join(NAMED_REGIONS)} or a box lat0,lat1,lon0,lon1")
    return NAMED_REGIONS[key]


def parse_box(spec: str) -> Region:
    """One box from a region name or ``"lat0,lat1,lon0,lon1"`` (:func:`parse_region`); RegionError for a union of
    boxes (``extra-tropics``), which no single cut of a grid gives."""
    region = parse_region(spec)
    if not isinstance(region, Region):
        raise RegionError(f"region {spec!r} is not one box ({region.describe()}); give a box lat0,lat1,lon0,lon1")
    return region


def parse_regions(specs: Iterable[str] | None) -> list[AnyRegion]:
    """Regions from command-line specs (names or boxes); ``None`` or empty gives ``[global]``."""
    specs = list(specs or ["global"])
    regions = [parse_region(s) for s in specs]
    names = [r.name for r in regions]
    if len(set(names)) != len(names):
        raise RegionError(f"duplicate region names in {names}")
    return regions


def describe_grid(latitude: Sequence[float], longitude: Sequence[float]) -> str:
    """``"50..58N, 350..362E"``: the extent of a grid, for error messages."""
    lat = np.asarray(latitude, dtype=float)
    lon = np.asarray(longitude, dtype=float)
    return f"{lat.min():g}..{lat.max():g}N, {lon.min():g}..{lon.max():g}E"


def region_masks(
    regions: Sequence[AnyRegion], latitude: np.ndarray, longitude: np.ndarray, grid_name: str = "the grid"
) -> np.ndarray:
    """Stacked masks, shape ``(n_regions, nlat, nlon)``; raises :class:`RegionError` for a region with no point."""
    masks = np.stack([r.mask(latitude, longitude) for r in regions]) if regions else np.zeros((0,), bool)
    for r, m in zip(regions, masks):
        if not m.any():
            raise RegionError(
                f"region {r.name!r} ({r.describe()}) does not overlap the grid of {grid_name} "
                f"({describe_grid(latitude, longitude)})"
            )
    return masks


def region_weights(
    regions: Sequence[AnyRegion],
    latitude: np.ndarray,
    longitude: np.ndarray,
    row_weights: np.ndarray,
    grid_name: str = "the grid",
) -> np.ndarray:
    """Normalised area weights per region, shape ``(n_regions, nlat, nlon)``, float64; each sums to 1.

    ``row_weights`` (nlat,) are the area weights of the full grid (:func:`pipeline.weights.latitude_weights`),
    so a region's weighted mean equals WeatherBench2's ``dataset.weighted(weights).mean()`` over the region.
    """
    masks = region_masks(regions, latitude, longitude, grid_name)
    w = masks * np.asarray(row_weights, dtype=np.float64)[None, :, None]
    return w / w.sum(axis=(1, 2), keepdims=True)


def box_indices(*, region: AnyRegion, latitude: np.ndarray, longitude: np.ndarray) -> tuple[np.ndarray, ...]:
    """The rows and columns of a grid that lie in ``region``, to crop the grid to it (``wxemu ingest --region``).

    Args:
      region: a :class:`Region` (one box; a :class:`UnionRegion` is refused).
      latitude: (nlat,) degrees north, ascending.
      longitude: (nlon,) degrees east, any convention (0..360, -180..180, 350..362).

    Returns:
      rows: (k,) int indices into ``latitude``, ascending.
      columns: (m,) int indices into ``longitude``, eastward from the western end of the cut (a box across the
        prime meridian on a 0..360 grid takes 350..359.75 then 0..2).
      new_longitude: (m,) the columns' longitudes in the wxemu convention: all of ``longitude`` unchanged when
        the box spans every longitude, else the first in [0, 360) and increasing eastward (350 .. 362).

    Raises:
      RegionError: a union of boxes, a box that holds no grid point, or one that meets a regional grid in two
        separate pieces (a wide box around the grid's ends).
    """
    if not isinstance(region, Region):
        raise RegionError(f"region {region.name!r} ({region.describe()}) is not one box; give lat0,lat1,lon0,lon1")
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    rows = np.flatnonzero(region.latitude_mask(lat))
    if region.all_longitudes:
        columns, new_lon = np.arange(lon.size), lon.copy()
    else:
        inside = np.flatnonzero(region.longitude_mask(lon))
        wrapped = lon[inside] % 360.0
        order = np.argsort(wrapped, kind="stable")
        columns, wrapped = inside[order], wrapped[order]
        if columns.size > 1:  # start after the widest gap: the cut is then contiguous eastward
            gaps = np.diff(np.r_[wrapped, wrapped[0] + 360.0])
            start = 0 if np.allclose(gaps, gaps[0], rtol=REGULAR_RTOL) else (int(np.argmax(gaps)) + 1) % columns.size
            columns, wrapped = np.roll(columns, -start), np.roll(wrapped, -start)
        new_lon = wrapped[0] + (wrapped - wrapped[0]) % 360.0 if columns.size else wrapped
    if rows.size == 0 or columns.size == 0:
        raise RegionError(
            f"region {region.name!r} ({region.describe()}) holds no point of the grid ({describe_grid(lat, lon)})"
        )
    steps = np.diff(new_lon)
    if steps.size and not np.allclose(steps, np.median(steps), rtol=REGULAR_RTOL, atol=1e-6):
        raise RegionError(
            f"region {region.name!r} ({region.describe()}) meets the regional grid ({describe_grid(lat, lon)}) in "
            "two separate pieces; give a box that overlaps it in one"
        )
    return rows, columns, new_lon
