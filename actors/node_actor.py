"""TradingNodeActor: owns the node host child process for as long as it lives.

The actor and its child share one life: when the child exits unexpectedly, stops
answering pings, or its pipe breaks, the actor fails, and the supervisor's restart
of the actor is what spawns a fresh child. Messages from the child are read on a
small thread and re-told to the actor, so every handler runs on the actor thread.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

import pykka

from actors.base import ChildContext, SupervisedActor
from actors.messages import (
    Alert,
    EncodedSnapshotReply,
    EquityReport,
    ErrorRaised,
    Halt,
    LastSnapshot,
    Mailbox,
    NodeCommand,
    NodeEvent,
    NodeStarted,
    NodeStopped,
    OrderFilled,
    OrderRejected,
    OrdersCanceled,
    Ping,
    Pong,
    ReconciliationDiff,
    Resume,
    Severity,
    Snapshot,
    SnapshotRequest,
    Stop,
    TakeSnapshot,
    TradingState,
    TradingStateChanged,
)
from actors.node.entry import run as run_node
from actors.settings import NodeSettings
from actors.timer import Interval
from actors.wire import decode_snapshot

log = logging.getLogger(__name__)

ROLE = "node"


# Where each event from the child goes, besides what the actor does with it itself.
ROUTES: dict[type, tuple[str, ...]] = {
    NodeStarted: ("checkpointer",),
    NodeStopped: ("checkpointer",),
    OrdersCanceled: ("checkpointer",),
    OrderFilled: ("checkpointer", "classifier"),
    OrderRejected: ("checkpointer", "classifier"),
    TradingStateChanged: ("checkpointer", "classifier"),
    EquityReport: ("classifier",),
    ErrorRaised: ("classifier",),
    ReconciliationDiff: ("checkpointer",),
}


class NodeCrashed(RuntimeError):
    """The node child died, hung or lost its pipe: the actor fails with it."""


@dataclass(frozen=True, slots=True)
class ChildProcessExited:
    exitcode: int | None


@dataclass(frozen=True, slots=True)
class CheckChild:
    """Ping tick: probe the child's event loop and judge the last answer."""


