"""The write-ahead log folded into the database on a thread of its own.

SQLite folds the WAL into the database file on the commit that takes it past
``wal_autocheckpoint`` pages (1,000 by default), and that fold writes and fsyncs the
database file on the committing connection's thread. For the checkpointer that was one
checkpoint write in every few hundred, 5-7 ms instead of 0.3-0.5 (20 strategies, a
13.7 KB snapshot ten times a second), and every fill that reached the checkpointer
meanwhile waited for it: our part of a fill p99 2.2-3.2 ms; with the fold off its thread,
0.6-1.2 ms (issue 29). Here a keeper folds the WAL every ``every_s`` with a ``PASSIVE``
checkpoint - it takes no lock a writer waits for, and SQLite releases the GIL while it
works - and the checkpointer's own connection folds only past ``BACKSTOP_PAGES``, so a
keeper that stopped folding cannot let the WAL grow without bound.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

__all__ = ["BACKSTOP_PAGES", "WAL_EVERY_S", "WalKeeper"]

log = logging.getLogger(__name__)

WAL_EVERY_S = 1.0
BACKSTOP_PAGES = 20_000  # ~80 MB of 4 KiB pages: the writer folds past this itself


class WalKeeper:
    """A daemon thread with its own connection that folds ``path``'s WAL every
    ``every_s``; a failed fold (the disk, a lock) is tried at the next, and logged once
    a streak (the checkpointer's own writes report a full disk)."""

    def __init__(self, path: Path, every_s: float = WAL_EVERY_S) -> None:
        self._path = path
        self._every_s = every_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-keeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(str(self._path), timeout=0.1, check_same_thread=False)
        except sqlite3.Error as exc:
            log.warning("the WAL keeper cannot open %s: %s", self._path, exc)
            return
        failing = False  # a full disk fails every fold: said once, and when it ends
        try:
            while not self._stopping.wait(self._every_s):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    if not failing:
                        log.warning("folding the WAL of %s failed: %s", self._path, exc)
                    failing = True
                    continue
                if failing:
                    log.info("folding the WAL of %s works again", self._path)
                failing = False
        finally:
            conn.close()
