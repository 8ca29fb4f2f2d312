"""The venue's clock, in Binance's unit (epoch milliseconds).

Every part that stamps or ages something takes a ``Clock`` instead of reading the time itself,
so the matching and accounting can be unit-tested at a fixed instant.
"""

from __future__ import annotations

import time
from collections.abc import Callable

type Clock = Callable[[], int]

FUNDING_PERIOD_MS = 8 * 3600 * 1000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def next_funding_ms(now: int, period_ms: int = FUNDING_PERIOD_MS) -> int:
    """Binance funds every 8 hours on the UTC clock; the next one after ``now`` (a test
    may make the period seconds, to see a settlement)."""
    return now - now % period_ms + period_ms
