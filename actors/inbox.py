"""A mailbox that is not an actor: for the CLI, the service loop and tests.

It can be handed to any actor as a ``reply_to``/``notify`` peer, and a caller waits
on it with a timeout (``expect``) instead of sleeping, which is how tests ask an
actor something and how the service waits for its final checkpoint.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Inbox:
    def __init__(self) -> None:
        self._queue: queue.Queue[object] = queue.Queue()
        self._seen: list[object] = []
        self._lock = threading.Lock()

    def tell(self, message: object) -> None:
        self._queue.put(message)

    def is_alive(self) -> bool:
        return True

    def poll(self) -> list[object]:
        """Everything that arrived so far, without waiting."""
        got: list[object] = []
        while True:
            try:
                got.append(self._queue.get_nowait())
            except queue.Empty:
                break
        with self._lock:
            self._seen.extend(got)
        return got

    @property
    def seen(self) -> list[object]:
        self.poll()
        with self._lock:
            return list(self._seen)

    def of_type(self, kind: type[T]) -> list[T]:
        return [m for m in self.seen if isinstance(m, kind)]

    def expect(
        self,
        kind: type[T],
        timeout: float = 5.0,
        where: Callable[[T], bool] | None = None,
    ) -> T:
        """Wait for the next message of ``kind`` (matching ``where``) not yet consumed.

        Messages of other kinds are kept in ``seen``; a matching message is consumed so
        the next ``expect`` waits for a newer one.
        """
        deadline = time.monotonic() + timeout
        with self._lock:
            for i, message in enumerate(self._seen):
                if isinstance(message, kind) and (where is None or where(message)):
                    del self._seen[i]
                    return message
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no {kind.__name__} within {timeout} s")
            try:
                message = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(message, kind) and (where is None or where(message)):
                return message
            with self._lock:
                self._seen.append(message)

    def expect_any(self, kinds: tuple[type, ...], timeout: float = 5.0) -> object:
        """Wait for the next message that is an instance of any of ``kinds``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for i, message in enumerate(self._seen):
                    if isinstance(message, kinds):
                        del self._seen[i]
                        return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                names = ", ".join(k.__name__ for k in kinds)
                raise TimeoutError(f"none of {names} within {timeout} s")
            try:
                message = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if isinstance(message, kinds):
                return message
            with self._lock:
                self._seen.append(message)
