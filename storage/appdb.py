"""One database connection for a whole app process (the dashboard), shared by its threads.

Streamlit runs every browser session's script in its own thread. Opening a
connection per query, as the reviewed dashboard did, costs a file open, a schema
check and a WAL index map each time; here one connection serves every thread,
serialised by a lock so no thread's statement lands inside another's
transaction. Reads are plain WAL reads that never block the services writing
the same file; the few writes (presets, jobs, control commands) take the write
lock only for their own short transaction.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from protocol import OrderView, RegisteredStrategy
from storage import jobs, presets, queries, registry, stats
from storage.control import ControlChannel
from storage.errors import StorageError
from storage.jobs import Job
from storage.played import Played, played_of
from storage.presets import PresetBody
from storage.queries import AlertRow, ControlRow, EquityPoint
from storage.stats import TradeReport
from storage.status import EventRow, StatusReport, events_of, status_of
from storage.store import connect

T = TypeVar("T")


class AppDatabase:
    def __init__(self, path: Path, timeout_s: float = 5.0) -> None:
        self.path = path
        self.db = connect(path, timeout_s, check_same_thread=False)
        self.db.conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self.control = ControlChannel(path, timeout_s, db=self.db, lock=self._lock)

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self.db.close()

    def _run(self, what: str, query: Callable[[], T]) -> T:
        try:
            with self._lock:
                return query()
        except sqlite3.Error as exc:
            raise StorageError(f"{what} failed on {self.path}: {exc}") from exc

    # ------------------------------------------------------------ sessions (read-only)

    def sessions(self, stale_after_s: float) -> list[StatusReport]:
        return self._run("listing sessions", lambda: queries.sessions(self.db.conn, stale_after_s))

    def status(self, trader_id: str, stale_after_s: float) -> StatusReport | None:
        return self._run(
            f"reading the status of {trader_id}",
            lambda: status_of(self.db.conn, trader_id, stale_after_s),
        )

    def equity_curve(self, trader_id: str) -> list[EquityPoint]:
        return self._run(
            f"reading the equity of {trader_id}",
            lambda: queries.equity_curve(self.db.conn, trader_id),
        )

    def open_orders(self, trader_id: str) -> list[OrderView]:
        return self._run(
            f"reading the orders of {trader_id}",
            lambda: queries.open_orders(self.db.conn, trader_id),
        )

    def events(self, trader_id: str, tail: int) -> list[EventRow]:
        return self._run(
            f"reading the events of {trader_id}", lambda: events_of(self.db.conn, trader_id, tail)
        )

    def alerts(self, trader_id: str) -> list[AlertRow]:
        return self._run(
            f"reading the alerts of {trader_id}", lambda: queries.alerts(self.db.conn, trader_id)
        )

    def control_history(self, trader_id: str) -> list[ControlRow]:
        return self._run(
            f"reading the commands for {trader_id}",
            lambda: queries.control_history(self.db.conn, trader_id),
        )

    def trade_report(self, trader_id: str) -> TradeReport:
        """The session's round trips and statistics (``storage.stats``)."""
        return self._run(
            f"reading the trades of {trader_id}", lambda: stats.report_of(self.db.conn, trader_id)
        )

    def played(self, trader_id: str) -> Played | None:
        """How far the session got, its settings and its fills, for its chart."""
        return self._run(
            f"reading what {trader_id} played", lambda: played_of(self.db.conn, trader_id)
        )

    # ------------------------------------------------------------ jobs

    def jobs(self) -> list[Job]:
        return self._run("listing jobs", lambda: jobs.list_jobs(self.db))

    def job(self, trader_id: str) -> Job | None:
        return self._run(f"reading job {trader_id}", lambda: jobs.job_for(self.db, trader_id))

    def used_trader_ids(self, prefix: str) -> set[str]:
        return self._run("listing trader ids", lambda: jobs.trader_ids_with_prefix(self.db, prefix))

    def record_launch(
        self,
        trader_id: str,
        preset: str,
        pid: int,
        config_path: Path,
        log_path: Path,
        registered: RegisteredStrategy | None = None,
    ) -> Job:
        return self._run(
            f"recording the launch of {trader_id}",
            lambda: jobs.record_launch(
                self.db, trader_id, preset, pid, str(config_path), str(log_path), registered
            ),
        )

    def record_exit(self, trader_id: str, exit_code: int) -> None:
        self._run(
            f"recording the exit of {trader_id}",
            lambda: jobs.record_exit(self.db, trader_id, exit_code),
        )

    # ------------------------------------------------------------ the strategy registry

    def registry(self) -> list[RegisteredStrategy]:
        """Every registered strategy, by name (``paper-node strategies add`` writes them)."""
        return self._run(
            "reading the strategy registry", lambda: registry.registry_of(self.db.conn)
        )

    def registered(self, name: str) -> RegisteredStrategy | None:
        return next((e for e in self.registry() if e.name == name), None)

    # ------------------------------------------------------------ presets

    def preset_names(self) -> list[str]:
        return self._run("listing presets", lambda: presets.preset_names(self.db))

    def load_preset(self, name: str) -> PresetBody | None:
        return self._run(f"reading preset {name!r}", lambda: presets.load_preset(self.db, name))

    def save_preset(self, name: str, body: PresetBody) -> None:
        self._run(f"saving preset {name!r}", lambda: presets.save_preset(self.db, name, body))

    def delete_preset(self, name: str) -> bool:
        return self._run(f"deleting preset {name!r}", lambda: presets.delete_preset(self.db, name))
