"""Writing an explanation: a Zarr store (atomic, marked complete) and its figures."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from data_catalog.errors import WxemuError
from data_catalog.store import COMPLETE_ATTR


def write_explanation(ds: xr.Dataset, out: str) -> str:
    """Write ``ds`` to the Zarr store ``out`` atomically (a temporary sibling renamed into place) and mark it
    complete; an existing store at ``out`` is replaced only when it is a complete explanation."""
    target = Path(out)
    if target.exists() and not (target / "zarr.json").exists():
        raise WxemuError(f"{out}: exists and is not a Zarr store; choose another --out")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        with warnings.catch_warnings():  # fixed-length unicode coordinates are "unstable" in zarr v3
            warnings.simplefilter("ignore")
            ds.assign_attrs({COMPLETE_ATTR: True}).to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return str(target)


#: What every explanation store holds (docs/explain.md, "Output"); :func:`open_explanation` checks them.
VARIABLES = (
    "state_attribution",
    "change_attribution",
    "forcing_attribution",
    "channel_total",
    "history_total",
    "forcing_total",
    "input_region_total",
    "deletion_curve",
    "insertion_curve",
)
ATTRIBUTES = ("init", "lead_hours", "channel", "region", "method", "checkpoint", "output", "output_baseline")


def open_explanation(path: str) -> xr.Dataset:
    """Read an explanation written by :func:`write_explanation` (loaded into memory).

    WxemuError naming ``path`` when it is missing, not a readable Zarr store, incomplete (its writer did not
    finish), written by another stage, or lacking a variable or attribute of the layout (:data:`VARIABLES`,
    :data:`ATTRIBUTES`).
    """
    if not (Path(path) / "zarr.json").exists():
        raise WxemuError(f"{path}: no such explanation store (no zarr.json); write one with `wxemu explain --out`")
    try:
        ds = xr.open_zarr(path, consolidated=None).load()
    except Exception as exc:  # a corrupt or truncated store: any reader error, named
        raise WxemuError(f"{path}: cannot read the explanation store ({type(exc).__name__}: {exc})") from None
    if not ds.attrs.get(COMPLETE_ATTR):
        raise WxemuError(f"{path}: incomplete explanation store (its writer did not finish; re-run wxemu explain)")
    stage = ds.attrs.get("wxemu_stage")
    if stage != "explain":
        raise WxemuError(f"{path}: not an explanation store (written by {stage or 'something other than wxemu'})")
    missing = [v for v in VARIABLES if v not in ds.data_vars] + [a for a in ATTRIBUTES if a not in ds.attrs]
    if missing:
        raise WxemuError(f"{path}: the explanation store lacks {missing} (re-run wxemu explain)")
    return ds


def write_figures(ds: xr.Dataset, directory: str, *, cartopy_data_dir: str | None = None) -> list[str]:
    """PNG figures of an explanation: the attribution to the latest state of each channel on a map with coastlines
    (cartopy, Natural Earth from ``cartopy_data_dir``; never downloaded) and the deletion/insertion curves."""
    import matplotlib

    matplotlib.use("Agg")
    import cartopy
    import cartopy.crs as ccrs
    import matplotlib.pyplot as plt

    if cartopy_data_dir:
        cartopy.config["pre_existing_data_dir"] = cartopy_data_dir
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    lat, lon = ds["latitude"].values, ds["longitude"].values
    latest = ds["state_attribution"].isel(history_hours=-1)
    for channel in ds["channel"].values:
        field = latest.sel(channel=channel).values
        vmax = float(np.abs(field).max()) or 1.0
        fig = plt.figure(figsize=(6, 4.5))
        ax = fig.add_subplot(1, 1, 1, projection=ccrs.PlateCarree())
        mesh = ax.pcolormesh(lon, lat, field, cmap="RdBu_r", vmin=-vmax, vmax=vmax, transform=ccrs.PlateCarree())
        ax.coastlines(resolution="110m", linewidth=0.8)
        fig.colorbar(mesh, ax=ax, shrink=0.8, label=f"attribution ({ds.attrs.get('channel', '')} units)")
        ax.set_title(f"{ds.attrs.get('method', '')}: {channel} at the initial time", fontsize=9)
        name = out / f"attribution_{str(channel).replace('/', '_')}.png"
        fig.savefig(name, dpi=100)
        plt.close(fig)
        written.append(str(name))
    name = out / "faithfulness_curves.png"
    draw_curves(ds, name)
    written.append(str(name))
    return written


def draw_curves(ds: xr.Dataset, path: str | Path) -> Path:
    """The deletion and insertion curves of an explanation (the attribution's ordering in red, the random
    orderings in grey) as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    try:
        frac = ds["fraction"].values
        for ax, var, title in zip(axes, ("deletion_curve", "insertion_curve"), ("deletion", "insertion")):
            curves = ds[var].values
            for i, row in enumerate(curves[1:]):
                ax.plot(frac, row, color="0.7", linewidth=0.8, label="random orderings" if i == 0 else None)
            ax.plot(frac, curves[0], color="C3", linewidth=2, label="most attributed first")
            ax.set_xlabel("share of grid cells replaced" if title == "deletion" else "share of grid cells inserted")
            ax.set_title(title, fontsize=9)
        label = f"region mean of {ds.attrs['channel']}" if "channel" in ds.attrs else "explained output"
        axes[0].set_ylabel(label.replace("$", r"\$"))
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)
    return Path(path)
