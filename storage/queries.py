"""Read-only queries behind the dashboard: sessions, equity curves, orders, alerts.

Every function takes an open connection whose rows are ``sqlite3.Row`` and only
reads; in WAL mode such reads never wait for the service's writers. Money stays
``Decimal`` here; rounding is the page's business.
"""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from typing import TypedDict

from protocol import OrderView
from storage.codec import snapshot_from_json
from storage.status import StatusReport, status_of


class EquityPoint(TypedDict):
    at: str
    equity: Decimal
    peak: Decimal
    drawdown_pct: Decimal  # <= 0: how far below the running peak, in percent


class AlertRow(TypedDict):
    id: int
    created_at: str
    severity: str
    title: str
    text: str
    status: str
    attempts: int
    delivered_at: str | None
    delivered_chats: str


class ControlRow(TypedDict):
    id: int
    command: str
    reason: str
    requested_at: str
    status: str
    result: str | None
    acked_at: str | None


def sessions(conn: sqlite3.Connection, stale_after_s: float) -> list[StatusReport]:
    """Every trader that ever ran here, newest first, with its latest run's status."""
    rows = conn.execute(
        "SELECT trader_id FROM runs GROUP BY trader_id ORDER BY max(id) DESC"
    ).fetchall()
    found = (status_of(conn, str(r["trader_id"]), stale_after_s) for r in rows)
    return [s for s in found if s is not None]


def equity_curve(
    conn: sqlite3.Connection, trader_id: str, limit: int = 20_000
) -> list[EquityPoint]:
    """Equity at each kept checkpoint, oldest first, with the drawdown from its running peak.

    Retention thins old checkpoints to one an hour and then one a day, so the far past
    of a long session is coarser than its last hours - exactly what a curve needs.
    """
    rows = conn.execute(
        "SELECT taken_at, equity FROM (SELECT id, taken_at, equity FROM checkpoints "
        "WHERE trader_id = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
        [trader_id, limit],
    ).fetchall()
    points: list[EquityPoint] = []
    peak: Decimal | None = None
    for r in rows:
        equity = Decimal(str(r["equity"]))
        peak = equity if peak is None or equity > peak else peak
        drawdown = (equity - peak) / peak * 100 if peak > 0 else Decimal(0)
        points.append(
            EquityPoint(at=str(r["taken_at"]), equity=equity, peak=peak, drawdown_pct=drawdown)
        )
    return points


def open_orders(conn: sqlite3.Connection, trader_id: str) -> list[OrderView]:
    """The strategy's open orders as of the latest checkpoint."""
    row = conn.execute(
        "SELECT snapshot FROM checkpoints WHERE trader_id = ? ORDER BY id DESC LIMIT 1",
        [trader_id],
    ).fetchone()
    return [] if row is None else list(snapshot_from_json(str(row["snapshot"])).open_orders)


def alerts(conn: sqlite3.Connection, trader_id: str, limit: int = 200) -> list[AlertRow]:
    """The latest alerts, newest first, with their Telegram delivery status."""
    rows = conn.execute(
        "SELECT id, created_at, severity, title, text, status, attempts, delivered_at, "
        "delivered_chats FROM alert_outbox WHERE trader_id = ? ORDER BY id DESC LIMIT ?",
        [trader_id, limit],
    ).fetchall()
    return [
        AlertRow(
            id=int(r["id"]),
            created_at=str(r["created_at"]),
            severity=str(r["severity"]),
            title=str(r["title"]),
            text=str(r["text"]),
            status=str(r["status"]),
            attempts=int(r["attempts"]),
            delivered_at=None if r["delivered_at"] is None else str(r["delivered_at"]),
            delivered_chats=str(r["delivered_chats"]),
        )
        for r in rows
    ]


def control_history(conn: sqlite3.Connection, trader_id: str, limit: int = 20) -> list[ControlRow]:
    """The latest operator commands for ``trader_id`` and what became of them."""
    rows = conn.execute(
        "SELECT id, command, reason, requested_at, status, result, acked_at FROM control "
        "WHERE trader_id = ? ORDER BY id DESC LIMIT ?",
        [trader_id, limit],
    ).fetchall()
    return [
        ControlRow(
            id=int(r["id"]),
            command=str(r["command"]),
            reason=str(r["reason"]),
            requested_at=str(r["requested_at"]),
            status=str(r["status"]),
            result=None if r["result"] is None else str(r["result"]),
            acked_at=None if r["acked_at"] is None else str(r["acked_at"]),
        )
        for r in rows
    ]
