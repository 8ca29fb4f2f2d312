"""Child and supervisor specifications as data, in Erlang/OTP's terms.

A tree is described, not coded: which roles exist, how each is started, when it is
restarted (permanent, transient, temporary), how long it gets to stop, which
restart strategy applies, how many restarts are tolerated in what period, and what
happens beyond that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, Protocol

from actors.base import ChildContext
from protocol import Escalation, RestartStrategy


class Restart(StrEnum):
    PERMANENT = "permanent"  # always restarted
    TRANSIENT = "transient"  # restarted only after an abnormal exit
    TEMPORARY = "temporary"  # never restarted


class ChildRef(Protocol):
    """What the supervisor needs of a started child (a pykka ``ActorRef``)."""

    @property
    def actor_urn(self) -> str: ...

    def tell(self, message: object) -> None: ...

    def is_alive(self) -> bool: ...

    def stop(self, *, block: Literal[True], timeout: float | None = None) -> bool: ...


ChildFactory = Callable[[ChildContext], ChildRef]


@dataclass(frozen=True, slots=True)
class ChildSpec:
    role: str
    start: ChildFactory
    restart: Restart = Restart.PERMANENT
    shutdown_timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SupervisorSpec:
    children: tuple[ChildSpec, ...]
    strategy: RestartStrategy = RestartStrategy.ONE_FOR_ONE
    max_restarts: int = 3
    period_s: float = 5.0
    backoff_initial_s: float = 0.0
    backoff_max_s: float = 5.0
    escalation: Escalation = Escalation.HALT_AND_STOP
    halt_role: str = "gate"  # where halts go: it records them and forwards to the node
    node_role: str = "node"
    alert_role: str = "alerter"
    classifier_role: str = "classifier"  # told of every crash, so it is classified and alerted

    def __post_init__(self) -> None:
        roles = [c.role for c in self.children]
        if len(set(roles)) != len(roles):
            raise ValueError(f"duplicate roles in {roles}")
        if self.max_restarts < 0 or self.period_s <= 0:
            raise ValueError("max_restarts must be >= 0 and period_s > 0")
