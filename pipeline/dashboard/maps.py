"""Static PNG maps drawn with cartopy and matplotlib (Agg), coastlines from local Natural Earth files.

The Natural Earth 1:110m coastline is looked up through :func:`data_catalog.samples.sample_path` (the data
directory setting ``$WXEMU_DATA_DIR``, default ``../shared/data``; the files are registered there by URL and
checksum), and that directory's ``cartopy`` folder is set as ``cartopy.config["pre_existing_data_dir"]`` before
drawing, so cartopy reads the local files and never downloads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_catalog.samples import sample_path

NE_COASTLINE = "cartopy/shapefiles/natural_earth/physical/ne_110m_coastline"
NE_FILES = tuple(NE_COASTLINE + ext for ext in (".shp", ".shx", ".dbf"))


def natural_earth_dir() -> Path:
    """The directory to set as cartopy's ``pre_existing_data_dir`` (holding ``shapefiles/natural_earth/...``)."""
    paths = [Path(sample_path(name)) for name in NE_FILES]
    return paths[0].parents[3]


def plain(text: object) -> str:
    """Text for a matplotlib label, shown literally: ``$`` would start mathtext, so it is escaped."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


def _setup_cartopy():
    import cartopy
    import matplotlib

    matplotlib.use("Agg", force=False)
    cartopy.config["pre_existing_data_dir"] = str(natural_earth_dir())
    return cartopy


def _frame(lat: np.ndarray, lon: np.ndarray, field: np.ndarray):
    """(projection, field, extent): longitudes shifted into [-180, 180) about the grid's centre and sorted, so
    the image is drawn in its own projection (no reprojection, no per-cell path)."""
    import cartopy.crs as ccrs

    lat, lon = np.asarray(lat, np.float64), np.asarray(lon, np.float64)
    global_lon = lon.size > 1 and np.ptp(lon) + np.median(np.diff(np.sort(lon))) >= 359.0
    central = 0.0 if global_lon else float((lon.min() + lon.max()) / 2)
    x = (lon - central + 180.0) % 360.0 - 180.0
    order = np.argsort(x)
    x, field = x[order], np.asarray(field)[..., order]
    if lat.size > 1 and lat[0] > lat[-1]:
        lat, field = lat[::-1], field[..., ::-1, :]
    dx = float(np.median(np.diff(x))) if x.size > 1 else 1.0
    dy = float(np.median(np.diff(lat))) if lat.size > 1 else 1.0
    # kept inside the projection's bounds (a half cell squeezed at the dateline at most), so cartopy draws the
    # image as it is instead of regridding it
    extent = (
        max(x[0] - dx / 2, -180.0),
        min(x[-1] + dx / 2, 180.0),
        max(lat[0] - dy / 2, -90.0),
        min(lat[-1] + dy / 2, 90.0),
    )
    return ccrs.PlateCarree(central_longitude=central), field, extent, global_lon


def _draw(fig, n: int, i: int, lat, lon, field, *, cmap, vmin, vmax, title, units):
    proj, field, extent, global_lon = _frame(lat, lon, field)
    ax = fig.add_subplot(1, n, i, projection=proj)
    image = ax.imshow(
        field, origin="lower", extent=extent, transform=proj, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest"
    )
    ax.coastlines(resolution="110m", linewidth=0.6)
    if global_lon and extent[3] - extent[2] > 150:
        ax.set_global()
    else:
        ax.set_extent(extent, crs=proj)
    ax.set_title(plain(title), fontsize=9)
    cb = fig.colorbar(image, ax=ax, orientation="horizontal", pad=0.04, fraction=0.05)
    cb.set_label(plain(units), fontsize=8)


def _limits(field: np.ndarray, diverging: bool) -> tuple[float, float]:
    finite = field[np.isfinite(field)]
    if finite.size == 0:
        return -1.0, 1.0
    if diverging:
        m = float(np.nanpercentile(np.abs(finite), 98)) or 1.0
        return -m, m
    return float(np.nanpercentile(finite, 2)), float(np.nanpercentile(finite, 98)) or 1.0


def draw_field(path: str | Path, lat, lon, field, *, title: str, units: str, diverging: bool) -> Path:
    """One map of ``field`` (lat x lon) as a PNG at ``path``; diverging colours centred on 0 when asked."""
    _setup_cartopy()
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(6.4, 3.8), dpi=90)
    try:
        vmin, vmax = _limits(field, diverging)
        _draw(
            fig,
            1,
            1,
            lat,
            lon,
            field,
            cmap="RdBu_r" if diverging else "viridis",
            vmin=vmin,
            vmax=vmax,
            title=title,
            units=units,
        )
        fig.savefig(path, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)


def draw_panel(path: str | Path, lat, lon, panel: np.ndarray, *, titles: tuple[str, str, str], units: str) -> Path:
    """Forecast, truth and error side by side (``panel``: (3, lat, lon)) as a PNG at ``path``."""
    _setup_cartopy()
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(13.5, 3.6), dpi=90)
    try:
        vmin, vmax = _limits(panel[:2], False)
        emin, emax = _limits(panel[2], True)
        for i in range(3):
            lims = (vmin, vmax) if i < 2 else (emin, emax)
            _draw(
                fig,
                3,
                i + 1,
                lat,
                lon,
                panel[i],
                cmap="viridis" if i < 2 else "RdBu_r",
                vmin=lims[0],
                vmax=lims[1],
                title=titles[i],
                units=units,
            )
        fig.savefig(path, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path)
