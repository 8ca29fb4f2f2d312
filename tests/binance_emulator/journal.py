"""Every request the emulator saw, so a test can assert what a client called.

Fidelity tests need more than "it worked": they check that a client touched only endpoints the
emulator knows (an unknown one means the client reached for something Binance has and this
does not) and that it made no request anywhere else.
"""

from __future__ import annotations

import threading

from .snapshots import RequestRecord


class Journal:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[RequestRecord] = []
        self._unknown: list[str] = []

    def record(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def unknown(self, target: str) -> None:
        """``target`` is ``"METHOD /path?query"`` (``"WS /path"`` for a WebSocket)."""
        with self._lock:
            self._unknown.append(target)

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def unknown_requests(self) -> list[str]:
        with self._lock:
            return list(self._unknown)
