"""A real aiogram ``Bot`` driven from an actor thread.

aiogram needs asyncio while the actors are threads, so the client owns an anyio
blocking portal (an asyncio loop in its own thread) and calls the bot through it:
one ``Bot`` and one HTTP session for the client's whole life. Long polling for
operator commands runs as a task on that loop and hands each command ``Admission``
takes (a listed user in a listed chat, addressed to this bot, sent after the
service started) to ``on_command``; everything else is dropped with a log line.
Errors leave this module as ``TelegramUnavailable`` with the token redacted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace

import anyio.from_thread
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import AiogramError
from anyio.from_thread import BlockingPortal

from actors.redact import add_secrets, redact
from actors.telegram_types import Admission, ChatCommand, TelegramUnavailable, parse_command
from protocol import TelegramSettings

log = logging.getLogger(__name__)


class TelegramClient:
    def __init__(
        self, token: str, settings: TelegramSettings, started_at: float | None = None
    ) -> None:
        """``started_at``: the service's start (unix seconds); a command sent earlier
        (less ``max_update_age_s``) is dropped. None: this client's start."""
        add_secrets([token])
        self._token = token
        self._settings = settings
        self._started_at = time.time() if started_at is None else started_at
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
        settings = self._settings
        admission = Admission(
            frozenset(settings.chat_ids),
            frozenset(settings.user_ids),
            self._started_at - settings.max_update_age_s,
        )
        backoff = 1.0
        while not self._stopping:
            try:
                if admission.bot_username is None:  # to tell /cmd@us from /cmd@other_bot
                    me = await bot.get_me(request_timeout=int(settings.request_timeout_s))
                    admission = replace(admission, bot_username=me.username or "")
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
                if parsed is None:  # a group's talk: not ours to read
                    continue
                user_id = None if message.from_user is None else message.from_user.id
                sent_at = message.date.timestamp()
                why = admission.refusal(message.chat.id, user_id, sent_at, parsed.bot)
                if why is not None or user_id is None:
                    log.warning(
                        "ignored /%s from chat %s (%s)", parsed.command, message.chat.id, why
                    )
                    continue
                on_command(ChatCommand(message.chat.id, parsed.command, parsed.args, user_id))

    def _require(self) -> tuple[BlockingPortal, Bot]:
        if self._portal is None or self._bot is None:
            raise TelegramUnavailable("telegram client is not started")
        return self._portal, self._bot
