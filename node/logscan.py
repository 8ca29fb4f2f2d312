"""What NautilusTrader logs as errors, read from the node child's output as records.

NautilusTrader has no hook that hands its log records to Python: its Rust logger
writes ERROR lines to file descriptor 2 from a thread of its own (WARN and below go
to fd 1). An adapter's failed reconnect, an exception its engines caught and logged,
a strategy's ``self.log.error`` - all of it was printed and nothing else. So the node
child's fds 1 and 2 are a pipe that the parent reads (a thread in the supervisor's process,
never in the node's: a reader there would share the node's GIL, and the Rust logger
blocked on a full pipe while holding it would hang the node), and this scanner turns
the bytes into records: one per header line, traceback lines folded into the record
before them. Imports nothing of Nautilus.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_HEADER = re.compile(
    r"^(?P<ts>\d{4}-\d\d-\d\dT\S+Z) \[(?P<level>TRACE|DEBUG|INFO|WARN|ERROR)\] "
    r"(?P<trader>[^.\s]+)\.(?P<component>.+?): (?P<msg>.*)$"
)
MAX_MESSAGE = 2000  # characters of a record passed on (a traceback can be long)


@dataclass(slots=True)
class LogRecord:
    level: str  # ERROR, WARN, ... or RAW for a line with no Nautilus header
    component: str
    message: str


class LogScanner:
    """Bytes in, complete records out; a record ends at the next header or at ``flush``."""

    def __init__(self) -> None:
        self._buffer = b""
        self._current: LogRecord | None = None

    def feed(self, data: bytes) -> list[LogRecord]:
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        done: list[LogRecord] = []
        for raw in lines:
            text = _ANSI.sub("", raw.decode("utf-8", "replace")).rstrip()
            match = _HEADER.match(text)
            if match is not None:
                done.extend(self.flush())
                self._current = LogRecord(match["level"], match["component"], match["msg"])
            elif not text.strip():
                continue
            elif self._current is not None and (raw[:1] in (b" ", b"\t") or _is_tail(text)):
                self._current.message += "\n" + text
            else:
                done.extend(self.flush())
                self._current = LogRecord("RAW", "stderr", text)
        return done

    def flush(self) -> list[LogRecord]:
        """The record in progress, complete: nothing more came for a moment."""
        current, self._current = self._current, None
        if current is None:
            return []
        current.message = current.message[:MAX_MESSAGE]
        return [current]


def _is_tail(text: str) -> bool:
    """A line of a Python traceback printed under a record (``Traceback ...``, frames,
    the final ``SomeError: text``)."""
    return (
        text.startswith("Traceback")
        or re.match(r"^[A-Za-z_][\w.]*(Error|Exception)\b", text) is not None
    )


_FAILURE = re.compile(r"fail|error|refused|unreachable|disconnect|timed? ?out", re.IGNORECASE)
_NETWORK = ("nautilus_network", "websocket", "socket", "http")


class ErrorFilter:
    """Which records are errors worth classifying, and each at most once a window.

    ERROR records and Python tracebacks (also printed to fd 2) pass, and so do the
    network clients' warnings of a failure: a websocket that cannot reconnect only
    warns ("Reconnect attempt 5 failed: Connection refused"), forever. The same
    component and first line (numbers aside) again within ``window_s`` is counted,
    not repeated: a reconnect loop is one error a minute, with its count.
    """

    def __init__(self, window_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def admit(self, record: LogRecord) -> tuple[LogRecord, int] | None:
        """The record and how many like it were held back since the last one passed."""
        if not _is_error(record):
            return None
        key = (
            record.component,
            re.sub(r"\d+(\.\d+)?", "#", record.message.split("\n", 1)[0])[:200],
        )
        now = self._clock()
        last = self._seen.get(key)
        if last is not None and now - last[0] < self._window_s:
            self._seen[key] = (last[0], last[1] + 1)
            return None
        held = last[1] if last is not None else 0
        self._seen[key] = (now, 0)
        if len(self._seen) > 1000:  # forget the oldest keys; the window is what matters
            for old in sorted(self._seen, key=lambda k: self._seen[k][0])[:500]:
                del self._seen[old]
        return record, held


def _is_error(record: LogRecord) -> bool:
    if record.level == "ERROR":
        return True
    if record.level == "RAW":
        return record.message.startswith("Traceback")
    network = any(word in record.component.lower() for word in _NETWORK)
    return record.level == "WARN" and network and _FAILURE.search(record.message) is not None
