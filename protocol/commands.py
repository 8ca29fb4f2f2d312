"""What one actor asks of another: halt and resume, checkpoints, the start-up questions.

A ``notify``/``reply_to`` mailbox stays in the parent process: the node actor strips it
before a command crosses the pipe. Replies are typed, so "no answer" and "nothing
there" are never the same ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.mailbox import Mailbox
from protocol.settings import BreakerSettings, RiskLimits
from protocol.state import HaltMode, Snapshot, TradingState


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop new orders and cancel the strategy's open orders; the node keeps running.

    ``notify`` receives ``OrdersCanceled`` once every cancel is confirmed. It stays in
    the parent: the node actor strips it before the command crosses the pipe.
    """

    reason: str
    source: str = "operator"
    notify: Mailbox | None = None
    # One strategy's halt: its orders cancelled and its new ones denied; the others
    # trade on. None: the account's.
    strategy_id: str | None = None
    mode: HaltMode = HaltMode.CANCEL  # the account's halt: what it leaves behind


@dataclass(frozen=True, slots=True)
class Resume:
    """Trading ACTIVE again; ``notify`` receives the ``TradingStateChanged``."""

    reason: str
    source: str = "operator"
    notify: Mailbox | None = None
    strategy_id: str | None = None


@dataclass(frozen=True, slots=True)
class TakeSnapshot:
    """Ask the node for its state; ``SnapshotTaken`` with the same ``request_id`` goes
    to ``reply_to``. The id is what matches a reply to its request: a request lost with
    a node restart must not make a later reply answer the wrong request."""

    reply_to: Mailbox | None = None
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class SnapshotTaken:
    """The node's answer to ``TakeSnapshot``."""

    request_id: int
    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class CheckpointNow:
    """Make the checkpointer take a checkpoint at once (also its timer tick).

    ``notify`` receives ``CheckpointSaved`` or ``CheckpointFailed`` for this request.
    """

    final: bool = False
    notify: Mailbox | None = None


@dataclass(frozen=True, slots=True)
class CheckpointSaved:
    checkpoint_id: int
    taken_at_ns: int
    final: bool


@dataclass(frozen=True, slots=True)
class CheckpointFailed:
    reason: str
    final: bool


@dataclass(frozen=True, slots=True)
class LastSnapshot:
    """Ask the checkpointer for the newest snapshot it holds (reply: ``CheckpointLookup``)."""


@dataclass(frozen=True, slots=True)
class CheckpointLookup:
    """The checkpointer's answer to ``LastSnapshot``: ``None`` means the database holds
    no checkpoint for this trader, which is the only case a node may start fresh."""

    snapshot: Snapshot | None


@dataclass(frozen=True, slots=True)
class GateQuery:
    """Ask the gate for the trading state every node start must apply (reply: ``GateState``)."""


@dataclass(frozen=True, slots=True)
class GateState:
    """The durable trading state: HALTED stays until a resume, across every restart;
    ``strategies``: the strategies halted on their own, with their reasons."""

    state: TradingState
    reason: str = ""
    source: str = ""
    since: str = ""
    strategies: tuple[tuple[str, str], ...] = ()
    mode: HaltMode = HaltMode.CANCEL  # how the recorded halt was made (and is re-applied)


@dataclass(frozen=True, slots=True)
class NotConfirmed:
    """Told to whoever waits on a halt or resume that was not confirmed in time."""

    command: str
    reason: str


@dataclass(frozen=True, slots=True)
class Beat:
    """Heartbeat: the checkpointer writes the row (the runtime sends it while all is well)."""


@dataclass(frozen=True, slots=True)
class QueryState:
    """Ask the checkpointer for the service state: starting, running or halted."""


@dataclass(frozen=True, slots=True)
class UpdateRisk:
    """New risk limits for the strategy (a validated SIGHUP reload), and the breakers' for
    a node that judges its own (a replay's); crosses the pipe."""

    risk: RiskLimits
    breakers: BreakerSettings | None = None


@dataclass(frozen=True, slots=True)
class UpdateBreakers:
    """New circuit breaker limits for the classifier (a validated SIGHUP reload)."""

    breakers: BreakerSettings
    risk: RiskLimits  # the drawdown and daily-loss breakers read the risk limits themselves


@dataclass(frozen=True, slots=True)
class ConfigReloaded:
    """What a reload changed, or why it was refused (then nothing changed)."""

    accepted: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ExpectFinal:
    """The service is stopping: the stopped node's snapshot is the final checkpoint, and
    ``notify`` gets its ``CheckpointSaved`` (or ``CheckpointFailed``)."""

    notify: Mailbox


@dataclass(frozen=True, slots=True)
class FinalSnapshot:
    """The stopped node's state, for the checkpointer (see ``NodeStopped``)."""

    snapshot: Snapshot
