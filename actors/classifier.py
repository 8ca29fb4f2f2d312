"""ClassifierActor: decides what every error means, fatal patterns first.

The decision is a pure function (``classify``) so it can be tested exhaustively;
the actor applies it: fatal -> halt the node and a critical alert; unknown -> a
warning alert and a count; transient -> a retry delay (tenacity exponential
backoff) within a per-operation budget, cleared by ``OperationSucceeded``; a budget
used up is fatal. A budget is also forgotten ``budget_window_s`` after its last
failure, so failures weeks apart never add up to a fatal one. The actor also hosts
the circuit breakers: the node's reports (equity and the age of its market data),
order rejects and the error rate can each trip a halt, sent through the gate.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import replace

from actors.base import ChildContext, SupervisedActor, halt
from actors.breakers import CircuitBreakers, DataStale, Deepened, Trip
from actors.redact import redact
from protocol import (
    Alert,
    BreakerSettings,
    BreakerTripped,
    CaughtUp,
    CircuitBreakerTripped,
    Decision,
    DecisionKind,
    ErrorRaised,
    Halt,
    HaltMode,
    NodeReport,
    NodeStarted,
    OperationSucceeded,
    OrderFilled,
    OrderRejected,
    RiskLimits,
    Severity,
    TradingState,
    TradingStateChanged,
    UpdateBreakers,
    exponential_delay,
)
from storage import span

log = logging.getLogger(__name__)

ROLE = "classifier"

FATAL_CODES: dict[int, str] = {
    -2014: "API key format invalid",
    -2015: "invalid API key, IP or permissions",
    -1022: "invalid signature",
    -1021: "timestamp outside recvWindow",
    -2019: "insufficient margin",
    -2018: "insufficient balance",
}
TRANSIENT_CODES: dict[int, str] = {
    -1000: "unknown venue error",
    -1001: "venue disconnected",
    -1003: "rate limit",
    -1007: "venue timeout",
    -1008: "venue overloaded",
    429: "HTTP 429 too many requests",
    418: "HTTP 418 IP banned for rate limit",
    502: "HTTP 502 bad gateway",
    503: "HTTP 503 unavailable",
    504: "HTTP 504 gateway timeout",
}
FATAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("authentication", r"authenticat|unauthori[sz]ed|api[- _]?key|signature|permission denied"),
        ("margin", r"insufficient (margin|balance|funds)|(margin|balance) is insufficient"),
        ("storage full", r"database or disk is full|no space left|disk full"),
        ("storage read-only", r"readonly database|read-only file system"),
        ("storage corrupt", r"file is not a database|malformed"),
        ("storage i/o", r"disk i/o error"),
        ("clock", r"recvwindow|timestamp for this request"),
    )
)
FATAL_TYPES = frozenset({"PermissionError", "AuthenticationError", "SchemaError"})
TRANSIENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("timeout", r"timed? ?out|timeout"),
        ("connection", r"connection|disconnect|reset by peer|broken pipe|unreachable"),
        ("rate limit", r"rate limit|too many requests"),
        ("unavailable", r"temporar|unavailable|try again"),
        ("storage busy", r"database is locked|database is busy"),
    )
)
TRANSIENT_TYPES = frozenset(
    {"TimeoutError", "ConnectionError", "ConnectionResetError", "ConnectionRefusedError"}
)


_CODE = re.compile(r"(?<![\w.-])(-[12]\d{3})(?!\d)")


def error_code(error: ErrorRaised) -> int | None:
    """The explicit code, or a Binance code quoted in the message ({"code":-2015,...})."""
    if error.code is not None:
        return error.code
    match = _CODE.search(error.message)
    return int(match.group(1)) if match else None


def classify(error: ErrorRaised) -> Decision:
    """Fatal is checked first and wins whenever both a fatal and a transient rule match."""
    code = error_code(error)
    if code != error.code:
        error = replace(error, code=code)
    if error.code is not None and error.code in FATAL_CODES:
        return Decision(DecisionKind.FATAL, f"code {error.code}: {FATAL_CODES[error.code]}", error)
    if error.error_type in FATAL_TYPES:
        return Decision(DecisionKind.FATAL, f"{error.error_type}", error)
    for name, pattern in FATAL_PATTERNS:
        if pattern.search(error.message):
            return Decision(DecisionKind.FATAL, name, error)
    if error.code is not None and error.code in TRANSIENT_CODES:
        return Decision(
            DecisionKind.TRANSIENT, f"code {error.code}: {TRANSIENT_CODES[error.code]}", error
        )
    if error.error_type in TRANSIENT_TYPES:
        return Decision(DecisionKind.TRANSIENT, error.error_type, error)
    for name, pattern in TRANSIENT_PATTERNS:
        if pattern.search(error.message):
            return Decision(DecisionKind.TRANSIENT, name, error)
    return Decision(DecisionKind.UNKNOWN, "no rule matched", error)


# What the account's halt does, by mode, in an alert's words.
HALTED_AS = {
    HaltMode.CANCEL: "Trading halted; open orders cancelled",
    HaltMode.REDUCE: "Trading reduced: entries cancelled, reduce-only stops kept, only reducing "
    "orders pass",
    HaltMode.FLATTEN: "Trading halted; open orders cancelled and every position closed at market",
}
HALT_DENIAL = re.compile(r"HALTED|REDUCING", re.IGNORECASE)
# The RiskEngine's own limits (NOTIONAL_EXCEEDS_MAX_PER_ORDER, QUANTITY_EXCEEDS_MAXIMUM,
# ...): a strategy asked for more than the service allows. The order never left the
# node; the operator hears of it, since a strategy that keeps doing it is not trading.
RISK_DENIAL = re.compile(r"\b([A-Z_]*(?:EXCEEDS|BELOW)[A-Z_]*)\b")


def retry_delay(attempt: int) -> float:
    return exponential_delay(attempt, 0.5, 30.0)


class ClassifierActor(SupervisedActor):
    def __init__(
        self,
        ctx: ChildContext,
        breakers: BreakerSettings | None = None,
        risk: RiskLimits | None = None,
        retry_budget: int = 5,
        budget_window_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(ctx)
        self.counts: Counter[DecisionKind] = Counter()
        self.rejects = 0
        self._failures: dict[str, deque[float]] = {}  # operation -> when it failed
        self._budget = retry_budget
        self._window_s = budget_window_s
        self._clock = clock
        self.breakers = CircuitBreakers(breakers or BreakerSettings(), risk or RiskLimits())
        # With several strategies in the node, each has breakers of its own: its
        # drawdown from its own peak and its rejects halt it alone; the account's
        # equity breakers still watch the total (``NodeReport.strategies``).
        self.strategy_breakers: dict[str, CircuitBreakers] = {}

    @property
    def attempts(self) -> Counter[str]:
        """Failures per operation still inside the budget window."""
        now = self._clock()
        for failures in self._failures.values():
            while failures and now - failures[0] > self._window_s:
                failures.popleft()
        return Counter({op: len(f) for op, f in self._failures.items() if f})

    def receive(self, message: object) -> object:
        match message:
            case ErrorRaised():
                decision = self._decide(message)
                self.counts[decision.kind] += 1
                self._act(decision)
                safe = replace(decision, error=replace(message, message=redact(message.message)))
                self.peers.tell("checkpointer", safe)  # the event log keeps every decision
                self.peers.tell("metrics", safe)
                self._check(self.breakers.error())
                return decision
            case OperationSucceeded(operation=operation):
                self._failures.pop(operation, None)
            case OrderRejected(
                client_order_id=order_id, reason=reason, denied=denied, strategy_id=sid
            ):
                if denied and HALT_DENIAL.search(reason):
                    return None  # the halt doing its job, not a fault
                self.rejects += 1
                if denied and (limit := RISK_DENIAL.search(reason)):
                    self._risk_denial(order_id, limit.group(1), reason)
                decision = classify(ErrorRaised("venue", "OrderRejected", reason))
                if decision.kind is DecisionKind.FATAL:
                    self.counts[decision.kind] += 1
                    self._act(decision)
                own = self.strategy_breakers.get(sid)
                if own is not None:
                    self._check(own.reject(), sid)
                else:
                    self._check(self.breakers.reject())
            case OrderFilled(strategy_id=sid):
                own = self.strategy_breakers.get(sid)
                (own or self.breakers).fill()
            case NodeReport():
                self._report(message)
            case BreakerTripped():
                self._node_tripped(message)
            case CaughtUp():
                self._caught_up(message)
            case NodeStarted(strategy_ids=ids):
                self.peers.resolve("gate")  # a fatal error's halt goes there, at once
                # One strategy: the account's breakers are its own.
                for sid in ids if len(ids) > 1 else ():
                    self._own_breakers(sid)
            case TradingStateChanged(state=TradingState.ACTIVE, strategy_id=str(sid)):
                if (own := self.strategy_breakers.get(sid)) is not None:
                    own.reset()
            case TradingStateChanged(state=TradingState.ACTIVE):
                self.breakers.reset()
                for own in self.strategy_breakers.values():
                    own.reset()
            case TradingStateChanged():
                pass  # a halt: the breakers stay tripped until the resume
            case UpdateBreakers(breakers=breakers, risk=risk):
                for each in (self.breakers, *self.strategy_breakers.values()):
                    each.settings, each.risk = breakers, risk
                log.info("circuit breaker limits updated: %s; %s", breakers, risk)
            case _:
                return super().receive(message)
        return None

    def _decide(self, error: ErrorRaised) -> Decision:
        decision = classify(error)
        if decision.kind is not DecisionKind.TRANSIENT:
            return decision
        operation = error.operation or error.source
        self._failures.setdefault(operation, deque()).append(self._clock())
        attempt = self.attempts[operation]
        if attempt > self._budget:
            return replace(
                decision,
                kind=DecisionKind.FATAL,
                reason=(
                    f"retry budget of {self._budget} used up for {operation} ({decision.reason})"
                ),
                attempt=attempt,
            )
        return replace(decision, attempt=attempt, retry_after_s=retry_delay(attempt))

    def _report(self, report: NodeReport) -> None:
        if not report.judged:  # else the node judges equity itself, on market time
            self._check(
                self.breakers.equity(
                    report.equity, report.ts_ns, report.equity_peak, report.day_start_equity
                )
            )
            for mark in report.strategies:
                own = self._own_breakers(mark.strategy_id)
                verdict = own.equity(
                    mark.equity, report.ts_ns, mark.equity_peak, mark.day_start_equity
                )
                self._check(verdict, mark.strategy_id)
        if report.last_data_ns > 0:
            age_s = max(0.0, (report.ts_ns - report.last_data_ns) / 1e9)
            interval = 0.0 if report.replay_finished else report.data_interval_s
            self._check(self.breakers.data_age(age_s, interval))

    def _own_breakers(self, strategy_id: str) -> CircuitBreakers:
        own = self.strategy_breakers.get(strategy_id)
        if own is None:
            settings, risk = self.breakers.settings, self.breakers.risk
            own = self.strategy_breakers[strategy_id] = CircuitBreakers(settings, risk, self._clock)
        return own

    def _check(
        self, verdict: Trip | Deepened | DataStale | None, strategy_id: str | None = None
    ) -> None:
        """Act on a breaker's verdict: the account's, or one strategy's own."""
        of = "" if strategy_id is None else f" ({strategy_id})"
        match verdict:
            case None:
                return
            case Deepened(breaker=breaker, detail=detail):
                log.critical("circuit breaker %s%s: %s", breaker, of, detail)
                self.peers.tell(
                    "alerter",
                    Alert(
                        Severity.CRITICAL,
                        f"Loss deepening while halted: {breaker}{of}",
                        f"{detail}. Open positions are not closed by a halt: review them.",
                        key=f"breaker:{breaker}{of}",
                    ),
                )
                return
            case DataStale(stale=stale, detail=detail):
                log.log(logging.ERROR if stale else logging.INFO, "%s", detail)
                self.peers.tell(
                    "alerter",
                    Alert(
                        Severity.WARNING if stale else Severity.INFO,
                        "Market data stalled" if stale else "Market data flowing again",
                        f"{detail}.",
                        key="data_stale",
                    ),
                )
                return
        trip = verdict
        reason = f"circuit breaker {trip.breaker}{of}: {trip.detail}"
        log.critical("%s - halting%s", reason, of)
        mode = self.breakers.settings.halt_mode
        halt(
            self.peers,
            Halt(reason=reason, source="breaker", strategy_id=strategy_id, mode=mode),
        )
        tripped = CircuitBreakerTripped(trip.breaker, f"{trip.detail}{of}", strategy_id)
        self.peers.tell("checkpointer", tripped)
        self.peers.tell("metrics", tripped)
        self._trip_alert(trip.breaker, trip.detail, strategy_id, mode)

    def _caught_up(self, caught: CaughtUp) -> None:
        """A restart's catch-up: logged; a gap it left (longer than ``catch_up_max``, or
        history the venue could not serve) alerted - the paper record misses that market."""
        played = (
            f"played {span((caught.to_ns - caught.from_ns - caught.skipped_ns) / 1e9)} of market "
            f"({caught.trades} trades, {caught.bars} bars, {caught.fills} fills, "
            f"{caught.settlements} settlements) in {caught.took_s:.1f} s"
        )
        if not caught.gap:
            log.info("caught up after the restart: %s", played)
            return
        why = caught.failure or "longer than [simulation] catch_up_max"
        gap = span(caught.skipped_ns / 1e9)
        log.warning("gap of %s not played after the restart (%s)", gap, why)
        self.peers.tell(
            "alerter",
            Alert(
                Severity.WARNING,
                "Market gap not replayed",
                f"{gap} of the market while the service was down was not "
                f"played ({why}); {played}. Fills, stops and funding in that gap are missing "
                "from the paper record; trading goes on live.",
                key="gap",
            ),
        )

    def _node_tripped(self, trip: BreakerTripped) -> None:
        """A breaker the node judged on market time: it has halted already and the gate
        records it (told by the node actor first); here it is counted and alerted."""
        sid = trip.strategy_id
        of = "" if sid is None else f" ({sid})"
        if trip.deepened:
            self._check(Deepened(trip.breaker, trip.detail), sid)
            return
        if sid is None:
            self.breakers.tripped = Trip(trip.breaker, trip.detail)
        else:
            self._own_breakers(sid).tripped = Trip(trip.breaker, trip.detail)
        log.critical("%s - the node halted at bar %d", trip.reason, trip.bar)
        tripped = CircuitBreakerTripped(
            trip.breaker, f"{trip.detail}{of}", sid, trip.bar, trip.market_ns
        )
        self.peers.tell("checkpointer", tripped)
        self.peers.tell("metrics", tripped)
        self._trip_alert(trip.breaker, trip.detail, sid, trip.mode)

    def _trip_alert(
        self, breaker: str, detail: str, strategy_id: str | None, mode: HaltMode
    ) -> None:
        of = "" if strategy_id is None else f" ({strategy_id})"
        halted = (
            HALTED_AS[mode]
            if strategy_id is None
            else f"{strategy_id} halted, its open orders cancelled; the other strategies trade on"
        )
        self.peers.tell(
            "alerter",
            Alert(
                Severity.CRITICAL,
                f"Circuit breaker tripped: {breaker}{of}",
                f"{detail}. {halted}. Resume when reviewed.",
                key=f"breaker:{breaker}{of}",
            ),
        )

    def _risk_denial(self, order_id: str, limit: str, reason: str) -> None:
        log.warning("order %s denied by a risk limit: %s", order_id, reason)
        self.peers.tell(
            "alerter",
            Alert(
                Severity.WARNING,
                f"Order denied: {limit}",
                f"{order_id}: {reason}. The order did not reach the venue; trading continues.",
                key=f"risk-denial:{limit}",
            ),
        )

    def _act(self, decision: Decision) -> None:
        error = decision.error
        mode = self.breakers.settings.halt_mode
        if decision.kind is DecisionKind.FATAL:
            # The halt first: the redaction and the log line (a write to the journal or
            # a file) wait, the operator's brake does not.
            halt(self.peers, Halt(reason=f"fatal: {decision.reason}", source=ROLE, mode=mode))
        summary = redact(f"{error.source}: {error.error_type}: {error.message}")
        match decision.kind:
            case DecisionKind.FATAL:
                log.critical("fatal error (%s) - halting: %s", decision.reason, summary)
                self.peers.tell(
                    "alerter",
                    Alert(
                        Severity.CRITICAL,
                        f"Fatal error: {decision.reason}",
                        f"{summary}. {HALTED_AS[mode]}.",
                        key=f"fatal:{error.source}:{decision.reason}",
                    ),
                )
            case DecisionKind.UNKNOWN:
                log.error("unclassified error: %s", summary)
                self.peers.tell(
                    "alerter",
                    Alert(
                        Severity.WARNING,
                        "Unclassified error",
                        f"{summary}. Trading continues; seen {self.counts[decision.kind]} time(s).",
                        key=f"unknown:{error.source}:{error.error_type}",
                    ),
                )
            case DecisionKind.TRANSIENT:
                log.warning(
                    "transient error (%s), attempt %d, retry in %.1f s: %s",
                    decision.reason,
                    decision.attempt,
                    decision.retry_after_s or 0.0,
                    summary,
                )
