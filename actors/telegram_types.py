"""What the alerter needs to know of Telegram, without importing aiogram.

aiogram costs tens of megabytes at import; the supervisor imports it only when a
token is configured (``actors.telegram``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class TelegramPort(Protocol):
    def send(self, chat_id: int, text: str) -> None: ...

    def start_polling(self, on_command: Callable[[ChatCommand], None]) -> None: ...

    def close(self) -> None: ...


class TelegramUnavailable(RuntimeError):
    """Telegram could not be reached or refused the request (message redacted)."""


@dataclass(frozen=True, slots=True)
class ChatCommand:
    chat_id: int
    command: str  # without the slash, lower case, e.g. "halt"
    args: str
    user_id: int  # who sent it (in a private chat, the chat's id)


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    command: str  # without the slash, lower case
    args: str
    bot: str | None  # ``/halt@some_bot``: the bot it is addressed to; None: any


def parse_command(text: str) -> ParsedCommand | None:
    if not text.startswith("/"):
        return None
    head, _, rest = text.partition(" ")
    command, _, bot = head[1:].partition("@")
    if not command:
        return None
    return ParsedCommand(command.lower(), rest.strip(), bot or None)


@dataclass(frozen=True, slots=True)
class Admission:
    """Who may command the service, and since when (``TelegramSettings``).

    A chat id allows a chat, not its members: in a group every member (and whoever
    is added later) can write, so a command also needs its sender among ``users``
    (``TELEGRAM_USER_IDS``); without that list only the allowed private chats' own
    users (a private chat's id is its user's) may command. Commands addressed to
    another bot (``/halt@other_bot``) are that bot's. Updates queued while the service
    was down (Telegram keeps them 24 h) were meant for then: anything sent before
    ``not_before`` (unix seconds) is dropped, never carried out late."""

    chats: frozenset[int]
    users: frozenset[int]
    not_before: float
    bot_username: str | None = None  # getMe's; unknown: only unaddressed commands pass

    def refusal(
        self, chat_id: int, user_id: int | None, sent_at: float, bot: str | None
    ) -> str | None:
        """Why a command is not taken (for the log line), or None to take it."""
        if chat_id not in self.chats:
            return "not allowed"
        users = self.users or frozenset(c for c in self.chats if c > 0)
        if user_id is None or user_id not in users:
            listed = "TELEGRAM_USER_IDS" if self.users else "TELEGRAM_USER_IDS (unset)"
            return f"user {user_id} is not in {listed}"
        if bot is not None and (
            self.bot_username is None or bot.lower() != self.bot_username.lower()
        ):
            return f"addressed to @{bot}, not to this bot"
        if sent_at < math.floor(self.not_before):  # Telegram's dates are whole seconds
            return f"sent {self.not_before - sent_at:.0f} s before the service started"
        return None


class BadArgument(ValueError):
    """A chat command's argument is not one it takes; the message is the reply."""


def row_count(command: str, args: str, default: int, maximum: int) -> int:
    """``/trades [n]``, ``/daily [n]``: how many rows, ``default`` when none is given;
    anything but a whole number from 1 to ``maximum`` is a ``BadArgument`` (a larger
    reply would not fit one Telegram message)."""
    usage = f"Usage: /{command} [n], n a whole number from 1 to {maximum} (default {default})."
    if not args:
        return default
    if not re.fullmatch(r"-?[0-9]+", args):
        raise BadArgument(f"/{command}: {args!r} is not a whole number. {usage}")
    count = int(args)
    if count < 1:
        raise BadArgument(f"/{command}: n must be at least 1, got {count}. {usage}")
    if count > maximum:
        raise BadArgument(
            f"/{command}: at most {maximum} in one message, got {count} "
            f"(paper-node report shows them all). {usage}"
        )
    return count


def no_argument(command: str, args: str) -> None:
    """``/profit``, ``/balance``, ``/performance`` take nothing: a word after them is
    more likely a mistyped command than something to ignore."""
    if args:
        raise BadArgument(f"/{command} takes no argument (got {args!r}).")
