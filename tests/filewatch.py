"""Which files a process tree writes, from its own system calls (strace).

Comparing a directory before and after cannot tell whose files changed: another
process on the machine writing to /tmp made the launch test fail. Tracing the
launched process (and every child it forks, the node included) records only what
that tree itself creates or opens for writing.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

WRITE_CALLS = (
    "open,openat,openat2,creat,mkdir,mkdirat,rename,renameat,renameat2,"
    "link,linkat,symlink,symlinkat,truncate,mknod,mknodat"
)
_PATH = re.compile(r'^\d+\s+(\w+)\((?:[^"]*?)"([^"]+)"(.*)$')
_WRITE_FLAGS = re.compile(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND")


def available() -> bool:
    return shutil.which("strace") is not None


class FileWrites:
    """``strace -f`` attached to ``pid`` until ``stop``; ``paths`` are the files written."""

    def __init__(self, pid: int, log: Path) -> None:
        self._log = log
        self._cwd = Path(f"/proc/{pid}/cwd").resolve()  # for relative paths
        self._proc = subprocess.Popen(
            ["strace", "-f", "-qq", "-e", f"trace={WRITE_CALLS}", "-o", str(log), "-p", str(pid)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        # strace writes its first line once attached; wait for it, not a fixed time.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (log.exists() and log.stat().st_size):
            if self._proc.poll() is not None:
                raise RuntimeError(f"strace could not attach to {pid}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)  # detaches cleanly
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def paths(self) -> set[str]:
        written: set[str] = set()
        for line in self._log.read_text(errors="replace").splitlines():
            match = _PATH.match(line)
            if match is None:
                continue
            call, path, rest = match.groups()
            if call in ("open", "openat", "openat2") and not _WRITE_FLAGS.search(rest):
                continue  # read-only opens are not writes
            if "= -1" in rest:
                continue  # failed calls wrote nothing
            written.add(path if path.startswith("/") else str(self._cwd / path))
        return written
