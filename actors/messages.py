"""Every message the actors, the supervisor and the node child exchange.

Actors talk only with ``tell``/``ask`` of these frozen, slotted dataclasses, so a
message can never be mutated after it was sent and a test can build any of them to
inject it. Messages that cross the pipe to the node child hold only plain values
(str, int, Decimal, tuples) so they pickle without dragging Nautilus objects along.
Money is ``Decimal``; it is rounded only when displayed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Protocol

from actors.settings import BreakerSettings, RiskLimits


class Mailbox(Protocol):
    """Anything a message can be told to: a pykka ``ActorRef`` or a test ``Inbox``."""

    def tell(self, message: object) -> None: ...


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class DecisionKind(StrEnum):
    FATAL = "fatal"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"
    REDUCING = "REDUCING"


# ---------------------------------------------------------------- commands


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop new orders and cancel the strategy's open orders; the node keeps running.

    ``notify`` receives ``OrdersCanceled`` once every cancel is confirmed. It stays in
    the parent: the node actor strips it before the command crosses the pipe.
    """

    reason: str
    source: str = "operator"
    notify: Mailbox | None = None


@dataclass(frozen=True, slots=True)
class Resume:
    """Trading ACTIVE again; ``notify`` receives the ``TradingStateChanged``."""

    reason: str
    source: str = "operator"
    notify: Mailbox | None = None


@dataclass(frozen=True, slots=True)
class Stop:
    """Graceful shutdown: the only path that ends the node."""

    reason: str = "requested"


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
    """The durable trading state: HALTED stays until a resume, across every restart."""

    state: TradingState
    reason: str = ""
    source: str = ""
    since: str = ""


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
    """New risk limits for the strategy (a validated SIGHUP reload); crosses the pipe."""

    risk: RiskLimits


@dataclass(frozen=True, slots=True)
class UpdateBreakers:
    """New circuit breaker limits for the classifier (a validated SIGHUP reload)."""

    breakers: BreakerSettings


@dataclass(frozen=True, slots=True)
class ConfigReloaded:
    """What a reload changed, or why it was refused (then nothing changed)."""

    accepted: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Ping:
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class Pong:
    role: str
    request_id: int = 0


@dataclass(frozen=True, slots=True)
class Alert:
    severity: Severity
    title: str
    text: str
    key: str = ""  # identical keys may be folded together by the alerter


# ---------------------------------------------------------------- supervision


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


# ---------------------------------------------------------------- snapshots


@dataclass(frozen=True, slots=True)
class OrderView:
    client_order_id: str
    instrument_id: str
    side: str
    order_type: str
    quantity: Decimal
    filled_qty: Decimal
    price: Decimal | None
    status: str


@dataclass(frozen=True, slots=True)
class PositionView:
    position_id: str
    instrument_id: str
    side: str
    quantity: Decimal
    avg_px_open: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at_ns: int
    trader_id: str
    trading_state: TradingState
    currency: str
    balance: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    replay_cursor: int
    open_orders: tuple[OrderView, ...] = ()
    positions: tuple[PositionView, ...] = ()
    orders_total: int = 0
    halt_reason: str = ""
    replay_total: int = 0
    # Breaker marks and the change counter (see ``NodeReport``); defaults read old rows.
    equity_peak: Decimal | None = None
    day: str = ""
    day_start_equity: Decimal | None = None
    state_version: int = 0
    last_data_ns: int = 0


# ---------------------------------------------------------------- node pipe: child -> parent


@dataclass(frozen=True, slots=True)
class NodeStarted:
    """The node trades. ``restored`` is its state right after a restore, before any new bar."""

    pid: int
    trader_id: str
    instrument_id: str
    replay_cursor: int
    restored: Snapshot | None = None
    restored_from_ns: int | None = None
    trading_state: TradingState = TradingState.ACTIVE
    startup_s: float = 0.0  # the child's own start: process start to trading (a floor)


@dataclass(frozen=True, slots=True)
class NodeStopped:
    """The node has stopped. ``snapshot`` (``actors.wire`` bytes) is its state taken
    after it stopped trading: the only snapshot no later fill can make stale, so it is
    the service's final checkpoint. The node actor passes it on as ``FinalSnapshot``."""

    reason: str
    snapshot: bytes | None = None


