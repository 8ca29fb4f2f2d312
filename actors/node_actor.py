"""TradingNodeActor: owns the node host child process for as long as it lives.

The actor and its child share one life: when the child exits unexpectedly, stops
answering pings, or its pipe breaks, the actor fails, and the supervisor's restart
of the actor is what spawns a fresh child. Messages from the child are read on a
small thread, which hands each straight to the peers it is for (a fill to the
checkpointer) and tells the actor only what the actor itself acts on: a fill crosses
one thread fewer on its way to the checkpoint that protects it. The actor's own
handlers all run on the actor thread.

Before it spawns a child it asks the checkpointer for the last checkpoint and the
gate for the trading state, and it never guesses: without both answers (after a few
tries) it fails, loudly, rather than start from scratch or start trading while a
halt is on record. Nothing that must outlive a restart lives here: snapshot requests
are matched by id (the checkpointer expires what a dead node never answers) and
halt waiters wait at the gate.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

import pykka
import tenacity

from actors.base import ChildContext, Peers, SupervisedActor
from actors.timer import Interval
from node.entry import run as run_node
from node.logscan import ErrorFilter, LogRecord, LogScanner
from node.spawn import EnvProcess
from protocol import (
    Alert,
    BreakerTripped,
    CaughtUp,
    CheckpointLookup,
    EncodedSnapshotReply,
    ErrorRaised,
    FinalSnapshot,
    FundingPaid,
    GateQuery,
    GateState,
    Halt,
    LastSnapshot,
    Mailbox,
    NodeCommand,
    NodeEvent,
    NodeReport,
    NodeSettings,
    NodeStarted,
    NodeStopped,
    OperationSucceeded,
    OrderFilled,
    OrderRejected,
    OrdersCanceled,
    Ping,
    Pong,
    ReconciliationDiff,
    ReplayFinished,
    Resume,
    Severity,
    SnapshotRequest,
    SnapshotTaken,
    Stop,
    TakeSnapshot,
    TradingState,
    TradingStateChanged,
    UpdateRisk,
    child_environment,
    decode_snapshot,
    node_secrets,
    starting_node_child,
)

log = logging.getLogger(__name__)

ROLE = "node"


# Where each event from the child goes (the pipe thread takes it there), besides what
# the actor does with it itself (``ACTOR_SEES``).
ROUTES: dict[type, tuple[str, ...]] = {
    NodeStarted: ("checkpointer", "gate", "classifier", "metrics"),
    NodeStopped: ("checkpointer",),
    OrdersCanceled: ("checkpointer", "gate"),
    OrderFilled: ("checkpointer", "classifier", "metrics"),
    OrderRejected: ("checkpointer", "classifier", "metrics"),
    TradingStateChanged: ("checkpointer", "classifier", "gate", "metrics"),
    NodeReport: ("classifier", "checkpointer", "metrics"),
    ErrorRaised: ("classifier",),
    OperationSucceeded: ("classifier",),  # an operation in the node worked (the income poll)
    ReconciliationDiff: ("checkpointer",),
    FundingPaid: ("checkpointer",),
    CaughtUp: ("checkpointer", "classifier"),  # recorded; a gap alerted
    # The gate first: it records the node's own halt before the halt's OrdersCanceled,
    # which follows it down the pipe, reaches it.
    BreakerTripped: ("gate", "classifier"),
}
# The routed events the actor also acts on; every event not routed goes to it alone.
ACTOR_SEES: frozenset[type] = frozenset({NodeStarted, NodeReport, ReconciliationDiff})
LOG_QUIET_S = 0.05  # no more stderr for this long: a multi-line record is complete
START_ASK_TIMEOUT_S = 5.0
START_ASK_ATTEMPTS = 3


SpawnTarget = Callable[
    ["Connection[NodeEvent, NodeCommand]", NodeSettings, "Connection[bytes, bytes] | None"], None
]
PumpFn = Callable[["Connection[NodeCommand, NodeEvent]", BaseProcess, "Courier"], None]


class StartRefused(RuntimeError):
    """The node cannot know what to start from (no answer from the checkpointer or the
    gate): a crash for the supervisor, never a silent fresh start."""


class NodeCrashed(RuntimeError):
    """The node child died, hung or lost its pipe: the actor fails with it."""


@dataclass(frozen=True, slots=True)
class ChildProcessExited:
    """The child's end of the pipe closed and its process ended (not yet reaped)."""


@dataclass(frozen=True, slots=True)
class CheckChild:
    """Ping tick: probe the child's event loop and judge the last answer."""


