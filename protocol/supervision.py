"""What supervision says: liveness, the directory by role, children's exits and starts.

These pass between the supervisor, its children and the process that runs the tree
(the runtime, a test); the OTP exit signal is ``ChildExited``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Ping:
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class Pong:
    role: str
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class Stop:
    """Graceful shutdown: the only path that ends the node."""

    reason: str = "requested"


@dataclass(frozen=True, slots=True)
class BusyFor:
    """Told to the supervisor by an actor about to block on bounded I/O (a Telegram
    request): a ping it misses within ``seconds`` means busy, not hung. ``seconds``
    <= 0 ends the lease; one that outlives its lease is reported as any silent actor."""

    role: str
    seconds: float


@dataclass(frozen=True, slots=True)
class QueryBusy:
    """Asks the supervisor which roles hold an unexpired ``BusyFor`` lease."""


@dataclass(frozen=True, slots=True)
class WhereIs:
    """Directory lookup by role; the reply is the current ``ActorRef`` or ``None``."""

    role: str


@dataclass(frozen=True, slots=True)
class ReplayFinished:
    """The replay has played its last bar and ``replay.stop_when_done`` is set: the node
    tells its supervisor, which passes it up to the process that runs the tree."""

    bars: int


@dataclass(frozen=True, slots=True)
class ChildExited:
    """A child reports its own end; ``abnormal`` is a crash, not a requested stop."""

    role: str
    actor_urn: str
    abnormal: bool
    reason: str


@dataclass(frozen=True, slots=True)
class ChildStarted:
    """Told to the supervisor's parent on every start and restart of a child."""

    role: str
    actor_urn: str
    restart: bool


@dataclass(frozen=True, slots=True)
class RestartChild:
    """Sent by the supervisor to itself when a restart's backoff delay has passed."""

    role: str


@dataclass(frozen=True, slots=True)
class SupervisorTerminated:
    """Told to the supervisor's parent when the tree stopped itself (escalation)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Escalated:
    """Restart intensity was exceeded; what the supervisor did about it."""

    role: str
    restarts: int
    period_s: float
    action: str
