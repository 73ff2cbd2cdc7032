"""Power spectra of gridded fields: zonal spectra on global grids, radially binned 2-D spectra on regional grids.

Pure numpy on arrays whose last two axes are (latitude, longitude). Conventions (one-sided power, so that
Parseval holds exactly): for a row ``x`` of ``n`` values, ``X = rfft(x) / n`` and the power of wavenumber ``k`` is
``|X_k|^2``, doubled for ``0 < k < n/2`` (the negative wavenumbers folded in), so ``sum_k P_k = mean(x^2)``. The
2-D spectrum sums ``|X_{ky,kx}|^2 / (ny nx)^2`` over annuli of radial wavenumber, so its sum is ``mean(x^2)`` too.
Units: the field's units squared per wavenumber bin.
"""

from __future__ import annotations

import numpy as np

EARTH_RADIUS_KM = 6371.0
KM_PER_DEGREE = np.pi * EARTH_RADIUS_KM / 180.0


def zonal_power_spectrum(field: np.ndarray) -> np.ndarray:
    """One-sided power spectrum along the last axis (longitude, periodic): shape ``(..., n // 2 + 1)``, float64.

    ``sum(..., axis=-1)`` equals ``mean(field ** 2, axis=-1)`` (Parseval); index ``k`` = ``k`` cycles around the
    circle.
    """
    x = np.asarray(field, dtype=np.float64)
    n = x.shape[-1]
    power = np.abs(np.fft.rfft(x, axis=-1) / n) ** 2
    power[..., 1 : (n + 1) // 2] *= 2.0  # fold k and -k (not k = 0, nor the Nyquist wavenumber of even n)
    return power


def zonal_spectrum(field: np.ndarray, latitude_weights: np.ndarray) -> np.ndarray:
    """Zonal power spectrum of ``field`` (..., nlat, nlon) averaged over latitude rows with ``latitude_weights``
    (nlat,), normalised to sum 1: shape ``(..., nlon // 2 + 1)``, float64."""
    w = np.asarray(latitude_weights, dtype=np.float64)
    w = w / w.sum()
    return np.einsum("...ik,i->...k", zonal_power_spectrum(field), w)


def zonal_wavelength_km(n_wavenumbers: int) -> np.ndarray:
    """Wavelength (km) along the equator of zonal wavenumbers ``0 .. n_wavenumbers - 1`` (inf for 0)."""
    k = np.arange(n_wavenumbers, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 2 * np.pi * EARTH_RADIUS_KM / k


def radial_bins(ny: int, nx: int, dy_km: float, dx_km: float) -> tuple[np.ndarray, np.ndarray]:
    """Radial wavenumber bin of each 2-D FFT coefficient, shape ``(ny, nx)`` int, and the wavelength (km) of each
    bin (``inf`` for bin 0). Bin ``b`` holds ``|k|`` within half a step of ``b / L`` cycles/km, ``L`` the longer
    side of the domain (km)."""
    length = max(ny * dy_km, nx * dx_km)
    ky = np.fft.fftfreq(ny, d=dy_km)[:, None]
    kx = np.fft.fftfreq(nx, d=dx_km)[None, :]
    bins = np.rint(np.sqrt(ky**2 + kx**2) * length).astype(int)
    with np.errstate(divide="ignore"):
        wavelength = length / np.arange(bins.max() + 1, dtype=np.float64)
    return bins, wavelength


def radial_power_spectrum(field: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """2-D power spectrum of ``field`` (..., ny, nx) summed over the radial ``bins`` of :func:`radial_bins`:
    shape ``(..., bins.max() + 1)``, float64; its sum over the last axis is ``mean(field ** 2)`` over the grid."""
    x = np.asarray(field, dtype=np.float64)
    ny, nx = x.shape[-2:]
    power = np.abs(np.fft.fft2(x, axes=(-2, -1)) / (ny * nx)) ** 2
    flat = power.reshape(-1, ny * nx)
    n_bins = int(bins.max()) + 1
    out = np.zeros((flat.shape[0], n_bins))
    idx = bins.ravel()
    for row, p in zip(out, flat):
        row += np.bincount(idx, weights=p, minlength=n_bins)
    return out.reshape(*x.shape[:-2], n_bins)


def is_global(longitude: np.ndarray) -> bool:
    """True when the longitudes (degrees, ascending, regular) go all round the globe."""
    lon = np.asarray(longitude, dtype=np.float64)
    if lon.size < 2:
        return False
    spacing = np.median(np.diff(lon))
    return bool(lon.max() - lon.min() + spacing >= 360.0 - 1e-6)


def grid_spacing_km(latitude: np.ndarray, longitude: np.ndarray) -> tuple[float, float]:
    """Mean (dy, dx) in km of a regular latitude/longitude grid (dx at the grid's mean latitude)."""
    lat = np.asarray(latitude, dtype=np.float64)
    lon = np.asarray(longitude, dtype=np.float64)
    dy = abs(float(np.median(np.diff(lat)))) * KM_PER_DEGREE if lat.size > 1 else KM_PER_DEGREE
    dx = abs(float(np.median(np.diff(lon)))) * KM_PER_DEGREE * np.cos(np.deg2rad(lat.mean())) if lon.size > 1 else dy
    return dy, float(dx)
