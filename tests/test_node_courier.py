"""The node actor's pipe thread delivers the child's events itself (issue 29): each to
the peers it is for, and to the actor only what the actor acts on. Driven by injecting
the child's messages into a ``Courier`` (and bytes into the child's stderr pipe) under a
tree of recording peers."""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Iterator
from decimal import Decimal

import pykka
import pytest

from actors.base import ChildContext
from actors.inbox import Inbox
from actors.node_actor import Courier, _read_logs
from protocol import (
    EncodedSnapshotReply,
    ErrorRaised,
    NodeStarted,
    OrderFilled,
    OrdersCanceled,
    WhereIs,
)
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, Recorder, settled

PEERS = ("checkpointer", "classifier", "metrics", "gate", "node")
FROM_THE_CHILD = (OrderFilled, OrdersCanceled, NodeStarted, EncodedSnapshotReply)


@pytest.fixture
def tree() -> Iterator[tuple[Courier, Inbox, pykka.ActorRef[Supervisor]]]:
    inbox = Inbox()
    spec = SupervisorSpec(
        children=tuple(
            ChildSpec(role, lambda ctx, inbox=inbox: Recorder.start(ctx, inbox)) for role in PEERS
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    node = sup.ask(WhereIs("node"), timeout=5)
    assert isinstance(node, pykka.ActorRef)
    ctx = ChildContext(role="node", directory=sup, roles=frozenset(PEERS))
    try:
        yield Courier(ctx, node), inbox, sup  # type: ignore[arg-type]  # a recorder as the node
    finally:
        sup.stop(timeout=10)


def who_got(sup: pykka.ActorRef[Supervisor], inbox: Inbox) -> dict[str, list[object]]:
    """Each role's messages from the child so far. ``settled`` pings every role: its
    Pong queues behind what the courier told it, so all of that is recorded."""
    settled(sup, *PEERS)
    got: dict[str, list[object]] = {role: [] for role in PEERS}
    for record in inbox.seen:  # the tree's own news (ChildStarted) aside
        if isinstance(record, Recorded) and isinstance(record.message, FROM_THE_CHILD):
            got[record.role].append(record.message)
    return got


def test_a_fill_goes_straight_to_its_peers_and_not_through_the_node_actor(tree):
    courier, inbox, sup = tree
    fill = OrderFilled("O-1", "T-1", "BTCUSDT-PERP.BINANCE", "BUY", Decimal("0.1"),
                       Decimal("50000.1"), Decimal("0.5"), ts_event=1)  # fmt: skip
    cancelled = OrdersCanceled(("O-2",))
    courier.deliver(fill)
    courier.deliver(cancelled)
    got = who_got(sup, inbox)
    assert got["checkpointer"] == [fill, cancelled]
    assert got["classifier"] == [fill] and got["metrics"] == [fill]
    assert got["gate"] == [cancelled]
    assert got["node"] == []


def test_what_the_node_actor_acts_on_reaches_it_after_its_peers(tree):
    courier, inbox, sup = tree
    started = NodeStarted(pid=1, trader_id="T-1", instrument_id="X", replay_cursor=0)
    reply = EncodedSnapshotReply(request_id=3, data=b"x")
    courier.deliver(started)
    courier.deliver(reply)
    got = who_got(sup, inbox)
    assert got["node"] == [started, reply]
    for role in ("checkpointer", "gate", "classifier", "metrics"):
        assert got[role] == [started]


def test_an_error_the_child_logs_reaches_the_classifier(tree):
    courier, inbox, _ = tree
    read_end, write_end = multiprocessing.Pipe(duplex=False)
    reader = threading.Thread(target=_read_logs, args=(read_end, courier), daemon=True)
    reader.start()
    line = "2026-12-07T16:00:00.000000000Z [ERROR] TESTER-001.ExecClient: order rejected: -2019\n"
    os.write(write_end.fileno(), line.encode())
    got = inbox.expect(
        Recorded, 5, lambda r: r.role == "classifier" and isinstance(r.message, ErrorRaised)
    )
    assert isinstance(got.message, ErrorRaised)
    assert got.message.source == "nautilus.ExecClient"
    assert "order rejected: -2019" in got.message.message
    write_end.close()
    reader.join(5)
    assert not reader.is_alive()
