"""The bundled real sample files: public URL + sha256 registry, local lookup, verified download (pooch).

``sample_path(name)`` looks in ``$WXEMU_DATA_DIR`` when set, else in ``../shared/data`` relative to the current
directory and then to the repository root (the parent of this package's directory) when one exists; otherwise
(or when the file is not in that directory) it downloads the public URL into ``$WXEMU_CACHE_DIR`` (default
``~/.cache/wxemu``) and checks its sha256, as xarray's tutorial data and cartopy do.

URLs can be redirected to a local mirror with ``$WXEMU_URL_MAP`` (see ``readers.apply_url_map``).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import dataclass

from data_catalog.errors import InputDataError
from data_catalog.readers import apply_url_map

XARRAY_DATA = "https://github.com/pydata/xarray-data/raw/master/"
CFGRIB_DATA = "https://github.com/ecmwf/cfgrib/raw/master/tests/sample-data/"
NATURAL_EARTH = "https://naturalearth.s3.amazonaws.com/110m_physical/"

COPERNICUS = (
    "Contains modified Copernicus Climate Change Service information (ERA5 / ERA-Interim, ECMWF); "
    "neither the European Commission nor ECMWF is responsible for any use of this information."
)
CFGRIB_LICENCE = "Apache-2.0 (ecmwf/cfgrib tests/sample-data)"


@dataclass(frozen=True)
class Sample:
    """One sample file: ``name`` is its path relative to the data directory; ``url`` its public download
    (for ``member`` of a zip archive when ``member`` is set); ``sha256`` of the file itself."""

    name: str
    url: str
    sha256: str
    size: int
    description: str
    licence: str
    attribution: str = ""
    member: str | None = None


_NE_DIR = "cartopy/shapefiles/natural_earth/physical/"
_NE = "Natural Earth 1:110m physical vectors (public domain), https://www.naturalearthdata.com"

SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in [
        Sample(
            "era5-2mt-2019-03-uk.grib",
            XARRAY_DATA + "era5-2mt-2019-03-uk.grib",
            "e5e82609f0e28e84822852e15d20c88dbb4b142a30264a7e6f87b9b5c7501df9",
            2499840,
            "ERA5 hourly 2 m temperature, UK and Ireland, March 2019, 0.25 deg (GRIB1)",
            "Copernicus licence (via pydata/xarray-data)",
            COPERNICUS,
        ),
        Sample(
            "eraint_uvz.nc",
            XARRAY_DATA + "eraint_uvz.nc",
            "8f4cd0f75418a8e8f8f957c3b007f49e68a58d1bdd0e028adeeb057889f635d2",
            4168980,
            "ERA-Interim monthly means (January, July) of z, u, v on 200/500/850 hPa, 0.75 deg (NetCDF)",
            "ECMWF / Copernicus licence (via pydata/xarray-data)",
            COPERNICUS,
        ),
        Sample(
            "era5-levels-members.grib",
            CFGRIB_DATA + "era5-levels-members.grib",
            "c144fde61ca5d53702bf6f212775ef2cc783bdd66b6865160bf597c1b35ed898",
            2361600,
            "ERA5 ensemble (10 members) z and t on 850/500 hPa, 3 deg, 4 times (GRIB1)",
            CFGRIB_LICENCE,
            COPERNICUS,
        ),
        Sample(
            "era5-levels-corrupted.grib",
            CFGRIB_DATA + "era5-levels-corrupted.grib",
            "ca7c8b57ecea1aa946d9c0cce5e77fb89e6437932994d9137ec1d2ccaf68caae",
            44136,
            "a truncated, corrupted ERA5 GRIB file (bad-input tests)",
            CFGRIB_LICENCE,
            COPERNICUS,
        ),
        Sample(
            "forecast_monthly_ukmo.grib",
            CFGRIB_DATA + "forecast_monthly_ukmo.grib",
            "325237da472795ed5ca29bc017ed0be9850f9f8ca95de49c1c573d088422306b",
            80640,
            "Met Office monthly ensemble forecast of 2 m temperature, 8 inits (GRIB1)",
            CFGRIB_LICENCE,
        ),
        Sample(
            "uv_on_different_levels.grib",
            CFGRIB_DATA + "uv_on_different_levels.grib",
            "45b2abacb923eb74c88aabaa0368f550028db2282940ccdd63ccebdb3f2f7a5a",
            23040,
            "ECMWF forecast u (5 levels) and v (3 levels), steps 6 h and 12 h, 5 deg (GRIB1)",
            CFGRIB_LICENCE,
        ),
        Sample(
            "t_analysis_and_fc_0.grib",
            CFGRIB_DATA + "t_analysis_and_fc_0.grib",
            "f2cd32fa4b62d75c11a5119b67f797d89ec53f0a9bac458777866996f28ae376",
            8160,
            "ECMWF temperature analysis at 1000 hPa, 5 deg (GRIB1)",
            CFGRIB_LICENCE,
        ),
        *[
            Sample(
                _NE_DIR + f"ne_110m_{layer}.{ext}",
                NATURAL_EARTH + f"ne_110m_{layer}.zip",
                sha,
                size,
                f"Natural Earth 110m {layer} ({ext}) for cartopy",
                "public domain",
                _NE,
                member=f"ne_110m_{layer}.{ext}",
            )
            for layer, ext, sha, size in [
                ("coastline", "dbf", "1c69905665bd835eebc21928090bac7965dab8c6cbf5978ee340afa3d628f1cc", 5055),
                ("coastline", "shp", "9fef1bc02bb21083c47490ee12560238fb96d26a5c9d08b28a7c8099f542a5e2", 89652),
                ("coastline", "shx", "53d8c141edfb7e05c59feecc7bb64b0e22bc2e282dfa1024d20ae54c3ef7b01e", 1172),
                ("land", "dbf", "493bfbc60ac0905cf46bdc35db57ef782f7800d2d0e1b4e7f2e0a7698b311873", 4796),
                ("land", "shp", "d14c94d9ac791333fe0a2f82d9309aea6c50ce0230f0ac1c1d3cf5c9fdda0f82", 89504),
                ("land", "shx", "62af828db0553258499a96878b46c881348e933dfe9f28108c682b579bfbdf81", 1116),
            ]
        ],
    ]
}


def cache_dir() -> str:
    """``$WXEMU_CACHE_DIR``, default ``~/.cache/wxemu``."""
    return os.environ.get("WXEMU_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "wxemu")


def _local_dirs() -> list[str]:
    env = os.environ.get("WXEMU_DATA_DIR")
    if env:
        return [env]
    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs = [
        os.path.abspath(os.path.join(os.getcwd(), "..", "shared", "data")),
        os.path.abspath(os.path.join(repo_root, "..", "shared", "data")),
    ]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def data_dir() -> str:
    """The local sample directory in use (``$WXEMU_DATA_DIR`` or ``../shared/data``), else the download cache."""
    dirs = _local_dirs()
    return dirs[0] if dirs else cache_dir()


def sha256sum(path: str, chunk: int = 2**20) -> str:
    """Hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _get(name: str) -> Sample:
    try:
        return SAMPLES[name]
    except KeyError:
        raise InputDataError(f"unknown sample {name!r}; known: {', '.join(sorted(SAMPLES))}") from None


