"""What the service keeps on disk beside the database, and for how long.

The database's rows have their retention policy (``Store.sweep``); two things grew
without bound beside it: a Binance session's market-data recordings (NautilusTrader's
stream, one directory per node run under ``recordings/<trader>/live``) and the log of a
session whose output goes to a file (a dashboard launch's ``service.log``, or ``run >
file``). The checkpointer's retention sweep calls both functions here:

- ``prune_recordings``: a node run last written more than ``keep_days`` ago goes, then
  the oldest ones while all of them take more than ``max_bytes``; the newest run (the
  one being written) always stays. The parity report replays what is left.
- ``cap_output_log``: a log file past ``max_bytes`` keeps its last half, after a line
  saying how much went. Under systemd the output is the journal (not a file) and this
  does nothing: journald has its own limits.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class Pruned:
    runs: int
    bytes: int


def recordings_of(db_path: Path, trader_id: str) -> Path:
    """Where a session's recordings live (``protocol.recording_path``'s directory)."""
    return db_path.parent / "recordings" / trader_id


def prune_recordings(
    root: Path, keep_days: int, max_bytes: int, now: float | None = None
) -> Pruned:
    """Remove the recorded runs under ``root`` that the policy no longer keeps."""
    live = root / "live"
    if not live.is_dir():
        return Pruned(0, 0)
    runs = []
    for run in live.iterdir():
        if run.is_dir() and not run.is_symlink():
            size, newest = _usage(run)
            runs.append((newest, size, run))
    runs.sort()  # oldest first; the last is the one being written
    now = time.time() if now is None else now
    total = sum(size for _, size, _ in runs)
    removed, freed = 0, 0
    for newest, size, run in runs[:-1]:
        if now - newest <= keep_days * DAY_S and total <= max_bytes:
            break
        shutil.rmtree(run, ignore_errors=True)
        removed, freed, total = removed + 1, freed + size, total - size
    return Pruned(removed, freed)


def _usage(directory: Path) -> tuple[int, float]:
    """Bytes of every file under ``directory`` and the newest file's mtime."""
    size, newest = 0, directory.stat().st_mtime
    for path in directory.rglob("*"):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode):
            size += info.st_size
            newest = max(newest, info.st_mtime)
    return size, newest


def cap_output_log(max_bytes: int, fd: int = 2) -> int:
    """If ``fd`` (the service's stderr, where its log lines go) is a file larger than
    ``max_bytes``, keep its last half; the bytes removed (0 if none). Lines written by
    another thread between the read and the truncation are lost: once per cap."""
    try:
        info = os.fstat(fd)
    except OSError:
        return 0
    if not stat.S_ISREG(info.st_mode) or info.st_size <= max_bytes:
        return 0
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    keep = max_bytes // 2
    try:
        # The descriptor is write-only: the file is read through /proc's link to it.
        with open(f"/proc/self/fd/{fd}", "rb") as reader:
            reader.seek(info.st_size - keep)
            tail = reader.read(keep)
        tail = tail[tail.find(b"\n") + 1 :]  # from the first whole line
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)  # without O_APPEND the next write would leave a hole
        dropped = info.st_size - len(tail)
        note = f"[log capped at {max_bytes:,} bytes: {dropped:,} earlier bytes removed]\n"
        os.write(fd, note.encode() + tail)
    except OSError as exc:
        log.warning("retention: the log could not be capped: %s", exc)
        return 0
    return dropped
