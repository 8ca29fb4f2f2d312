"""A halt's first hops find their peer already looked up (issue 29): the classifier the
gate and the gate the node, as soon as a node has started - not on the first halt,
which then waited for a round trip to the supervisor on each hop. Driven by messages,
with the supervisor's directory seen through a counter of its ``WhereIs`` asks."""

from __future__ import annotations

from pathlib import Path

import pykka

from actors.base import ChildContext
from actors.classifier import ClassifierActor
from actors.gate import GateActor
from actors.inbox import Inbox
from protocol import ErrorRaised, GateQuery, Halt, NodeStarted, Ping, WhereIs
from supervisor import Supervisor, SupervisorSpec
from tests.helpers import Recorded, recorder

ROLES = frozenset({"node", "gate", "alerter", "classifier", "checkpointer"})
STARTED = NodeStarted(pid=1, trader_id="LOOKUP-001", instrument_id="X", replay_cursor=0)


class CountingDirectory:
    """The supervisor, as its children see it, noting each role it is asked for."""

    def __init__(self, sup: pykka.ActorRef[Supervisor]) -> None:
        self.sup = sup
        self.asked: list[str] = []

    def tell(self, message: object) -> None:
        self.sup.tell(message)

    def ask(self, message: object, *, timeout: float | None = None) -> object:
        if isinstance(message, WhereIs):
            self.asked.append(message.role)
        return self.sup.ask(message, timeout=timeout)


def peers_tree(inbox: Inbox, *roles: str) -> tuple[pykka.ActorRef[Supervisor], CountingDirectory]:
    sup = Supervisor.start(
        SupervisorSpec(children=tuple(recorder(role, inbox) for role in roles)), parent=Inbox()
    )
    return sup, CountingDirectory(sup)


def test_the_gate_looks_the_node_up_when_it_starts_and_not_on_the_first_halt(tmp_path: Path):
    inbox = Inbox()
    sup, directory = peers_tree(inbox, "node", "alerter", "classifier")
    ctx = ChildContext("gate", directory, roles=ROLES)
    gate = GateActor.start(ctx, tmp_path / "gate.db", "LOOKUP-001", tick_s=3600)
    try:
        gate.tell(STARTED)
        gate.ask(GateQuery(), timeout=5)  # NodeStarted handled
        assert "node" in directory.asked
        directory.asked.clear()
        gate.tell(Halt("test", "operator"))
        inbox.expect(Recorded, 5, lambda r: r.role == "node" and isinstance(r.message, Halt))
        assert "node" not in directory.asked
    finally:
        gate.stop()
        sup.stop(timeout=10)


def test_the_classifier_looks_the_gate_up_when_a_node_starts_and_not_on_a_fatal_error():
    inbox = Inbox()
    sup, directory = peers_tree(inbox, "gate", "alerter", "checkpointer", "node")
    classifier = ClassifierActor.start(ChildContext("classifier", directory, roles=ROLES))
    try:
        classifier.tell(STARTED)
        classifier.ask(Ping(), timeout=5)  # NodeStarted handled
        assert "gate" in directory.asked
        directory.asked.clear()
        classifier.tell(ErrorRaised("test", "AuthError", "Invalid API-key", -2015))
        inbox.expect(Recorded, 5, lambda r: r.role == "gate" and isinstance(r.message, Halt))
        assert "gate" not in directory.asked
    finally:
        classifier.stop()
        sup.stop(timeout=10)
