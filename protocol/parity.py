"""What a parity report sets side by side: a session's trades and result, and a backtest's.

Both sides are the same types, so the comparison cannot favour one: the session's come
from the database (``storage.parity``), the backtest's from ``BacktestEngine``
(``node.backtest``). Money is ``Decimal`` throughout, compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Trade:
    """One fill: the bar it happened in (the index into the replayed series), its side,
    quantity, price and commission."""

    bar: int
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal


@dataclass(frozen=True, slots=True)
class HaltAt:
    """A halt during a run: the step it fell on (None: not known, an older record),
    whose (None: the account's), why, and who made it - ``market`` for the breakers a
    replay's node judges on market time, which its backtest judges alike."""

    bar: int | None
    reason: str
    strategy_id: str | None = None
    source: str = ""

    @property
    def reproducible(self) -> bool:
        """Made by the market-time breakers: a backtest of the same bars halts there too."""
        return self.source == MARKET


MARKET = "market"


@dataclass(frozen=True, slots=True)
class BarMark:
    """A bar given to the strategy: its close time (epoch ns) and close price. A
    backtest's, so both sides of a parity report can be valued at the same prices."""

    ts_ns: int
    close: Decimal


@dataclass(frozen=True, slots=True)
class Outcome:
    """A run's trades over bars ``[0, bars)`` and where it ended."""

    trades: tuple[Trade, ...]
    realized_pnl: Decimal
    fees: Decimal
    balance: Decimal
    currency: str
    bars: int
    elapsed_s: float = 0.0
    # Each closed position's realized PnL as NautilusTrader's portfolio has it (a
    # backtest's; in closing order): trade statistics are checked against these.
    closed_pnls: tuple[Decimal, ...] = ()
    halts: tuple[HaltAt, ...] = ()  # the breakers' halts, in order
    marks: tuple[BarMark, ...] = ()  # a backtest's bars as given, in order (() a session's)
