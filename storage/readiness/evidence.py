"""What a paper session shows of each strategy, read for the readiness verdict.

The returns are the trade statistics' (``storage.stats``): a strategy's balance at each
UTC day's end over its own capital, and each round trip's PnL over that capital - the
units a research pipeline registers its backtest's series in. The execution and
operations figures come from the ledger (fills, node starts, trading states: kept past
retention) and the event log (rejects, reconciliation differences, and the ``gap`` /
``catch_up`` events of a live session's downtime where the service writes them: an
older database has none, and counts zero). Whether open positions had their stops comes
from the checkpoints (``stops``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from protocol import RegisteredStrategy
from storage.errors import NoRun, StorageError
from storage.played import session_ledger
from storage.readiness.stops import StopCoverage, coverage, read_snapshots
from storage.registry import parse_registered
from storage.session import latest_trader, session_start
from storage.stats import _capitals, _start, daily_balances, daily_returns
from storage.trades import ZERO, Fill, round_trips

# Halts an operator asked for are decisions, not faults; the gate re-applies a halt
# after a restart (counted once, where it began).
OPERATOR_SOURCES = frozenset({"operator", "telegram", "dashboard", "gate"})


@dataclass(frozen=True, slots=True)
class FillRow:
    instrument_id: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    bar: int | None


@dataclass(frozen=True, slots=True)
class PaperEvidence:
    """One strategy's paper record."""

    strategy_id: str
    capital: Decimal
    days: tuple[str, ...]  # the UTC days of ``daily_returns``
    daily_returns: tuple[float, ...]
    trade_returns: tuple[float, ...]  # each closed round trip's PnL over the capital
    fills: tuple[FillRow, ...]
    orders: int  # orders that filled, plus those rejected or denied
    rejected: int  # by the venue
    denied: int  # by the RiskEngine
    fees: Decimal  # > 0: paid
    funding: Decimal  # < 0: paid
    halts: tuple[str, ...]  # "reason (source)" of each halt not asked for by an operator
    stops: StopCoverage  # its open positions' stops, as the checkpoints saw them


@dataclass(frozen=True, slots=True)
class SessionOps:
    """What the whole session went through (every strategy shares it)."""

    trader_id: str
    mode: str
    restarts: int  # node starts after the first
    gaps: int
    catch_ups: int
    reconcile_differences: int


@dataclass(frozen=True, slots=True)
class SessionEvidence:
    ops: SessionOps
    strategies: tuple[PaperEvidence, ...]
    registered: RegisteredStrategy | None  # the entry a launched session ran (jobs table)


