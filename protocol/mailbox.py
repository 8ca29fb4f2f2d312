"""Anything a message can be told to: a pykka ``ActorRef``, a test's ``Inbox``."""

from __future__ import annotations

from typing import Protocol


class Mailbox(Protocol):
    """Anything a message can be told to: a pykka ``ActorRef`` or a test ``Inbox``."""

    def tell(self, message: object) -> None: ...
