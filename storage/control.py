"""The operator control channel: commands written to the database, acknowledged there.

The CLI (and later the dashboard) queues ``halt``, ``resume`` or ``stop`` for a
trader; the running service picks pending commands up, carries them out through
the actor tree, and writes back the outcome. Going through the database means
every control path is the same one, works without a socket, and leaves a record.

A command is for now: one the service never picked up (it was down, or it was
another trader's database) expires after ``PENDING_TTL_S`` instead of being carried
out by whichever run starts next - a day-old ``stop`` used to stop the next start.
The CLI and the dashboard stop waiting for an answer well before that.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path

import sqlite_utils

from storage.errors import StorageError
from storage.store import connect, utc_now
from storage.txn import write_transaction

PENDING_TTL_S = 60.0  # past the CLI's (30 s) and the dashboard's (20 s) wait for an answer


class Command(StrEnum):
    HALT = "halt"
    RESUME = "resume"
    STOP = "stop"


class CommandStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ControlRequest:
    id: int
    trader_id: str
    command: Command
    reason: str
    status: CommandStatus
    result: str | None
    strategy_id: str | None = None  # a halt or resume of one strategy
    mode: str | None = None  # a halt's (protocol.HaltMode); None: the service's configured one
    requested_at: str = ""  # ISO 8601, UTC


def _row(row: dict[str, object]) -> ControlRequest:
    return ControlRequest(
        id=int(str(row["id"])),
        trader_id=str(row["trader_id"]),
        command=Command(str(row["command"])),
        reason=str(row["reason"]),
        status=CommandStatus(str(row["status"])),
        result=None if row["result"] is None else str(row["result"]),
        strategy_id=None if row.get("strategy_id") is None else str(row["strategy_id"]),
        mode=None if row.get("mode") is None else str(row["mode"]),
        requested_at=str(row.get("requested_at") or ""),
    )


class ControlChannel:
    """Queue commands and read their outcome; thread-safe through ``lock``.

    Opens its own connection unless given ``db`` (an app that keeps one connection
    per process passes its own, with the lock that guards it).
    """

    def __init__(
        self,
        path: Path,
        timeout_s: float = 5.0,
        *,
        db: sqlite_utils.Database | None = None,
        lock: threading.RLock | None = None,
    ) -> None:
        self.path = path
        self._owned = db is None
        self.db: sqlite_utils.Database = (
            connect(path, timeout_s, check_same_thread=False) if db is None else db
        )
        self._lock = threading.RLock() if lock is None else lock

    def close(self) -> None:
        if self._owned:
            self.db.close()

    def submit(
        self,
        trader_id: str,
        command: Command,
        reason: str,
        strategy_id: str | None = None,
        mode: str | None = None,
    ) -> int:
        """Queue ``command``; a halt or resume with ``strategy_id`` is that strategy's; a
        halt's ``mode`` is cancel, reduce or flatten."""
        if strategy_id is not None and command is Command.STOP:
            raise ValueError("stop is the service's; it names no strategy")
        try:
            with self._lock, write_transaction(self.db):
                table = self.db.table("control")
                table.insert(
                    {
                        "trader_id": trader_id,
                        "command": command.value,
                        "reason": reason,
                        "requested_at": utc_now(),
                        "strategy_id": strategy_id,
                        "mode": mode,
                    }
                )
                return int(table.last_pk)  # type: ignore[arg-type]
        except sqlite3.Error as exc:
            raise StorageError(f"queuing {command} failed on {self.path}: {exc}") from exc

    def get(self, request_id: int) -> ControlRequest:
        try:
            with self._lock:
                rows = list(self.db.query("SELECT * FROM control WHERE id = ?", [request_id]))
        except sqlite3.Error as exc:
            raise StorageError(f"reading control request {request_id} failed: {exc}") from exc
        if not rows:
            raise StorageError(f"no control request {request_id} in {self.path}")
        return _row(rows[0])

    def wait(self, request_id: int, timeout_s: float, poll_s: float = 0.1) -> ControlRequest:
        """Until the service has acknowledged ``request_id`` (done or failed) or timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            request = self.get(request_id)
            if request.status in (CommandStatus.DONE, CommandStatus.FAILED):
                return request
            if time.monotonic() >= deadline:
                return request
            time.sleep(poll_s)

    def pending(self, trader_id: str) -> list[ControlRequest]:
        try:
            with self._lock:
                rows = self.db.query(
                    "SELECT * FROM control WHERE trader_id = ? AND status = 'pending' ORDER BY id",
                    [trader_id],
                )
                return [_row(r) for r in rows]
        except sqlite3.Error as exc:
            raise StorageError(f"reading control requests failed on {self.path}: {exc}") from exc

    def expire(self, trader_id: str, max_age_s: float = PENDING_TTL_S) -> list[ControlRequest]:
        """Fail ``trader_id``'s pending commands requested more than ``max_age_s`` ago
        (never picked up: nothing was done); the ones expired, for the log."""
        cutoff = (datetime.now(UTC) - timedelta(seconds=max_age_s)).isoformat(
            timespec="milliseconds"
        )
        result = (
            f"expired: not picked up within {max_age_s:g} s of its request (the service "
            "was not running); nothing was done"
        )
        try:
            with self._lock, write_transaction(self.db):
                rows = [
                    _row(r)
                    for r in self.db.query(
                        "SELECT * FROM control WHERE trader_id = ? AND status = 'pending' "
                        "AND requested_at < ? ORDER BY id",
                        [trader_id, cutoff],
                    )
                ]
                for row in rows:
                    self.db.table("control").update(
                        row.id,
                        {"status": CommandStatus.FAILED.value, "result": result,
                         "acked_at": utc_now()},
                    )  # fmt: skip
        except sqlite3.Error as exc:
            raise StorageError(f"expiring control requests failed on {self.path}: {exc}") from exc
        return rows

    def ack(self, request_id: int, status: CommandStatus, result: str) -> None:
        try:
            with self._lock, write_transaction(self.db):
                self.db.table("control").update(
                    request_id, {"status": status.value, "result": result, "acked_at": utc_now()}
                )
        except sqlite3.Error as exc:
            raise StorageError(f"acknowledging request {request_id} failed: {exc}") from exc
