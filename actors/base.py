"""What every supervised actor shares: its context, peer lookup and exit reports.

An actor never keeps a peer's ``ActorRef`` across that peer's restart: it asks the
supervisor's directory by role (``WhereIs``) and re-asks when the cached reference
has died, so a restarted peer is found again. Its own end, normal or a crash, is
reported to the supervisor as ``ChildExited`` - the OTP exit signal.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, runtime_checkable

import pykka

from protocol import ChildExited, Halt, OperationSucceeded, Ping, Pong, WhereIs

log = logging.getLogger(__name__)

# Roles that only listen (the metrics actor): nothing waits on what they are told.
LISTENERS = frozenset({"metrics"})


@runtime_checkable
class PeerRef(Protocol):
    def tell(self, message: object) -> None: ...

    def is_alive(self) -> bool: ...


@runtime_checkable
class AskablePeer(Protocol):
    def ask(self, message: object, *, timeout: float | None = None) -> object: ...


class Directory(Protocol):
    """The supervisor as seen by its children: told exits, asked ``WhereIs``."""

    def tell(self, message: object) -> None: ...

    def ask(self, message: object, *, timeout: float | None = None) -> object: ...


@dataclass(frozen=True, slots=True)
class ChildContext:
    role: str
    directory: Directory
    lookup_timeout_s: float = 2.0
    restart: bool = False  # a restart after a failure (not the tree's first start)
    # The roles of the tree (empty: not known). A role the tree does not have - the
    # metrics actor, when metrics are off - is told nothing, without a lookup or a warning.
    roles: frozenset[str] = frozenset()


class Peers:
    """Role -> reference, resolved through the directory and refreshed when dead."""

    def __init__(self, ctx: ChildContext) -> None:
        self._ctx = ctx
        self._cache: dict[str, PeerRef] = {}

    def get(self, role: str) -> PeerRef | None:
        ref = self._cache.get(role)
        if ref is not None and ref.is_alive():
            return ref
        self._cache.pop(role, None)
        try:
            reply = self._ctx.directory.ask(WhereIs(role), timeout=self._ctx.lookup_timeout_s)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None
        if isinstance(reply, PeerRef):
            self._cache[role] = reply
            return reply
        return None

    def resolve(self, *roles: str) -> None:
        """Look ``roles`` up now, ahead of need: the first message to a peer waits for a
        round trip to the supervisor (a thread hop each way, 0.3-1 ms), and the first halt
        must not pay it. Called when a peer is known to have just (re)started."""
        for role in roles:
            if self.has(role):
                self.get(role)

    def has(self, role: str) -> bool:
        """Whether the tree has ``role`` (or is not known: then it may)."""
        return not self._ctx.roles or role in self._ctx.roles

    def ask(self, role: str, message: object, timeout: float) -> object:
        """Ask a peer and wait at most ``timeout``; ``None`` when it cannot answer."""
        ref = self.get(role)
        if not isinstance(ref, AskablePeer):
            return None
        try:
            return ref.ask(message, timeout=timeout)
        except (pykka.ActorDeadError, pykka.Timeout):
            return None

    def tell(self, role: str, message: object) -> bool:
        """Deliver or report ``False``; one retry covers a peer restarted meanwhile."""
        if not self.has(role):
            return False
        for _ in range(2):
            ref = self.get(role)
            if ref is None:
                break
            try:
                ref.tell(message)
                return True
            except pykka.ActorDeadError:
                self._cache.pop(role, None)
        if role not in LISTENERS:  # a listener being restarted misses news, and that is all
            log.warning(
                "%s: no live %r to receive %s", self._ctx.role, role, type(message).__name__
            )
        return False


def halt(peers: Peers, message: Halt) -> bool:
    """Send a halt the way that survives restarts: through the gate, which records it
    and forwards it to the node. Only when the gate cannot take it does the halt go
    straight to the node (it stops trading now, but a node restart would forget it)."""
    if peers.tell("gate", message):
        return True
    log.critical("gate unreachable: halting the node directly (%s)", message.reason)
    return peers.tell("node", message)


class SupervisedActor(pykka.ThreadingActor):
    """Base class: subclasses implement ``started``, ``receive`` and ``stopped``."""

    def __init__(self, ctx: ChildContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.peers = Peers(ctx)

    # Hooks for subclasses -------------------------------------------------

    def started(self) -> None:
        """Acquire resources; raising here is a crash reported to the supervisor."""

    def receive(self, message: object) -> object:
        log.warning("%s: unexpected message %r", self.ctx.role, message)
        return None

    def stopped(self) -> None:
        """Release resources; runs on a normal stop and after a crash."""

    # pykka plumbing ---------------------------------------------------------

    def on_start(self) -> None:
        try:
            self.started()
        except Exception as exc:
            self._release()
            # An exit is reported once the actor is gone, as pykka does before
            # on_stop and on_failure. Left to pykka, the unregistering would come
            # only after it has logged the traceback, and a supervisor that took
            # the report for the end (to stop its tree, say) would leave us running.
            pykka.ActorRegistry.unregister(self.actor_ref)
            self.actor_stopped.set()
            self._report_exit(abnormal=True, reason=f"start failed: {exc!r}")
            raise
        if self.ctx.restart and self.reports_restart:
            # Restarted and running: the retry budget of this role's failures starts over.
            self.peers.tell("classifier", OperationSucceeded(self.ctx.role))

    @property
    def reports_restart(self) -> bool:
        """Whether a successful ``started()`` clears this role's failure budget (the node
        actor waits until its node trades; the classifier has nobody to tell)."""
        return self.ctx.role != "classifier"

    def on_receive(self, message: object) -> object:
        if isinstance(message, Ping):
            return Pong(self.ctx.role, message.request_id)
        return self.receive(message)

    def on_failure(
        self,
        exception_type: type[BaseException] | None,
        exception_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._release()
        self._report_exit(abnormal=True, reason=repr(exception_value))

    def on_stop(self) -> None:
        self._release()
        self._report_exit(abnormal=False, reason="stopped")

    def _release(self) -> None:
        try:
            self.stopped()
        except Exception:
            log.exception("%s: error while releasing resources", self.ctx.role)

    def _report_exit(self, abnormal: bool, reason: str) -> None:
        # If the supervisor is gone there is nobody left to tell.
        with contextlib.suppress(pykka.ActorDeadError):
            self.ctx.directory.tell(
                ChildExited(self.ctx.role, self.actor_urn, abnormal=abnormal, reason=reason)
            )
