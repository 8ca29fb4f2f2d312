"""CheckpointerActor: owns the database writer; checkpoints, events, heartbeat.

Every ``interval_s`` it asks the node for a snapshot and writes it in one
transaction. A failed write is never swallowed: it goes to the classifier as an
``ErrorRaised`` and to whoever asked for that checkpoint as ``CheckpointFailed``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from actors.base import ChildContext, SupervisedActor
from actors.messages import (
    Beat,
    CheckpointFailed,
    CheckpointNow,
    CheckpointSaved,
    ErrorRaised,
    LastSnapshot,
    Mailbox,
    NodeStarted,
    NodeStopped,
    OrderFilled,
    OrderRejected,
    OrdersCanceled,
    Snapshot,
    TakeSnapshot,
    TradingState,
    TradingStateChanged,
)
from actors.timer import Interval
from storage import RunInfo, StorageError, Store
from storage.store import DEFAULT_KEEP_LAST

log = logging.getLogger(__name__)

ROLE = "checkpointer"

EVENT_KINDS: dict[type, str] = {
    NodeStarted: "node_started",
    NodeStopped: "node_stopped",
    OrderFilled: "fill",
    OrderRejected: "reject",
    OrdersCanceled: "orders_canceled",
    TradingStateChanged: "trading_state",
}


class CheckpointerActor(SupervisedActor):
    def __init__(
        self,
        ctx: ChildContext,
        db_path: Path,
        run: RunInfo,
        interval_s: float = 60.0,
        heartbeat_interval_s: float = 5.0,
        keep_last: int = DEFAULT_KEEP_LAST,
        busy_timeout_s: float = 5.0,
    ) -> None:
        super().__init__(ctx)
        self._db_path = db_path
        self._run = run
        self._interval_s = interval_s
        self._heartbeat_interval_s = heartbeat_interval_s
        self._keep_last = keep_last
        self._busy_timeout_s = busy_timeout_s
        self._store: Store | None = None
        self._timers: list[Interval] = []
        self._waiting: list[tuple[bool, Mailbox | None]] = []
        self._last: Snapshot | None = None
        self._state = "starting"
        self.saved = 0
        self.failed = 0

    def started(self) -> None:
        self._store = Store(self._db_path, timeout_s=self._busy_timeout_s)
        self._last = self._store.last_snapshot(self._run.trader_id)
        self._beat()
        self._timers = [
            Interval(self._interval_s, self.actor_ref, CheckpointNow, "checkpoint-timer"),
            Interval(self._heartbeat_interval_s, self.actor_ref, Beat, "heartbeat-timer"),
        ]

    def stopped(self) -> None:
        for timer in self._timers:
            timer.cancel()
        if self._store is not None:
            self._store.close()

    @property
    def store(self) -> Store:
        if self._store is None:
            raise StorageError("checkpointer has no open database")
        return self._store

    def receive(self, message: object) -> object:
        match message:
            case CheckpointNow(final=final, notify=notify):
                self._request(final, notify)
            case Snapshot():
                self._write(message)
            case Beat():
                self._beat()
            case LastSnapshot():
                return self._last
            case TradingStateChanged(state=state):
                self._state = "halted" if state is TradingState.HALTED else "running"
                self._event(message)
                self._beat()
            case NodeStarted():
                self._state = "halted" if self._state == "halted" else "running"
                self._event(message)
                self._beat()
                self._request(False, None)  # a first checkpoint as soon as it trades
            case OrderFilled() | OrderRejected() | OrdersCanceled() | NodeStopped():
                self._event(message)
            case _:
                return super().receive(message)
        return None

    def _request(self, final: bool, notify: Mailbox | None) -> None:
        self._waiting.append((final, notify))
        if not self.peers.tell("node", TakeSnapshot(reply_to=self.actor_ref)):
            self._waiting.pop()
            reason = "node is not running; no snapshot to checkpoint"
            log.warning(reason)
            if notify is not None:
                notify.tell(CheckpointFailed(reason, final))

    def _write(self, snapshot: Snapshot) -> None:
        final, notify = self._waiting.pop(0) if self._waiting else (False, None)
        try:
            checkpoint_id = self.store.write_checkpoint(
                self._run, snapshot, final=final, keep_last=self._keep_last
            )
        except StorageError as exc:
            self.failed += 1
            self._report(exc)
            if notify is not None:
                notify.tell(CheckpointFailed(str(exc), final))
            return
        self.saved += 1
        self._last = snapshot
        log.info(
            "checkpoint %d: equity %s %s, %d open orders, %d positions, cursor %d",
            checkpoint_id,
            snapshot.equity,
            snapshot.currency,
            len(snapshot.open_orders),
            len(snapshot.positions),
            snapshot.replay_cursor,
        )
        if notify is not None:
            notify.tell(CheckpointSaved(checkpoint_id, snapshot.taken_at_ns, final))

    def _event(self, message: object) -> None:
        try:
            self.store.append_event(self._run, EVENT_KINDS[type(message)], message)
        except StorageError as exc:
            self._report(exc)

    def _beat(self) -> None:
        try:
            self.store.beat(self._run, self._state)
        except StorageError as exc:
            self._report(exc)

    def _report(self, exc: StorageError) -> None:
        log.error("%s", exc)
        self.peers.tell("classifier", ErrorRaised(ROLE, type(exc).__name__, str(exc)))
