"""Read-only status queries: the contract a CLI, a dashboard or a job manager reads.

Readers open the file read-only, so they never block the service's writer (WAL)
and can never change it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from storage.errors import SchemaError, StorageError
from storage.schema import check_version


class PositionRow(TypedDict):
    position_id: str
    instrument_id: str
    side: str
    quantity: str
    avg_px_open: str
    realized_pnl: str
    unrealized_pnl: str


class CatchUpRow(TypedDict):
    """A restart's catch-up (``protocol.CaughtUp``): the market span it played, what it
    played, how long it took, and the gap it left (seconds of market; why)."""

    at: str
    mode: str
    from_ns: int
    to_ns: int
    trades: int
    bars: int
    fills: int
    settlements: int
    took_s: float
    gap_s: float
    failure: str
    warmed_bars: int


class StrategyRow(TypedDict):
    """One strategy's share of the account (``protocol.StrategyView``), from the latest
    checkpoint; the report's top-level figures stay the account's totals."""

    strategy_id: str
    positions: int
    open_orders: int
    fills: int
    realized_pnl: str
    unrealized_pnl: str
    fees: str
    trading_state: str  # its own: HALTED when halted on its own, whatever the account's
    halt_reason: str
    funding: str  # what its positions paid (< 0) or received at funding settlements
    capital: str | None  # its own capital (None: a checkpoint from before capitals)
    equity: str | None  # capital + realized + unrealized + funding
    return_on_capital: str | None  # (equity - capital) / capital, a fraction


class StatusReport(TypedDict):
    state: str
    mode: str
    trader_id: str
    run_id: int
    pid: int
    started_at: str
    stopped_at: str | None
    heartbeat_at: str | None
    heartbeat_age_s: float | None
    last_checkpoint_at: str | None
    checkpoints: int
    trading_state: str | None
    currency: str | None
    balance: str | None
    equity: str | None
    realized_pnl: str | None
    unrealized_pnl: str | None
    open_orders: int
    positions: list[PositionRow]
    fills: int
    rejects: int
    replay_cursor: int | None
    replay_total: int | None
    data_age_s: float | None
    strategies: list[StrategyRow]
    funding: str | None  # the account's funding so far (already in the balance)
    # (equity - starting balance) / starting balance, a fraction; None on a venue's
    # account (binance-testnet: its balance is the venue's, not a starting balance's)
    account_return: str | None
    catch_ups: list[CatchUpRow]  # the last restarts' catch-ups, newest first
    gaps: int  # catch-ups that left part of the missed market unplayed, ever


def open_readonly(path: Path) -> sqlite3.Connection:
    """Open for reading only; a database written by a newer service is refused."""
    if not path.is_file():
        raise StorageError(f"no database at {path} (has the service run with this --db?)")
    try:
        # A URI, escaped: a '#' or '?' in the path would end it, dropping mode=ro and
        # opening (creating) another file read-write.
        uri = f"{path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=5.0)
        conn.row_factory = sqlite3.Row
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        conn.execute("SELECT 1 FROM runs LIMIT 1")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read database {path}: {exc}") from exc
    try:
        check_version(version, path)
    except SchemaError:
        conn.close()
        raise
    return conn


def _column(row: sqlite3.Row, name: str) -> float | None:
    """A numeric column a database of an older schema may not have yet (``None`` then)."""
    try:
        value = row[name]
    except IndexError:
        return None
    return None if value is None else float(value)


def _event_count(conn: sqlite3.Connection, trader_id: str, kind: str) -> int:
    """The total of ``kind`` events ever logged (the events themselves are retained for
    a while only); a database not yet migrated to the totals table counts its rows."""
    try:
        row = conn.execute(
            "SELECT n FROM event_counts WHERE trader_id = ? AND kind = ?", [trader_id, kind]
        ).fetchone()
    except sqlite3.OperationalError:
        row = conn.execute(
            "SELECT count(*) FROM events WHERE trader_id = ? AND kind = ?", [trader_id, kind]
        ).fetchone()
    return 0 if row is None else int(row[0])


def _read[T](path: Path, what: str, read: Callable[[sqlite3.Connection], T]) -> T:
    """``read`` on a read-only connection to ``path``; a database error names ``what``."""
    conn = open_readonly(path)
    try:
        return read(conn)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read {what} from {path}: {exc}") from exc
    finally:
        conn.close()


def read_status(path: Path, trader_id: str | None, stale_after_s: float) -> StatusReport | None:
    return _read(path, "status", lambda conn: status_of(conn, trader_id, stale_after_s))


def status_of(
    conn: sqlite3.Connection, trader_id: str | None, stale_after_s: float
) -> StatusReport | None:
    """The status of ``trader_id`` (of the latest run when None); ``conn`` yields ``Row``."""
    if trader_id is None:
        run = conn.execute("SELECT * FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    else:
        run = conn.execute(
            "SELECT * FROM runs WHERE trader_id = ? ORDER BY id DESC LIMIT 1", [trader_id]
        ).fetchone()
    if run is None:
        return None
    tid = str(run["trader_id"])
    beat = conn.execute("SELECT * FROM heartbeat WHERE trader_id = ?", [tid]).fetchone()
    cp = conn.execute(
        "SELECT * FROM checkpoints WHERE trader_id = ? ORDER BY id DESC LIMIT 1", [tid]
    ).fetchone()
    n_checkpoints = conn.execute(
        "SELECT count(*) FROM checkpoints WHERE trader_id = ?", [tid]
    ).fetchone()[0]
    fills = _event_count(conn, tid, "fill")
    rejects = _event_count(conn, tid, "reject")

    now = time.time()
    age = None if beat is None else max(0.0, now - float(beat["at_epoch"]))
    data_at = None if beat is None else _column(beat, "data_at_epoch")
    data_age = None if data_at is None else round(max(0.0, now - data_at), 3)
    if run["stopped_at"] is not None:
        state = "stopped"
    elif beat is None or beat["run_id"] != run["id"] or (age is not None and age > stale_after_s):
        state = "not_running"
    else:
        state = str(beat["state"])

    positions: list[PositionRow] = []
    strategies: list[StrategyRow] = []
    funding: str | None = None
    replay_total: int | None = None
    if cp is not None:
        snapshot = json.loads(cp["snapshot"])
        strategies = _strategy_rows(snapshot)
        funding = str(snapshot.get("funding", "0"))
        replay_total = int(snapshot.get("replay_total", 0)) or None
        positions = [
            PositionRow(
                position_id=str(p["position_id"]),
                instrument_id=str(p["instrument_id"]),
                side=str(p["side"]),
                quantity=str(p["quantity"]),
                avg_px_open=str(p["avg_px_open"]),
                realized_pnl=str(p["realized_pnl"]),
                unrealized_pnl=str(p["unrealized_pnl"]),
            )
            for p in snapshot["positions"]
        ]

    def col(name: str) -> str | None:
        return None if cp is None else str(cp[name])

    return StatusReport(
        state=state,
        mode=str(run["mode"]),
        trader_id=tid,
        run_id=int(run["id"]),
        pid=int(run["pid"]),
        started_at=str(run["started_at"]),
        stopped_at=run["stopped_at"],
        heartbeat_at=None if beat is None else str(beat["at"]),
        heartbeat_age_s=None if age is None else round(age, 3),
        last_checkpoint_at=col("saved_at"),
        checkpoints=int(n_checkpoints),
        trading_state=col("trading_state"),
        currency=col("currency"),
        balance=col("balance"),
        equity=col("equity"),
        realized_pnl=col("realized_pnl"),
        unrealized_pnl=col("unrealized_pnl"),
        open_orders=0 if cp is None else int(cp["open_orders"]),
        positions=positions,
        fills=int(fills),
        rejects=int(rejects),
        replay_cursor=None if cp is None else int(cp["replay_cursor"]),
        replay_total=replay_total,
        data_age_s=data_age,
        funding=funding,
        strategies=strategies,
        account_return=_account_return(run, col("equity")),
        catch_ups=catch_ups_of(conn, tid),
        gaps=_event_count(conn, tid, "gap"),
    )


CATCH_UPS_SHOWN = 5


def read_catch_ups(path: Path, trader_id: str, limit: int = 100) -> list[CatchUpRow]:
    """The catch-ups of ``trader_id``'s restarts, newest first."""
    return _read(path, "catch-ups", lambda conn: catch_ups_of(conn, trader_id, limit))


