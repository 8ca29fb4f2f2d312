"""Write transactions that wait for the lock instead of failing."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlite_utils


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """``BEGIN IMMEDIATE``: take the write lock up front (waiting up to the busy timeout).

    A deferred transaction that reads first and writes later cannot wait for a
    concurrent writer in WAL mode - SQLite fails it at once with "database is
    locked" - and this database has several writers (checkpointer, alerter, control).
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.rollback()
        raise
    try:
        db.execute("COMMIT")
    except BaseException:
        db.rollback()
        raise