@dataclass(frozen=True, slots=True)
class FinalSnapshot:
    """The stopped node's state, for the checkpointer (see ``NodeStopped``)."""

    snapshot: Snapshot


@dataclass(frozen=True, slots=True)
class ExpectFinal:
    """The service is stopping: the stopped node's snapshot is the final checkpoint, and
    ``notify`` gets its ``CheckpointSaved`` (or ``CheckpointFailed``)."""

    notify: Mailbox


@dataclass(frozen=True, slots=True)
class OrderFilled:
    client_order_id: str
    trade_id: str
    instrument_id: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    ts_event: int
    # When the bridge in the node child got the fill from Nautilus (ns, wall clock):
    # ts_event -> ts_bridge is Nautilus's own latency, ts_bridge -> handled is ours.
    ts_bridge: int = 0


@dataclass(frozen=True, slots=True)
class OrderRejected:
    client_order_id: str
    reason: str
    denied: bool  # True: refused by the RiskEngine before reaching the venue


@dataclass(frozen=True, slots=True)
class OrdersCanceled:
    """The open orders a halt cancelled, confirmed by ``OrderCanceled`` events."""

    client_order_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    state: TradingState
    reason: str


@dataclass(frozen=True, slots=True)
class ReconciliationDiff:
    """After a restart on a real venue: where its state differs from the last checkpoint."""

    differences: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ErrorRaised:
    """A failure anywhere, on its way to the classifier.

    ``operation`` names what failed (e.g. "checkpoint"); transient retries are budgeted
    per operation and the budget is cleared by ``OperationSucceeded``.
    """

    source: str
    error_type: str
    message: str
    code: int | None = None
    operation: str = ""


@dataclass(frozen=True, slots=True)
class OperationSucceeded:
    """The operation worked (or ended): its retry budget starts over."""

    operation: str


@dataclass(frozen=True, slots=True)
class NodeReport:
    """The node's vital signs, once a second from a timer on its loop (not from bars,
    so a stalled data stream still reports - and shows as stale).

    ``equity_peak`` and ``day_start_equity`` are kept by the node and checkpointed with
    its state, so the drawdown and daily-loss breakers do not forget them across a
    restart. ``state_version`` counts changes to orders, positions and trading state:
    while it equals the last checkpoint's, the replay cursor can advance in the
    database without a new snapshot. ``last_data_ns`` is when the last bar arrived
    (the node's start before the first one); ``data_interval_s`` how often bars are
    expected in wall-clock time (0: no expectation, e.g. a finished replay).
    """

    equity: Decimal
    balance: Decimal
    ts_ns: int
    equity_peak: Decimal | None = None
    day_start_equity: Decimal | None = None
    replay_cursor: int = 0
    state_version: int = 0
    last_data_ns: int = 0
    data_interval_s: float = 0.0
    replay_finished: bool = False


@dataclass(frozen=True, slots=True)
class CircuitBreakerTripped:
    breaker: str
    detail: str


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Pipe form of ``TakeSnapshot``: the parent keeps ``reply_to`` by ``request_id``."""

    request_id: int


@dataclass(frozen=True, slots=True)
class EncodedSnapshotReply:
    """The node child's answer to ``SnapshotRequest``: the snapshot as ``actors.wire`` bytes."""

    request_id: int
    data: bytes


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
class Decision:
    kind: DecisionKind
    reason: str
    error: ErrorRaised = field(
        default_factory=lambda: ErrorRaised(source="", error_type="", message="")
    )
    attempt: int = 0  # transient: the how-many-th failure of this operation
    retry_after_s: float | None = None  # transient: when the owner should retry


NodeCommand = Halt | Resume | Stop | SnapshotRequest | Ping | UpdateRisk
NodeEvent = (
    NodeStarted
    | NodeStopped
    | OrderFilled
    | OrderRejected
    | OrdersCanceled
    | TradingStateChanged
    | ErrorRaised
    | EncodedSnapshotReply
    | Pong
    | NodeReport
    | ReconciliationDiff
)
