"""Shared fixtures: the real sample files (through data_catalog.samples), a local HTTP server, and the UK sample
cut into daily NetCDF files and ingested once per session for the `wxemu ingest` tests (test_ingest*.py).

``uk_store`` here is the ingest tests' reference store; test_datamodule.py, test_forecast.py, test_linear.py and
test_yesterday_change.py define their own ``uk_store``, which overrides this one in those modules."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from data_catalog.samples import data_dir as _data_dir
from data_catalog.samples import sample_path

if TYPE_CHECKING:
    import xarray as xr


@pytest.fixture(scope="session")
def data_dir() -> str:
    """The directory holding the real sample files (``$WXEMU_DATA_DIR`` or ``../shared/data``)."""
    return _data_dir()


@pytest.fixture(scope="session")
def sample() -> Callable[[str], str]:
    """``sample("era5-2mt-2019-03-uk.grib")`` -> local path of a real sample file."""
    return sample_path


@pytest.fixture
def http_server() -> Iterator[Callable[[str], str]]:
    """``serve(directory) -> "http://127.0.0.1:PORT/"``: a quiet threaded HTTP server on 127.0.0.1, stopped after
    the test."""
    servers: list[http.server.ThreadingHTTPServer] = []

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep test output clean
            pass

    def serve(directory: str) -> str:
        handler = functools.partial(Quiet, directory=str(directory))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield serve
    for server in servers:
        server.shutdown()
        server.server_close()


# The ingest fixtures import inside their bodies: conftest.py is imported by every test module.
@pytest.fixture(scope="session")
def uk_raw() -> xr.Dataset:
    """The raw UK GRIB (as the file has it: latitude descending, longitude -10..2), first 4 days, in memory."""
    from _ingest import raw_uk

    return raw_uk().isel(time=slice(0, 96)).load()


@pytest.fixture(scope="session")
def uk_nc(tmp_path_factory, uk_raw) -> dict[str, str]:
    """Daily NetCDF files cut from the real UK GRIB (2019-03-01 .. 03-04), as a user's daily files would be."""
    d = tmp_path_factory.mktemp("uknc")
    out = {}
    for day in range(1, 5):
        part = uk_raw[["t2m"]].sel(time=f"2019-03-0{day}")
        part = part.drop_vars([c for c in part.coords if c not in part.dims])
        path = d / f"uk-2019030{day}.nc"
        part.to_netcdf(path)
        out[f"0{day}"] = str(path)
    return out


@pytest.fixture(scope="session")
def uk_store(tmp_path_factory, uk_nc) -> str:
    """Days 1-3 ingested uninterrupted, 6 blocks of 12 hours (the reference for resume/cluster/append)."""
    from _ingest import make_cfg

    from data_catalog import ingestion as ing

    out = tmp_path_factory.mktemp("ref") / "uk.zarr"
    ing.ingest(make_cfg([uk_nc["01"], uk_nc["02"], uk_nc["03"]], out, block_mb=0.08))
    return str(out)
