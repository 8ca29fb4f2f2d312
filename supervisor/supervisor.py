"""The supervisor: an actor that starts its children and applies restart policy.

It follows OTP: children start in spec order and stop in reverse; a child's exit
(``ChildExited``) is matched against its restart type; ``one_for_one`` restarts the
child, ``rest_for_one`` also restarts every child started after it; more than
``max_restarts`` restarts within ``period_s`` escalates (halt trading, alert, then
stop the tree or carry on degraded). Restarts wait a tenacity backoff delay, sent
as a ``RestartChild`` message to itself so the directory keeps answering meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType

import pykka

from actors.base import ChildContext
from protocol import (
    Alert,
    BusyFor,
    ChildExited,
    ChildStarted,
    ErrorRaised,
    Escalated,
    Escalation,
    Halt,
    Mailbox,
    Ping,
    Pong,
    QueryBusy,
    ReplayFinished,
    RestartChild,
    RestartStrategy,
    Severity,
    Stop,
    SupervisorTerminated,
    WhereIs,
    exponential_delay,
)
from supervisor.spec import ChildRef, ChildSpec, Restart, SupervisorSpec

log = logging.getLogger(__name__)

ROLE = "supervisor"
METRICS_ROLE = "metrics"  # told every exit and start, when the tree has it


def backoff_delay(spec: SupervisorSpec, attempt: int) -> float:
    """Delay before restart number ``attempt`` (1-based) in the current period."""
    if spec.backoff_initial_s <= 0:
        return 0.0
    return exponential_delay(attempt, spec.backoff_initial_s, spec.backoff_max_s)


def _tell(target: Mailbox, message: object) -> None:
    """Tell, and let a target that died pass: a dead child's exit is on its way, and
    raising here would take the whole supervisor down with it."""
    with contextlib.suppress(pykka.ActorDeadError):
        target.tell(message)


class Supervisor(pykka.ThreadingActor):
    def __init__(
        self,
        spec: SupervisorSpec,
        parent: Mailbox | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.spec = spec
        self._parent = parent
        self._clock = clock
        self._specs = {c.role: c for c in spec.children}
        self._order = [c.role for c in spec.children]
        self._refs: dict[str, ChildRef] = {}
        # Children whose exit was reported while they still ran: reaped before a
        # restart of their role and at the tree's stop, so none outlives either.
        self._exiting: list[tuple[str, ChildRef]] = []
        self._leases: dict[str, float] = {}  # role -> monotonic end of its BusyFor
        self._restarts: deque[float] = deque()
        self._pending: set[str] = set()
        self._timers: list[threading.Timer] = []
        self._terminating = False
        self._termination_reason: str | None = None
        self.restart_count = 0

    # ------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        try:
            for role in self._order:
                self._start_child(role, restart=False)
        except Exception as exc:
            # After a failed on_start pykka calls neither on_stop nor on_failure.
            self._termination_reason = f"supervisor failed to start: {exc!r}"
            self._terminate()
            raise

    def on_stop(self) -> None:
        self._terminate()

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        # A message handler raised: pykka calls this instead of on_stop, and the
        # tree must stop all the same, or its children would run on unsupervised.
        self._termination_reason = f"supervisor crashed: {exception_value!r}"
        self._terminate()

    def _terminate(self) -> None:
        self._terminating = True
        for timer in self._timers:
            timer.cancel()
        self._stop_children(list(reversed(self._order)))
        self._reap()
        if self._termination_reason is not None and self._parent is not None:
            _tell(self._parent, SupervisorTerminated(self._termination_reason))

    # ------------------------------------------------------------ messages

    def on_receive(self, message: object) -> object:
        match message:
            case WhereIs(role=role):
                ref = self._refs.get(role)
                return ref if ref is not None and ref.is_alive() else None
            case ChildExited():
                self._on_exit(message)
                if self._parent is not None:
                    _tell(self._parent, message)
            case ReplayFinished():
                if self._parent is not None:
                    _tell(self._parent, message)
            case RestartChild(role=role):
                self._pending.discard(role)
                if not self._terminating and role not in self._refs:
                    self._reap(role)
                    self._start_child(role, restart=True)
            case Ping(request_id=request_id):
                return Pong(ROLE, request_id)
            case BusyFor(role=role, seconds=seconds):
                if seconds > 0:
                    self._leases[role] = time.monotonic() + seconds
                else:
                    self._leases.pop(role, None)
            case QueryBusy():
                now = time.monotonic()
                return frozenset(r for r, until in self._leases.items() if until > now)
            case Stop(reason=reason):
                log.info("supervisor stopping: %s", reason)
                self._terminating = True  # a restart queued before pykka's stop starts nothing
                self.actor_ref.stop(block=False)
            case _:
                log.warning("supervisor: unexpected message %r", message)
        return None

    # ------------------------------------------------------------ policy

    def _on_exit(self, exit_: ChildExited) -> None:
        current = self._refs.get(exit_.role)
        if current is None or current.actor_urn != exit_.actor_urn or self._terminating:
            return  # a stop we asked for, or news about an older incarnation
        del self._refs[exit_.role]
        self._exiting = [(r, ref) for r, ref in self._exiting if ref.is_alive()]
        if current.is_alive():
            self._exiting.append((exit_.role, current))
        log.log(
            logging.ERROR if exit_.abnormal else logging.INFO,
            "child %s exited (%s)",
            exit_.role,
            exit_.reason,
        )
        if exit_.abnormal:
            self._tell_child(
                self.spec.classifier_role, ErrorRaised(exit_.role, "ChildCrashed", exit_.reason)
            )
        if exit_.role != METRICS_ROLE:
            self._tell_child(METRICS_ROLE, exit_)
        self._apply_policy(exit_)

    def _tell_child(self, role: str, message: object) -> bool:
        """Tell a child if it is there; a child that died meanwhile is no crash of ours."""
        ref = self._refs.get(role)
        if ref is None:
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True

    def _apply_policy(self, exit_: ChildExited) -> None:
        spec = self._specs[exit_.role]
        if spec.restart is Restart.TEMPORARY or (
            spec.restart is Restart.TRANSIENT and not exit_.abnormal
        ):
            return
        now = self._clock()
        self._restarts.append(now)
        while self._restarts and now - self._restarts[0] > self.spec.period_s:
            self._restarts.popleft()
        if len(self._restarts) > self.spec.max_restarts:
            self._escalate(exit_)
            return
        group = [exit_.role]
        # Nobody depends on the metrics actor (it starts first only to hear everything):
        # its restart restarts nobody else.
        if self.spec.strategy is RestartStrategy.REST_FOR_ONE and exit_.role != METRICS_ROLE:
            later = self._order[self._order.index(exit_.role) + 1 :]
            self._stop_children(list(reversed(later)))
            group += [r for r in later if self._specs[r].restart is not Restart.TEMPORARY]
        delay = backoff_delay(self.spec, len(self._restarts))
        self.restart_count += 1
        for role in group:
            self._schedule_restart(role, delay)

    def _schedule_restart(self, role: str, delay: float) -> None:
        self._pending.add(role)
        if delay <= 0:
            self.actor_ref.tell(RestartChild(role))
            return
        timer = threading.Timer(delay, self._tell_self, args=(RestartChild(role),))
        timer.daemon = True
        self._timers.append(timer)
        timer.start()

    def _tell_self(self, message: object) -> None:
        with contextlib.suppress(pykka.ActorDeadError):
            self.actor_ref.tell(message)

    def _escalate(self, exit_: ChildExited) -> None:
        n, period = len(self._restarts), self.spec.period_s
        reason = f"{exit_.role} failed {n} times in {period:g} s (last: {exit_.reason})"
        action = (
            "stopping the service"
            if self.spec.escalation is Escalation.HALT_AND_STOP
            else f"leaving {exit_.role} down"
        )
        halt = Halt(reason=f"supervisor escalation: {reason}", source=ROLE)
        # Through the gate, so the halt is on record: whatever node runs next starts
        # halted. Straight to the node only when the gate itself is what failed.
        if self._tell_child(self.spec.halt_role, halt):
            halted = (
                "trading halted and the halt recorded; the node is down and will start halted"
                if exit_.role == self.spec.node_role
                else "trading halted and the halt recorded (it holds across restarts)"
            )
        elif exit_.role != self.spec.node_role and self._tell_child(self.spec.node_role, halt):
            halted = "trading halted (not recorded: the gate is down; a node restart forgets it)"
        else:
            halted = "NO HALT could be sent (neither the gate nor the node is running)"
        log.critical("restart intensity exceeded: %s; %s; %s", reason, halted, action)
        self._tell_child(
            self.spec.alert_role,
            Alert(
                Severity.CRITICAL,
                "Restart intensity exceeded",
                f"{reason}. {halted[0].upper()}{halted[1:]}. Action: {action}.",
                key=f"escalation:{exit_.role}",
            ),
        )
        if self._parent is not None:
            _tell(self._parent, Escalated(exit_.role, n, period, f"{halted}; {action}"))
        if self.spec.escalation is Escalation.HALT_AND_STOP:
            self._termination_reason = reason  # told to the parent once all children stopped
            self._terminating = True
            self.actor_ref.stop(block=False)

    # ------------------------------------------------------------ children

    def _start_child(self, role: str, restart: bool) -> None:
        spec = self._specs[role]
        try:
            ref = spec.start(
                ChildContext(
                    role=role,
                    directory=self.actor_ref,
                    restart=restart,
                    roles=frozenset(self._specs),
                )
            )
        except Exception as exc:  # a failed start is a failure like any other
            log.exception("starting %s failed", role)
            self._apply_policy(ChildExited(role, "", abnormal=True, reason=f"start: {exc!r}"))
            return
        self._refs[role] = ref
        log.info("%s %s (%s)", "restarted" if restart else "started", role, ref.actor_urn)
        started = ChildStarted(role, ref.actor_urn, restart)
        if role != METRICS_ROLE:
            self._tell_child(METRICS_ROLE, started)
        if self._parent is not None:
            _tell(self._parent, started)

    def _stop_children(self, roles: list[str]) -> None:
        for role in roles:
            ref = self._refs.pop(role, None)
            if ref is not None:
                self._stop_child(role, ref)

    def _reap(self, role: str | None = None) -> None:
        """Stop the children (of ``role``, or all) that reported an exit but still run."""
        keep: list[tuple[str, ChildRef]] = []
        for r, ref in self._exiting:
            if role is None or r == role:
                if ref.is_alive():
                    log.warning("%s reported its exit but still runs; stopping it", r)
                    self._stop_child(r, ref)
            else:
                keep.append((r, ref))
        self._exiting = keep

    def _stop_child(self, role: str, ref: ChildRef) -> None:
        spec: ChildSpec = self._specs[role]
        try:
            ref.stop(block=True, timeout=spec.shutdown_timeout_s)
        except pykka.Timeout:
            log.error("%s did not stop within %.1f s", role, spec.shutdown_timeout_s)
