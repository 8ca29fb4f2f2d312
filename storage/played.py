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
from storage.trades import Fill, fills_and_funding


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


def played_of(conn: sqlite3.Connection, trader_id: str) -> Played | None:
    """The session of ``trader_id`` (None when the trader has no run)."""
    if (
        conn.execute("SELECT 1 FROM runs WHERE trader_id = ? LIMIT 1", [trader_id]).fetchone()
        is None
    ):
        return None
    first_run = session_start(conn, trader_id)
    last = conn.execute(
        "SELECT mode, settings FROM runs WHERE trader_id = ? AND id >= ? ORDER BY id DESC LIMIT 1",
        [trader_id, first_run],
    ).fetchone()
    checkpoint = conn.execute(
        "SELECT replay_cursor FROM checkpoints WHERE trader_id = ? AND run_id >= ? "
        "ORDER BY id DESC LIMIT 1",
        [trader_id, first_run],
    ).fetchone()
    mode = str(last["mode"])
    replayed = mode == "replay"
    records = fills_and_funding(walk_session(conn, trader_id, first_run, replayed).ledger)
    fills = [r for r in records if isinstance(r, Fill)]
    bars = None if checkpoint is None else int(checkpoint["replay_cursor"])
    if replayed and bars is not None:
        fills = [f for f in fills if f.bar is None or f.bar < bars]
    settings = None if last["settings"] is None else str(last["settings"])
    return Played(trader_id, mode, settings, bars, tuple(fills))
