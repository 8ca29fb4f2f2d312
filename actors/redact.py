"""Secrets never reach a log line, an exception message, an event or the database.

Secret values come only from the environment. ``install`` makes every log record
redacted when it is created (message, arguments and formatted traceback), so no
handler - a file, the journal, a test's capture - can see the raw value. Code
that turns an exception into a message or a database row calls ``redact`` too.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable

from protocol import SECRET_ENV

MASK = "***"
MIN_SECRET_LEN = 6  # shorter values would mask ordinary words

_lock = threading.Lock()
_secrets: set[str] = set()
_installed = threading.Event()


def add_secrets(values: Iterable[str]) -> None:
    with _lock:
        _secrets.update(v for v in values if v and len(v) >= MIN_SECRET_LEN)


def secrets_from_env() -> list[str]:
    return [os.environ[name] for name in SECRET_ENV if os.environ.get(name)]


def redact(text: str) -> str:
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text


def install(extra: Iterable[str] = ()) -> None:
    """Redact every log record from now on; idempotent, adds the environment's secrets."""
    add_secrets(secrets_from_env())
    add_secrets(extra)
    with _lock:
        if _installed.is_set():
            return
        _installed.set()
    previous = logging.getLogRecordFactory()
    formatter = logging.Formatter()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg, record.args = redact(message), None
        if record.exc_info:
            record.exc_text = redact(formatter.formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(factory)
