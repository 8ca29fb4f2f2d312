"""The emulated market: a top of book that random-walks, and the tape of trades it prints.

Clients need a market that moves (bars close, resting orders get crossed) yet is reproducible
from a seed, so the same test sees the same prices. This holds the touch (best bid and ask,
one tick apart), prints trades at it, keeps the tape and the klines built from it, and tells a
:class:`MarketListener` about each print and each closed kline; it does no I/O itself.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Final, Protocol

from .clock import Clock
from .klines import Kline, KlineSet
from .spec import SymbolSpec

TAPE: Final = 5000
"""Trades kept for the REST trade endpoints."""


@dataclass(frozen=True, slots=True)
class Trade:
    trade_id: int
    price: Decimal
    qty: Decimal
    time_ms: int
    buyer_maker: bool


class MarketListener(Protocol):
    def traded(self, trade: Trade) -> None: ...

    def kline_closed(self, kline: Kline, now: int) -> None: ...


class _Silent:
    def traded(self, trade: Trade) -> None:
        pass

    def kline_closed(self, kline: Kline, now: int) -> None:
        pass


class Market:
    """One symbol's touch and tape. Not thread-safe: the server calls it under its lock."""

    def __init__(
        self,
        spec: SymbolSpec,
        start_price: Decimal,
        *,
        clock: Clock,
        seed: int = 7,
        volatility: Decimal = Decimal("0.0002"),
        kline_interval_s: float = 1.0,
        tape: int = TAPE,
        min_size_steps: int = 1,
    ) -> None:
        """``tape``: the trades kept for the REST history (a test of a long gap keeps more);
        ``min_size_steps``: the least size of a trade and of the touch, in lot steps (a
        test whose orders must never outsize the book sets it above theirs)."""
        self._min_steps = max(1, min_size_steps)
        self._spec = spec
        self._clock = clock
        self._rng = random.Random(seed)
        self._volatility = volatility
        self.listener: MarketListener = _Silent()
        self.bid = start_price.quantize(spec.tick_size, rounding=ROUND_DOWN)
        self.ask = self.bid + spec.tick_size
        self.last = self.bid
        self.bid_qty = spec.step_size * 1000
        self.ask_qty = spec.step_size * 1000
        self.book_update_id = 1_000_000
        self._trade_seq = 5_000_000
        self.trades: deque[Trade] = deque(maxlen=tape)
        self.klines = KlineSet(kline_interval_s)
        self.klines.ensure("1m", clock(), self.last)
        self.hold_klines = False
        """While set, trades go into the open klines but none closes (a paused market)."""

    @property
    def mark(self) -> Decimal:
        """The mark price: the last trade (no separate index is emulated)."""
        return self.last

    def next_trade_id(self) -> int:
        """Trade ids are one sequence for the tape and the account's fills, as on Binance."""
        self._trade_seq += 1
        return self._trade_seq

    def marketable(self, side: str, price: Decimal) -> bool:
        """Whether a limit order at ``price`` would trade against the touch at once."""
        return price >= self.ask if side == "BUY" else price <= self.bid

    def jump(self, price: Decimal) -> None:
        """Put the bid at ``price`` (rounded down to the tick) and the ask one tick above."""
        tick = self._spec.tick_size
        self.bid = max(self._spec.min_price, price.quantize(tick, rounding=ROUND_DOWN))
        self.ask = self.bid + tick

    def walk(self, *, move: bool) -> None:
        """One tick: move the touch (when ``move``), refresh its sizes, print a random trade."""
        tick, step = self._spec.tick_size, self._spec.step_size
        if move:
            sigma = float(self.bid * self._volatility / tick)
            ticks = round(self._rng.gauss(0.0, sigma)) if sigma > 0 else 0
            self.bid = max(self._spec.min_price, self.bid + tick * ticks)
            self.ask = self.bid + tick
        least = self._min_steps
        self.bid_qty = step * self._rng.randint(least, max(least, 5000))
        self.ask_qty = step * self._rng.randint(least, max(least, 5000))
        buyer_is_taker = self._rng.random() < 0.5
        qty = step * self._rng.randint(least, max(least, 500))
        price = self.ask if buyer_is_taker else self.bid
        self.print_trade(price, qty, buyer_maker=not buyer_is_taker)
        self.book_update_id += 1

    def print_trade(self, price: Decimal, qty: Decimal, *, buyer_maker: bool) -> Trade:
        """Put a trade on the tape (closing klines whose period ended first, unless held).

        While klines are held, the market's time stands still at the end of the open
        kline: a trade printed then is stamped inside the period of the kline that holds
        it, as every trade of a Binance kline is. Stamped at the wall clock, a steered
        move lay after its kline's close time, and a client that plays history in market
        time (a restarted session's catch-up) saw the bar's close before its trades."""
        now = self._clock()
        if self.hold_klines:
            now = min(now, self.klines.open_until(now))
        else:
            self.roll_klines(now)
        trade = Trade(self.next_trade_id(), price, qty, now, buyer_maker)
        self.trades.append(trade)
        self.last = price
        self.klines.add(trade)
        self.listener.traded(trade)
        return trade

    def roll_klines(self, now: int) -> None:
        for kline in self.klines.roll(now, self.last):
            self.listener.kline_closed(kline, now)

    def ensure_kline(self, interval: str, now: int) -> None:
        self.klines.ensure(interval, now, self.last)
