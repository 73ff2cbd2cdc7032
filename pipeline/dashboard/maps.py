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


def _axes(fig, n: int, i: int, lon: np.ndarray):
    import cartopy.crs as ccrs

    central = float((lon.min() + lon.max()) / 2) if np.ptp(lon) < 300 else 0.0
    return fig.add_subplot(1, n, i, projection=ccrs.PlateCarree(central_longitude=central))


def _draw(ax, lat, lon, field, *, cmap, vmin, vmax, title, units):
    import cartopy.crs as ccrs

    mesh = ax.pcolormesh(
        lon, lat, field, transform=ccrs.PlateCarree(), cmap=cmap, vmin=vmin, vmax=vmax, shading="nearest"
    )
    ax.coastlines(resolution="110m", linewidth=0.6)
    if np.ptp(lon) < 300 or np.ptp(lat) < 150:
        ax.set_extent([lon.min(), lon.max(), lat.min(), lat.max()], crs=ccrs.PlateCarree())
    else:
        ax.set_global()
    ax.set_title(plain(title), fontsize=9)
    cb = ax.figure.colorbar(mesh, ax=ax, orientation="horizontal", pad=0.04, fraction=0.05)
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
        ax = _axes(fig, 1, 1, np.asarray(lon))
        _draw(
            ax,
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
            ax = _axes(fig, 3, i + 1, np.asarray(lon))
            lims = (vmin, vmax) if i < 2 else (emin, emax)
            _draw(
                ax,
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
