"""Periodic self-messages, like Erlang's ``timer:send_interval``.

An actor never sleeps in a handler to wait for the next tick; an ``Interval`` thread
tells it a message instead, and stops promptly when cancelled.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pykka

from protocol import Mailbox

log = logging.getLogger(__name__)


class Interval:
    def __init__(
        self,
        interval_s: float,
        target: Mailbox,
        message: Callable[[], object],
        name: str = "interval",
        first_after_s: float | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval must be positive, got {interval_s}")
        self._interval_s = interval_s
        self._first_after_s = interval_s if first_after_s is None else first_after_s
        self._target = target
        self._message = message
        self._cancelled = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        wait = self._first_after_s
        while not self._cancelled.wait(wait):
            try:
                self._target.tell(self._message())
            except pykka.ActorDeadError:
                return
            wait = self._interval_s

    def cancel(self) -> None:
        self._cancelled.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=1.0)
