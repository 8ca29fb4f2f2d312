"""Candles built from the emulator's own trade prints, for the kline streams and REST.

Binance's klines are aggregates of its trades; building them from the same prints the trade
streams carry keeps bars, trades and the last price consistent, which is what a client that
cross-checks them (Nautilus does) needs. Time runs faster here: one "1m" kline lasts
``kline_interval_s`` seconds, and longer intervals scale with it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Final

from .fmt import ZERO

if TYPE_CHECKING:
    from .market import Trade

KLINE_MINUTES: Final[dict[str, int]] = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "1d": 1440,
    "3d": 4320,
    "1w": 10080,
}
HISTORY: Final = 1500
"""Closed klines kept per interval (Binance's largest ``limit``)."""


@dataclass(slots=True)
class Kline:
    interval: str
    open_time: int
    duration_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    taker_base: Decimal = ZERO
    taker_quote: Decimal = ZERO
    trades: int = 0
    first_id: int = -1
    last_id: int = -1

    @property
    def close_time(self) -> int:
        return self.open_time + self.duration_ms - 1

    def add(self, trade: Trade) -> None:
        if self.trades == 0:
            self.first_id = trade.trade_id
        self.last_id = trade.trade_id
        self.trades += 1
        self.high = max(self.high, trade.price)
        self.low = min(self.low, trade.price)
        self.close = trade.price
        self.volume += trade.qty
        self.quote_volume += trade.qty * trade.price
        if not trade.buyer_maker:
            self.taker_base += trade.qty
            self.taker_quote += trade.qty * trade.price


class KlineSet:
    """The open kline and the closed history of every interval someone asked for."""

    def __init__(self, kline_interval_s: float) -> None:
        self._kline_interval_s = kline_interval_s
        self.current: dict[str, Kline] = {}
        self._history: dict[str, deque[Kline]] = {}

    def duration_ms(self, interval: str) -> int:
        return round(KLINE_MINUTES[interval] * self._kline_interval_s * 1000)

    def ensure(self, interval: str, now: int, open_price: Decimal) -> None:
        """Start aggregating ``interval`` (a no-op when it runs already or is unknown)."""
        if interval in self.current or interval not in KLINE_MINUTES:
            return
        duration = self.duration_ms(interval)
        self.current[interval] = _new(interval, now - now % duration, duration, open_price)
        self._history[interval] = deque(maxlen=HISTORY)

    def roll(self, now: int, open_price: Decimal) -> list[Kline]:
        """Close every kline whose period ended and open the next; returns the closed ones."""
        closed: list[Kline] = []
        for interval, kline in list(self.current.items()):
            if now <= kline.close_time:
                continue
            self._history[interval].append(kline)
            closed.append(kline)
            start = now - now % kline.duration_ms
            self.current[interval] = _new(interval, start, kline.duration_ms, open_price)
        return closed

    def open_until(self, default: int) -> int:
        """The last millisecond every open kline still covers (``default`` with none)."""
        return min((k.close_time for k in self.current.values()), default=default)

    def add(self, trade: Trade) -> None:
        for kline in self.current.values():
            kline.add(trade)

    def rows(self, interval: str) -> list[Kline]:
        """Closed klines, oldest first, then the open one."""
        return [*self._history[interval], self.current[interval]]


def _new(interval: str, open_time: int, duration: int, price: Decimal) -> Kline:
    return Kline(interval, open_time, duration, price, price, price, price)