class TradingNodeActor(SupervisedActor):
    def __init__(
        self,
        ctx: ChildContext,
        settings: NodeSettings,
        ping_interval_s: float = 1.0,
        hang_timeout_s: float = 15.0,
        stop_timeout_s: float = 10.0,
        start_ask_timeout_s: float = START_ASK_TIMEOUT_S,
        spawn: SpawnTarget | None = None,
        pump: PumpFn | None = None,
    ) -> None:
        """``spawn`` is the child's entry point and ``pump`` the pipe-reading loop: seams a
        benchmark replaces (with a traced child, a stamping reader), never patched."""
        super().__init__(ctx)
        self.settings = settings
        self._ping_interval_s = ping_interval_s
        self._hang_timeout_s = hang_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._start_ask_timeout_s = start_ask_timeout_s
        self._spawn: SpawnTarget = spawn or run_node
        self._pump_fn: PumpFn = pump or pump_pipe
        self._proc: BaseProcess | None = None
        self._conn: Connection[NodeCommand, NodeEvent] | None = None
        self._pinger: Interval | None = None
        self._pump: threading.Thread | None = None
        self._stopping = False
        self._waiting: dict[int, tuple[Mailbox, int]] = {}  # pipe id -> (reply_to, its id)
        self._next_id = 0
        self._last_pong = time.monotonic()
        self.started_info: NodeStarted | None = None
        self._told_finished = False

    # ------------------------------------------------------------ lifecycle

    def started(self) -> None:
        try:
            lookup = self._ask_peer("checkpointer", LastSnapshot(), CheckpointLookup)
            gate = self._ask_peer("gate", GateQuery(), GateState)
        except StartRefused as exc:
            log.critical("node not started: %s", exc)
            self.peers.tell(
                "alerter",
                Alert(
                    Severity.CRITICAL,
                    "Node not started",
                    f"{exc}. It does not start from scratch while a checkpoint or a halt "
                    "may be on record; the supervisor retries it.",
                    key="node_start",
                ),
            )
            raise
        settings = self.settings
        last = lookup.snapshot
        if last is not None and last.trader_id == settings.trader_id:
            # Carry on from the last checkpoint: same balance, positions, resting
            # orders and replay position.
            account = settings.account.model_copy(update={"starting_balance": last.balance})
            settings = replace(
                settings, restore=last, start_cursor=last.replay_cursor, account=account
            )
        if gate.state is not TradingState.ACTIVE:
            settings = replace(
                settings,
                start_halted=gate.reason or "halted (on record)",
                start_halt_mode=gate.mode,
            )
        if gate.strategies:
            settings = replace(settings, start_halted_strategies=gate.strategies)
        ctx = multiprocessing.get_context("spawn")
        parent_end, child_end = ctx.Pipe(duplex=True)
        log_read, log_write = ctx.Pipe(duplex=False)
        # Strategy code runs in the child: it starts with no secret but its mode's.
        proc = EnvProcess(
            child_environment(os.environ, node_secrets(settings.mode)),
            target=self._spawn,
            args=(child_end, settings, log_write),
            name="node-host",
            daemon=True,
        )
        with starting_node_child():  # off the supervisor's CPU (protocol.cpus)
            proc.start()
        child_end.close()
        log_write.close()
        self._proc, self._conn = proc, parent_end
        threading.Thread(
            target=_read_logs,
            args=(log_read, Courier(self.ctx, self.actor_ref)),
            name="node-stderr",
            daemon=True,
        ).start()
        self._last_pong = time.monotonic() + 30.0  # grace for the child's start-up
        self._pump = threading.Thread(
            target=self._pump_fn,
            args=(parent_end, proc, Courier(self.ctx, self.actor_ref)),
            name="node-pipe",
            daemon=True,
        )
        self._pump.start()
        self._pinger = Interval(self._ping_interval_s, self.actor_ref, CheckChild, "node-ping")
        log.info(
            "node child pid %s starting at replay cursor %d%s",
            proc.pid,
            settings.start_cursor,
            f", halted ({settings.start_halted})" if settings.start_halted else "",
        )

    @property
    def reports_restart(self) -> bool:
        return False  # cleared by NodeStarted, once the node trades

    def _ask_peer[T](self, role: str, question: object, answer: type[T]) -> T:
        """``role``'s answer, retried with backoff; no answer is a refused start."""
        for attempt in tenacity.Retrying(
            stop=tenacity.stop_after_attempt(START_ASK_ATTEMPTS),
            wait=tenacity.wait_exponential(multiplier=0.5, max=2.0),
            reraise=True,
        ):
            with attempt:
                reply = self.peers.ask(role, question, timeout=self._start_ask_timeout_s)
                if not isinstance(reply, answer):
                    raise StartRefused(
                        f"the {role} did not answer {type(question).__name__} "
                        f"({START_ASK_ATTEMPTS} tries of {self._start_ask_timeout_s:g} s)"
                    )
                return reply
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def stopped(self) -> None:
        self._stopping = True
        self._stop_child()

    def _stop_child(self) -> None:
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
        # The pipe is read to its end before it is closed: the child's last words
        # (NodeStopped) are in it.
        if self._pump is not None:
            self._pump.join(2.0)
        conn.close()

    # ------------------------------------------------------------ messages

    def receive(self, message: object) -> object:
        match message:
            case NodeStarted():
                self.started_info = message
                self._last_pong = time.monotonic()
                log.info("node child %d trading %s", message.pid, message.instrument_id)
                for gap in message.data_gaps:
                    log.warning("the replay's data has a gap: %s; no bars, no fills there", gap)
                # A start that trades clears the retry budget of node failures.
                self.peers.tell("classifier", OperationSucceeded(ROLE))
            case NodeReport(replay_finished=True, replay_cursor=bars):
                if self.settings.replay.stop_when_done and not self._told_finished:
                    self._told_finished = True
                    log.info("replay finished after %d bars: the service stops", bars)
                    self.ctx.directory.tell(ReplayFinished(bars))
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
            case EncodedSnapshotReply(request_id=pipe_id, data=data):
                waiting = self._waiting.pop(pipe_id, None)
                if waiting is not None:
                    reply_to, request_id = waiting
                    reply_to.tell(SnapshotTaken(request_id, decode_snapshot(data)))
            case Pong():
                self._last_pong = time.monotonic()
            case ChildProcessExited():
                if not self._stopping:
                    code = None
                    if self._proc is not None:
                        self._proc.join(1.0)  # reaped here, on the actor's thread only
                        code = self._proc.exitcode
                    raise NodeCrashed(f"node child exited with code {code}")
            case CheckChild():
                self._check_child()
            case Halt() | Resume():
                # Waiters wait at the gate, which sends these; the child gets the command.
                self._send(replace(message, notify=None))
            case UpdateRisk():
                self._send(message)
            case TakeSnapshot(reply_to=reply_to, request_id=request_id):
                if reply_to is not None:
                    self._next_id += 1
                    self._waiting[self._next_id] = (reply_to, request_id)
                    self._send(SnapshotRequest(self._next_id))
            case Stop():
                self.actor_ref.stop(block=False)
            case _ if type(message) not in ROUTES:
                return super().receive(message)
        return None

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


