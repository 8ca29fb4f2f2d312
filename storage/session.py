"""A session as it played, read back for a parity report: its trades, where it ended,
and what the report must say beside the numbers.

A session is a trader's runs since its last fresh start. Its trades are the fills of
its ledger (``storage.ledger``: the fill events and what says which count, kept when
retention sweeps the events) in the order they were recorded, with two corrections
that make them the session's real sequence: a fresh start drops everything before it,
and a node that started from a checkpoint at bar ``c`` drops the fills recorded at bar
``c`` or later (the node died after them, before they were checkpointed, and played
those bars again). Its end is the last checkpoint: the balance and realized PnL there,
over the bars before its cursor; fills at or after the cursor are past the end and not
counted.

A binance session (sandbox or testnet) plays no bar twice: a restarted node takes the
market as it comes, so its fills all count, and its end is its last checkpoint.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from protocol import HaltAt, Outcome, Trade
from storage import ledger
from storage.errors import StorageError
from storage.status import open_readonly

# The sections whose change between runs changes what a session trades (not its speed,
# its logging or its database).
TRADING_SECTIONS = ("instrument", "account", "strategy", "sizing", "risk")
REPLAY_KEYS = ("source", "path", "seed", "bars", "bar_minutes", "start_price", "volatility")


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """``settings`` is the last run's recorded settings (``protocol.RecordedSettings``
    JSON; None from a service older than the record). ``from_bar``: the first bar whose
    fills the database still holds (0, unless retention swept the session's first
    events before the ledger kept them). ``halts``: the session's halts, in order (a
    node restart's re-application of a halt on record is not a new one)."""

    trader_id: str
    mode: str
    runs: tuple[int, ...]
    settings: str | None
    outcome: Outcome
    from_bar: int
    halts: tuple[HaltAt, ...]
    notes: tuple[str, ...]


def read_session(path: Path, trader_id: str | None = None) -> SessionRecord:
    """The session of ``trader_id`` (of the latest run's trader when None)."""
    conn = open_readonly(path)
    try:
        return _read(conn, trader_id)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the session from {path}: {exc}") from exc
    finally:
        conn.close()


