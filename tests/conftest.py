"""Shared fixtures: the real sample files (through data_catalog.samples) and a local HTTP server."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable, Iterator

import pytest

from data_catalog.samples import data_dir as _data_dir
from data_catalog.samples import sample_path


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
