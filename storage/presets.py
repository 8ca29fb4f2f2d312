"""Saved session presets: a named TOML-shaped body, stored as JSON.

Storage keeps presets opaque; what a preset may hold and how it is validated
belongs to the config loader (``sessions.presets``), so a preset can never be
looser than a config file.
"""

from __future__ import annotations

import json
import sqlite3

import sqlite_utils

from storage.errors import StorageError
from storage.store import utc_now
from storage.txn import write_transaction

type PresetValue = str | int | float | bool
type PresetBody = dict[str, dict[str, PresetValue]]


def _body(text: str, name: str) -> PresetBody:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise StorageError(f"preset {name!r} is not a table of sections")
    body: PresetBody = {}
    for section, values in data.items():
        if not isinstance(values, dict):
            raise StorageError(f"preset {name!r}: section {section!r} is not a table")
        body[str(section)] = {
            str(k): v for k, v in values.items() if isinstance(v, str | int | float | bool)
        }
    return body


def preset_names(db: sqlite_utils.Database) -> list[str]:
    return [str(r["name"]) for r in db.query("SELECT name FROM presets ORDER BY name")]


def load_preset(db: sqlite_utils.Database, name: str) -> PresetBody | None:
    rows = list(db.query("SELECT body FROM presets WHERE name = ?", [name]))
    return None if not rows else _body(str(rows[0]["body"]), name)


def save_preset(db: sqlite_utils.Database, name: str, body: PresetBody) -> None:
    try:
        with write_transaction(db):
            db.execute(
                "INSERT INTO presets (name, body, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET body = excluded.body, "
                "updated_at = excluded.updated_at",
                [name, json.dumps(body, sort_keys=True), utc_now()],
            )
    except sqlite3.Error as exc:
        raise StorageError(f"saving preset {name!r} failed: {exc}") from exc


def delete_preset(db: sqlite_utils.Database, name: str) -> bool:
    try:
        with write_transaction(db):
            cursor = db.execute("DELETE FROM presets WHERE name = ?", [name])
            return cursor.rowcount > 0
    except sqlite3.Error as exc:
        raise StorageError(f"deleting preset {name!r} failed: {exc}") from exc
