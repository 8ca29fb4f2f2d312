"""Schema of the service database, versioned with ``PRAGMA user_version``.

Each migration is applied once, in order, inside a transaction; a database written
by a newer version of the service is refused rather than misread.
"""

from __future__ import annotations

import sqlite_utils

from storage.errors import SchemaError
from storage.txn import write_transaction

MIGRATIONS: tuple[str, ...] = (
    # 1: runs, checkpoints, events, alert outbox, heartbeat
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        trader_id TEXT NOT NULL,
        mode TEXT NOT NULL,
        pid INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        stopped_at TEXT,
        exit_reason TEXT
    );
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs(id),
        trader_id TEXT NOT NULL,
        taken_at TEXT NOT NULL,
        saved_at TEXT NOT NULL,
        final INTEGER NOT NULL DEFAULT 0,
        trading_state TEXT NOT NULL,
        currency TEXT NOT NULL,
        balance TEXT NOT NULL,
        equity TEXT NOT NULL,
        realized_pnl TEXT NOT NULL,
        unrealized_pnl TEXT NOT NULL,
        open_orders INTEGER NOT NULL,
        positions INTEGER NOT NULL,
        replay_cursor INTEGER NOT NULL,
        snapshot TEXT NOT NULL
    );
    CREATE INDEX checkpoints_by_trader ON checkpoints(trader_id, id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL,
        trader_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX events_by_kind ON events(trader_id, kind, id);
    CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY,
        trader_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        severity TEXT NOT NULL,
        title TEXT NOT NULL,
        text TEXT NOT NULL,
        key TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        delivered_at TEXT
    );
    CREATE TABLE heartbeat (
        trader_id TEXT PRIMARY KEY,
        run_id INTEGER NOT NULL,
        pid INTEGER NOT NULL,
        state TEXT NOT NULL,
        at TEXT NOT NULL,
        at_epoch REAL NOT NULL
    );
    """,
    # 2: operator commands for a running service (CLI and dashboard write, service acks)
    """
    CREATE TABLE control (
        id INTEGER PRIMARY KEY,
        trader_id TEXT NOT NULL,
        command TEXT NOT NULL,
        reason TEXT NOT NULL,
        requested_at TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'pending',
        result TEXT,
        acked_at TEXT
    );
    CREATE INDEX control_pending ON control(trader_id, status, id);
    """,
    # 3: per-chat delivery, so a retry after a partial delivery doubles nothing
    """
    ALTER TABLE alert_outbox ADD COLUMN delivered_chats TEXT NOT NULL DEFAULT '';
    CREATE INDEX alert_outbox_pending ON alert_outbox(trader_id, status, id);
    """,
    # 4: dashboard presets (validated like a config file) and the sessions it launched
    """
    CREATE TABLE presets (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY,
        trader_id TEXT NOT NULL UNIQUE,
        preset TEXT NOT NULL,
        pid INTEGER NOT NULL,
        config_path TEXT NOT NULL,
        log_path TEXT NOT NULL,
        launched_at TEXT NOT NULL,
        exited_at TEXT,
        exit_code INTEGER
    );
    """,
    # 5: the durable trading gate (a halt survives every restart until resumed); event
    # totals that outlive the events' retention; the age of market data; indexes for
    # the retention sweeps
    """
    CREATE TABLE trading_gate (
        trader_id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE TABLE event_counts (
        trader_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY (trader_id, kind)
    );
    INSERT INTO event_counts (trader_id, kind, n)
        SELECT trader_id, kind, count(*) FROM events GROUP BY trader_id, kind;
    ALTER TABLE heartbeat ADD COLUMN data_at_epoch REAL;
    CREATE INDEX events_by_time ON events(trader_id, at);
    CREATE INDEX alert_outbox_by_time ON alert_outbox(trader_id, created_at);
    CREATE INDEX control_by_time ON control(trader_id, requested_at);
    """,
    # 6: the settings each run traded with (a parity report replays the session with them)
    """
    ALTER TABLE runs ADD COLUMN settings TEXT;
    """,
    # 7: the promotion record: backtested strategies registered for paper trading
    """
    CREATE TABLE strategies (
        name TEXT PRIMARY KEY,
        body TEXT NOT NULL,
        registered_at TEXT NOT NULL
    );
    """,
    # 8: one strategy halted on its own while the others trade: its durable state, and
    # the operator's command naming it
    """
    CREATE TABLE strategy_gate (
        trader_id TEXT NOT NULL,
        strategy_id TEXT NOT NULL,
        state TEXT NOT NULL,
        reason TEXT NOT NULL,
        source TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (trader_id, strategy_id)
    );
    ALTER TABLE control ADD COLUMN strategy_id TEXT;
    """,
    # 9: the registered strategy a launched session runs (its entry as it was at launch,
    # so its paper results are set beside the metrics it was promoted with)
    """
    ALTER TABLE jobs ADD COLUMN registered TEXT;
    """,
    # 10: how a halt was made (cancel | reduce | flatten): the gate re-applies it the same
    # way after a restart, and the operator's command says which
    """
    ALTER TABLE trading_gate ADD COLUMN mode TEXT;
    ALTER TABLE control ADD COLUMN mode TEXT;
    """,
    # 11: the ledger (storage.ledger): the fills, funding, node starts, fresh starts,
    # trading states and reloads a session's statistics are rebuilt from, kept when
    # retention sweeps their events; backfilled from the events the database still holds
    """
    CREATE TABLE ledger (
        id INTEGER PRIMARY KEY,
        event_id INTEGER NOT NULL,
        run_id INTEGER NOT NULL,
        trader_id TEXT NOT NULL,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        client_order_id TEXT,
        trade_id TEXT,
        instrument_id TEXT,
        strategy_id TEXT,
        side TEXT,
        quantity TEXT,
        price TEXT,
        commission TEXT,
        bar INTEGER,
        market_ns INTEGER,
        ts_event INTEGER,
        ts_bridge INTEGER,
        mark TEXT,
        rate TEXT,
        amount TEXT,
        settled_at_ns INTEGER,
        replay_cursor INTEGER,
        detail TEXT,
        state TEXT,
        reason TEXT
    );
    CREATE INDEX ledger_by_trader ON ledger(trader_id, run_id, id);
    CREATE INDEX ledger_by_kind ON ledger(trader_id, kind, run_id);
    INSERT INTO ledger (event_id, run_id, trader_id, at, kind, client_order_id, trade_id,
        instrument_id, strategy_id, side, quantity, price, commission, bar, market_ns,
        ts_event, ts_bridge, mark, rate, amount, settled_at_ns, replay_cursor, detail, state,
        reason)
    SELECT id, run_id, trader_id, at, kind,
        CASE WHEN kind IN ('fill') THEN json_extract(payload, '$.client_order_id') END,
        CASE WHEN kind IN ('fill') THEN json_extract(payload, '$.trade_id') END,
        CASE WHEN kind IN ('fill', 'funding') THEN json_extract(payload, '$.instrument_id') END,
        CASE WHEN kind IN ('fill', 'funding', 'trading_state')
            THEN json_extract(payload, '$.strategy_id') END,
        CASE WHEN kind IN ('fill') THEN json_extract(payload, '$.side') END,
        CAST(CASE WHEN kind IN ('fill', 'funding')
            THEN json_extract(payload, '$.quantity') END AS TEXT),
        CAST(CASE WHEN kind IN ('fill') THEN json_extract(payload, '$.price') END AS TEXT),
        CAST(CASE WHEN kind IN ('fill') THEN json_extract(payload, '$.commission') END AS TEXT),
        CASE WHEN kind IN ('fill', 'funding') THEN json_extract(payload, '$.bar') END,
        CASE WHEN kind IN ('fill') THEN json_extract(payload, '$.market_ns') END,
        CASE WHEN kind IN ('fill') THEN json_extract(payload, '$.ts_event') END,
        CASE WHEN kind IN ('fill') THEN json_extract(payload, '$.ts_bridge') END,
        CAST(CASE WHEN kind IN ('funding') THEN json_extract(payload, '$.mark') END AS TEXT),
        CAST(CASE WHEN kind IN ('funding') THEN json_extract(payload, '$.rate') END AS TEXT),
        CAST(CASE WHEN kind IN ('funding') THEN json_extract(payload, '$.amount') END AS TEXT),
        CASE WHEN kind IN ('funding') THEN json_extract(payload, '$.settled_at_ns') END,
        CASE WHEN kind IN ('node_started') THEN json_extract(payload, '$.replay_cursor') END,
        CASE WHEN kind IN ('fresh_start', 'config_reloaded')
            THEN json_extract(payload, '$.detail') END,
        CASE WHEN kind IN ('trading_state') THEN json_extract(payload, '$.state') END,
        CASE WHEN kind IN ('trading_state') THEN json_extract(payload, '$.reason') END
    FROM events WHERE kind IN ('fill', 'funding', 'node_started', 'fresh_start',
        'trading_state', 'config_reloaded') AND json_valid(payload)
    ORDER BY id;
    """,
    # 12: a halt's step and its source in the ledger (the parity report sets a replay's
    # breaker halts beside its backtest's); older rows have neither.
    """
    ALTER TABLE ledger ADD COLUMN source TEXT;
    UPDATE ledger SET
        bar = (SELECT json_extract(e.payload, '$.bar') FROM events e
               WHERE e.id = ledger.event_id AND json_valid(e.payload)),
        source = (SELECT json_extract(e.payload, '$.source') FROM events e
                  WHERE e.id = ledger.event_id AND json_valid(e.payload))
        WHERE kind = 'trading_state';
    """,
)

SCHEMA_VERSION = len(MIGRATIONS)


def check_version(version: int, path: object) -> None:
    """Refuse a database written by a newer service: its rows may mean something else."""
    if version > SCHEMA_VERSION:
        raise SchemaError(
            f"database {path} has schema version {version}, newer than this service "
            f"({SCHEMA_VERSION}); upgrade the service before reading it"
        )


def _version(db: sqlite_utils.Database) -> int:
    row = db.execute("PRAGMA user_version").fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite_utils.Database) -> int:
    """Bring the schema up to date. Several connections may open a new file at once (the
    service's actors each own one): each step re-reads the version under the write
    lock, so a step another connection has just applied is not applied twice."""
    path = db.conn.execute("PRAGMA database_list").fetchone()[2]
    check_version(_version(db), path)
    while _version(db) < SCHEMA_VERSION:
        with write_transaction(db):
            number = _version(db)
            check_version(number, path)
            if number >= SCHEMA_VERSION:
                break
            for statement in MIGRATIONS[number].split(";"):
                if statement.strip():
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {number + 1}")
    return SCHEMA_VERSION
