"""The promotion record (``protocol.RegisteredStrategy``), one JSON body a name.

The body is the model's own JSON (Decimal metrics as strings, exact); what an entry may
hold is the contract's to say, so storage neither loosens nor second-guesses it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlite_utils
from pydantic import ValidationError

from protocol import RegisteredStrategy
from storage.errors import StorageError
from storage.status import open_readonly
from storage.store import utc_now
from storage.txn import write_transaction


class AlreadyRegistered(StorageError):
    """A strategy of that name is registered; replacing it must be asked for."""


def register(
    db: sqlite_utils.Database, strategy: RegisteredStrategy, replace: bool = False
) -> RegisteredStrategy:
    """Store ``strategy``, stamped with the time; the stored entry."""
    stamped = strategy.model_copy(update={"registered_at": utc_now()})
    try:
        with write_transaction(db):
            exists = list(db.query("SELECT 1 FROM strategies WHERE name = ?", [strategy.name]))
            if exists and not replace:
                raise AlreadyRegistered(
                    f"strategy {strategy.name!r} is registered already (--replace to overwrite)"
                )
            db.execute(
                "INSERT INTO strategies (name, body, registered_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET body = excluded.body, "
                "registered_at = excluded.registered_at",
                [strategy.name, stamped.model_dump_json(), stamped.registered_at],
            )
    except sqlite3.Error as exc:
        raise StorageError(f"registering strategy {strategy.name!r} failed: {exc}") from exc
    return stamped


def read_registry(path: Path) -> list[RegisteredStrategy]:
    """Every registered strategy, by name (read-only; an empty list before any)."""
    conn = open_readonly(path)
    try:
        return registry_of(conn)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the strategy registry in {path}: {exc}") from exc
    finally:
        conn.close()


def registry_of(conn: sqlite3.Connection) -> list[RegisteredStrategy]:
    """Every registered strategy, by name, through ``conn`` (which yields ``Row``s)."""
    tables = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'strategies'"
    ).fetchall()
    if not tables:
        return []  # a database of an older service: nothing registered yet
    rows = conn.execute("SELECT name, body FROM strategies ORDER BY name").fetchall()
    return [
        parse_registered(str(row["body"]), f"registered strategy {row['name']!r}") for row in rows
    ]


def parse_registered(body: str, what: str) -> RegisteredStrategy:
    """An entry's stored JSON as the contract's model; an unreadable one is a
    ``StorageError`` naming ``what`` it is."""
    try:
        return RegisteredStrategy.model_validate_json(body)
    except ValidationError as exc:
        raise StorageError(f"{what} is unreadable: {exc}") from exc
