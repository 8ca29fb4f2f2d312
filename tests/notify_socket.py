"""A datagram socket standing in for systemd's NOTIFY_SOCKET."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path


class NotifySocket:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.1)
        self.datagrams: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.datagrams.append((time.monotonic(), data.decode()))

    def lines(self) -> list[str]:
        with self._lock:
            return [line for _, d in self.datagrams for line in d.split("\n")]

    def count(self, line: str) -> int:
        return self.lines().count(line)

    def wait_for(self, line: str, n: int = 1, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count(line) >= n:
                return
            time.sleep(0.05)
        raise TimeoutError(f"{line!r} x{n} not seen in {timeout} s; got {self.lines()[-20:]}")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
