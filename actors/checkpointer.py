"""CheckpointerActor: owns the database writer; checkpoints, events, heartbeat.

It asks the node for a snapshot every ``interval_s`` and also right after anything
that changes what a restart must restore (a fill, a halt or resume, confirmed
cancels, the node starting), coalescing requests while one is in flight. So the last
checkpoint is never older than the last fill, and a restart neither loses a trade
nor replays it. Each write is one transaction.

Each request carries an id and the reply must carry it back: a node that dies with a
request unanswered must not make its successor's reply answer the wrong request (a
final checkpoint written as an ordinary one, a fill's checkpoint never taken). A
request still unanswered after ``snapshot_timeout_s`` is given up (its waiter told),
and a node start re-sends every open request to the new node.

Between checkpoints the replay cursor moves on in the database by itself
(``NodeReport``), but only while the node's state is unchanged since the last
checkpoint (same ``state_version``), so a restart resumes at the right bar without
skipping a trade. Nor may it move past a draw of the simulated venue's fill model (a
touched limit order that did not fill draws and changes nothing else): a restore at
the later cursor would skip too few draws and leave the backtest, so a report with
more draws than the last checkpoint asks for a real checkpoint instead. Once an hour
(and at start) old rows are swept by the retention policy, so the file stops growing.
A fill, a funding payment and the events that say which fills a session counts are
appended to the ledger with their event row, in one transaction (``Store.append_event``),
and the sweep leaves the ledger alone: the trade statistics never lose a fill.

A failed write is never swallowed: it goes to the classifier as ``ErrorRaised`` and
to whoever asked for that checkpoint as ``CheckpointFailed``. A snapshot request the
node never answered, though alive (it reported after the request), is a failed
checkpoint too. When checkpoints have kept failing for ``halt_after_intervals``
intervals with no success, trading is halted, because a service that cannot record its
state must not keep taking risk. The clock starts at the first failure, not at the last
success: a node that is slow to start or restarting has no snapshot to write (and
sends no reports), which is not a storage failure.

The final checkpoint (the stopped node's snapshot) is retried, each attempt waiting
the busy timeout for the write lock: nothing comes after it to make up for a lost one.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import tenacity

from actors.base import ChildContext, SupervisedActor, halt
from actors.timer import Interval
from protocol import (
    Alert,
    Beat,
    CaughtUp,
    CheckpointFailed,
    CheckpointLookup,
    CheckpointNow,
    CheckpointSaved,
    CheckpointWritten,
    CircuitBreakerTripped,
    ConfigReloaded,
    Decision,
    ErrorRaised,
    ExpectFinal,
    FinalSnapshot,
    FundingPaid,
    Halt,
    LastSnapshot,
    Mailbox,
    NodeReport,
    NodeStarted,
    NodeStopped,
    OperationSucceeded,
    OrderFilled,
    OrderRejected,
    OrdersCanceled,
    QueryState,
    ReconciliationDiff,
    ServiceSettings,
    Severity,
    Snapshot,
    SnapshotTaken,
    TakeSnapshot,
    TradingState,
    TradingStateChanged,
)
from storage import (
    BACKSTOP_PAGES,
    WAL_EVERY_S,
    RunInfo,
    StorageError,
    Store,
    WalKeeper,
    cap_output_log,
    prune_recordings,
    recordings_of,
)
from storage.store import ns_to_iso, utc_now

log = logging.getLogger(__name__)

ROLE = "checkpointer"
BACKLOG_MAX = 100_000  # events kept in memory while the database refuses writes
OPERATION = "checkpoint"
FINAL_ATTEMPTS = 5  # the final write: each waits the busy timeout, with a backoff between

EVENT_KINDS: dict[type, str] = {
    NodeStarted: "node_started",
    NodeStopped: "node_stopped",
    OrderFilled: "fill",
    OrderRejected: "reject",
    OrdersCanceled: "orders_canceled",
    TradingStateChanged: "trading_state",
    CircuitBreakerTripped: "breaker",
    ConfigReloaded: "config_reloaded",
    ReconciliationDiff: "reconcile_diff",
    FundingPaid: "funding",
    CaughtUp: "catch_up",
    Decision: "error",
}


@dataclass(frozen=True, slots=True)
class CheckpointTick:
    """The periodic timer: checkpoint, and judge how long since the last success."""


@dataclass(frozen=True, slots=True)
class ExpiryTick:
    """Once a second: give up snapshot requests the node never answered."""


@dataclass(frozen=True, slots=True)
class SweepTick:
    """Hourly: delete what the retention policy no longer keeps."""


@dataclass(slots=True)
class _Request:
    final: bool
    notify: Mailbox | None
    sent_at: float
    # The node reported after the request was sent: alive, so an unanswered request is a
    # failed checkpoint (not a node that is starting).
    reported_since: bool = False


DEFAULT_SERVICE = ServiceSettings()


class CheckpointerActor(SupervisedActor):
    def __init__(
        self,
        ctx: ChildContext,
        db_path: Path,
        run: RunInfo,
        service: ServiceSettings = DEFAULT_SERVICE,
        beats: bool = True,
        busy_timeout_s: float = 1.0,
        db_pragmas: tuple[str, ...] = (),
        since_run: int = 0,
        clock: Callable[[], float] = time.monotonic,
        wal_every_s: float = WAL_EVERY_S,
    ) -> None:
        """``service`` holds the intervals and the retention policy; with ``beats`` the
        checkpointer writes the heartbeat on its own timer (the service's runtime beats
        instead, only while every actor answers)."""
        super().__init__(ctx)
        self._db_path = db_path
        self._run = run
        self._interval_s = service.checkpoint_interval_s
        self._heartbeat_interval_s = service.heartbeat_interval_s if beats else None
        self._retention = service
        self._busy_timeout_s = busy_timeout_s
        self._halt_after_s = service.halt_after_failed_intervals * self._interval_s
        self._db_pragmas = db_pragmas
        self._snapshot_timeout_s = service.snapshot_timeout_s
        self._since_run = since_run  # --fresh: checkpoints of earlier runs do not count
        self._sweep_interval_s = service.retention_sweep_s
        self._clock = clock
        self._store: Store | None = None
        self._wal = WalKeeper(db_path, wal_every_s)
        self._timers: list[Interval] = []
        self._requests: dict[int, _Request] = {}
        self._next_id = 0
        self._dirty = False
        self._last: Snapshot | None = None
        self._last_id: int | None = None
        self._final_waiter: Mailbox | None = None
        self._data_at_epoch: float | None = None
        self._failing_since: float | None = None  # first failed write since a success
        self._last_error = ""
        self._halted_for_storage = False
        self._state = "starting"
        self._backlog: deque[tuple[str, object, str]] = deque(maxlen=BACKLOG_MAX)
        self.saved = 0
        self.failed = 0

    def started(self) -> None:
        self._store = Store(self._db_path, timeout_s=self._busy_timeout_s)
        # The WAL is folded by the keeper's thread, not on a checkpoint's commit
        # (storage.wal); this connection only past the backstop.
        self._store.db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")
        for pragma in self._db_pragmas:
            self._store.db.execute(f"PRAGMA {pragma}")
        self._wal.start()
        found = self._store.last_checkpoint(self._run.trader_id, self._since_run)
        if found is not None:
            self._last_id, self._last = found
        self._beat()
        self._timers = [
            Interval(self._interval_s, self.actor_ref, CheckpointTick, "checkpoint-timer"),
            Interval(1.0, self.actor_ref, ExpiryTick, "checkpoint-expiry"),
            Interval(
                self._sweep_interval_s,
                self.actor_ref,
                SweepTick,
                "retention-sweep",
                first_after_s=min(5.0, self._sweep_interval_s),
            ),
        ]
        if self._heartbeat_interval_s is not None:  # else the runtime sends Beat
            self._timers.append(
                Interval(self._heartbeat_interval_s, self.actor_ref, Beat, "heartbeat-timer")
            )

    def stopped(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._wal.stop()
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
            case CheckpointTick():
                self._flush_events()
                self._check_staleness()
                self._request(False, None)
            case SnapshotTaken(request_id=request_id, snapshot=snapshot):
                self._answered(request_id, snapshot)
            case ExpectFinal(notify=notify):
                self._final_waiter = notify
            case FinalSnapshot(snapshot=snapshot):
                # The stopped node's state: final when the service is stopping.
                waiter, self._final_waiter = self._final_waiter, None
                self._write(snapshot, waiter is not None, waiter)
            case ExpiryTick():
                self._expire()
            case SweepTick():
                self._sweep()
            case NodeReport():
                self._node_report(message)
            case Beat():
                self._beat()
            case QueryState():
                return self._state
            case ConfigReloaded():
                self._event(message)
            case LastSnapshot():
                return CheckpointLookup(self._last)
            case TradingStateChanged(state=state, strategy_id=sid):
                if sid is None:  # one strategy's halt leaves the service running
                    self._state = "running" if state is TradingState.ACTIVE else "halted"
                self._event(message)
                self._beat()
                self._request(False, None, coalesce=True)
            case NodeStarted():
                self._started(message)
            case CaughtUp():
                self._caught_up(message)
            case OrderFilled() | OrdersCanceled() | FundingPaid():  # the books moved
                self._event(message)
                self._request(False, None, coalesce=True)
            case OrderRejected() | NodeStopped() | CircuitBreakerTripped() | ReconciliationDiff():
                self._event(message)
            case Decision(error=error) if error.source != ROLE:
                # Every classified error is in the log (but the database's own: those
                # could not be written while they happen, and would feed themselves).
                self._event(message)
            case _:
                return super().receive(message)
        return None

    # ------------------------------------------------------------ checkpoints

    def _request(self, final: bool, notify: Mailbox | None, coalesce: bool = False) -> None:
        if coalesce and self._requests:
            self._dirty = True  # one more snapshot once the pending one is written
            return
        self._next_id += 1
        request_id = self._next_id
        self._requests[request_id] = _Request(final, notify, self._clock())
        if not self.peers.tell("node", TakeSnapshot(self.actor_ref, request_id)):
            del self._requests[request_id]
            reason = "node is not running; no snapshot to checkpoint"
            log.warning(reason)
            if notify is not None:
                notify.tell(CheckpointFailed(reason, final))

    def _resend(self) -> None:
        """A new node: what the old one never answered is asked of it instead."""
        for old_id, request in sorted(self._requests.items()):
            self._next_id += 1
            request.sent_at = self._clock()
            self._requests[self._next_id] = request
            del self._requests[old_id]
            self.peers.tell("node", TakeSnapshot(self.actor_ref, self._next_id))

    def _expire(self) -> None:
        now = self._clock()
        for request_id, request in list(self._requests.items()):
            if now - request.sent_at < self._snapshot_timeout_s:
                continue
            del self._requests[request_id]
            reason = f"the node did not answer snapshot request {request_id} within " + (
                f"{self._snapshot_timeout_s:g} s"
            )
            log.warning(reason)
            if request.reported_since:  # alive, yet no snapshot: counts towards the halt
                self._failed(reason)
            if request.notify is not None:
                request.notify.tell(CheckpointFailed(reason, request.final))
        if self._dirty and not self._requests:
            self._dirty = False
            self._request(False, None)

    def _answered(self, request_id: int, snapshot: Snapshot) -> None:
        request = self._requests.pop(request_id, None)
        if request is None:
            log.debug("snapshot for request %d came after it was given up", request_id)
        else:
            self._write(snapshot, request.final, request.notify)
        if self._dirty and not self._requests:
            self._dirty = False
            self._request(False, None)

    def _write(self, snapshot: Snapshot, final: bool, notify: Mailbox | None) -> None:
        began = time.perf_counter()
        try:
            checkpoint_id = self._insert(snapshot, final)
        except StorageError as exc:
            self.failed += 1
            self._failed(str(exc))
            self._report(exc)
            if notify is not None:
                notify.tell(CheckpointFailed(str(exc), final))
            return
        self.saved += 1
        self.peers.tell(
            "metrics", CheckpointWritten(time.time(), time.perf_counter() - began, snapshot)
        )
        self._last, self._last_id = snapshot, checkpoint_id
        self._failing_since = None
        if self._last_error:
            self._last_error = ""
            self.peers.tell("classifier", OperationSucceeded(OPERATION))
        if self._halted_for_storage:
            self._halted_for_storage = False
            self._alert(Severity.INFO, "Checkpoints recovered", "Checkpoints succeed again.")
        log.debug("checkpoint %d at cursor %d", checkpoint_id, snapshot.replay_cursor)
        if notify is not None:
            notify.tell(CheckpointSaved(checkpoint_id, snapshot.taken_at_ns, final))

    def _insert(self, snapshot: Snapshot, final: bool) -> int:
        """One checkpoint row. A final one gets ``FINAL_ATTEMPTS`` tries (a tenacity
        backoff between them), each waiting the store's busy timeout for the write lock."""
        attempts = FINAL_ATTEMPTS if final else 1
        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(StorageError),
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential(multiplier=0.1, max=1.0),
            before_sleep=lambda state: log.warning(
                "final checkpoint: attempt %d of %d failed, retrying: %s",
                state.attempt_number,
                attempts,
                state.outcome.exception() if state.outcome else "",
            ),
            reraise=True,
        ):
            with attempt:
                return self.store.write_checkpoint(
                    self._run, snapshot, final=final, retention=self._retention
                )
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def _failed(self, reason: str) -> None:
        """A checkpoint that did not happen (a failed write, an unanswered request): the
        staleness clock starts at the first one since a success."""
        self._last_error = reason
        if self._failing_since is None:
            self._failing_since = time.monotonic()

    def _node_report(self, report: NodeReport) -> None:
        for request in self._requests.values():
            request.reported_since = True
        if report.last_data_ns > 0:
            self._data_at_epoch = report.last_data_ns / 1e9
        last, last_id = self._last, self._last_id
        if (
            last is None
            or last_id is None
            or self._requests
            or self._dirty
            or report.state_version != last.state_version
            or report.replay_cursor <= last.replay_cursor
        ):
            return
        if report.fill_draws != last.fill_draws or _marks_moved(report, last):
            # The fill model drew, or the breakers' marks moved (a new equity peak, a new
            # day), since the last checkpoint: they must go with the cursor, and only a
            # snapshot has them as the node had them.
            self._request(False, None)
            return
        began = time.perf_counter()
        try:
            self.store.advance_cursor(last_id, report.replay_cursor)
        except StorageError as exc:
            self._report(exc)
            return
        self.peers.tell("metrics", CheckpointWritten(time.time(), time.perf_counter() - began))
        self._last = replace(last, replay_cursor=report.replay_cursor)

    def _sweep(self) -> None:
        try:
            swept = self.store.sweep(self._run.trader_id, self._retention)
        except StorageError as exc:
            self._report(exc)
            return
        if swept.total:
            log.info(
                "retention: removed %d event(s), %d alert(s), %d command(s)",
                swept.events,
                swept.alerts,
                swept.commands,
            )
        self._sweep_files()

    def _sweep_files(self) -> None:
        """The recordings and the log file beside the database (``storage.housekeeping``)."""
        policy = self._retention
        try:
            pruned = prune_recordings(
                recordings_of(self._db_path, self._run.trader_id),
                policy.keep_recordings_d,
                policy.max_recordings_mb * 2**20,
            )
        except OSError as exc:
            log.warning("retention: recordings not pruned: %s", exc)
        else:
            if pruned.runs:
                log.info(
                    "retention: removed %d recorded run(s), %d bytes", pruned.runs, pruned.bytes
                )
        dropped = cap_output_log(policy.max_log_mb * 2**20)
        if dropped:
            log.info("retention: the log file kept its last half (%d bytes removed)", dropped)

    def _check_staleness(self) -> None:
        if self._failing_since is None:
            return
        silent_s = time.monotonic() - self._failing_since
        if self._halted_for_storage or silent_s < self._halt_after_s:
            return
        self._halted_for_storage = True
        reason = (
            f"no checkpoint succeeded for {silent_s:.0f} s "
            f"({self._halt_after_s / self._interval_s:g} intervals); last error: {self._last_error}"
        )
        log.critical("halting: %s", reason)
        halt(self.peers, Halt(reason=reason, source=ROLE))
        self._alert(Severity.CRITICAL, "Checkpoints failing: trading halted", reason)

    # ------------------------------------------------------------ events, heartbeat

    def _record_restore(self, started: NodeStarted, restored: Snapshot) -> None:
        gap_s = (
            (restored.taken_at_ns - started.restored_from_ns) / 1e9
            if started.restored_from_ns is not None
            else None
        )
        payload = {
            "from_checkpoint_taken_at": (
                ns_to_iso(started.restored_from_ns) if started.restored_from_ns else None
            ),
            "gap_s": gap_s,
            "balance": restored.balance,
            "positions": len(restored.positions),
            "open_orders": len(restored.open_orders),
            "replay_cursor": restored.replay_cursor,
            "trading_state": restored.trading_state.value,
            "snapshot": restored,
        }
        self._event(payload, kind="restored")
        log.info(
            "restored from checkpoint after a %.1f s gap: balance %s, %d position(s), "
            "%d open order(s), cursor %d, %s",
            gap_s or 0.0,
            restored.balance,
            len(restored.positions),
            len(restored.open_orders),
            restored.replay_cursor,
            restored.trading_state.value,
        )

    def _started(self, started: NodeStarted) -> None:
        halted = started.trading_state is not TradingState.ACTIVE
        self._state = "halted" if halted else "running"
        self._event(started)
        if started.restored is not None:
            self._record_restore(started, started.restored)
        self._beat()
        self._resend()
        self._request(False, None, coalesce=True)

    def _caught_up(self, caught: CaughtUp) -> None:
        """A restart played the market it missed (its fills came as fills): recorded, the
        part not played as a ``gap`` too, and a checkpoint past it."""
        self._event(caught)
        if caught.gap:
            self._event(caught, kind="gap")
        self._request(False, None, coalesce=True)

    def _event(self, message: object, kind: str | None = None) -> None:
        """Append to the log; while the database refuses, keep events in order in memory."""
        self._backlog.append((kind or EVENT_KINDS[type(message)], message, utc_now()))
        self._flush_events()

    def _flush_events(self) -> None:
        while self._backlog:
            kind, payload, at = self._backlog[0]
            try:
                self.store.append_event(self._run, kind, payload, at=at)
            except StorageError as exc:
                self._report(exc)
                return
            self._backlog.popleft()

    def _beat(self) -> None:
        self._flush_events()
        try:
            self.store.beat(self._run, self._state, self._data_at_epoch)
        except StorageError as exc:
            self._report(exc)

    def _alert(self, severity: Severity, title: str, text: str) -> None:
        self.peers.tell("alerter", Alert(severity, title, text, key=f"storage:{title}"))

    def _report(self, exc: StorageError) -> None:
        log.error("%s", exc)
        self.peers.tell(
            "classifier", ErrorRaised(ROLE, type(exc).__name__, str(exc), operation=OPERATION)
        )


def _marks_moved(report: NodeReport, last: Snapshot) -> bool:
    """The equity marks a restore resumes the breakers from, changed since ``last``."""
    if (report.equity_peak, report.day_start_equity) != (last.equity_peak, last.day_start_equity):
        return True
    peaks = {v.strategy_id: (v.equity_peak, v.day_start_equity) for v in last.strategies}
    return any(
        peaks.get(m.strategy_id, (m.equity_peak, m.day_start_equity))
        != (m.equity_peak, m.day_start_equity)
        for m in report.strategies
    )
