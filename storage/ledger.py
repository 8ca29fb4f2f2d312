"""The ledger: what a session's trades are made of, kept as long as the database.

The event log is swept by the retention policy (``Store.sweep``), but a session's
statistics, round trips, chart and parity report are rebuilt from its fills and funding
and from what says which of them count: its fresh starts (a session begins at the last
one), its node starts (a replay's restore at cursor ``c`` supersedes the fills recorded
at bar ``c`` or later), its halts and its config reloads. Those events are written to
the ``ledger`` table too, in the same transaction as their event row
(``Store.append_event``), and nothing sweeps it: it grows with trading, not with time.
The starting balance and the session's end come from the runs and the last checkpoint,
which retention keeps.

A ledger row is its event's payload restricted to the fields each kind keeps, under the
payload's own names (a fill's ``client_order_id``, ``trade_id``, ``instrument_id``,
``strategy_id``, ``side``, ``quantity``, ``price``, ``commission``, ``bar``,
``market_ns``, ``ts_event``, ``ts_bridge``; a funding payment's ``quantity``, ``mark``,
``rate``, ``amount``, ``bar``, ``settled_at_ns``; ...), so a reader takes a row as it
took a payload. Decimals stay the exact strings the events carry. Rows are numbered in
the order they were written, which is the events' order; ``event_id`` names the event
row each was written with (which retention may have deleted since).

The rows are made from the event row by SQL (``RECORD``). Schema 11 backfilled the
ledger from the events a database still held with the same projection, written out in
its migration (``storage.schema``; a later change to the ledger is a migration of its
own, and ``FIELDS`` follows it), and ``entries`` reads a database that this service has
not migrated yet through it too.
"""

from __future__ import annotations

import sqlite3

TABLE = "ledger"

# What each kind of event keeps, by the payload's field names.
FIELDS: dict[str, tuple[str, ...]] = {
    "fill": (
        "client_order_id",
        "trade_id",
        "instrument_id",
        "strategy_id",
        "side",
        "quantity",
        "price",
        "commission",
        "bar",
        "market_ns",
        "ts_event",
        "ts_bridge",
    ),
    "funding": (
        "strategy_id",
        "instrument_id",
        "quantity",
        "mark",
        "rate",
        "amount",
        "bar",
        "settled_at_ns",
    ),
    "node_started": ("replay_cursor",),
    "fresh_start": ("detail",),
    "trading_state": ("strategy_id", "state", "reason", "bar", "source"),
    "config_reloaded": ("detail",),
}
KINDS = tuple(FIELDS)
EXACT = frozenset({"quantity", "price", "commission", "mark", "rate", "amount"})  # Decimal
COLUMNS: tuple[str, ...] = tuple(dict.fromkeys(f for fields in FIELDS.values() for f in fields))
HEAD = ("id", "event_id", "run_id", "trader_id", "at", "kind")

_KIND_LIST = ", ".join(f"'{kind}'" for kind in KINDS)


def _column(name: str) -> str:
    """``name`` out of an event's payload, for the kinds that keep it (NULL otherwise: a
    node start's payload, which holds a whole restored snapshot, is only parsed for its
    cursor); a decimal as its exact text."""
    kinds = ", ".join(f"'{kind}'" for kind, fields in FIELDS.items() if name in fields)
    value = f"CASE WHEN kind IN ({kinds}) THEN json_extract(payload, '$.{name}') END"
    return f"CAST({value} AS TEXT)" if name in EXACT else value


_PROJECTION = ", ".join(f"{_column(name)} AS {name}" for name in COLUMNS)
_INSERT = f"INSERT INTO {TABLE} (event_id, run_id, trader_id, at, kind, {', '.join(COLUMNS)})"
# Events as ledger rows (``id`` is the event's own); a payload that is not JSON (a
# damaged row) is left out, as schema 11's backfill left it out.
FROM_EVENTS = (
    f"SELECT id, id AS event_id, run_id, trader_id, at, kind, {_PROJECTION} "  # noqa: S608 (constants)
    f"FROM events WHERE kind IN ({_KIND_LIST}) AND json_valid(payload)"
)
# The ledger row of the event just appended (``?``: its id); none for another kind.
RECORD = (
    f"{_INSERT} SELECT id, run_id, trader_id, at, kind, {_PROJECTION} "  # noqa: S608 (constants)
    f"FROM events WHERE id = ? AND kind IN ({_KIND_LIST})"
)


def kept(conn: sqlite3.Connection) -> bool:
    """Whether the database has its ledger (schema 11 on): an older one, read before this
    service has migrated it, is read from its events."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", [TABLE]
    ).fetchone()
    return row is not None


def entries(conn: sqlite3.Connection, trader_id: str, first_run: int) -> list[sqlite3.Row]:
    """The trader's ledger since run ``first_run``, in the order it was written
    (``conn`` must return ``sqlite3.Row``)."""
    if kept(conn):
        sql = (
            f"SELECT {', '.join((*HEAD, *COLUMNS))} FROM {TABLE} "  # noqa: S608 (constants)
            "WHERE trader_id = ? AND run_id >= ? ORDER BY id"
        )
    else:
        sql = f"{FROM_EVENTS} AND trader_id = ? AND run_id >= ? ORDER BY id"
    return conn.execute(sql, [trader_id, first_run]).fetchall()


def last_fresh_start(conn: sqlite3.Connection, trader_id: str) -> int | None:
    """The run of the trader's last ``run --fresh`` (None: never started over)."""
    table = TABLE if kept(conn) else "events"
    row = conn.execute(
        f"SELECT max(run_id) FROM {table} WHERE trader_id = ? AND kind = 'fresh_start'",  # noqa: S608 (constants)
        [trader_id],
    ).fetchone()
    return None if row[0] is None else int(row[0])