class TradingNodeActor(SupervisedActor):
    def __init__(
        self,
        ctx: ChildContext,
        settings: NodeSettings,
        restore: bool = True,
        ping_interval_s: float = 1.0,
        hang_timeout_s: float = 15.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(ctx)
        self.settings = settings
        self._restore = restore
        self._halt_waiters: list[Mailbox] = []
        self._resume_waiters: list[Mailbox] = []
        self._halt_reason = ""
        self._ping_interval_s = ping_interval_s
        self._hang_timeout_s = hang_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._proc: BaseProcess | None = None
        self._conn: Connection[NodeCommand, NodeEvent] | None = None
        self._pinger: Interval | None = None
        self._stopping = False
        self._waiting: dict[int, Mailbox] = {}
        self._next_id = 0
        self._last_pong = time.monotonic()
        self.started_info: NodeStarted | None = None

    # ------------------------------------------------------------ lifecycle

    def started(self) -> None:
        settings = self.settings
        last = (
            self.peers.ask("checkpointer", LastSnapshot(), timeout=5.0) if self._restore else None
        )
        if isinstance(last, Snapshot) and last.trader_id == settings.trader_id:
            # Carry on from the last checkpoint: same balance, positions, resting
            # orders, halted state and replay position.
            settings = replace(
                settings,
                restore=last,
                start_cursor=last.replay_cursor,
                starting_balance=last.balance,
            )
        ctx = multiprocessing.get_context("spawn")
        parent_end, child_end = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=run_node, args=(child_end, settings), name="node-host", daemon=True
        )
        proc.start()
        child_end.close()
        self._proc, self._conn = proc, parent_end
        self._last_pong = time.monotonic() + 30.0  # grace for the child's start-up
        threading.Thread(
            target=_pump, args=(parent_end, proc, self.actor_ref), name="node-pipe", daemon=True
        ).start()
        self._pinger = Interval(self._ping_interval_s, self.actor_ref, CheckChild, "node-ping")
        log.info("node child pid %s starting at replay cursor %d", proc.pid, settings.start_cursor)

    def stopped(self) -> None:
        self._stopping = True
        if self._pinger is not None:
            self._pinger.cancel()
        proc, conn = self._proc, self._conn
        if proc is None or conn is None:
            return
        if proc.is_alive():
            with contextlib.suppress(OSError):
                conn.send(Stop("actor stopping"))
            proc.join(self._stop_timeout_s)
            if proc.is_alive():
                log.error(
                    "node child %s did not stop in %.1f s; killing", proc.pid, self._stop_timeout_s
                )
                proc.kill()
                proc.join(2.0)
        conn.close()

    # ------------------------------------------------------------ messages

    def receive(self, message: object) -> object:
        for role in ROUTES.get(type(message), ()):
            self.peers.tell(role, message)
        match message:
            case NodeStarted():
                self.started_info = message
                self._last_pong = time.monotonic()
                log.info("node child %d trading %s", message.pid, message.instrument_id)
            case OrdersCanceled():
                self._halt_done(message)
            case ReconciliationDiff(differences=differences):
                self.peers.tell(
                    "alerter",
                    Alert(
                        Severity.WARNING,
                        "Venue state differs from the last checkpoint",
                        "; ".join(differences) + ". Trading continues from the venue's state.",
                        key="reconcile",
                    ),
                )
            case TradingStateChanged(state=TradingState.HALTED, reason=reason):
                self._halt_reason = reason
            case TradingStateChanged():
                for waiter in self._resume_waiters:
                    waiter.tell(message)
                self._resume_waiters.clear()
            case EncodedSnapshotReply(request_id=request_id, data=data):
                reply_to = self._waiting.pop(request_id, None)
                if reply_to is not None:
                    reply_to.tell(decode_snapshot(data))
            case Pong():
                self._last_pong = time.monotonic()
            case ChildProcessExited(exitcode=code):
                if not self._stopping:
                    raise NodeCrashed(f"node child exited with code {code}")
            case CheckChild():
                self._check_child()
            case Halt(notify=notify) | Resume(notify=notify):
                waiters = self._halt_waiters if isinstance(message, Halt) else self._resume_waiters
                if notify is not None:
                    waiters.append(notify)
                self._send(replace(message, notify=None))
            case TakeSnapshot(reply_to=reply_to):
                if reply_to is not None:
                    self._next_id += 1
                    self._waiting[self._next_id] = reply_to
                    self._send(SnapshotRequest(self._next_id))
            case Stop():
                self.actor_ref.stop(block=False)
            case _ if type(message) not in ROUTES:
                return super().receive(message)
        return None

    def _halt_done(self, cancelled: OrdersCanceled) -> None:
        """The halt is complete: cancels confirmed. Tell the waiters and the operator."""
        for waiter in self._halt_waiters:
            waiter.tell(cancelled)
        self._halt_waiters.clear()
        n = len(cancelled.client_order_ids)
        self.peers.tell(
            "alerter",
            Alert(
                Severity.CRITICAL,
                "Trading halted",
                f"{self._halt_reason or 'halt requested'}. {n} open order(s) cancelled "
                "(confirmed); no new orders pass; data and checkpoints continue.",
                key="halted",
            ),
        )

    def _check_child(self) -> None:
        silent_for = time.monotonic() - self._last_pong
        if silent_for > self._hang_timeout_s:
            if self._proc is not None and self._proc.is_alive():
                self._proc.kill()
            raise NodeCrashed(f"node child silent for {silent_for:.1f} s (hung); killed")
        self._send(Ping())

    def _send(self, command: NodeCommand) -> None:
        if self._conn is None:
            raise NodeCrashed("node child not started")
        try:
            self._conn.send(command)
        except OSError as exc:
            raise NodeCrashed(f"node pipe broken: {exc}") from exc


def _pump(
    conn: Connection[NodeCommand, NodeEvent],
    proc: BaseProcess,
    ref: pykka.ActorRef[TradingNodeActor],
) -> None:
    """Re-tell everything the child sends; report its exit when the pipe closes."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return
    proc.join(5.0)
    with contextlib.suppress(pykka.ActorDeadError):
        ref.tell(ChildProcessExited(proc.exitcode))
