"""What the alerter needs to know of Telegram, without importing aiogram.

aiogram costs tens of megabytes at import; the supervisor imports it only when a
token is configured (``actors.telegram``).
"""

from __future__ import annotations

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
