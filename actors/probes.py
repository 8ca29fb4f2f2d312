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
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from prometheus_client import CollectorRegistry, make_wsgi_app

from protocol import Health

log = logging.getLogger(__name__)

WORKERS = 4  # a scrape takes milliseconds; Prometheus and a probe or two at once
MAX_PENDING = 32  # connections served or waiting; more are closed at once
HealthSource = Callable[[], Health | None]
type Request = socket.socket | tuple[bytes, socket.socket]  # None: the actor did not answer in time


class _Server(WSGIServer):
    """Requests on a small pool of threads, not one thread a connection.

    The server runs inside the trading process, so whoever reaches the port must not be
    able to make it start threads: 300 idle connections made 300 threads (each waiting
    forever) with ``ThreadingMixIn``. Now ``WORKERS`` threads serve; a connection waits
    for one while fewer than ``MAX_PENDING`` do and is closed otherwise; a client silent
    for ``_QuietHandler.timeout`` seconds is dropped."""

    allow_reuse_address = True  # a restarted actor binds its port again at once
    request_queue_size = 128  # a burst of connections waits in the backlog, not on SYN retries

    def server_activate(self) -> None:
        super().server_activate()
        self._pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="metrics-http")
        self._slots = threading.BoundedSemaphore(MAX_PENDING)

    def process_request(self, request: Request, client_address: object) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # too many waiting: this one is refused
            return
        self._pool.submit(self._serve, request, client_address)

    def _serve(self, request: Request, client_address: object) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            self._slots.release()

    def handle_error(self, request: Request, client_address: object) -> None:
        log.debug("metrics: a request from %s failed", client_address, exc_info=True)

    def server_close(self) -> None:
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = 5.0  # seconds a client may stay silent (socketserver sets it on the socket)

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
