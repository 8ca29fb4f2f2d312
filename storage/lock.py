"""One service and one node per trader and database: a lock file beside the database.

Two services trading one account interleave their checkpoints and double every
order. The service takes an exclusive lock on ``<db>.<trader>.lock`` before it
records a run; its node child takes ``<db>.<trader>.node.lock`` before it trades, so
a new service's node also waits for the previous node child to be gone (after a
SIGKILL of the service, its child stops itself within a second or two).

The locks are ``flock`` locks on the open file: the kernel drops them when the
process dies, however it dies, so a stale file never blocks a restart. The file
holds the holder's pid, only to name it in the refusal.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path


class AlreadyRunning(RuntimeError):
    """Another process holds the lock: the message names the trader, file and pid."""


def lock_path(db_path: Path, trader_id: str, node: bool = False) -> Path:
    return db_path.with_name(f"{db_path.name}.{trader_id}{'.node' if node else ''}.lock")


class InstanceLock:
    def __init__(self, path: Path, what: str) -> None:
        self.path = path
        self._what = what
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0) -> InstanceLock:
        """Take the lock, waiting up to ``wait_s``; ``AlreadyRunning`` if it stays taken."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    os.close(fd)
                    raise AlreadyRunning(
                        f"{self._what} is already running ({holder}; lock {self.path})"
                    ) from None
                time.sleep(0.05)
        self._fd = fd
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the last descriptor drops the lock
            self._fd = None


def _holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        pid = ""
    return f"pid {pid}" if pid.isdigit() else "pid unknown"
