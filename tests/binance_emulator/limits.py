"""Binance's request-weight and order-count windows, as headers and as 429s.

Clients throttle themselves from ``X-MBX-USED-WEIGHT-1M`` and ``X-MBX-ORDER-COUNT-*`` and must
back off on ``-1003``; the emulator keeps the same one-minute windows so they can.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from .clock import Clock
from .errors import ApiError
from .faults import Faults

REQUEST_WEIGHT_LIMIT_1M: Final = 2400
WINDOW_MS: Final = 60_000


class RateLimiter:
    def __init__(self, faults: Faults, clock: Clock) -> None:
        self._faults = faults
        self._clock = clock
        self._weights: deque[tuple[int, int]] = deque()
        self._order_times: deque[int] = deque()

    def check(self, weight: int) -> None:
        """Count a request of ``weight``, or refuse it with 429 ``-1003``."""
        now = self._clock()
        limit_msg = (
            f"Too many requests; current limit of IP(127.0.0.1) is {REQUEST_WEIGHT_LIMIT_1M} "
            "requests per minute. Please use the websocket for live updates to avoid polling "
            "the API."
        )
        if self._faults.take_rate_limit():
            raise ApiError(429, -1003, limit_msg)
        if self.used_weight(now) + weight > REQUEST_WEIGHT_LIMIT_1M:
            raise ApiError(429, -1003, limit_msg)
        self._weights.append((now, weight))

    def record_order(self, now: int) -> None:
        self._order_times.append(now)

    def used_weight(self, now: int) -> int:
        while self._weights and self._weights[0][0] <= now - WINDOW_MS:
            self._weights.popleft()
        return sum(w for _, w in self._weights)

    def order_count(self, now: int, window_ms: int) -> int:
        while self._order_times and self._order_times[0] <= now - WINDOW_MS:
            self._order_times.popleft()
        return sum(1 for t in self._order_times if t > now - window_ms)
