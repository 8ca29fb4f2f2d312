"""A loopback fake of the Telegram Bot API (aiohttp), enough for aiogram's Bot.

It serves sendMessage, getUpdates and getMe for one token on 127.0.0.1, records
what was sent, and can fail on purpose: answer 5xx, or go down entirely (the
listening socket closed, so connections are refused) and come back on the same port.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time

from aiohttp import web


class FakeTelegram:
    def __init__(self, token: str) -> None:
        self.token = token
        self.messages: list[tuple[int, str]] = []
        self.requests: list[str] = []
        self.fail_status: int | None = None
        self._updates: list[dict[str, object]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self.port = 0

    # ------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeTelegram:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def down(self) -> None:
        """Close the listener and every open connection: requests are refused."""
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._runner = None

    def up(self) -> None:
        asyncio.run_coroutine_threadsafe(self._start(self.port), self._loop).result(10)

    def push_command(
        self, chat_id: int, text: str, user_id: int | None = None, date: int | None = None
    ) -> None:
        """A message in ``chat_id`` (a group's when negative) from ``user_id`` (the
        private chat's own user by default), sent at ``date`` (unix seconds; now)."""
        with self._lock:
            self._updates.append(
                {
                    "update_id": next(self._update_ids),
                    "message": {
                        "message_id": next(self._message_ids),
                        "date": int(time.time()) if date is None else date,
                        "chat": {
                            "id": chat_id,
                            "type": "private" if chat_id > 0 else "supergroup",
                        },
                        "from": {
                            "id": chat_id if user_id is None else user_id,
                            "is_bot": False,
                            "first_name": "op",
                        },
                        "text": text,
                    },
                }
            )

    def sent(self) -> list[tuple[int, str]]:
        with self._lock:
            return list(self.messages)

    def wait_for(self, predicate, timeout: float = 15.0) -> tuple[int, str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.sent():
                if predicate(message):
                    return message
            time.sleep(0.02)
        raise TimeoutError(f"no matching message within {timeout} s; sent: {self.sent()}")

    # ------------------------------------------------------------ server

    async def _start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", port)
        await self._site.start()
        self.port = self._site._server.sockets[0].getsockname()[1]

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"].lower()
        self.requests.append(method)
        if request.match_info["token"] != self.token:
            return self._json({"ok": False, "error_code": 401, "description": "Unauthorized"}, 401)
        if self.fail_status is not None:
            return self._json(
                {"ok": False, "error_code": self.fail_status, "description": "Bad Gateway"},
                self.fail_status,
            )
        form = await request.post()
        if method == "sendmessage":
            chat_id, text = int(str(form["chat_id"])), str(form["text"])
            with self._lock:
                self.messages.append((chat_id, text))
            return self._ok(
                {
                    "message_id": next(self._message_ids),
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "text": text,
                }
            )
        if method == "getupdates":
            offset = int(str(form.get("offset", 0) or 0))
            deadline = time.monotonic() + min(float(str(form.get("timeout", 0) or 0)), 0.5)
            while True:
                with self._lock:
                    self._updates = [u for u in self._updates if int(u["update_id"]) >= offset]
                    ready = list(self._updates)
                if ready or time.monotonic() >= deadline:
                    return self._ok(ready)
                await asyncio.sleep(0.02)
        if method == "getme":
            return self._ok({"id": 1, "is_bot": True, "first_name": "fake", "username": "fake_bot"})
        return self._json({"ok": False, "error_code": 404, "description": "Not Found"}, 404)

    @staticmethod
    def _ok(result: object) -> web.Response:
        return FakeTelegram._json({"ok": True, "result": result}, 200)

    @staticmethod
    def _json(body: object, status: int) -> web.Response:
        return web.Response(text=json.dumps(body), status=status, content_type="application/json")
