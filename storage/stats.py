"""Trade statistics from a session's round trips: what a trader judges a strategy by.

The formulas are NautilusTrader's statistics' (checked against its implementations), and
a replay's round trips are the positions its backtest's portfolio closes, PnL for PnL:
win rate over round trips, profit factor (gross profit over gross loss), expectancy
(average win x win rate + average loss x loss rate), Sharpe (mean over sample standard
deviation of daily returns, x sqrt 252) and Sortino (mean x 252 over the root-mean-square
of the negative daily returns x sqrt 252). Daily returns are the balance's, end of UTC
day over the previous end, the first day over the starting balance (NautilusTrader's
analyzer, which starts from the first day's close, leaves that day's return out).
Drawdown is the realized balance's (fills, fees, funding) from its running peak, with
how long the deepest fall lasted (to its recovery, or to the last event). Exposure is the
share of the trading span (first fill to last event) with a position open.

A strategy's statistics are over its own round trips and balance steps, from the
account's starting balance (its drawdown percent and returns are of the account).

Money stays ``Decimal``; so do the ratios (they are computed exactly and rounded only
for display). A statistic that needs what is not there (a loss, two days) is ``None``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from pydantic import ValidationError

from protocol import RecordedSettings
from storage.errors import NoCheckpoint, NoRun, StorageError
from storage.played import session_ledger
from storage.session import latest_trader
from storage.status import open_readonly
from storage.trades import (
    ZERO,
    BalanceStep,
    RoundTrip,
    TradeBook,
    round_trips,
)

PERIODS = 252  # NautilusTrader's annualisation of daily returns
DAY_NS = 86_400 * 1_000_000_000


class Stats(TypedDict):
    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None
    net_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal  # <= 0
    fees: Decimal
    funding: Decimal
    profit_factor: Decimal | None
    expectancy: Decimal | None
    avg_win: Decimal | None
    avg_loss: Decimal | None
    best: Decimal | None
    worst: Decimal | None
    avg_duration_s: float | None
    sharpe: Decimal | None
    sortino: Decimal | None
    max_drawdown: Decimal  # <= 0, money
    max_drawdown_pct: Decimal  # <= 0
    max_drawdown_s: float  # the deepest fall's: peak to recovery, or to the last event
    exposure_pct: Decimal
    capital: Decimal  # what its returns and drawdown % are of: a strategy's own capital
    return_pct: Decimal  # what its fills, fees and funding made of that capital


class DayRow(TypedDict):
    day: str  # UTC date
    trades: int  # round trips closed that day
    wins: int
    pnl: Decimal  # the balance's change that day (fills, fees, funding)
    fees: Decimal  # of the round trips closed that day (as trades and wins are)
    funding: Decimal  # likewise
    balance: Decimal  # at the day's end
    return_pct: Decimal


class TripRow(TypedDict):
    strategy_id: str
    instrument_id: str
    direction: str
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    opened_at: str
    closed_at: str
    duration_s: float
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    pnl: Decimal
    fills: int


class TradeReport(TypedDict):
    trader_id: str
    currency: str
    starting_balance: Decimal
    balance: Decimal  # the starting balance plus every step: what the fills made of it
    overall: Stats
    strategies: dict[str, Stats]
    days: list[DayRow]
    round_trips: list[TripRow]  # oldest first
    open_positions: list[TripRow]  # still open: as of their last fill, not in the stats


def iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="seconds")


def day_of(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).date().isoformat()


def daily_balances(start: Decimal, steps: Iterable[BalanceStep]) -> list[tuple[str, Decimal]]:
    """The balance at the end of each UTC day from the first step's to the last's (a day
    without a step keeps the previous balance)."""
    ends: dict[int, Decimal] = {}
    balance = start
    for step in sorted(steps, key=lambda s: s.at_ns):
        balance += step.delta
        ends[step.at_ns // DAY_NS] = balance
    if not ends:
        return []
    out: list[tuple[str, Decimal]] = []
    last = start
    for day in range(min(ends), max(ends) + 1):
        last = ends.get(day, last)
        out.append((day_of(day * DAY_NS), last))
    return out


def daily_returns(start: Decimal, balances: Sequence[tuple[str, Decimal]]) -> list[Decimal]:
    previous, out = start, []
    for _, balance in balances:
        out.append(balance / previous - 1 if previous else ZERO)
        previous = balance
    return out


def sharpe(returns: Sequence[Decimal]) -> Decimal | None:
    if len(returns) < 2:
        return None
    mean = sum(returns, ZERO) / len(returns)
    variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (len(returns) - 1)
    if variance == 0:
        return None
    return mean / variance.sqrt() * Decimal(PERIODS).sqrt()


def sortino(returns: Sequence[Decimal]) -> Decimal | None:
    if len(returns) < 2:
        return None
    mean = sum(returns, ZERO) / len(returns)
    downside = (sum((r * r for r in returns if r < 0), ZERO) / len(returns)).sqrt()
    if downside == 0:
        return None
    return mean * PERIODS / (downside * Decimal(PERIODS).sqrt())


def drawdown(start: Decimal, steps: Sequence[BalanceStep]) -> tuple[Decimal, Decimal, float]:
    """The deepest fall of the balance from its running peak (money, percent) and how long
    that fall lasted: from its peak to the balance's return to it, or to the last step
    when it has not returned."""
    ordered = sorted(steps, key=lambda s: s.at_ns)
    balance = peak = start
    peak_ns = ordered[0].at_ns if ordered else 0
    worst, worst_pct, worst_s = ZERO, ZERO, 0.0
    episode = ZERO  # the deepest point of the fall under way (0: at a peak)
    for step in ordered:
        balance += step.delta
        if balance >= peak:
            if episode < 0 and episode == worst:  # the deepest fall is over
                worst_s = (step.at_ns - peak_ns) / 1e9
            peak, peak_ns, episode = balance, step.at_ns, ZERO
            continue
        fall = balance - peak
        episode = min(episode, fall)
        if fall < worst:
            worst, worst_pct = fall, fall / peak * 100 if peak else ZERO
        if episode == worst:  # still under water in the deepest fall: it lasts
            worst_s = (step.at_ns - peak_ns) / 1e9
    return worst, worst_pct, worst_s


def exposure(trips: Iterable[RoundTrip], span: tuple[int, int]) -> Decimal:
    """The share of ``span`` with at least one position open, in percent."""
    begin, end = span
    if end <= begin:
        return ZERO
    covered, reach = 0, begin
    for trip in sorted(trips, key=lambda t: t.opened_ns):
        lo, hi = max(trip.opened_ns, reach), min(trip.closed_ns, end)
        if hi > lo:
            covered += hi - lo
            reach = hi
    return Decimal(covered) * 100 / Decimal(end - begin)


def statistics(
    trips: Sequence[RoundTrip],
    start: Decimal,
    steps: Sequence[BalanceStep],
    open_trips: Sequence[RoundTrip] = (),
) -> Stats:
    """``start``: the capital the returns, the drawdown % and the return are of (the
    account's starting balance overall, a strategy's own capital for its own)."""
    pnls = [t.pnl for t in trips]
    wins = [p for p in pnls if p > 0]
    losses = [p for p in pnls if p <= 0]
    profit, loss = sum(wins, ZERO), sum(losses, ZERO)
    n = len(pnls)
    avg_win = profit / len(wins) if wins else None
    avg_loss = loss / len(losses) if losses else None
    expectancy = (
        (avg_win or ZERO) * len(wins) / n + (avg_loss or ZERO) * len(losses) / n if n else None
    )
    returns = daily_returns(start, daily_balances(start, steps))
    dd, dd_pct, dd_s = drawdown(start, steps)
    times = [s.at_ns for s in steps]
    first_fill = min((t.opened_ns for t in (*trips, *open_trips)), default=0)
    return Stats(
        trades=n,
        wins=len(wins),
        losses=len(losses),
        win_rate=Decimal(len(wins)) / n if n else None,
        net_pnl=sum(pnls, ZERO),
        gross_profit=profit,
        gross_loss=loss,
        fees=sum((t.fees for t in trips), ZERO),
        funding=sum((t.funding for t in trips), ZERO),
        profit_factor=profit / -loss if loss < 0 else None,
        expectancy=expectancy,
        avg_win=avg_win,
        avg_loss=avg_loss,
        best=max(pnls) if pnls else None,
        worst=min(pnls) if pnls else None,
        avg_duration_s=sum(t.duration_s for t in trips) / n if n else None,
        sharpe=sharpe(returns),
        sortino=sortino(returns),
        max_drawdown=dd,
        max_drawdown_pct=dd_pct,
        max_drawdown_s=dd_s,
        exposure_pct=exposure((*trips, *open_trips), (first_fill, max(times, default=0))),
        capital=start,
        return_pct=sum((s.delta for s in steps), ZERO) / start * 100 if start else ZERO,
    )


def trip_row(trip: RoundTrip) -> TripRow:
    return TripRow(
        strategy_id=trip.strategy_id,
        instrument_id=trip.instrument_id,
        direction=trip.direction,
        quantity=trip.quantity,
        entry_price=trip.entry_price,
        exit_price=trip.exit_price,
        opened_at=iso(trip.opened_ns),
        closed_at=iso(trip.closed_ns),
        duration_s=trip.duration_s,
        gross_pnl=trip.gross_pnl,
        fees=trip.fees,
        funding=trip.funding,
        pnl=trip.pnl,
        fills=trip.fills,
    )


def days(book: TradeBook, start: Decimal) -> list[DayRow]:
    per_day: dict[str, list[RoundTrip]] = defaultdict(list)
    for trip in book.closed:
        per_day[day_of(trip.closed_ns)].append(trip)
    moved: dict[str, Decimal] = defaultdict(Decimal)
    for step in book.steps:
        moved[day_of(step.at_ns)] += step.delta
    rows: list[DayRow] = []
    balances = daily_balances(start, book.steps)
    for (day, balance), ret in zip(balances, daily_returns(start, balances), strict=True):
        trips = per_day.get(day, [])
        rows.append(
            DayRow(
                day=day,
                trades=len(trips),
                wins=sum(1 for t in trips if t.pnl > 0),
                pnl=moved.get(day, ZERO),
                fees=sum((t.fees for t in trips), ZERO),
                funding=sum((t.funding for t in trips), ZERO),
                balance=balance,
                return_pct=ret * 100,
            )
        )
    return rows


def trade_report(
    trader_id: str,
    currency: str,
    start: Decimal,
    book: TradeBook,
    capitals: Mapping[str, Decimal] | None = None,
) -> TradeReport:
    """Every statistic of a session's trades: overall, per strategy (on its own capital,
    from ``capitals``; else the account's starting balance), per day."""
    by_strategy: dict[str, list[RoundTrip]] = defaultdict(list)
    for trip in book.closed:
        by_strategy[trip.strategy_id].append(trip)
    strategies: dict[str, Stats] = {}
    names = sorted({*by_strategy, *(t.strategy_id for t in book.still_open)})
    for name in names:
        own_steps = [s for s in book.steps if s.strategy_id == name]
        own_open = [t for t in book.still_open if t.strategy_id == name]
        capital = (capitals or {}).get(name, start)
        strategies[name] = statistics(by_strategy.get(name, []), capital, own_steps, own_open)
    return TradeReport(
        trader_id=trader_id,
        currency=currency,
        starting_balance=start,
        balance=start + sum((s.delta for s in book.steps), ZERO),
        overall=statistics(book.closed, start, book.steps, book.still_open),
        strategies=strategies,
        days=days(book, start),
        round_trips=[trip_row(t) for t in book.closed],
        open_positions=[trip_row(t) for t in book.still_open],
    )