def span(seconds: float) -> str:
    """A span of market time in words: 45 s, 12 min, 3.5 h."""
    if seconds < 120:
        return f"{max(0.0, seconds):.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def catch_up_text(c: CatchUpRow) -> str:
    """A restart's catch-up in a line: what it played, in how long, and any gap left."""
    played_s = max(0, c["to_ns"] - c["from_ns"]) / 1e9 - c["gap_s"]
    line = (
        f"{c['at']}: {span(played_s)} of market played in {c['took_s']:.1f} s "
        f"({c['trades']} trades, {c['bars']} bars, {c['fills']} fills, "
        f"{c['settlements']} funding settlements; {c['warmed_bars']} warm-up bars)"
    )
    if c["gap_s"] > 0 or c["failure"]:
        why = c["failure"] or "longer than catch_up_max"
        line += f"; GAP of {span(c['gap_s'])} not played ({why})"
    return line


def catch_ups_of(
    conn: sqlite3.Connection, trader_id: str, limit: int = CATCH_UPS_SHOWN
) -> list[CatchUpRow]:
    """The last ``limit`` catch-ups of ``trader_id``, newest first."""
    rows = conn.execute(
        "SELECT at, payload FROM events WHERE trader_id = ? AND kind = 'catch_up' "
        "ORDER BY id DESC LIMIT ?",
        [trader_id, limit],
    ).fetchall()
    found: list[CatchUpRow] = []
    for row in rows:
        p = json.loads(row["payload"])
        found.append(
            CatchUpRow(
                at=str(row["at"]),
                mode=str(p.get("mode", "")),
                from_ns=int(p.get("from_ns", 0)),
                to_ns=int(p.get("to_ns", 0)),
                trades=int(p.get("trades", 0)),
                bars=int(p.get("bars", 0)),
                fills=int(p.get("fills", 0)),
                settlements=int(p.get("settlements", 0)),
                took_s=float(p.get("took_s", 0.0)),
                gap_s=int(p.get("skipped_ns", 0)) / 1e9,
                failure=str(p.get("failure", "")),
                warmed_bars=int(p.get("warmed_bars", 0)),
            )
        )
    return found


