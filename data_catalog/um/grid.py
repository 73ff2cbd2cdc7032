"""Bring a Unified Model field on a rotated-pole (or other projected, or irregular) grid onto a regular
latitude/longitude grid.

Two methods (see docs/metoffice.md):

* ``linear``: ``iris.analysis.Linear`` (bilinear in the source's own coordinates; NaN outside the source).
* ``conservative``: area-weighted means: ``iris.analysis.AreaWeighted`` for a latitude/longitude source (an
  irregular one, or another regular grid). It needs one coordinate system on both sides, so for a rotated or
  projected source each source cell is split into ``SUBCELLS`` x ``SUBCELLS``
  sub-cells (values copied, so the split conserves exactly), their centres are mapped to true latitude/longitude
  and each target cell takes the area-weighted mean of the sub-cells whose centres fall in it. Sub-cell areas
  are true areas (a rotation of the sphere keeps areas; projected grids use cos(latitude) x the true spacing).

The default target is the source's own spacing (degrees) over the largest latitude/longitude box wholly inside
the source domain, so no target cell reaches outside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from data_catalog.errors import InputDataError
from data_catalog.regrid import cell_bounds

if TYPE_CHECKING:
    import scipy.sparse

#: Sub-cells per source cell side in conservative regridding from a rotated/projected grid.
SUBCELLS = 4
METHODS = ("linear", "conservative")


@dataclass(frozen=True)
class RegularGrid:
    """Target cell centres in degrees: latitude ascending, longitude ascending (may exceed 360)."""

    latitude: tuple[float, ...]
    longitude: tuple[float, ...]

    def describe(self) -> str:
        lat, lon = np.asarray(self.latitude), np.asarray(self.longitude)
        step = float(np.median(np.diff(lat))) if lat.size > 1 else float("nan")
        return (
            f"regular {lat.size}x{lon.size} grid, {step:.6g} deg, latitude {lat[0]:.4f}..{lat[-1]:.4f}, "
            f"longitude {lon[0]:.4f}..{lon[-1]:.4f}"
        )


def _horizontal(cube):
    return cube.coord(axis="Y", dim_coords=True), cube.coord(axis="X", dim_coords=True)


def _regular(values: np.ndarray) -> bool:
    d = np.diff(np.asarray(values, "f8"))
    return d.size == 0 or bool(np.allclose(d, d[0], rtol=1e-3, atol=1e-6))


def needs_regrid(cube) -> str | None:
    """Why ``cube`` is not on a regular latitude/longitude grid (``"rotated pole"``, ...), or None when it is."""
    from iris.coord_systems import GeogCS

    y, x = _horizontal(cube)
    cs = cube.coord_system()
    if cs is not None and not isinstance(cs, GeogCS):
        return type(cs).__name__
    if y.name() != "latitude" or x.name() != "longitude":
        return f"{y.name()}/{x.name()} coordinates"
    if not (_regular(y.points) and _regular(x.points)):
        return "irregular latitude/longitude spacing"
    return None


def true_lonlat(cube, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True (longitude, latitude) in degrees of points given in ``cube``'s horizontal coordinates (2-D arrays)."""
    from iris.analysis.cartography import unrotate_pole
    from iris.coord_systems import GeogCS, RotatedGeogCS

    cs = cube.coord_system()
    if cs is None or isinstance(cs, GeogCS):
        return x, y
    if isinstance(cs, RotatedGeogCS):
        return unrotate_pole(x, y, cs.grid_north_pole_longitude, cs.grid_north_pole_latitude)
    import cartopy.crs as ccrs

    pts = ccrs.PlateCarree().transform_points(cs.as_cartopy_crs(), x, y)
    return pts[..., 0], pts[..., 1]


def default_target(cube) -> RegularGrid:
    """The source's own spacing over the largest latitude/longitude box wholly inside its domain."""
    y, x = _horizontal(cube)
    yb, xb = cell_bounds(y.points), cell_bounds(x.points)
    X, Y = np.meshgrid(xb, yb)
    lon, lat = true_lonlat(cube, X, Y)
    lon = np.rad2deg(np.unwrap(np.deg2rad(np.asarray(lon, "f8")), axis=1))  # contiguous across a meridian
    south, north = float(lat[0, :].max()), float(lat[-1, :].min())
    if y.points[0] > y.points[-1]:
        south, north = float(lat[-1, :].max()), float(lat[0, :].min())
    west, east = float(lon[:, 0].max()), float(lon[:, -1].min())
    if x.points[0] > x.points[-1]:
        west, east = float(lon[:, -1].max()), float(lon[:, 0].min())
    d_lat, d_lon = _spacing_deg(y), _spacing_deg(x)
    lat_c = _centres(south, north, d_lat)
    lon_c = _centres(west, east, d_lon)
    if lat_c.size < 2 or lon_c.size < 2:
        raise InputDataError(f"the {needs_regrid(cube)} domain is too small for a regular grid of its own spacing")
    if lon_c[0] < 0:
        lon_c = lon_c + 360.0 * np.ceil(-lon_c[0] / 360.0)
    return RegularGrid(tuple(np.round(lat_c, 8).tolist()), tuple(np.round(lon_c, 8).tolist()))