def latest_trader(conn: sqlite3.Connection) -> str:
    row = conn.execute("SELECT trader_id FROM runs ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        raise StorageError("no run in the database")
    return str(row["trader_id"])


def _read(conn: sqlite3.Connection, trader_id: str | None) -> SessionRecord:
    trader_id = trader_id or latest_trader(conn)
    runs = conn.execute(
        "SELECT id, mode, settings FROM runs WHERE trader_id = ? ORDER BY id", [trader_id]
    ).fetchall()
    if not runs:
        raise StorageError(f"no run of trader {trader_id} in the database")
    first_run = session_start(conn, trader_id)
    runs = [r for r in runs if int(r["id"]) >= first_run]
    checkpoint = conn.execute(
        "SELECT run_id, replay_cursor, currency, balance, realized_pnl FROM checkpoints "
        "WHERE trader_id = ? AND run_id >= ? ORDER BY id DESC LIMIT 1",
        [trader_id, first_run],
    ).fetchone()
    if checkpoint is None:
        raise StorageError(f"trader {trader_id} has no checkpoint yet: nothing to compare")
    end = int(checkpoint["replay_cursor"])
    replayed = str(runs[-1]["mode"]) == "replay"

    walk = walk_session(conn, trader_id, first_run, replayed)
    trades = [_trade(p) for kind, p in walk.ledger if kind == "fill"]
    notes, halts, from_bar = walk.notes, walk.halts, walk.from_bar
    unplaced = walk.unplaced
    if replayed:
        trades = [t for t in trades if t.bar < end]
    if unplaced:
        notes.append(
            f"{unplaced} fill(s) carry no bar (recorded by an older service): not compared"
        )
    if from_bar is None or from_bar > 0:
        notes.append(
            f"the events before bar {from_bar or end} are no longer in the database "
            "(retention): fills are compared from there on"
        )
    notes.extend(_settings_changes(runs))
    outcome = Outcome(
        trades=tuple(trades),
        realized_pnl=Decimal(checkpoint["realized_pnl"]),
        fees=sum((t.commission for t in trades), Decimal(0)),
        balance=Decimal(checkpoint["balance"]),
        currency=str(checkpoint["currency"]),
        bars=end,
        halts=tuple(h for h in halts if not replayed or h.bar is None or h.bar < end),
    )
    last = runs[-1]
    return SessionRecord(
        trader_id=trader_id,
        mode=str(last["mode"]),
        runs=tuple(int(r["id"]) for r in runs),
        settings=str(last["settings"]) if last["settings"] is not None else None,
        outcome=outcome,
        from_bar=from_bar if from_bar is not None else end,
        halts=tuple(halts),
        notes=tuple(dict.fromkeys(notes)),  # each note once, in order
    )


Ledger = list[tuple[str, dict[str, object]]]


def walk_session(conn: sqlite3.Connection, trader_id: str, first_run: int, replayed: bool) -> _Walk:
    """The session's ledger since ``first_run``, folded into its real sequence (a ledger
    row reads as its event's payload: the same names)."""
    walk = _Walk(replayed)
    for row in ledger.entries(conn, trader_id, first_run):
        walk.step(str(row["kind"]), dict(zip(row.keys(), row, strict=True)))
    return walk


def session_start(conn: sqlite3.Connection, trader_id: str) -> int:
    """The first run of the trader's session: its last fresh start, or its first run."""
    fresh = ledger.last_fresh_start(conn, trader_id)
    if fresh is not None:
        return fresh
    first = conn.execute("SELECT min(id) FROM runs WHERE trader_id = ?", [trader_id]).fetchone()[0]
    if first is None:
        raise StorageError(f"no run of trader {trader_id} in the database")
    return int(first)


def _trade(payload: dict[str, object]) -> Trade:
    return Trade(
        bar=int(str(payload["bar"])),
        side=str(payload["side"]),
        quantity=Decimal(str(payload["quantity"])),
        price=Decimal(str(payload["price"])),
        commission=Decimal(str(payload["commission"])),
    )


class _Walk:
    """The session's events in order, folded into its real sequence of fills and funding
    payments (``ledger``: kind and payload, in the order they happened)."""

    def __init__(self, replayed: bool) -> None:
        self.replayed = replayed
        self.ledger: Ledger = []
        self.notes: list[str] = []
        self.halts: list[HaltAt] = []
        self.from_bar: int | None = None
        self._halted: set[str | None] = set()  # whose halt holds: None is the account
        self.unplaced = 0

    def step(self, kind: str, payload: dict[str, object]) -> None:
        if kind == "fresh_start":
            self.ledger, self.halts, self.from_bar = [], [], 0
            self._halted.clear()
        elif kind == "node_started":
            cursor = int(str(payload["replay_cursor"])) if self.replayed else 0
            if self.replayed:
                self.ledger = [e for e in self.ledger if _bar(e[1]) < cursor]
                self.halts = [h for h in self.halts if h.bar is None or h.bar < cursor]
            if self.from_bar is None:
                self.from_bar = cursor  # the session's first start: bar 0, unless swept
        elif kind == "trading_state":
            self._trading_state(payload)
        elif kind == "config_reloaded":
            self.notes.append(
                "the config was reloaded during the session; the backtest uses the "
                "settings the last run started with"
            )
        elif kind in ("fill", "funding"):
            if payload.get("bar") is None:
                self.unplaced += 1
                return
            if self.from_bar is None:  # its start was swept before the ledger kept it
                self.from_bar = _bar(payload)
            self.ledger.append((kind, payload))

    def _trading_state(self, payload: dict[str, object]) -> None:
        """A halt once, when it begins (a flatten passes through REDUCING to HALTED); a
        node start re-applying one on record (source ``gate``) is not a new halt."""
        whose = payload.get("strategy_id")
        scope = None if whose is None else str(whose)
        if payload["state"] == "ACTIVE":
            self._halted.discard(scope)
            return
        source = str(payload.get("source") or "")
        if scope in self._halted or source == "gate":
            self._halted.add(scope)
            return
        self._halted.add(scope)
        bar = payload.get("bar")
        self.halts.append(
            HaltAt(None if bar is None else int(str(bar)), str(payload["reason"]), scope, source)
        )


def _bar(payload: dict[str, object]) -> int:
    return int(str(payload["bar"]))


def _settings_changes(runs: list[sqlite3.Row]) -> list[str]:
    """A note for each run that traded with other settings than the last run."""
    notes: list[str] = []
    last = _trading_part(runs[-1]["settings"])
    for run in runs[:-1]:
        part = _trading_part(run["settings"])
        if part is None:
            notes.append(f"run {run['id']} recorded no settings (an older service)")
        elif last is not None and part != last:
            changed = sorted(k for k in last if part.get(k) != last.get(k))
            notes.append(
                f"run {run['id']} traded with other {', '.join(changed)} settings than "
                "the last run, whose settings the backtest uses"
            )
    return notes


def _trading_part(text: object) -> dict[str, object] | None:
    if text is None:
        return None
    config = json.loads(str(text))["config"]
    part: dict[str, object] = {name: config.get(name) for name in TRADING_SECTIONS}
    replay = config.get("replay", {})
    part["replay"] = {k: replay.get(k) for k in REPLAY_KEYS}
    return part