def _account_return(run: sqlite3.Row, equity: str | None) -> str | None:
    """The account's equity's gain on the starting balance the run recorded."""
    if equity is None or run["mode"] == "binance-testnet" or run["settings"] is None:
        return None
    try:
        account = json.loads(str(run["settings"]))["config"]["account"]
        start = Decimal(str(account["starting_balance"]))
    except (KeyError, TypeError, ValueError, ArithmeticError):
        return None
    return str((Decimal(equity) - start) / start) if start > 0 else None


def _return(view: dict[str, object]) -> tuple[str | None, str | None, str | None]:
    """A strategy's capital, equity and return on that capital (checkpoints from before
    capitals have none)."""
    capital, equity = view.get("capital"), view.get("equity")
    if capital is None or equity is None:
        return None, None, None
    c, e = Decimal(str(capital)), Decimal(str(equity))
    return str(c), str(e), str((e - c) / c) if c > 0 else None


def _strategy_rows(snapshot: dict[str, object]) -> list[StrategyRow]:
    views, positions, orders = (
        snapshot.get("strategies") or [],
        snapshot.get("positions") or [],
        snapshot.get("open_orders") or [],
    )
    assert isinstance(views, list) and isinstance(positions, list) and isinstance(orders, list)
    return [
        StrategyRow(
            strategy_id=str(v["strategy_id"]),
            positions=sum(1 for p in positions if p.get("strategy_id") == v["strategy_id"]),
            open_orders=sum(1 for o in orders if o.get("strategy_id") == v["strategy_id"]),
            fills=int(v["fills"]),
            realized_pnl=str(v["realized_pnl"]),
            unrealized_pnl=str(v["unrealized_pnl"]),
            fees=str(v["fees"]),
            trading_state=str(v.get("trading_state") or "ACTIVE"),
            halt_reason=str(v.get("halt_reason") or ""),
            funding=str(v.get("funding", "0")),
            capital=_return(v)[0],
            equity=_return(v)[1],
            return_on_capital=_return(v)[2],
        )
        for v in views
    ]


class EventRow(TypedDict):
    id: int
    run_id: int
    at: str
    kind: str
    payload: dict[str, object]


def read_events(path: Path, trader_id: str | None, tail: int) -> list[EventRow]:
    """The last ``tail`` events, oldest first (of the latest run's trader by default)."""

    def read(conn: sqlite3.Connection) -> list[EventRow]:
        trader = trader_id
        if trader is None:
            run = conn.execute("SELECT trader_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
            if run is None:
                return []
            trader = str(run["trader_id"])
        return events_of(conn, trader, tail)

    return _read(path, "events", read)


def events_of(conn: sqlite3.Connection, trader_id: str, tail: int) -> list[EventRow]:
    """The last ``tail`` events of ``trader_id``, oldest first (``conn`` yields ``Row``)."""
    rows = conn.execute(
        "SELECT * FROM (SELECT * FROM events WHERE trader_id = ? ORDER BY id DESC LIMIT ?) "
        "ORDER BY id",
        [trader_id, tail],
    ).fetchall()
    return [
        EventRow(
            id=int(r["id"]),
            run_id=int(r["run_id"]),
            at=str(r["at"]),
            kind=str(r["kind"]),
            payload=json.loads(r["payload"]),
        )
        for r in rows
    ]