def _spacing_deg(coord) -> float:
    step = float(np.median(np.abs(np.diff(coord.points))))
    units = str(coord.units)
    if units in ("m", "metres", "meters"):
        step = step / 111_195.0  # metres of a projected grid -> degrees of latitude
    elif units in ("km",):
        step = step / 111.195
    return float(np.round(step, 6))


def _centres(lo: float, hi: float, step: float) -> np.ndarray:
    """Centres at multiples of ``step`` whose whole cells lie inside [lo, hi]."""
    k0 = int(np.ceil((lo + step / 2) / step - 1e-9))
    k1 = int(np.floor((hi - step / 2) / step + 1e-9))
    return np.arange(k0, k1 + 1) * step


def target_cube(cube, grid: RegularGrid):
    """An empty iris cube on ``grid`` (GeogCS with the source's ellipsoid), bounds guessed."""
    import iris.coords
    import iris.cube
    from iris.coord_systems import GeogCS

    cs = cube.coord_system()
    ellipsoid = getattr(cs, "ellipsoid", None) or (cs if isinstance(cs, GeogCS) else GeogCS(6371229.0))
    lat = iris.coords.DimCoord(np.asarray(grid.latitude), "latitude", units="degrees", coord_system=ellipsoid)
    lon = iris.coords.DimCoord(np.asarray(grid.longitude), "longitude", units="degrees", coord_system=ellipsoid)
    for c in (lat, lon):
        if c.shape[0] > 1:
            c.guess_bounds()
    return iris.cube.Cube(np.zeros((lat.shape[0], lon.shape[0]), "f4"), dim_coords_and_dims=[(lat, 0), (lon, 1)])


def conservative_matrix(cube, grid: RegularGrid, subcells: int = SUBCELLS) -> scipy.sparse.csr_matrix:
    """(n_target, n_source) row-normalised weights: target = area-weighted mean of the source sub-cells whose
    centres fall in it (flattened row-major ``(y, x)`` on both sides). Rows of target cells less than half
    covered are empty (the caller sets NaN there)."""
    import scipy.sparse

    y, x = _horizontal(cube)
    yb, xb = cell_bounds(y.points), cell_bounds(x.points)
    frac = (np.arange(subcells) + 0.5) / subcells
    sub_y = (yb[:-1, None] + np.diff(yb)[:, None] * frac[None, :]).ravel()
    sub_x = (xb[:-1, None] + np.diff(xb)[:, None] * frac[None, :]).ravel()
    X, Y = np.meshgrid(sub_x, sub_y)
    lon, lat = true_lonlat(cube, X, Y)
    if str(y.units).startswith("degree"):  # rotated frame: true area = cos(rotated lat) dlat dlon
        area_y = np.abs(np.repeat(np.diff(yb), subcells)) * np.cos(np.deg2rad(sub_y))
        area = area_y[:, None] * np.abs(np.repeat(np.diff(xb), subcells))[None, :]
    else:  # projected metres: equal-area enough at these scales
        area = np.abs(np.repeat(np.diff(yb), subcells))[:, None] * np.abs(np.repeat(np.diff(xb), subcells))[None, :]
    src_j = np.repeat(np.arange(y.shape[0]), subcells)[:, None]
    src_i = np.repeat(np.arange(x.shape[0]), subcells)[None, :]
    source = (src_j * x.shape[0] + src_i) * np.ones_like(area, dtype=np.int64)
    lat_t, lon_t = np.asarray(grid.latitude), np.asarray(grid.longitude)
    lat_e, lon_e = cell_bounds(lat_t), cell_bounds(lon_t)
    iy = np.searchsorted(lat_e, lat, side="right") - 1
    ix = np.searchsorted(lon_e, lon_e[0] + np.mod(np.asarray(lon) - lon_e[0], 360.0), side="right") - 1
    ok = (iy >= 0) & (iy < lat_t.size) & (ix >= 0) & (ix < lon_t.size)
    rows = (iy * lon_t.size + ix)[ok]
    w = scipy.sparse.csr_matrix(
        (area[ok], (rows, source[ok])), shape=(lat_t.size * lon_t.size, y.shape[0] * x.shape[0])
    )
    covered = np.asarray(w.sum(axis=1)).ravel()
    cell = (np.abs(np.diff(np.sin(np.deg2rad(lat_e))))[:, None] * np.abs(np.diff(lon_e))[None, :]).ravel()
    cell_area_in_units = cell * 180.0 / np.pi  # same units as area (deg x deg x cos)
    full = covered >= 0.5 * cell_area_in_units
    scale = np.where(full & (covered > 0), 1.0 / np.where(covered > 0, covered, 1.0), 0.0)
    return scipy.sparse.diags(scale) @ w


