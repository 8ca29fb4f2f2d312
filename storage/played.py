"""What a session played, for the dashboard's trades chart: how far it got, the settings
that say which bars it saw, and its fills as the trade statistics count them.

The fills are the session's real sequence (``storage.session.walk_session``): a fresh
start drops what came before, a replay's restore drops the fills of bars it played
again, and a replay's fills at or past the last checkpoint's cursor are past its end -
the same cut ``storage.stats`` makes, so the chart marks exactly the fills the round
trips beside it are made of. The bars themselves are not in the database: a replay's
come from its recorded settings, a binance session's from its market-data recording
(``sessions.trades`` rebuilds them).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from storage.session import session_start, walk_session
from storage.trades import Fill, FundingPayment, fills_and_funding


@dataclass(frozen=True, slots=True)
class Played:
    """``settings``: the last run's ``protocol.RecordedSettings`` JSON (None from an
    older service). ``bars``: the last checkpoint's cursor - a replay's bars played, a
    live feed's bars received (None before the first checkpoint)."""

    trader_id: str
    mode: str
    settings: str | None
    bars: int | None
    fills: tuple[Fill, ...]


@dataclass(frozen=True, slots=True)
class SessionLedger:
    """A session's fills and funding in the order they happened, cut where its last
    checkpoint ends (a replay's fills at or past the cursor were played again), with its
    first and last runs (mode, settings) and that checkpoint (cursor, currency, balance;
    None before the first)."""

    trader_id: str
    first: sqlite3.Row
    last: sqlite3.Row
    checkpoint: sqlite3.Row | None
    records: tuple[Fill | FundingPayment, ...]


def session_ledger(conn: sqlite3.Connection, trader_id: str) -> SessionLedger:
    """Raises ``StorageError`` when the trader has no run."""
    first_run = session_start(conn, trader_id)
    runs = conn.execute(
        "SELECT mode, settings FROM runs WHERE trader_id = ? AND id >= ? ORDER BY id",
        [trader_id, first_run],
    ).fetchall()
    replayed = str(runs[-1]["mode"]) == "replay"
    records = fills_and_funding(walk_session(conn, trader_id, first_run, replayed).ledger)
    checkpoint = conn.execute(
        "SELECT replay_cursor, currency, balance, snapshot FROM checkpoints WHERE trader_id = ? "
        "AND run_id >= ? ORDER BY id DESC LIMIT 1",
        [trader_id, first_run],
    ).fetchone()
    if replayed and checkpoint is not None:  # past the last checkpoint: played again
        end = int(checkpoint["replay_cursor"])
        records = [r for r in records if r.bar is None or r.bar < end]
    return SessionLedger(trader_id, runs[0], runs[-1], checkpoint, tuple(records))


def played_of(conn: sqlite3.Connection, trader_id: str) -> Played | None:
    """The session of ``trader_id`` (None when the trader has no run)."""
    if (
        conn.execute("SELECT 1 FROM runs WHERE trader_id = ? LIMIT 1", [trader_id]).fetchone()
        is None
    ):
        return None
    ledger = session_ledger(conn, trader_id)
    last, checkpoint = ledger.last, ledger.checkpoint
    bars = None if checkpoint is None else int(checkpoint["replay_cursor"])
    settings = None if last["settings"] is None else str(last["settings"])
    fills = tuple(r for r in ledger.records if isinstance(r, Fill))
    return Played(trader_id, str(last["mode"]), settings, bars, fills)
