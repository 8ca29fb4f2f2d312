"""The metrics server inside the trading process: idle connections cost no threads and are
dropped after a timeout; a scrape is still answered."""

from __future__ import annotations

import socket
import threading
import time
import urllib.request
from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIEnvironment

from actors.probes import ProbeServer
from tests.service import wait_for


def app(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
    start("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]


def test_300_half_open_connections_make_no_300_threads() -> None:
    server = ProbeServer("127.0.0.1", 0, app)
    before = threading.active_count()
    idle: list[socket.socket] = []
    try:
        for _ in range(300):
            idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        time.sleep(0.5)  # let the server accept what it will
        assert threading.active_count() - before <= 8, threading.active_count() - before
        # A silent client is dropped after the handler's timeout (5 s): its socket reads EOF.
        first = idle[0]
        first.settimeout(10)
        started = time.monotonic()
        assert first.recv(1) == b""
        assert time.monotonic() - started < 8
        for s in idle:
            s.close()
        idle.clear()

        def scraped() -> bytes | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=2) as r:
                    return bytes(r.read())
            except OSError:
                return None

        assert wait_for("a scrape answered", scraped, timeout=15) == b"ok\n"
    finally:
        for s in idle:
            s.close()
        server.close()
