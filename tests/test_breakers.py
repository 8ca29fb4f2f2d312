"""Retry budgets and circuit breakers, by injecting messages into the classifier."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.breakers import CircuitBreakers
from actors.classifier import ClassifierActor, classify, retry_delay
from actors.inbox import Inbox
from protocol import (
    Alert,
    BreakerSettings,
    CircuitBreakerTripped,
    DecisionKind,
    ErrorRaised,
    Halt,
    NodeReport,
    NodeStarted,
    OperationSucceeded,
    OrderFilled,
    OrderRejected,
    RiskLimits,
    Severity,
    StrategyMark,
    TradingState,
    TradingStateChanged,
    WhereIs,
)
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, recorder, settled

D = Decimal
DAY = 86_400 * 10**9
T0 = 1_780_000_000 * 10**9
RISK = RiskLimits(max_drawdown_pct=D(10), daily_loss_limit_pct=D(5))
LIMITS = BreakerSettings(
    max_consecutive_rejects=3,
    max_errors=4,
    error_window_s=60,
)


@pytest.fixture
def tree():
    inbox = Inbox()
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            recorder("gate", inbox),
            recorder("checkpointer", inbox),
            ChildSpec(
                "classifier",
                lambda ctx: ClassifierActor.start(ctx, breakers=LIMITS, risk=RISK, retry_budget=2),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    yield sup.ask(WhereIs("classifier"), timeout=5), inbox, sup
    sup.stop(timeout=10)


def halts(inbox: Inbox, sup) -> list[Halt]:
    """Halts the gate got so far - after it handled everything sent to it."""
    settled(sup, "gate")
    return [
        r.message for r in inbox.seen if isinstance(r, Recorded) and isinstance(r.message, Halt)
    ]


def test_transient_errors_get_growing_delays_within_a_budget(tree):
    classifier, inbox, _sup = tree
    locked = ErrorRaised("checkpointer", "StorageError", "database is locked", operation="cp")
    first = classifier.ask(locked, timeout=5)
    second = classifier.ask(locked, timeout=5)
    assert (first.kind, first.attempt, first.retry_after_s) == (
        DecisionKind.TRANSIENT, 1, retry_delay(1)
    )  # fmt: skip
    assert second.retry_after_s > first.retry_after_s
    third = classifier.ask(locked, timeout=5)
    assert third.kind is DecisionKind.FATAL and "retry budget of 2 used up" in third.reason
    inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt))


def test_success_clears_the_budget(tree):
    classifier, _, _ = tree
    locked = ErrorRaised("checkpointer", "StorageError", "database is locked", operation="cp")
    for _ in range(5):
        assert classifier.ask(locked, timeout=5).kind is DecisionKind.TRANSIENT
        assert classifier.ask(locked, timeout=5).attempt == 2
        classifier.tell(OperationSucceeded("cp"))


def test_a_binance_code_inside_a_message_is_recognised():
    message = 'Binance error: {"code":-2015,"msg":"Invalid API-key, IP, or permissions"}'
    decision = classify(ErrorRaised("exec", "BinanceClientError", message))
    assert decision.kind is DecisionKind.FATAL and decision.error.code == -2015


def test_consecutive_rejects_trip_the_breaker_once(tree):
    classifier, inbox, sup = tree
    for n in range(5):
        classifier.tell(OrderRejected(f"O-{n}", "PRICE_OUT_OF_RANGE", denied=False))
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert halt.source == "breaker" and "consecutive_rejects" in halt.reason
    alert = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Alert)).message
    assert alert.severity is Severity.CRITICAL and "3 order rejects in a row" in alert.text
    event = inbox.expect(
        Recorded, where=lambda r: isinstance(r.message, CircuitBreakerTripped)
    ).message
    assert event.breaker == "consecutive_rejects"
    classifier.ask(OrderFilled("x", "t", "i", "BUY", D(1), D(1), D(0), 0), timeout=5)
    assert not halts(inbox, sup), "tripped once until resumed (the first Halt was consumed above)"


def test_a_fill_between_rejects_resets_the_count(tree):
    classifier, inbox, sup = tree
    fill = OrderFilled("x", "t", "i", "BUY", D(1), D(1), D(0), 0)
    for n in range(6):
        classifier.tell(OrderRejected(f"O-{n}", "PRICE_OUT_OF_RANGE", denied=False))
        if n % 2:
            classifier.tell(fill)
    classifier.ask(fill, timeout=5)
    assert not halts(inbox, sup)


def test_denials_caused_by_the_halt_are_not_rejects(tree):
    classifier, inbox, sup = tree
    for n in range(10):
        classifier.tell(OrderRejected(f"O-{n}", "TradingState.HALTED", denied=True))
    classifier.ask(OrderFilled("x", "t", "i", "BUY", D(1), D(1), D(0), 0), timeout=5)
    assert not halts(inbox, sup)


def test_an_insufficient_margin_reject_is_fatal(tree):
    classifier, inbox, _sup = tree
    classifier.tell(OrderRejected("O-1", "Margin is insufficient (code -2019)", denied=False))
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert halt.source == "classifier"


def test_the_error_rate_breaker(tree):
    classifier, inbox, _sup = tree
    for n in range(4):
        classifier.tell(ErrorRaised("feed", "ValueError", f"odd {n}", operation=f"op{n}"))
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert "error_rate" in halt.reason


def test_drawdown_trips_and_a_resume_rebaselines(tree):
    classifier, inbox, sup = tree
    classifier.tell(NodeReport(D(100_000), D(100_000), T0))
    classifier.tell(NodeReport(D(120_000), D(100_000), T0 + 1))  # new peak
    classifier.ask(NodeReport(D(110_000), D(100_000), T0 + 2), timeout=5)  # -8.3%: fine
    assert not halts(inbox, sup)
    classifier.tell(NodeReport(D(107_000), D(100_000), T0 + 3))  # -10.8%
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert "max_drawdown" in halt.reason

    classifier.tell(TradingStateChanged(TradingState.ACTIVE, "operator resume"))
    classifier.ask(NodeReport(D(107_000), D(100_000), T0 + DAY), timeout=5)
    classifier.ask(NodeReport(D(103_000), D(100_000), T0 + DAY + 1), timeout=5)  # -3.7%
    assert not halts(inbox, sup), "re-baselined at 107k, not at the old 120k peak"


def test_daily_loss_is_measured_from_the_start_of_each_utc_day():
    breakers = CircuitBreakers(LIMITS, RISK)
    assert breakers.equity(D(100_000), T0) is None
    assert breakers.equity(D(96_000), T0 + 1) is None  # -4%
    trip = breakers.equity(D(94_900), T0 + 2)  # -5.1%
    assert trip is not None and trip.breaker == "daily_loss"
    fresh = CircuitBreakers(LIMITS, RISK)
    fresh.equity(D(100_000), T0)
    fresh.equity(D(96_000), T0 + 1)
    next_day = (T0 // DAY + 1) * DAY
    assert fresh.equity(D(95_000), next_day) is None, "a new day starts a new budget"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_budget_is_forgotten_after_its_window():
    """Issue 13, defect 3: failures far apart never add up to a fatal one."""
    inbox, clock = Inbox(), Clock()
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            recorder("gate", inbox),
            ChildSpec(
                "classifier",
                lambda ctx: ClassifierActor.start(
                    ctx, retry_budget=2, budget_window_s=600, clock=clock
                ),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    try:
        classifier = sup.ask(WhereIs("classifier"), timeout=5)
        crash = ErrorRaised("node", "ChildCrashed", "node pipe broken: reset by peer")
        for _ in range(10):  # one transient crash every 7 minutes, for 70 minutes
            decision = classifier.ask(crash, timeout=5)
            assert decision.kind is DecisionKind.TRANSIENT, decision
            clock.now += 420
        clock.now += 600  # ten quiet minutes since the last one
        assert classifier.ask(crash, timeout=5).attempt == 1
        assert classifier.ask(crash, timeout=5).attempt == 2
        assert classifier.ask(crash, timeout=5).kind is DecisionKind.FATAL, "a burst still counts"
    finally:
        sup.stop(timeout=10)


def test_the_drawdown_is_measured_from_the_nodes_checkpointed_peak(tree):
    """Issue 13, defect 12: a restart must not forget the peak (the node reports it)."""
    classifier, inbox, _sup = tree
    # A classifier that has just restarted sees its first report: 107k, peak 120k.
    classifier.tell(NodeReport(D(107_000), D(100_000), T0, equity_peak=D(120_000)))
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert "max_drawdown" in halt.reason and "120000" in halt.reason


def test_a_tripped_breaker_alerts_again_as_the_loss_deepens(tree):
    classifier, inbox, sup = tree
    peak = D(100_000)
    classifier.tell(NodeReport(D(89_000), D(89_000), T0, equity_peak=peak))  # -11 %: trips
    inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt))
    classifier.ask(NodeReport(D(87_000), D(87_000), T0 + 1, equity_peak=peak), timeout=5)
    settled(sup, "alerter")
    deepening = [
        r.message
        for r in inbox.seen
        if isinstance(r, Recorded)
        and isinstance(r.message, Alert)
        and "deepening" in r.message.title
    ]
    assert not deepening, "-13 %: less than a further 5 points"
    classifier.tell(NodeReport(D(83_000), D(83_000), T0 + 2, equity_peak=peak))  # -17 %
    alert = inbox.expect(
        Recorded, where=lambda r: isinstance(r.message, Alert) and "deepening" in r.message.title
    ).message
    assert "17.00% below its peak" in alert.text and alert.severity is Severity.CRITICAL
    assert len(halts(inbox, sup)) == 0, "an alert, not another halt"


def test_stale_market_data_alerts_then_halts_and_its_return_is_announced(tree):
    classifier, inbox, sup = tree
    second = 10**9

    def report(age_s: float) -> NodeReport:
        now = T0 + 100 * second
        return NodeReport(
            D(100_000), D(100_000), now, last_data_ns=now - int(age_s * second), data_interval_s=1.0
        )

    classifier.ask(report(1.0), timeout=5)
    classifier.tell(report(3.5))  # 3 intervals: alert
    alert = inbox.expect(
        Recorded, where=lambda r: isinstance(r.message, Alert) and "stalled" in r.message.title
    ).message
    assert alert.severity is Severity.WARNING and "no market data for 3.5 s" in alert.text
    assert not halts(inbox, sup)
    classifier.tell(report(10.5))  # 10 intervals: halt
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert "data_stale" in halt.reason
    classifier.tell(report(0.2))
    inbox.expect(
        Recorded, where=lambda r: isinstance(r.message, Alert) and "flowing" in r.message.title
    )


def test_a_finished_replay_is_not_a_stall(tree):
    classifier, inbox, sup = tree
    now = T0 + 10**12
    finished = NodeReport(
        D(1), D(1), now, last_data_ns=now - 10**12, data_interval_s=0.25, replay_finished=True
    )
    classifier.ask(finished, timeout=5)
    settled(sup, "alerter", "gate")
    assert not [r for r in inbox.seen if isinstance(r, Recorded)]


def test_with_several_strategies_each_has_its_own_drawdown_and_rejects(tree):
    """A strategy's drawdown from its own peak and its own rejects halt it alone; the
    account's breakers still watch the total, which here moves little."""
    classifier, inbox, sup = tree
    classifier.tell(NodeStarted(1, "T-1", "BTCUSDT-PERP.BINANCE", 0, strategy_ids=("A-1", "B-2")))

    def report(ts: int, a: str, b: str, a_peak: str, b_peak: str) -> NodeReport:
        marks = (
            StrategyMark("A-1", D(a), D(a_peak)),
            StrategyMark("B-2", D(b), D(b_peak)),
        )
        return NodeReport(D(100_000), D(100_000), ts, strategies=marks)

    classifier.ask(report(T0, "100000", "100000", "100000", "100000"), timeout=5)
    classifier.ask(report(T0 + 1, "100500", "95500", "101000", "100000"), timeout=5)  # -4.5%
    assert not halts(inbox, sup)
    classifier.tell(report(T0 + 2, "100500", "89000", "101000", "100000"))  # B: -11%
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert halt.strategy_id == "B-2" and "max_drawdown (B-2)" in halt.reason
    alert = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Alert)).message
    assert alert.title == "Circuit breaker tripped: max_drawdown (B-2)"

    for n in range(3):  # A's rejects are A's
        classifier.tell(OrderRejected(f"O-{n}", "venue says no", denied=False, strategy_id="A-1"))
    classifier.tell(OrderFilled("O-9", "T-9", "X", "BUY", D(1), D(1), D(0), 0, 0, "B-2"))
    settled(sup, "classifier")
    reasons = [(h.strategy_id, h.reason.split(":")[0]) for h in halts(inbox, sup)]
    assert reasons == [("A-1", "circuit breaker consecutive_rejects (A-1)")]
    # A denial of a halted strategy's order is the halt at work, not a reject.
    for n in range(5):
        classifier.tell(
            OrderRejected(f"O-{n}", "STRATEGY_HALTED: review", denied=True, strategy_id="B-2")
        )
    settled(sup, "classifier")
    assert len(halts(inbox, sup)) == 1