def _read_logs(conn: Connection[bytes, bytes], courier: Courier) -> None:
    """The child's stderr: echoed to ours, its errors told to the classifier as ``ErrorRaised``.

    Runs on its own thread in this (the supervisor's) process until the child's end
    closes; a short quiet spell completes a multi-line record.
    """
    scanner, errors = LogScanner(), ErrorFilter()
    fd = conn.fileno()
    try:
        while True:
            if wait([conn], LOG_QUIET_S):
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                with contextlib.suppress(OSError):
                    os.write(2, chunk)
                records = scanner.feed(chunk)
            else:
                records = scanner.flush()
            for record in records:
                _report_log(record, errors, courier)
        for record in scanner.flush():
            _report_log(record, errors, courier)
    finally:
        conn.close()


def _report_log(record: LogRecord, errors: ErrorFilter, courier: Courier) -> None:
    admitted = errors.admit(record)
    if admitted is None:
        return
    record, held = admitted
    more = f" (and {held} more like it before)" if held else ""
    source = f"nautilus.{record.component}"
    kind = {"ERROR": "NautilusError", "WARN": "NautilusWarning"}.get(record.level, "Traceback")
    courier.deliver(ErrorRaised(source, kind, record.message + more, operation=source))


class Courier:
    """The pipe thread's end of the actor: takes each event from the child to the peers
    it is for, and to the actor when the actor acts on it too (``ACTOR_SEES``).

    Routing here rather than in the actor's handler saves every routed event a
    thread hop - the actor's mailbox, then its thread waking up - and on a machine
    whose idle CPUs sleep, each wake of a thread on another CPU cost a fill ~0.6-0.9 ms
    (issue 29). Peers still get every event in the order the child sent it, and before
    anything the actor does in answer to it. It keeps its own peer cache: the actor's
    belongs to the actor's thread. It also works while the actor stops: what the child
    says last (its ``NodeStopped`` with the final snapshot) still reaches the
    checkpointer.
    """

    def __init__(self, ctx: ChildContext, ref: pykka.ActorRef[TradingNodeActor]) -> None:
        self._peers = Peers(ctx)
        self._ref = ref

    def deliver(self, message: NodeEvent) -> None:
        routed = type(message) in ROUTES
        if isinstance(message, NodeStopped) and message.snapshot is not None:
            # Decoded here, off the node's loop and the actor's thread.
            self._peers.tell("checkpointer", FinalSnapshot(decode_snapshot(message.snapshot)))
            message = NodeStopped(message.reason)
        for role in ROUTES.get(type(message), ()):
            self._peers.tell(role, message)
        if not routed or type(message) in ACTOR_SEES:
            self.tell_actor(message)

    def tell_actor(self, message: object) -> None:
        # A stopping actor has nothing left to do with it (its waiters wait elsewhere).
        with contextlib.suppress(pykka.ActorDeadError):
            self._ref.tell(message)


def pump_pipe(
    conn: Connection[NodeCommand, NodeEvent], proc: BaseProcess, courier: Courier
) -> None:
    """Deliver everything the child sends; report its exit when the pipe closes.

    Runs on its own thread until the pipe closes, also after the actor stopped, so a
    child that is still writing is never blocked by a full pipe.
    """
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            break
        courier.deliver(message)
    # Wait for the exit without reaping it: only the actor's thread joins the process
    # (two threads in waitpid race, and the loser takes a dead child for a live one).
    wait([proc.sentinel], 5.0)
    courier.tell_actor(ChildProcessExited())