def download_sample(name: str, *, cache: str | None = None) -> str:
    """Download sample ``name`` (its URL after ``$WXEMU_URL_MAP``) into ``cache`` (default ``cache_dir()``),
    verify its sha256 and return the local path. Raises InputDataError on a failed download or a mismatch."""
    import pooch

    sample = _get(name)
    cache = cache or cache_dir()
    url = apply_url_map(sample.url)
    target = os.path.join(cache, sample.name)
    if os.path.exists(target) and sha256sum(target) == sample.sha256:
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    try:
        if sample.member is None:
            return pooch.retrieve(
                url,
                known_hash=f"sha256:{sample.sha256}",
                fname=os.path.basename(target),
                path=os.path.dirname(target),
                progressbar=False,
            )
        extracted = pooch.retrieve(
            url,
            known_hash=None,
            fname=os.path.basename(sample.url),
            path=os.path.join(cache, "downloads"),
            progressbar=False,
            processor=pooch.Unzip(members=[sample.member]),
        )
    except ValueError as exc:  # pooch: hash mismatch
        raise InputDataError(
            f"sample {name!r} from {url}: checksum mismatch, the download is not the expected "
            f"file ({str(exc).splitlines()[0]})"
        ) from None
    except Exception as exc:
        raise InputDataError(f"sample {name!r}: download from {url} failed ({type(exc).__name__}: {exc})") from None
    member = extracted[0] if isinstance(extracted, list) else extracted
    got = sha256sum(member)
    if got != sample.sha256:
        zip_path = os.path.join(cache, "downloads", os.path.basename(sample.url))
        for stale in (zip_path, zip_path + ".unzip"):  # let a retry download afresh
            shutil.rmtree(stale, ignore_errors=True) if os.path.isdir(stale) else (
                os.remove(stale) if os.path.exists(stale) else None
            )
        raise InputDataError(
            f"sample {name!r} from {url}: checksum mismatch for {sample.member} "
            f"(sha256 {got}, expected {sample.sha256})"
        )
    shutil.copyfile(member, target)
    return target


def sample_path(name: str) -> str:
    """Local path of sample ``name`` (e.g. ``"era5-2mt-2019-03-uk.grib"``): from the local data directory when it
    holds the file, else downloaded and verified (see module docstring)."""
    _get(name)
    dirs = _local_dirs()
    for d in dirs:
        path = os.path.join(d, name)
        if os.path.isfile(path):
            return path
    try:
        return download_sample(name)
    except InputDataError as exc:
        where = f"not in {', '.join(dirs)}" if dirs else "no local data directory ($WXEMU_DATA_DIR or ../shared/data)"
        raise InputDataError(
            f"{exc}; {where}: set WXEMU_DATA_DIR to a directory that holds {name} to read it locally"
        ) from None
