"""The WebSocket side of the venue: market stream and user data stream connections.

Binance serves market streams as ``/stream?streams=a/b`` (combined, each message wrapped as
``{"stream":..,"data":..}``) and ``/ws/a/b`` (raw), with runtime ``SUBSCRIBE`` /
``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` requests, and the user data stream
on ``/ws?listenKey=<key>`` (or ``/ws/<key>``), valid while the listenKey is. This hub accepts
those connections, routes each published message to the connections that asked for it, owns
the listenKey, and can drop or close connections on cue (the fault injectors use that).
What is published, and in which JSON, is :mod:`.feeds`' business.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from aiohttp import WSMsgType, web

from .clock import Clock
from .errors import ApiError
from .fmt import JsonDict
from .journal import Journal
from .snapshots import RequestRecord

log = logging.getLogger(__name__)

LISTEN_KEY_TTL_MS: Final = 60 * 60 * 1000


@dataclass(eq=False, slots=True)
class WsConn:
    request: web.Request
    ws: web.WebSocketResponse
    path: str
    combined: bool
    listen_key: str | None
    streams: set[str] = field(default_factory=set)
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)


def _dumps(payload: object) -> str:
    return json.dumps(payload, separators=(",", ":"))


class StreamHub:
    """Connections and their subscriptions. The synchronous methods run on the server's loop
    thread under ``lock`` (the server's); the accessors may be called from any thread."""

    def __init__(
        self,
        lock: threading.RLock,
        journal: Journal,
        clock: Clock,
        on_subscribe: Callable[[str], None],
    ) -> None:
        self._lock = lock
        self._journal = journal
        self._clock = clock
        self._on_subscribe = on_subscribe
        self._conns: set[WsConn] = set()
        self._listen_key: str | None = None
        self._listen_key_expiry_ms = 0
        self._user_events: list[JsonDict] = []

    # The listenKey (created and kept alive over REST)

    @property
    def listen_key(self) -> str | None:
        with self._lock:
            return self._listen_key if self.listen_key_valid() else None

    def listen_key_valid(self) -> bool:
        return self._listen_key is not None and self._clock() < self._listen_key_expiry_ms

    def open_listen_key(self) -> str:
        """Futures: an account has one listenKey; creating it again returns it, extended."""
        if not self.listen_key_valid() or self._listen_key is None:
            self._listen_key = secrets.token_hex(32)
        self._listen_key_expiry_ms = self._clock() + LISTEN_KEY_TTL_MS
        return self._listen_key

    def keepalive_listen_key(self) -> str:
        if not self.listen_key_valid() or self._listen_key is None:
            raise ApiError(400, -1125, "This listenKey does not exist.")
        self._listen_key_expiry_ms = self._clock() + LISTEN_KEY_TTL_MS
        return self._listen_key

    def close_listen_key(self) -> None:
        """Invalidate the listenKey and close its user streams (from the loop thread)."""
        key = self._listen_key
        self._listen_key = None
        conns = [c for c in self._conns if c.listen_key is not None and c.listen_key == key]
        if conns:
            asyncio.get_running_loop().create_task(self.close(conns, abrupt=False))

    # Fan-out

    def publish(self, streams: tuple[str, ...], data: JsonDict) -> None:
        """Send ``data`` to every connection subscribed to any of ``streams``."""
        raw: str | None = None
        for conn in self._conns:
            for stream in streams:
                if stream not in conn.streams:
                    continue
                if conn.combined:
                    conn.queue.put_nowait(_dumps({"stream": stream, "data": data}))
                else:
                    raw = raw or _dumps(data)
                    conn.queue.put_nowait(raw)

    def emit_user(self, event: JsonDict) -> None:
        """Record a user data stream event and push it to the listenKey's connections."""
        self._user_events.append(event)
        if not self.listen_key_valid():
            return
        text = _dumps(event)
        for conn in self._conns:
            if conn.listen_key == self._listen_key:
                conn.queue.put_nowait(text)

    # Accessors

    def user_events(self) -> list[JsonDict]:
        with self._lock:
            return [dict(e) for e in self._user_events]

    def connections(self) -> dict[str, int]:
        with self._lock:
            user = sum(1 for c in self._conns if c.listen_key is not None)
            return {"market": len(self._conns) - user, "user": user}

    def subscriptions(self) -> set[str]:
        with self._lock:
            return {s for c in self._conns for s in c.streams}

    # Connections

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Serve one WebSocket connection until it closes."""
        path = request.path
        for prefix in ("/market", "/public", "/private"):
            if path.startswith(prefix + "/"):
                path = path.removeprefix(prefix)
        target = request.path_qs
        listen_key: str | None = None
        combined = False
        streams: list[str] = []
        if path == "/stream":
            combined = True
            streams = [s for s in request.query.get("streams", "").split("/") if s]
        elif path == "/ws" and "listenKey" in request.query:
            listen_key = request.query["listenKey"]
        elif path.startswith("/ws/"):
            tail = path.removeprefix("/ws/")
            with self._lock:
                is_key = tail == self._listen_key
            if is_key or "@" not in tail:
                listen_key = tail
            else:
                streams = [s for s in tail.split("/") if s]
        elif path != "/ws":
            log.warning("BINANCE EMULATOR: UNKNOWN WEBSOCKET ENDPOINT %s", target)
            self._journal.unknown(f"WS {target}")
            self._journal.record(RequestRecord("WS", path, 404))
            return web.json_response({"code": -1000, "msg": "unknown endpoint"}, status=404)
        if listen_key is not None:
            target = target.replace(listen_key, listen_key[:6] + "...")
            with self._lock:
                valid = listen_key == self._listen_key and self.listen_key_valid()
            if not valid:
                self._journal.record(RequestRecord("WS", target, 400, -1125))
                return web.json_response(
                    {"code": -1125, "msg": "This listenKey does not exist."}, status=400
                )
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = WsConn(request, ws, path, combined, listen_key, set(streams))
        with self._lock:
            self._conns.add(conn)
            self._journal.record(RequestRecord("WS", target, 101))
            for stream in streams:
                self._on_subscribe(stream)
        writer = asyncio.create_task(self._writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and listen_key is None:
                    with self._lock:
                        reply = self._on_request(conn, msg.data)
                    conn.queue.put_nowait(reply)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(writer, 1.0)
        return ws

    async def close(self, conns: list[WsConn], *, abrupt: bool) -> None:
        """Close ``conns`` with a 1001 close frame, or ``abrupt``-ly (TCP reset)."""
        for conn in conns:
            transport = conn.request.transport
            if abrupt and transport is not None:
                transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=1001, message=b"going away"), 1.0)

    async def close_all(self) -> None:
        await self.close(list(self._conns), abrupt=False)

    async def drop(self, kind: Literal["all", "market", "user"]) -> int:
        """Abort the ``kind`` connections abruptly; returns how many."""
        with self._lock:
            conns = [
                c
                for c in self._conns
                if kind == "all" or (kind == "user") == (c.listen_key is not None)
            ]
        await self.close(conns, abrupt=True)
        return len(conns)

    async def expire_listen_key(self) -> None:
        """Push ``listenKeyExpired``, forget the key, close the user streams."""
        with self._lock:
            key = self._listen_key
            conns = [c for c in self._conns if c.listen_key is not None]
            if key is not None:
                self.emit_user({"e": "listenKeyExpired", "E": self._clock(), "listenKey": key})
            self._listen_key = None
        await asyncio.sleep(0.05)  # let the writers flush the event
        await self.close(conns, abrupt=False)

    async def _writer(self, conn: WsConn) -> None:
        while True:
            text = await conn.queue.get()
            if text is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def _on_request(self, conn: WsConn, text: str) -> str:
        """Answer a market stream control request (SUBSCRIBE and friends)."""
        try:
            msg = json.loads(text)
        except json.JSONDecodeError as exc:
            return _dumps({"code": 3, "msg": f"Invalid JSON: {exc}"})
        if not isinstance(msg, dict):
            return _dumps({"code": 3, "msg": "Invalid JSON: expected an object"})
        msg_id = msg.get("id")
        method = msg.get("method")
        params = msg.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return _dumps(
                    {"error": {"code": 2, "msg": "Invalid request: params"}, "id": msg_id}
                )
            for stream in params:
                if method == "SUBSCRIBE":
                    conn.streams.add(stream)
                    self._on_subscribe(stream)
                else:
                    conn.streams.discard(stream)
            return _dumps({"result": None, "id": msg_id})
        if method == "LIST_SUBSCRIPTIONS":
            return _dumps({"result": sorted(conn.streams), "id": msg_id})
        if method == "SET_PROPERTY":
            if isinstance(params, list) and params[:1] == ["combined"] and len(params) == 2:
                conn.combined = bool(params[1])
            return _dumps({"result": None, "id": msg_id})
        if method == "GET_PROPERTY":
            return _dumps({"result": conn.combined, "id": msg_id})
        return _dumps(
            {"error": {"code": 2, "msg": f"Invalid request: method {method!r}"}, "id": msg_id}
        )
