"""A real aiogram ``Bot`` driven from an actor thread.

aiogram needs asyncio while the actors are threads, so the client owns an anyio
blocking portal (an asyncio loop in its own thread) and calls the bot through it:
one ``Bot`` and one HTTP session for the client's whole life. Long polling for
operator commands runs as a task on that loop and hands each allowed command to
``on_command``; everything else is ignored and logged. Errors leave this module
as ``TelegramUnavailable`` with the token redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager

import anyio.from_thread
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import AiogramError
from anyio.from_thread import BlockingPortal

from actors.redact import add_secrets, redact
from actors.telegram_types import ChatCommand, TelegramUnavailable, parse_command
from protocol import TelegramSettings

log = logging.getLogger(__name__)


class TelegramClient:
    def __init__(self, token: str, settings: TelegramSettings) -> None:
        add_secrets([token])
        self._token = token
        self._settings = settings
        self._portal_cm: AbstractContextManager[BlockingPortal] | None = None
        self._portal: BlockingPortal | None = None
        self._bot: Bot | None = None
        self._stopping = False

    def __repr__(self) -> str:
        return f"TelegramClient(api_base={self._settings.api_base!r}, token=***)"

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._portal_cm = anyio.from_thread.start_blocking_portal("asyncio")
        self._portal = self._portal_cm.__enter__()
        self._bot = self._portal.call(self._make_bot)

    async def _make_bot(self) -> Bot:
        session = AiohttpSession(api=TelegramAPIServer.from_base(self._settings.api_base))
        return Bot(token=self._token, session=session)

    def close(self) -> None:
        self._stopping = True
        if self._portal is not None and self._bot is not None:
            with contextlib.suppress(Exception):
                self._portal.call(self._bot.session.close)
        if self._portal_cm is not None:
            with contextlib.suppress(Exception):
                self._portal_cm.__exit__(None, None, None)
        self._portal = self._portal_cm = None
        self._bot = None

    # ------------------------------------------------------------ requests

    def send(self, chat_id: int, text: str) -> None:
        portal, bot = self._require()
        try:
            portal.call(self._send, bot, chat_id, text)
        except (AiogramError, OSError, TimeoutError) as exc:
            raise TelegramUnavailable(redact(f"{type(exc).__name__}: {exc}")) from None

    async def _send(self, bot: Bot, chat_id: int, text: str) -> None:
        timeout = self._settings.request_timeout_s
        with anyio.fail_after(timeout):
            await bot.send_message(chat_id=chat_id, text=text[:4000], request_timeout=int(timeout))

    def start_polling(self, on_command: Callable[[ChatCommand], None]) -> None:
        portal, bot = self._require()
        portal.start_task_soon(self._poll, bot, on_command)

    async def _poll(self, bot: Bot, on_command: Callable[[ChatCommand], None]) -> None:
        offset: int | None = None
        allowed = set(self._settings.chat_ids)
        backoff = 1.0
        while not self._stopping:
            try:
                updates = await bot.get_updates(
                    offset=offset,
                    timeout=self._settings.poll_timeout_s,
                    allowed_updates=["message"],
                    request_timeout=self._settings.poll_timeout_s + 10,
                )
                backoff = 1.0
            except (AiogramError, OSError) as exc:
                log.warning("telegram polling failed: %s", redact(str(exc)))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._settings.backoff_max_s)
                continue
            for update in updates:
                offset = update.update_id + 1
                message = update.message
                if message is None or message.text is None:
                    continue
                parsed = parse_command(message.text)
                if message.chat.id not in allowed:
                    log.warning("ignored a message from chat %s (not allowed)", message.chat.id)
                    continue
                if parsed is None:
                    continue
                on_command(ChatCommand(message.chat.id, parsed[0], parsed[1]))

    def _require(self) -> tuple[BlockingPortal, Bot]:
        if self._portal is None or self._bot is None:
            raise TelegramUnavailable("telegram client is not started")
        return self._portal, self._bot
