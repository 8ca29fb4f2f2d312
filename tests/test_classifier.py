"""Error decisions: fatal first, always; and what the classifier actor does with them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.classifier import (
    FATAL_CODES,
    TRANSIENT_CODES,
    ClassifierActor,
    classify,
)
from actors.inbox import Inbox
from protocol import Alert, DecisionKind, ErrorRaised, Halt, Severity, WhereIs
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, recorder, settled


def err(message: str = "", code: int | None = None, error_type: str = "Exception") -> ErrorRaised:
    return ErrorRaised("test", error_type, message, code)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (err("authentication failed via connection"), DecisionKind.FATAL),
        (err("Invalid API-key, IP, or permissions for action", -2015), DecisionKind.FATAL),
        (err("Timestamp for this request is outside of the recvWindow", -1021), DecisionKind.FATAL),
        (err("Margin is insufficient", -2019), DecisionKind.FATAL),
        (err("database or disk is full"), DecisionKind.FATAL),
        (err("attempt to write a readonly database"), DecisionKind.FATAL),
        (err("Too many requests; current limit is 2400", -1003), DecisionKind.TRANSIENT),
        (err("HTTP 429", 429), DecisionKind.TRANSIENT),
        (err("connection reset by peer"), DecisionKind.TRANSIENT),
        (err("read timed out"), DecisionKind.TRANSIENT),
        (err("database is locked"), DecisionKind.TRANSIENT),
        (err("", error_type="TimeoutError"), DecisionKind.TRANSIENT),
        (err("something odd happened"), DecisionKind.UNKNOWN),
    ],
)
def test_decisions(error, kind):
    assert classify(error).kind is kind


TRANSIENT_WORDS = ["timeout", "connection reset", "rate limit", "temporarily unavailable"]
FATAL_WORDS = ["authentication failed", "invalid api key", "insufficient margin", "disk full"]


@given(
    transient=st.sampled_from(TRANSIENT_WORDS),
    fatal=st.sampled_from(FATAL_WORDS),
    fatal_first=st.booleans(),
    noise=st.text(alphabet="abc ", max_size=20),
)
def test_fatal_wins_over_transient_in_any_order(transient, fatal, fatal_first, noise):
    parts = [fatal, noise, transient] if fatal_first else [transient, noise, fatal]
    assert classify(err(" ".join(parts))).kind is DecisionKind.FATAL


@given(fatal=st.sampled_from(sorted(FATAL_CODES)), transient=st.sampled_from(TRANSIENT_WORDS))
def test_a_fatal_code_wins_over_a_transient_message(fatal, transient):
    assert classify(err(transient, code=fatal)).kind is DecisionKind.FATAL


@given(code=st.sampled_from(sorted(TRANSIENT_CODES)), fatal=st.sampled_from(FATAL_WORDS))
def test_a_fatal_message_wins_over_a_transient_code(code, fatal):
    assert classify(err(fatal, code=code)).kind is DecisionKind.FATAL


@pytest.fixture
def tree():
    inbox, events = Inbox(), Inbox()
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            recorder("gate", inbox),
            ChildSpec("classifier", ClassifierActor.start),
        )
    )
    ref = Supervisor.start(spec, parent=events)
    classifier = ref.ask(WhereIs("classifier"), timeout=5)
    yield classifier, inbox, ref
    ref.stop(timeout=10)


def test_a_fatal_error_halts_the_node_and_raises_a_critical_alert(tree):
    classifier, inbox, _ = tree
    decision = classifier.ask(err("Invalid API-key", -2015), timeout=5)
    assert decision.kind is DecisionKind.FATAL
    halt = inbox.expect(Recorded, where=lambda r: r.role == "gate").message
    assert isinstance(halt, Halt) and halt.source == "classifier"
    alert = inbox.expect(Recorded, where=lambda r: r.role == "alerter").message
    assert isinstance(alert, Alert) and alert.severity is Severity.CRITICAL


def test_an_unknown_error_alerts_without_halting(tree):
    classifier, inbox, sup = tree
    classifier.tell(err("a strange thing"))
    alert = inbox.expect(Recorded, where=lambda r: r.role == "alerter").message
    assert isinstance(alert, Alert) and alert.severity is Severity.WARNING
    assert classifier.ask(err("timeout"), timeout=5).kind is DecisionKind.TRANSIENT
    settled(sup, "gate")  # a halt would have been handled by now
    assert not [r for r in inbox.seen if isinstance(r, Recorded) and r.role == "gate"]