def read_evidence(conn: sqlite3.Connection, trader_id: str | None = None) -> SessionEvidence:
    """The session of ``trader_id`` (the latest run's when None); ``NoRun`` without one."""
    try:
        trader = trader_id or latest_trader(conn)
        ledger = session_ledger(conn, trader)
        first_run = session_start(conn, trader)
    except StorageError as exc:
        raise NoRun(str(exc)) from None
    book = round_trips(ledger.records)
    _, start = _start(ledger.first, ledger.checkpoint, book)
    capitals = _capitals(ledger.checkpoint)
    fills = [r for r in ledger.records if isinstance(r, Fill)]
    names = sorted(
        {t.strategy_id for t in (*book.closed, *book.still_open)} | {f.strategy_id for f in fills}
    )
    rejects = _events(conn, trader, first_run, "reject")
    halts = _halts(conn, trader, first_run)
    snapshots = read_snapshots(conn, trader, first_run)
    strategies: list[PaperEvidence] = []
    for name in names:
        capital = capitals.get(name, start)
        steps = [s for s in book.steps if s.strategy_id == name]
        balances = daily_balances(capital, steps)
        own_fills = [f for f in fills if f.strategy_id == name]
        own_rejects = [p for p in rejects if p.get("strategy_id") in (name, "", None)]
        denied = sum(1 for p in own_rejects if p.get("denied"))
        trips = [t for t in book.closed if t.strategy_id == name]
        filled_orders = conn.execute(
            "SELECT count(DISTINCT client_order_id) FROM ledger WHERE trader_id = ? "
            "AND run_id >= ? AND kind = 'fill' AND strategy_id = ?",
            [trader, first_run, name],
        ).fetchone()[0]
        strategies.append(
            PaperEvidence(
                strategy_id=name,
                capital=capital,
                days=tuple(day for day, _ in balances),
                daily_returns=tuple(float(r) for r in daily_returns(capital, balances)),
                trade_returns=tuple(float(t.pnl / capital) for t in trips if capital),
                fills=tuple(
                    FillRow(f.instrument_id, f.side, f.quantity, f.price, f.commission, f.bar)
                    for f in own_fills
                ),
                orders=int(filled_orders) + len(own_rejects),
                rejected=len(own_rejects) - denied,
                denied=denied,
                fees=sum((f.commission for f in own_fills), ZERO),
                funding=sum((t.funding for t in trips), ZERO),
                halts=tuple(h for sid, h in halts if sid in (name, None)),
                stops=coverage(snapshots, name, len(names) == 1),
            )
        )
    node_starts = conn.execute(
        "SELECT count(*) FROM ledger WHERE trader_id = ? AND run_id >= ? AND kind = 'node_started'",
        [trader, first_run],
    ).fetchone()[0]
    ops = SessionOps(
        trader_id=trader,
        mode=str(ledger.last["mode"]),
        restarts=max(int(node_starts) - 1, 0),
        gaps=len(_events(conn, trader, first_run, "gap")),
        catch_ups=len(_events(conn, trader, first_run, "catch_up")),
        reconcile_differences=sum(
            max(len(_list(p.get("differences"))), 1)
            for p in _events(conn, trader, first_run, "reconcile_diff")
        ),
    )
    return SessionEvidence(ops, tuple(strategies), _launched_from(conn, trader))


def _launched_from(conn: sqlite3.Connection, trader: str) -> RegisteredStrategy | None:
    """The registry entry the dashboard launched this session from, as it was then."""
    row = conn.execute(
        "SELECT registered FROM jobs WHERE trader_id = ? ORDER BY id DESC LIMIT 1", [trader]
    ).fetchone()
    if row is None or row["registered"] is None:
        return None
    return parse_registered(str(row["registered"]), f"the registered strategy of {trader}")


def _list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _events(
    conn: sqlite3.Connection, trader: str, first_run: int, kind: str
) -> list[Mapping[str, object]]:
    rows = conn.execute(
        "SELECT payload FROM events WHERE trader_id = ? AND run_id >= ? AND kind = ? ORDER BY id",
        [trader, first_run, kind],
    ).fetchall()
    out: list[Mapping[str, object]] = []
    for row in rows:
        try:
            payload = json.loads(str(row["payload"]))
        except json.JSONDecodeError:
            continue
        out.append(payload if isinstance(payload, dict) else {})
    return out


def _halts(conn: sqlite3.Connection, trader: str, first_run: int) -> list[tuple[str | None, str]]:
    """(strategy id or None for the account's, "reason (source)") of each halt that no
    operator asked for."""
    rows = conn.execute(
        "SELECT strategy_id, reason, source FROM ledger WHERE trader_id = ? AND run_id >= ? "
        "AND kind = 'trading_state' AND state IN ('HALTED', 'REDUCING') ORDER BY id",
        [trader, first_run],
    ).fetchall()
    out: list[tuple[str | None, str]] = []
    for row in rows:
        source = str(row["source"] or "")
        if source in OPERATOR_SOURCES:
            continue
        sid = None if row["strategy_id"] in (None, "") else str(row["strategy_id"])
        out.append((sid, f"{row['reason']} ({source or 'unknown source'})"))
    return out
