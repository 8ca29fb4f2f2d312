"""The job table: sessions the dashboard launched, tracked by pid until they exit.

A session's own state (running, halted, stopped) lives in ``runs`` and
``heartbeat``, written by the service; this table only adds what the launcher
knows and the service cannot tell once it is dead: its pid, where its config and
log are, its exit code when the launcher saw it exit, and the registered strategy
it was launched from (the entry as it was then: a later ``--replace`` does not change
what the session is compared with).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import sqlite_utils

from protocol import RegisteredStrategy
from storage.errors import StorageError
from storage.registry import parse_registered
from storage.store import utc_now
from storage.txn import write_transaction


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    trader_id: str
    preset: str
    pid: int
    config_path: str
    log_path: str
    launched_at: str
    exited_at: str | None
    exit_code: int | None
    registered: RegisteredStrategy | None = None  # launched from the promotion record


def _job(r: dict[str, object]) -> Job:
    code = r["exit_code"]
    registered = r.get("registered")
    return Job(
        id=int(str(r["id"])),
        trader_id=str(r["trader_id"]),
        preset=str(r["preset"]),
        pid=int(str(r["pid"])),
        config_path=str(r["config_path"]),
        log_path=str(r["log_path"]),
        launched_at=str(r["launched_at"]),
        exited_at=None if r["exited_at"] is None else str(r["exited_at"]),
        exit_code=None if code is None else int(str(code)),
        registered=(
            None
            if registered is None
            else parse_registered(str(registered), f"the registered strategy of {r['trader_id']}")
        ),
    )


def list_jobs(db: sqlite_utils.Database) -> list[Job]:
    return [_job(r) for r in db.query("SELECT * FROM jobs ORDER BY id DESC")]


def job_for(db: sqlite_utils.Database, trader_id: str) -> Job | None:
    rows = list(db.query("SELECT * FROM jobs WHERE trader_id = ?", [trader_id]))
    return _job(rows[0]) if rows else None


def trader_ids_with_prefix(db: sqlite_utils.Database, prefix: str) -> set[str]:
    """Every trader id already used (by a job or a run) that starts with ``prefix``."""
    pattern = prefix.replace("_", r"\_") + "%"
    rows = db.query(
        "SELECT trader_id FROM jobs WHERE trader_id LIKE ? ESCAPE '\\' "
        "UNION SELECT trader_id FROM runs WHERE trader_id LIKE ? ESCAPE '\\'",
        [pattern, pattern],
    )
    return {str(r["trader_id"]) for r in rows}


def record_launch(
    db: sqlite_utils.Database,
    trader_id: str,
    preset: str,
    pid: int,
    config_path: str,
    log_path: str,
    registered: RegisteredStrategy | None = None,
) -> Job:
    body = None if registered is None else registered.model_dump_json()
    try:
        with write_transaction(db):
            db.execute(
                "INSERT INTO jobs (trader_id, preset, pid, config_path, log_path, launched_at, "
                "registered) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [trader_id, preset, pid, config_path, log_path, utc_now(), body],
            )
    except sqlite3.Error as exc:
        raise StorageError(f"recording the launch of {trader_id} failed: {exc}") from exc
    job = job_for(db, trader_id)
    if job is None:
        raise StorageError(f"the launch of {trader_id} was recorded but cannot be read back")
    return job


def record_exit(db: sqlite_utils.Database, trader_id: str, exit_code: int) -> None:
    try:
        with write_transaction(db):
            db.execute(
                "UPDATE jobs SET exit_code = ?, exited_at = ? "
                "WHERE trader_id = ? AND exit_code IS NULL",
                [exit_code, utc_now(), trader_id],
            )
    except sqlite3.Error as exc:
        raise StorageError(f"recording the exit of {trader_id} failed: {exc}") from exc
