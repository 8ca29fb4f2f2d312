"""The same market, the same fills: a live-feed session beside the backtest of the data
it recorded (``paper-node report parity``'s two outcomes), as QuantConnect reconciles
live against out-of-sample backtests.

Both equity curves are valued at the same prices, the backtest's bars: after each bar,
the starting balance plus every fill's cash flow so far (a fill's bar is the count of
bars given to the strategy before it, on both sides alike) plus the position at that
bar's close. Sampled at each UTC day's last bar, they give two daily-return series of
the same days: their Pearson correlation and annualized DTW distance
(``stats.returns_correlation``, ``stats.annualized_dtw``). The figures are the
account's: with several strategies in a session, every strategy is shown them.

Fills are matched in order: each session fill with the first unmatched backtest fill of
the same side within ``MATCH_BARS`` bars of it. The match rate is the matched pairs over
the larger side's fills (a fill either side has alone lowers it); each pair's price
difference is in bps of the backtest's price, > 0 when the session's is worse for its
side.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from protocol import BarMark, Outcome, Trade
from storage.readiness import stats

MATCH_BARS = 1  # a live fill may land one bar off the backtest's (its data arrived later)
BPS = 10_000


@dataclass(frozen=True, slots=True)
class MarketParity:
    days: int  # daily returns compared
    correlation: float | None  # None: fewer than 2 days, or a side that does not vary
    dtw: float | None  # annualized; None without days
    session_fills: int
    backtest_fills: int
    matched: int
    median_price_bps: float | None  # None: no pair matched

    @property
    def match_rate(self) -> float | None:
        larger = max(self.session_fills, self.backtest_fills)
        return None if not larger else self.matched / larger


def equity_curve(
    trades: Sequence[Trade], marks: Sequence[BarMark], start: Decimal
) -> list[tuple[int, Decimal]]:
    """(bar close time, equity) after each bar: ``start`` plus the fills' cash flows
    (fees paid) up to that bar, plus the position at its close. One instrument."""
    ordered = sorted(trades, key=lambda t: t.bar)
    cash, position, i = start, Decimal(0), 0
    out: list[tuple[int, Decimal]] = []
    for count, mark in enumerate(marks, start=1):
        while i < len(ordered) and ordered[i].bar <= count:
            t = ordered[i]
            sign = 1 if t.side == "BUY" else -1
            position += sign * t.quantity
            cash -= sign * t.quantity * t.price + t.commission
            i += 1
        out.append((mark.ts_ns, cash + position * mark.close))
    return out


def _day(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).date().isoformat()


def daily_returns(curve: Sequence[tuple[int, Decimal]], start: Decimal) -> list[float]:
    """Each UTC day's return, from its last bar's equity over the day before's (the first
    over ``start``)."""
    closes: dict[str, Decimal] = {}
    for ts, equity in curve:
        closes[_day(ts)] = equity
    out, previous = [], start
    for equity in closes.values():
        out.append(float((equity - previous) / previous) if previous else 0.0)
        previous = equity
    return out


def match_fills(session: Sequence[Trade], backtest: Sequence[Trade]) -> list[tuple[Trade, Trade]]:
    pairs: list[tuple[Trade, Trade]] = []
    used = [False] * len(backtest)
    for ours in session:
        for j, theirs in enumerate(backtest):
            if (
                not used[j]
                and theirs.side == ours.side
                and abs(theirs.bar - ours.bar) <= MATCH_BARS
            ):
                used[j] = True
                pairs.append((ours, theirs))
                break
    return pairs


def price_bps(ours: Trade, theirs: Trade) -> float:
    """The session's price against the backtest's, bps; > 0: worse for its side."""
    sign = 1 if ours.side == "BUY" else -1
    return float(sign * (ours.price - theirs.price) / theirs.price * BPS)


def market_parity(
    session: Outcome, backtest: Outcome, start: Decimal, from_bar: int = 0
) -> MarketParity:
    """The figures of a session beside its backtest; ``start``: the account's starting
    balance; fills before ``from_bar`` (swept by retention) are not matched."""
    marks = backtest.marks
    ours = [t for t in session.trades if t.bar >= from_bar]
    theirs = [t for t in backtest.trades if t.bar >= from_bar]
    paper = daily_returns(equity_curve(session.trades, marks, start), start)
    tested = daily_returns(equity_curve(backtest.trades, marks, start), start)
    pairs = match_fills(ours, theirs)
    return MarketParity(
        days=len(paper),
        correlation=stats.returns_correlation(paper, tested),
        dtw=stats.annualized_dtw(paper, tested) if paper else None,
        session_fills=len(ours),
        backtest_fills=len(theirs),
        matched=len(pairs),
        median_price_bps=statistics.median(price_bps(a, b) for a, b in pairs) if pairs else None,
    )
