"""What the alerter needs to know of Telegram, without importing aiogram.

aiogram costs tens of megabytes at import; the supervisor imports it only when a
token is configured (``actors.telegram``).
"""

from __future__ import annotations

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


def parse_command(text: str) -> tuple[str, str] | None:
    if not text.startswith("/"):
        return None
    head, _, rest = text.partition(" ")
    command = head[1:].split("@", 1)[0].lower()
    return (command, rest.strip()) if command else None


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
