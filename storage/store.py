"""The service database: one SQLite file in WAL mode, written through sqlite-utils.

Each actor that writes owns its own ``Store`` (SQLite connections belong to one
thread). A checkpoint is one transaction: the summary row, the full snapshot and
the retention trim commit together or not at all. Every failure surfaces as a
``StorageError`` with the path and the SQLite reason, so the owning actor can
report it instead of losing it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlite_utils
import tenacity

from protocol import Alert, ServiceSettings, Snapshot
from storage import ledger
from storage.codec import snapshot_from_json, to_json
from storage.errors import StorageError
from storage.schema import migrate
from storage.txn import write_transaction


def retention_bound(retention: ServiceSettings) -> int:
    """At most this many checkpoint rows per trader, however long the service runs: the
    last ``keep_checkpoints``, the first of every hour for ``keep_hourly_h`` hours and of
    every day for ``keep_daily_d`` days (``protocol.ServiceSettings``, where the other
    tables' retention is declared too)."""
    return retention.keep_checkpoints + retention.keep_hourly_h + retention.keep_daily_d + 2


DEFAULT_RETENTION = ServiceSettings()
# A checkpoint's row and an event's, each one prepared statement: sqlite-utils' insert
# looks the table's columns up and builds its query on every call, ~0.1 ms of a 0.3 ms
# checkpoint write, and a fill arriving meanwhile waits in the checkpointer's mailbox.
_INSERT_CHECKPOINT = (
    "INSERT INTO checkpoints (run_id, trader_id, taken_at, saved_at, final, trading_state,"
    " currency, balance, equity, realized_pnl, unrealized_pnl, open_orders, positions,"
    " replay_cursor, snapshot) VALUES (:run_id, :trader_id, :taken_at, :saved_at, :final,"
    " :trading_state, :currency, :balance, :equity, :realized_pnl, :unrealized_pnl,"
    " :open_orders, :positions, :replay_cursor, :snapshot)"
)
_INSERT_EVENT = "INSERT INTO events (run_id, trader_id, at, kind, payload) VALUES (?, ?, ?, ?, ?)"
# The gate's records, one prepared upsert each: sqlite-utils' Table.upsert read the
# table's schema and built its SQL on every call, ~0.15 ms of Python holding the GIL
# right after the gate forwarded a halt - while the node actor waited for it to send it.
_UPSERT_GATE = (
    "INSERT INTO trading_gate (trader_id, state, reason, source, at, mode) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (trader_id) DO UPDATE SET state = excluded.state, "
    "reason = excluded.reason, source = excluded.source, at = excluded.at, mode = excluded.mode"
)
_UPSERT_STRATEGY_GATE = (
    "INSERT INTO strategy_gate (trader_id, strategy_id, state, reason, source, at) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (trader_id, strategy_id) DO UPDATE SET "
    "state = excluded.state, reason = excluded.reason, source = excluded.source, "
    "at = excluded.at"
)
_KEEP_FIRST_OF_HOUR = (
    " AND id NOT IN (SELECT min(id) FROM checkpoints WHERE trader_id = :t"
    " AND taken_at > :hour_cutoff GROUP BY substr(taken_at, 1, 13))"
)
_KEEP_FIRST_OF_DAY = (
    " AND id NOT IN (SELECT min(id) FROM checkpoints WHERE trader_id = :t"
    " AND taken_at > :day_cutoff GROUP BY substr(taken_at, 1, 10))"
)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def ns_to_iso(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    created_at: str
    severity: str
    title: str
    text: str
    key: str
    attempts: int
    delivered_chats: frozenset[int]


@dataclass(frozen=True, slots=True)
class GateRow:
    """The durable trading state of a trader (``trading_gate``)."""

    state: str
    reason: str
    source: str
    at: str
    mode: str = "cancel"  # how a halt was made (protocol.HaltMode)


@dataclass(frozen=True, slots=True)
class Swept:
    """How many rows a retention sweep removed, by table."""

    events: int
    alerts: int
    commands: int

    @property
    def total(self) -> int:
        return self.events + self.alerts + self.commands


@dataclass(frozen=True, slots=True)
class RunInfo:
    run_id: int
    trader_id: str
    mode: str


def connect(
    path: Path, timeout_s: float = 5.0, check_same_thread: bool = True
) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the database; WAL for concurrent readers."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Owner-only from the start, whoever opens it first (a CLI command, the dashboard):
        # SQLite gives the WAL and SHM files the database file's mode.
        # Only a file that does not exist yet: closing any descriptor of an open database
        # file drops every lock this process holds on it (POSIX), under SQLite's own
        # connections (with it on every open, a halted service wrote no checkpoint and no
        # heartbeat after its halt: tests/test_fleet.py, failing on 5678efa).
        if not path.exists():
            with contextlib.suppress(FileExistsError):  # another made it first: its mode stands
                os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        conn = sqlite3.connect(str(path), timeout=timeout_s, check_same_thread=check_same_thread)
        db = sqlite_utils.Database(conn)
        # Switching a new file to WAL takes an exclusive lock that SQLite may refuse at
        # once ("database is locked", no busy wait) while another connection opens the
        # same file: seen with 8 connections at once under load. Setting up again shortly
        # after is all it takes; a lock held for longer still fails, with its cause.
        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception(_locked),
            stop=tenacity.stop_after_delay(timeout_s),
            wait=tenacity.wait_exponential(multiplier=0.01, max=0.25),
            reraise=True,
        ):
            with attempt:
                with db.ensure_autocommit_on():
                    db.execute("PRAGMA journal_mode=WAL")
                    db.execute("PRAGMA synchronous=NORMAL")
                    db.execute("PRAGMA foreign_keys=ON")
                migrate(db)
    except StorageError:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    return db


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


class Store:
    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self.path = path
        self.db = connect(path, timeout_s)

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.db.close()

    def _fail(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{what} failed on {self.path}: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ runs

    def open_run(
        self, trader_id: str, mode: str, pid: int | None = None, settings: str | None = None
    ) -> RunInfo:
        """``settings``: what the run trades with, as JSON without secrets (a parity report
        replays the session with them)."""
        try:
            with write_transaction(self.db):
                table = self.db.table("runs")
                table.insert(
                    {
                        "trader_id": trader_id,
                        "mode": mode,
                        "pid": pid if pid is not None else os.getpid(),
                        "started_at": utc_now(),
                        "settings": settings,
                    }
                )
                run_id = int(table.last_pk)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise self._fail("opening a run", exc) from exc
        return RunInfo(run_id, trader_id, mode)

    def close_run(self, run: RunInfo, reason: str) -> None:
        try:
            with write_transaction(self.db):
                self.db.table("runs").update(
                    run.run_id, {"stopped_at": utc_now(), "exit_reason": reason}
                )
                self.db.execute(
                    "UPDATE heartbeat SET state = 'stopped', at = ?, at_epoch = ? "
                    "WHERE trader_id = ?",
                    [utc_now(), time.time(), run.trader_id],
                )
        except sqlite3.Error as exc:
            raise self._fail("closing a run", exc) from exc

    # ------------------------------------------------------------ checkpoints

    def write_checkpoint(
        self,
        run: RunInfo,
        snapshot: Snapshot,
        final: bool = False,
        retention: ServiceSettings = DEFAULT_RETENTION,
    ) -> int:
        row = {
            "run_id": run.run_id,
            "trader_id": run.trader_id,
            "taken_at": ns_to_iso(snapshot.taken_at_ns),
            "saved_at": utc_now(),
            "final": int(final),
            "trading_state": snapshot.trading_state.value,
            "currency": snapshot.currency,
            "balance": str(snapshot.balance),
            "equity": str(snapshot.equity),
            "realized_pnl": str(snapshot.realized_pnl),
            "unrealized_pnl": str(snapshot.unrealized_pnl),
            "open_orders": len(snapshot.open_orders),
            "positions": len(snapshot.positions),
            "replay_cursor": snapshot.replay_cursor,
            "snapshot": to_json(snapshot),
        }
        try:
            with write_transaction(self.db):
                cursor = self.db.execute(_INSERT_CHECKPOINT, row)
                checkpoint_id = int(cursor.lastrowid)  # type: ignore[arg-type]
                self._trim(run.trader_id, snapshot.taken_at_ns, retention)
        except sqlite3.Error as exc:
            raise self._fail("writing a checkpoint", exc) from exc
        return checkpoint_id

    def _trim(self, trader_id: str, now_ns: int, retention: ServiceSettings) -> None:
        sql = (
            "DELETE FROM checkpoints WHERE trader_id = :t AND id < ("
            "SELECT min(id) FROM (SELECT id FROM checkpoints WHERE trader_id = :t "
            "ORDER BY id DESC LIMIT :n))"
        )
        params: dict[str, str | int] = {"t": trader_id, "n": retention.keep_checkpoints}
        # The first checkpoint of each hour (ISO prefix of 13 chars) and day (10 chars)
        # inside its window survives the trim.
        for name, hours, clause in (
            ("hour_cutoff", retention.keep_hourly_h, _KEEP_FIRST_OF_HOUR),
            ("day_cutoff", retention.keep_daily_d * 24, _KEEP_FIRST_OF_DAY),
        ):
            if hours > 0:
                params[name] = ns_to_iso(now_ns - hours * 3_600_000_000_000)
                sql += clause
        self.db.execute(sql, params)

    def last_snapshot(self, trader_id: str, since_run: int = 0) -> Snapshot | None:
        found = self.last_checkpoint(trader_id, since_run)
        return None if found is None else found[1]

    def last_checkpoint(self, trader_id: str, since_run: int = 0) -> tuple[int, Snapshot] | None:
        """The newest checkpoint (id, snapshot) of runs ``since_run`` and later.

        The row's ``replay_cursor`` column wins over the snapshot's: it is advanced in
        place while nothing else changed (``advance_cursor``).
        """
        try:
            rows = list(
                self.db.query(
                    "SELECT id, replay_cursor, snapshot FROM checkpoints "
                    "WHERE trader_id = ? AND run_id >= ? ORDER BY id DESC LIMIT 1",
                    [trader_id, since_run],
                )
            )
        except sqlite3.Error as exc:
            raise self._fail("reading the last checkpoint", exc) from exc
        if not rows:
            return None
        snapshot = snapshot_from_json(str(rows[0]["snapshot"]))
        cursor = int(rows[0]["replay_cursor"])
        if cursor != snapshot.replay_cursor:
            snapshot = replace(snapshot, replay_cursor=cursor)
        return int(rows[0]["id"]), snapshot

    def advance_cursor(self, checkpoint_id: int, cursor: int) -> None:
        """Move a checkpoint's replay cursor on: only while the node's state is unchanged
        since that checkpoint, so restoring it at the later cursor skips no trade."""
        try:
            with write_transaction(self.db):
                self.db.execute(
                    "UPDATE checkpoints SET replay_cursor = ? WHERE id = ? AND replay_cursor < ?",
                    [cursor, checkpoint_id, cursor],
                )
        except sqlite3.Error as exc:
            raise self._fail("advancing the replay cursor", exc) from exc

    # ------------------------------------------------------------ the trading gate

    def gate(self, trader_id: str) -> GateRow | None:
        try:
            rows = list(
                self.db.query(
                    "SELECT state, reason, source, at, mode FROM trading_gate WHERE trader_id = ?",
                    [trader_id],
                )
            )
        except sqlite3.Error as exc:
            raise self._fail("reading the trading gate", exc) from exc
        if not rows:
            return None
        r = rows[0]
        return GateRow(
            str(r["state"]), str(r["reason"]), str(r["source"]), str(r["at"]), r["mode"] or "cancel"
        )

    def set_gate(self, trader_id: str, row: GateRow) -> None:
        try:
            with write_transaction(self.db):
                self.db.execute(
                    _UPSERT_GATE, (trader_id, row.state, row.reason, row.source, row.at, row.mode)
                )
        except sqlite3.Error as exc:
            raise self._fail("recording the trading gate", exc) from exc

    def strategy_gates(self, trader_id: str) -> dict[str, GateRow]:
        """The strategies' own trading states (``strategy_gate``), by strategy id."""
        try:
            rows = list(
                self.db.query(
                    "SELECT strategy_id, state, reason, source, at FROM strategy_gate "
                    "WHERE trader_id = ? ORDER BY strategy_id",
                    [trader_id],
                )
            )
        except sqlite3.Error as exc:
            raise self._fail("reading the strategies' trading gate", exc) from exc
        return {
            str(r["strategy_id"]): GateRow(
                str(r["state"]), str(r["reason"]), str(r["source"]), str(r["at"])
            )
            for r in rows
        }

    def set_strategy_gate(self, trader_id: str, strategy_id: str, row: GateRow) -> None:
        try:
            with write_transaction(self.db):
                self.db.execute(
                    _UPSERT_STRATEGY_GATE,
                    (trader_id, strategy_id, row.state, row.reason, row.source, row.at),
                )
        except sqlite3.Error as exc:
            raise self._fail("recording a strategy's trading gate", exc) from exc

    def last_trading_state(self, trader_id: str) -> GateRow | None:
        """The trading state of the newest checkpoint: the gate of a database written
        before the gate existed."""
        snap = self.last_snapshot(trader_id)
        if snap is None:
            return None
        return GateRow(
            snap.trading_state.value, snap.halt_reason, "checkpoint", ns_to_iso(snap.taken_at_ns)
        )

    # ------------------------------------------------------------ retention

    def sweep(
        self, trader_id: str, retention: ServiceSettings, now: datetime | None = None
    ) -> Swept:
        """Delete what the retention policy no longer keeps, one transaction per table:
        events as far back as the oldest checkpoint kept (and at least ``keep_events_d``
        days), delivered or local alerts after ``keep_alerts_d`` days, answered commands
        after ``keep_commands_d`` days. Rows still owed to someone - a pending alert, an
        unanswered command - stay; the totals of events stay in ``event_counts``, and
        what the trade statistics are made of in the ``ledger`` (never swept)."""
        now = now or datetime.now(UTC)

        def cutoff(days: int) -> str:
            return (now - timedelta(days=days)).isoformat(timespec="milliseconds")

        statements = (
            (
                # Events as far back as the oldest checkpoint still kept (none: keep all),
                # and never younger than the floor.
                "DELETE FROM events WHERE trader_id = :t AND at < min(:floor, "
                "(SELECT min(saved_at) FROM checkpoints WHERE trader_id = :t))",
                {"t": trader_id, "floor": cutoff(retention.keep_events_d)},
            ),
            (
                "DELETE FROM alert_outbox WHERE trader_id = :t AND status != 'pending' "
                "AND created_at < :cutoff",
                {"t": trader_id, "cutoff": cutoff(retention.keep_alerts_d)},
            ),
            (
                "DELETE FROM control WHERE trader_id = :t AND status IN ('done', 'failed') "
                "AND requested_at < :cutoff",
                {"t": trader_id, "cutoff": cutoff(retention.keep_commands_d)},
            ),
        )
        counts: list[int] = []
        try:
            for sql, params in statements:
                with write_transaction(self.db):
                    counts.append(self.db.execute(sql, params).rowcount)
        except sqlite3.Error as exc:
            raise self._fail("sweeping old rows", exc) from exc
        return Swept(*counts)

    # ------------------------------------------------------------ events, heartbeat, alerts

    def append_event(self, run: RunInfo, kind: str, payload: object, at: str | None = None) -> None:
        """One transaction: the event, its total and, for what a session's statistics are
        made of (``storage.ledger``: fills, funding, ...), its ledger row."""
        try:
            with write_transaction(self.db):
                cursor = self.db.execute(
                    _INSERT_EVENT,
                    [run.run_id, run.trader_id, at or utc_now(), kind, to_json(payload)],
                )
                if kind in ledger.KINDS:  # kept when retention sweeps the event
                    self.db.execute(ledger.RECORD, [cursor.lastrowid])
                # Totals outlive the events' retention (``status`` shows them).
                self.db.execute(
                    "INSERT INTO event_counts (trader_id, kind, n) VALUES (?, ?, 1) "
                    "ON CONFLICT (trader_id, kind) DO UPDATE SET n = n + 1",
                    [run.trader_id, kind],
                )
        except sqlite3.Error as exc:
            raise self._fail(f"appending a {kind} event", exc) from exc

    def beat(self, run: RunInfo, state: str, data_at_epoch: float | None = None) -> None:
        try:
            with write_transaction(self.db):
                self.db.table("heartbeat").upsert(
                    {
                        "trader_id": run.trader_id,
                        "run_id": run.run_id,
                        "pid": os.getpid(),
                        "state": state,
                        "at": utc_now(),
                        "at_epoch": time.time(),
                        "data_at_epoch": data_at_epoch,
                    },
                    pk="trader_id",
                )
        except sqlite3.Error as exc:
            raise self._fail("writing the heartbeat", exc) from exc

    def count_pending(self, trader_id: str) -> int:
        """How many alerts wait for delivery (the outbox's pending index answers it)."""
        try:
            row = self.db.execute(
                "SELECT count(*) FROM alert_outbox WHERE trader_id = ? AND status = 'pending'",
                [trader_id],
            ).fetchone()
        except sqlite3.Error as exc:
            raise self._fail("counting pending alerts", exc) from exc
        return int(row[0])

    def pending_alerts(self, trader_id: str, limit: int = 5000) -> list[OutboxRow]:
        try:
            rows = self.db.query(
                "SELECT id, created_at, severity, title, text, key, attempts, delivered_chats "
                "FROM alert_outbox WHERE trader_id = ? AND status = 'pending' ORDER BY id LIMIT ?",
                [trader_id, limit],
            )
            return [
                OutboxRow(
                    id=int(r["id"]),
                    created_at=str(r["created_at"]),
                    severity=str(r["severity"]),
                    title=str(r["title"]),
                    text=str(r["text"]),
                    key=str(r["key"]),
                    attempts=int(r["attempts"]),
                    delivered_chats=frozenset(
                        int(c) for c in str(r["delivered_chats"]).split(",") if c
                    ),
                )
                for r in rows
            ]
        except sqlite3.Error as exc:
            raise self._fail("reading the alert outbox", exc) from exc

    def record_delivery(
        self, ids: list[int], delivered_chats: frozenset[int], complete: bool
    ) -> None:
        """After a delivery attempt: which chats have the alerts; delivered when complete."""
        chats = ",".join(str(c) for c in sorted(delivered_chats))
        status = "delivered" if complete else "pending"
        try:
            with write_transaction(self.db):
                for start in range(0, len(ids), 500):
                    chunk = ids[start : start + 500]
                    marks = ",".join("?" * len(chunk))
                    self.db.execute(
                        f"UPDATE alert_outbox SET attempts = attempts + 1, status = ?, "  # noqa: S608 (placeholders only)
                        f"delivered_chats = ?, delivered_at = ? WHERE id IN ({marks})",
                        [status, chats, utc_now() if complete else None, *chunk],
                    )
        except sqlite3.Error as exc:
            raise self._fail("recording an alert delivery", exc) from exc

    def enqueue_alert(
        self, trader_id: str, alert: Alert, created_at: str | None = None, deliver: bool = True
    ) -> int:
        """Queue an alert; ``deliver=False`` (Telegram off) records it as ``local``: kept in
        the log and the dashboard, never sent later, and swept like a delivered one."""
        try:
            with write_transaction(self.db):
                table = self.db.table("alert_outbox")
                table.insert(
                    {
                        "trader_id": trader_id,
                        "created_at": created_at or utc_now(),
                        "severity": alert.severity.value,
                        "title": alert.title,
                        "text": alert.text,
                        "key": alert.key or alert.title,
                        "status": "pending" if deliver else "local",
                    }
                )
                return int(table.last_pk)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise self._fail("queuing an alert", exc) from exc
