"""Retry budgets and circuit breakers, by injecting messages into the classifier."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.breakers import CircuitBreakers
from actors.classifier import ClassifierActor, classify, retry_delay
from actors.inbox import Inbox
from actors.messages import (
    Alert,
    CircuitBreakerTripped,
    DecisionKind,
    EquityReport,
    ErrorRaised,
    Halt,
    OperationSucceeded,
    OrderFilled,
    OrderRejected,
    Severity,
    TradingState,
    TradingStateChanged,
    WhereIs,
)
from actors.settings import BreakerSettings
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, recorder

D = Decimal
DAY = 86_400 * 10**9
T0 = 1_780_000_000 * 10**9
LIMITS = BreakerSettings(
    max_drawdown_pct=D(10),
    daily_loss_limit_pct=D(5),
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
            recorder("node", inbox),
            recorder("checkpointer", inbox),
            ChildSpec(
                "classifier",
                lambda ctx: ClassifierActor.start(ctx, breakers=LIMITS, retry_budget=2),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    yield sup.ask(WhereIs("classifier"), timeout=5), inbox
    sup.stop(timeout=10)


def halts(inbox: Inbox) -> list[Halt]:
    return [
        r.message for r in inbox.seen if isinstance(r, Recorded) and isinstance(r.message, Halt)
    ]


def test_transient_errors_get_growing_delays_within_a_budget(tree):
    classifier, inbox = tree
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
    classifier, _ = tree
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
    classifier, inbox = tree
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
    assert not halts(inbox), "tripped once until resumed (the first Halt was consumed above)"


def test_a_fill_between_rejects_resets_the_count(tree):
    classifier, inbox = tree
    fill = OrderFilled("x", "t", "i", "BUY", D(1), D(1), D(0), 0)
    for n in range(6):
        classifier.tell(OrderRejected(f"O-{n}", "PRICE_OUT_OF_RANGE", denied=False))
        if n % 2:
            classifier.tell(fill)
    classifier.ask(fill, timeout=5)
    assert not halts(inbox)


def test_denials_caused_by_the_halt_are_not_rejects(tree):
    classifier, inbox = tree
    for n in range(10):
        classifier.tell(OrderRejected(f"O-{n}", "TradingState.HALTED", denied=True))
    classifier.ask(OrderFilled("x", "t", "i", "BUY", D(1), D(1), D(0), 0), timeout=5)
    assert not halts(inbox)


def test_an_insufficient_margin_reject_is_fatal(tree):
    classifier, inbox = tree
    classifier.tell(OrderRejected("O-1", "Margin is insufficient (code -2019)", denied=False))
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert halt.source == "classifier"


def test_the_error_rate_breaker(tree):
    classifier, inbox = tree
    for n in range(4):
        classifier.tell(ErrorRaised("feed", "ValueError", f"odd {n}", operation=f"op{n}"))
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert "error_rate" in halt.reason


def test_drawdown_trips_and_a_resume_rebaselines(tree):
    classifier, inbox = tree
    classifier.tell(EquityReport(D(100_000), D(100_000), T0))
    classifier.tell(EquityReport(D(120_000), D(100_000), T0 + 1))  # new peak
    classifier.ask(EquityReport(D(110_000), D(100_000), T0 + 2), timeout=5)  # -8.3%: fine
    assert not halts(inbox)
    classifier.tell(EquityReport(D(107_000), D(100_000), T0 + 3))  # -10.8%
    halt = inbox.expect(Recorded, where=lambda r: isinstance(r.message, Halt)).message
    assert "max_drawdown" in halt.reason

    classifier.tell(TradingStateChanged(TradingState.ACTIVE, "operator resume"))
    classifier.ask(EquityReport(D(107_000), D(100_000), T0 + DAY), timeout=5)
    classifier.ask(EquityReport(D(103_000), D(100_000), T0 + DAY + 1), timeout=5)  # -3.7%
    assert not halts(inbox), "re-baselined at 107k, not at the old 120k peak"


def test_daily_loss_is_measured_from_the_start_of_each_utc_day():
    breakers = CircuitBreakers(LIMITS)
    assert breakers.equity(D(100_000), T0) is None
    assert breakers.equity(D(96_000), T0 + 1) is None  # -4%
    trip = breakers.equity(D(94_900), T0 + 2)  # -5.1%
    assert trip is not None and trip.breaker == "daily_loss"
    fresh = CircuitBreakers(LIMITS)
    fresh.equity(D(100_000), T0)
    fresh.equity(D(96_000), T0 + 1)
    next_day = (T0 // DAY + 1) * DAY
    assert fresh.equity(D(95_000), next_day) is None, "a new day starts a new budget"
