"""The HTTP side of the metrics actor: ``/metrics``, ``/healthz`` and ``/readyz``.

A small threaded WSGI server (the standard library's, as prometheus-client's own
``start_http_server`` uses) in a daemon thread. ``/metrics`` is prometheus-client's
exposition of the actor's registry; the probes ask the actor for its ``Health`` with a
timeout, so an actor that no longer answers shows as unhealthy instead of hanging the
probe. Bodies are JSON with the reasons, for an operator's ``curl``.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

from protocol import Health

log = logging.getLogger(__name__)

HealthSource = Callable[[], Health | None]  # None: the actor did not answer in time


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True  # a restarted actor binds its port again at once


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass  # a scrape a second is not worth a log line


def _json(start: StartResponse, ok: bool, body: dict[str, object]) -> Iterable[bytes]:
    start(
        "200 OK" if ok else "503 Service Unavailable",
        [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
    )
    return [json.dumps(body).encode()]


def probe_app(registry: CollectorRegistry, health: HealthSource, trader_id: str) -> WSGIApplication:
    """The WSGI application: metrics from ``registry``, probes from ``health``."""
    metrics: WSGIApplication = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return metrics(environ, start)
        if path not in ("/healthz", "/readyz"):
            start("404 Not Found", [("Content-Type", "text/plain")])
            return [b"/metrics /healthz /readyz\n"]
        now = health()
        if now is None:
            reasons = ["the metrics actor does not answer"]
            body: dict[str, object] = {"status": "unhealthy", "trader_id": trader_id}
            return _json(start, False, {**body, "reasons": reasons})
        if path == "/healthz":
            return _json(
                start,
                now.healthy,
                {
                    "status": "ok" if now.healthy else "unhealthy",
                    "trader_id": trader_id,
                    "reasons": list(now.health_reasons),
                    "recovering": list(now.recovering),
                },
            )
        return _json(
            start,
            now.ready,
            {
                "status": "ready" if now.ready else "not ready",
                "trader_id": trader_id,
                "reasons": list(now.ready_reasons),
            },
        )

    return app


class ProbeServer:
    """The server in its thread; ``close`` stops it and frees the port."""

    def __init__(self, host: str, port: int, app: WSGIApplication) -> None:
        server = _Server6 if ":" in host else _Server
        self._server = make_server(host, port, app, server, handler_class=_QuietHandler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-http", daemon=True
        )
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)
