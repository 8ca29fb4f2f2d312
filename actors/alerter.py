"""AlerterActor (first form): every alert lands in a durable outbox and the log.

Delivery to Telegram drains the same outbox later, so an alert raised while the
network or the bot is down is still there after a restart.
"""

from __future__ import annotations

import logging
from pathlib import Path

from actors.base import ChildContext, SupervisedActor
from actors.messages import Alert, Severity
from storage import StorageError, Store

log = logging.getLogger(__name__)

ROLE = "alerter"

_LEVELS = {
    Severity.INFO: logging.INFO,
    Severity.WARNING: logging.WARNING,
    Severity.CRITICAL: logging.CRITICAL,
}


class AlerterActor(SupervisedActor):
    def __init__(self, ctx: ChildContext, db_path: Path, trader_id: str, mode: str) -> None:
        super().__init__(ctx)
        self._db_path = db_path
        self._trader_id = trader_id
        self._mode = mode
        self._store: Store | None = None
        self.queued = 0

    def started(self) -> None:
        self._store = Store(self._db_path)

    def stopped(self) -> None:
        if self._store is not None:
            self._store.close()

    def receive(self, message: object) -> object:
        match message:
            case Alert():
                self._queue(message)
                return None
            case _:
                return super().receive(message)

    def _queue(self, alert: Alert) -> None:
        text = f"[{self._trader_id} {self._mode}] {alert.title}: {alert.text}"
        log.log(_LEVELS[alert.severity], "ALERT %s", text)
        if self._store is None:
            return
        try:
            self._store.enqueue_alert(self._trader_id, alert)
            self.queued += 1
        except StorageError as exc:
            # The outbox itself is unwritable: the log line above is all that is left.
            log.critical("alert could not be queued (%s): %s", exc, text)