def apply_matrix(values: np.ndarray, w: scipy.sparse.csr_matrix, shape: tuple[int, int]) -> np.ndarray:
    """Apply ``conservative_matrix`` weights to ``values`` (..., y, x) -> (..., n_lat, n_lon); NaN where a target
    cell is not covered (an empty row)."""
    v = np.asarray(values, "f8")
    lead = v.shape[:-2]
    flat = v.reshape(-1, v.shape[-2] * v.shape[-1]).T
    out = np.asarray(w @ flat).T
    empty = np.asarray(w.getnnz(axis=1) == 0)
    out[:, empty] = np.nan
    return out.reshape(*lead, *shape).astype(np.asarray(values).dtype if v.dtype.kind == "f" else "f4")


def grid_key(cube) -> tuple:
    """A hashable key of ``cube``'s horizontal grid: fields with equal keys share one regridder."""
    y, x = _horizontal(cube)
    return (repr(cube.coord_system()), y.name(), y.points.tobytes(), x.name(), x.points.tobytes())


def same_system(cube) -> bool:
    """True when ``cube`` is on latitude/longitude (GeogCS): ``iris.analysis.AreaWeighted`` regrids it."""
    from iris.coord_systems import GeogCS

    cs = cube.coord_system()
    y, x = _horizontal(cube)
    return (cs is None or isinstance(cs, GeogCS)) and (y.name(), x.name()) == ("latitude", "longitude")


def with_bounds(cube):
    """``cube``, or a copy whose horizontal coordinates have guessed bounds (AreaWeighted needs them)."""
    y, x = _horizontal(cube)
    if y.has_bounds() and x.has_bounds():
        return cube
    cube = cube.copy()
    for c in _horizontal(cube):
        if not c.has_bounds():
            c.guess_bounds()
    return cube


def regridder(cube, grid: RegularGrid, method: str):
    """A function taking a 2-D (or more) cube on ``cube``'s grid to ``grid`` by ``method`` (``linear`` or
    ``conservative``); the weights are computed once. Lazy data stay lazy."""
    import dask.array as da
    import iris.analysis

    if method not in METHODS:
        raise InputDataError(f"regrid method {method!r}: expected one of {', '.join(METHODS)}")
    linear = iris.analysis.Linear(extrapolation_mode="nan").regridder(cube, target_cube(cube, grid))
    if method == "linear":
        return linear
    if same_system(cube):  # one coordinate system on both sides: iris's own area-weighted regridding
        area = iris.analysis.AreaWeighted().regridder(with_bounds(cube), target_cube(cube, grid))
        return lambda src: area(with_bounds(src))
    w = conservative_matrix(cube, grid)
    shape = (len(grid.latitude), len(grid.longitude))

    def conservative(src):
        out = linear(src)  # coordinates and metadata of the target; the values are replaced
        y, x = _horizontal(src)
        if (src.coord_dims(y)[0], src.coord_dims(x)[0]) != (src.ndim - 2, src.ndim - 1):
            raise InputDataError(f"{src.name()}: horizontal dimensions are not the last two; cannot regrid")
        data = src.core_data()
        if isinstance(data, da.Array):
            data = data.rechunk({src.ndim - 2: -1, src.ndim - 1: -1})
            chunks = (*data.chunks[:-2], (shape[0],), (shape[1],))
            new = data.map_blocks(apply_matrix, w, shape, dtype="f4", chunks=chunks)
        else:
            new = apply_matrix(np.ma.filled(np.ma.asarray(data, dtype="f8"), np.nan), w, shape)
        return out.copy(data=new)

    return conservative
