"""Where attribution mass sits relative to the target region: pure numerics on (latitude, longitude) arrays."""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0


def mass_centroid(*, mass: np.ndarray, latitude: np.ndarray, longitude: np.ndarray) -> tuple[float, float]:
    """Centre of a non-negative field on the sphere (the normalised mean of the unit vectors it weighs).

    Args:
      mass: (nlat, nlon) non-negative weights (e.g. |attribution| times cell area), not all zero.
      latitude: (nlat,) degrees north. longitude: (nlon,) degrees east.
    Returns:
      (latitude, longitude) of the centroid in degrees, longitude in [0, 360).
    """
    m = np.asarray(mass, dtype=np.float64)
    if m.ndim != 2 or m.shape != (len(latitude), len(longitude)):
        raise ValueError(f"mass has shape {m.shape}, expected ({len(latitude)}, {len(longitude)})")
    if np.any(m < 0) or not m.sum() > 0:
        raise ValueError("mass must be non-negative and not all zero")
    lat = np.deg2rad(np.asarray(latitude, dtype=np.float64))[:, None]
    lon = np.deg2rad(np.asarray(longitude, dtype=np.float64))[None, :]
    x = (m * np.cos(lat) * np.cos(lon)).sum()
    y = (m * np.cos(lat) * np.sin(lon)).sum()
    z = (m * np.sin(lat) * np.ones_like(lon)).sum()
    return float(np.rad2deg(np.arctan2(z, np.hypot(x, y)))), float(np.rad2deg(np.arctan2(y, x)) % 360.0)


def distance_and_bearing(*, lat1: float, lon1: float, lat2: float, lon2: float) -> tuple[float, float]:
    """Great-circle distance (km) and initial bearing (degrees clockwise from north, [0, 360)) from 1 to 2."""
    p1, p2 = np.deg2rad(lat1), np.deg2rad(lat2)
    dl = np.deg2rad(lon2 - lon1)
    a = np.sin((p2 - p1) / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    distance = 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))
    bearing = np.rad2deg(
        np.arctan2(np.sin(dl) * np.cos(p2), np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl))
    )
    return float(distance), float(bearing % 360.0)


def share_inside(*, mass: np.ndarray, mask: np.ndarray) -> float:
    """Fraction of the total of the non-negative ``mass`` (nlat, nlon) that lies where ``mask`` is True."""
    m = np.asarray(mass, dtype=np.float64)
    total = m.sum()
    return float(m[np.asarray(mask, dtype=bool)].sum() / total) if total > 0 else float("nan")
