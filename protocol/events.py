"""What happened: the node's events, errors and their decisions, alerts.

Events from the node child cross the pipe (plain values only); the classifier turns
errors into decisions; alerts go to the alerter. Money is ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from protocol.state import HaltMode, Snapshot, TradingState


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Alert:
    severity: Severity
    title: str
    text: str
    key: str = ""  # identical keys may be folded together by the alerter


class DecisionKind(StrEnum):
    FATAL = "fatal"
    TRANSIENT = "transient"
    UNKNOWN = "unknown"


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
class Decision:
    kind: DecisionKind
    reason: str
    error: ErrorRaised = field(
        default_factory=lambda: ErrorRaised(source="", error_type="", message="")
    )
    attempt: int = 0  # transient: the how-many-th failure of this operation
    retry_after_s: float | None = None  # transient: when the owner should retry


@dataclass(frozen=True, slots=True)
class CircuitBreakerTripped:
    breaker: str
    detail: str
    strategy_id: str | None = None  # a strategy's own breaker
    bar: int | None = None  # judged by a replay's node: the step it tripped at
    market_ns: int = 0  # and its market time


@dataclass(frozen=True, slots=True)
class BreakerTripped:
    """A breaker the node judged itself, on market time (a replay: at every step, so the
    halt falls on a bar that no machine's load can move): the node has halted already, in
    ``mode``; the gate records it, the classifier alerts. ``deepened``: a tripped
    breaker's loss went another ``realert_step_pct`` further (an alert only)."""

    breaker: str
    detail: str
    strategy_id: str | None = None
    mode: HaltMode = HaltMode.CANCEL
    bar: int = 0
    market_ns: int = 0
    deepened: bool = False

    @property
    def reason(self) -> str:
        """The halt's reason, as the trading state and the gate record it."""
        of = "" if self.strategy_id is None else f" ({self.strategy_id})"
        return f"circuit breaker {self.breaker}{of}: {self.detail}"


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
    strategy_ids: tuple[str, ...] = ()  # what a strategy's own halt may name
    data_gaps: tuple[str, ...] = ()  # a replay file's gaps, in words (the first few)


@dataclass(frozen=True, slots=True)
class NodeStopped:
    """The node has stopped. ``snapshot`` (``protocol.wire`` bytes) is its state taken
    after it stopped trading: the only snapshot no later fill can make stale, so it is
    the service's final checkpoint. The node actor passes it on as ``FinalSnapshot``."""

    reason: str
    snapshot: bytes | None = None


@dataclass(frozen=True, slots=True)
class OrderFilled:
    client_order_id: str
    trade_id: str
    instrument_id: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    # When the venue made the fill, on the wall clock (a replay's venue runs on market
    # time: when the fill's step began); ``market_ns`` is its market time.
    ts_event: int
    # When the bridge in the node child got the fill from Nautilus (ns, wall clock):
    # ts_event -> ts_bridge is Nautilus's own latency, ts_bridge -> handled is ours.
    ts_bridge: int = 0
    strategy_id: str = ""
    # The bar it filled in: a replay's index into its series; on a live feed, the bars
    # received before it. A parity report sets it beside the backtest's fill for the
    # same bar, and a restore's re-played bars supersede it.
    bar: int | None = None
    # The market time of that bar (a replay's series time, ``node.replay.series_time_ns``;
    # a live feed's bar time; 0: no bar yet): trade statistics date a fill by it, as a
    # backtest of the same bars does.
    market_ns: int = 0


@dataclass(frozen=True, slots=True)
class OrderRejected:
    client_order_id: str
    reason: str
    denied: bool  # True: refused by the RiskEngine before reaching the venue
    strategy_id: str = ""


@dataclass(frozen=True, slots=True)
class OrdersCanceled:
    """The open orders a halt cancelled, confirmed by ``OrderCanceled`` events; a
    strategy's own halt names it."""

    client_order_ids: tuple[str, ...]
    strategy_id: str | None = None
    mode: HaltMode = HaltMode.CANCEL
    kept: tuple[str, ...] = ()  # reduce: the reduce-only orders left working
    positions_closed: int = 0  # flatten: the positions closed, confirmed by their fills

    def summary(self) -> str:
        """What the halt did, in the operator's words."""
        done = f"{len(self.client_order_ids)} open order(s) cancelled (confirmed)"
        if self.mode is HaltMode.REDUCE:
            done += f", {len(self.kept)} reduce-only order(s) kept; only reducing orders pass"
        elif self.mode is HaltMode.FLATTEN:
            done += f", {self.positions_closed} position(s) closed at market (confirmed)"
        return done


@dataclass(frozen=True, slots=True)
class TradingStateChanged:
    """The account's trading state, or one strategy's (``strategy_id``)."""

    state: TradingState
    reason: str
    strategy_id: str | None = None
    # Who asked (a ``Halt``'s source: operator, telegram, breaker, classifier, gate;
    # ``market`` for the breakers a replay's node judges itself), and where the session
    # was: a replay's step (a parity report sets a halt beside its backtest's).
    source: str = ""
    bar: int | None = None


@dataclass(frozen=True, slots=True)
class ReconciliationDiff:
    """After a restart on a real venue: where its state differs from the last checkpoint."""

    differences: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FundingPaid:
    """A position's funding at a settlement: ``amount`` is what the balance moved
    (negative: paid), ``quantity`` signed (short < 0), at the ``mark`` and ``rate`` of the
    settlement ``bar``."""

    strategy_id: str
    instrument_id: str
    quantity: Decimal
    mark: Decimal
    rate: Decimal
    amount: Decimal
    bar: int
    settled_at_ns: int = 0  # the settlement's time: the venue's, or a replay bar's series time


@dataclass(frozen=True, slots=True)
class CaughtUp:
    """A restarted live-data node played the market it missed (``node.catchup``): the
    venue's history from its checkpoint's last data (``from_ns``, market time) to where
    the live feed took over (``to_ns``), with what it played and how long that took
    (``took_s``, wall time, ``waited_s`` of it within the venue's request weight limit).
    ``skipped_ns``: the part of the gap not played - longer than
    ``catch_up_max``, or the venue could not serve it (``failure``); ``warmed_bars``: the
    bars the strategies' indicators were warmed up on before."""

    from_ns: int
    to_ns: int
    trades: int = 0
    bars: int = 0
    fills: int = 0
    settlements: int = 0
    took_s: float = 0.0
    skipped_ns: int = 0
    failure: str = ""
    warmed_bars: int = 0
    mode: str = "binance-sandbox"
    waited_s: float = 0.0  # of ``took_s``: waiting for the venue's request weight budget

    @property
    def gap(self) -> bool:
        """Some of the market the node missed was not played: a gap in its record."""
        return self.skipped_ns > 0 or bool(self.failure)


@dataclass(frozen=True, slots=True)
class StrategyMark:
    """One strategy's equity (its capital plus its PnL and funding) and its peak and day's
    start, which the node keeps and checkpoints: what its own breakers read."""

    strategy_id: str
    equity: Decimal
    equity_peak: Decimal
    day_start_equity: Decimal | None = None  # its UTC day's start, for its daily loss
    capital: Decimal | None = None  # its own capital, which its equity is counted on


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
    strategies: tuple[StrategyMark, ...] = ()  # each strategy's equity, for its breakers
    loop_lag_s: float = 0.0  # how late the report's timer fired: the node loop's backlog
    # The simulated venue's fill-model draws so far (a snapshot's ``fill_draws``): a
    # touched limit order that did not fill drew without changing any state.
    fill_draws: int = 0
    # The node judges the equity breakers itself, on market time (a replay's
    # ``node.guard``): the classifier leaves equity alone and judges the rest.
    judged: bool = False
