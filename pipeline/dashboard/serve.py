"""Serving a built site on 127.0.0.1 for a quick look (the standard library's static file server)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

from data_catalog.errors import ConfigError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass


def make_server(site: str | Path, port: int = 8000) -> http.server.ThreadingHTTPServer:
    """A server of directory ``site`` on ``127.0.0.1:port`` (``port`` 0 picks a free one); not yet started."""
    site = Path(site)
    if not (site / "index.html").is_file():
        raise ConfigError(f"serve: {site} holds no built dashboard (no index.html)")
    handler = functools.partial(_QuietHandler, directory=str(site))
    try:
        return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as exc:
        raise ConfigError(f"--port {port}: cannot listen on 127.0.0.1 ({exc})") from None


def serve_in_thread(site: str | Path, port: int = 0) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Start :func:`make_server` on a daemon thread; returns (server, base URL). Stop it with ``shutdown()``."""
    server = make_server(site, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address[:2]
    return server, f"http://{host}:{port}/"