def read_trade_report(path: Path, trader_id: str | None = None) -> TradeReport:
    """The statistics of ``trader_id``'s session (the latest run's trader when None),
    from the fills and funding its ledger holds (``storage.ledger``: retention never
    sweeps it).

    Raises ``NoRun`` when there is no run (of that trader), ``NoCheckpoint`` when a
    testnet session has no checkpoint yet, ``StorageError`` for anything else (no
    database, one SQLite cannot read)."""
    conn = open_readonly(path)
    try:
        return _read(conn, trader_id)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the trades from {path}: {exc}") from exc
    finally:
        conn.close()


def report_of(conn: sqlite3.Connection, trader_id: str | None = None) -> TradeReport:
    """``read_trade_report`` on a connection the caller holds (the dashboard's one)."""
    return _read(conn, trader_id)


def _read(conn: sqlite3.Connection, trader_id: str | None) -> TradeReport:
    try:  # both raise only when there is no run (of that trader)
        ledger = session_ledger(conn, trader_id or latest_trader(conn))
    except StorageError as exc:
        raise NoRun(str(exc)) from None
    book = round_trips(ledger.records)
    currency, start = _start(ledger.first, ledger.checkpoint, book)
    return trade_report(ledger.trader_id, currency, start, book, _capitals(ledger.checkpoint))


def _capitals(checkpoint: sqlite3.Row | None) -> dict[str, Decimal]:
    """Each strategy's own capital, as the node counted it (the last checkpoint's)."""
    if checkpoint is None:
        return {}
    views = json.loads(str(checkpoint["snapshot"])).get("strategies") or []
    return {
        str(v["strategy_id"]): Decimal(str(v["capital"]))
        for v in views
        if v.get("capital") is not None and Decimal(str(v["capital"])) > 0
    }


def _start(
    first: sqlite3.Row, checkpoint: sqlite3.Row | None, book: TradeBook
) -> tuple[str, Decimal]:
    """The starting balance: the paper account's from the first run's settings; on the
    testnet (the venue's own balance) the last checkpoint's less what the trades moved."""
    if str(first["mode"]) != "binance-testnet" and first["settings"] is not None:
        try:
            account = RecordedSettings.model_validate_json(str(first["settings"])).config.account
        except ValidationError:
            pass
        else:
            return account.currency, account.starting_balance
    if checkpoint is None:
        raise NoCheckpoint("the session has no checkpoint yet: no balance to start from")
    moved = sum((s.delta for s in book.steps), ZERO)
    return str(checkpoint["currency"]), Decimal(str(checkpoint["balance"])) - moved
