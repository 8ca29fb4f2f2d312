"""One service and one node per trader and database: a lock file beside the database.

Two services trading one account interleave their checkpoints and double every
order. The service takes an exclusive lock on ``<db>.<trader>.lock`` before it
records a run; its node child takes ``<db>.<trader>.node.lock`` before it trades, so
a new service's node also waits for the previous node child to be gone (after a
SIGKILL of the service, its child stops itself within a second or two).

The locks are ``flock`` locks on the open file: the kernel drops them when the
process dies, however it dies, so a stale file never blocks a restart. The file
holds the holder's pid (and, for an account lock, its trader and database), only to
name it in the refusal.

A venue account is locked too (``account_lock_path``): two sessions of different
traders, or on different databases, must not trade one binance-testnet account, so
that lock cannot live beside a database. It lives in one directory per user of the
host, found without the environment (see ``account_lock_dir``), and is named by a hash
of the API key, never the key.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import time
from collections.abc import Mapping
from pathlib import Path

from storage.errors import StorageError

LOCK_DIR_ENV = "PAPER_NODE_LOCK_DIR"


class AlreadyRunning(RuntimeError):
    """Another process holds the lock: the message names the trader, file and pid."""


def lock_path(db_path: Path, trader_id: str, node: bool = False) -> Path:
    return db_path.with_name(f"{db_path.name}.{trader_id}{'.node' if node else ''}.lock")


def account_lock_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where every session of this user on this host takes its account locks.

    Not beside the database: two databases on one host must still collide. Not /tmp:
    a dashboard launch points ``TMPDIR`` into its session's directory and systemd gives
    the service a private /tmp. Not ``$XDG_RUNTIME_DIR``: it exists only while the user
    is logged in, and a systemd service, a shell and a dashboard do not all see it. So
    the user's state directory, ``~/.local/state/paper-node/accounts``, with the home
    taken from the password database rather than ``$HOME``, so the CLI, a dashboard
    launch and the systemd unit (whose user's home, /var/lib/paper-node, is its one
    writable directory) of one user all find the same one. Sessions of different users
    on the same keys are not seen by each other: a directory every user could write to
    would let any of them block the others. ``PAPER_NODE_LOCK_DIR`` names another
    directory (every session that must collide has to see the same one: the tests give
    each test its own)."""
    chosen = (os.environ if env is None else env).get(LOCK_DIR_ENV)
    if chosen:
        return Path(chosen)
    home = Path(pwd.getpwuid(os.getuid()).pw_dir)
    return home / ".local" / "state" / "paper-node" / "accounts"


def account_hash(api_key: str) -> str:
    """The account's name in a lock file's name and a refusal: a hash of its API key
    (16 hex digits of a SHA-256), from which the key cannot be read back."""
    return hashlib.sha256(f"paper-node account\n{api_key}".encode()).hexdigest()[:16]


def account_lock_path(
    kind: str, api_key: str, node: bool = False, env: Mapping[str, str] | None = None
) -> Path:
    """``<account_lock_dir>/<kind>-<hash>[.node].lock``: one per account on the host."""
    name = f"{kind}-{account_hash(api_key)}{'.node' if node else ''}.lock"
    return account_lock_dir(env) / name


class InstanceLock:
    def __init__(
        self, path: Path, what: str, busy: str = "is already running", holder: str = ""
    ) -> None:
        """``what`` ``busy`` names the refusal; ``holder`` describes this holder to the
        next one (after the pid, in the file)."""
        self.path = path
        self._what = what
        self._busy = busy
        self._holder = holder
        self._fd: int | None = None

    def acquire(self, wait_s: float = 0.0) -> InstanceLock:
        """Take the lock, waiting up to ``wait_s``; ``AlreadyRunning`` if it stays taken,
        ``StorageError`` (one line) if the file cannot be made (a directory the service
        may not write: it was a 20-line ``PermissionError`` traceback)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StorageError(
                f"cannot create the lock file {self.path}: {exc.strerror or exc}"
            ) from None
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
                        f"{self._what} {self._busy} ({holder}; lock {self.path})"
                    ) from None
                time.sleep(0.05)
        self._fd = fd
        os.ftruncate(fd, 0)
        about = f" {self._holder}" if self._holder else ""
        os.pwrite(fd, f"{os.getpid()}{about}\n".encode(), 0)
        return self

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing the last descriptor drops the lock
            self._fd = None


def held(path: Path) -> bool:
    """Whether a live process holds the lock at ``path``: a shared probe that fails only
    while someone holds it exclusively. The heartbeat says a service is healthy; this
    says it is alive (its heartbeat pauses while its node child is replaced, and it
    still carries out the commands queued for it). A free lock is taken and dropped at
    once, as ``refuse_if_running``'s probe does; a starting service waits that out."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False  # no file: nobody ever took it here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # drops a probe's shared lock
    return False


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 512, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    pid, _, about = text.partition(" ")
    named = f"pid {pid}" if pid.isdigit() else "pid unknown"
    return f"{named}, {about}" if about and pid.isdigit() else named
