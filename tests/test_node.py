"""A real TradingNode in a child process, under a supervisor, driven by messages."""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import pytest

from actors.inbox import Inbox
from actors.messages import (
    ChildStarted,
    Halt,
    NodeStarted,
    OrderFilled,
    OrdersCanceled,
    Resume,
    Snapshot,
    TakeSnapshot,
    TradingState,
    TradingStateChanged,
    WhereIs,
)
from actors.node_actor import TradingNodeActor
from actors.settings import NodeSettings, ReplaySettings
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, recorder

pytestmark = pytest.mark.node

FAST = NodeSettings(trader_id="NODETEST-001", replay=ReplaySettings(speed=0.0, bars=4000))


@pytest.fixture
def node_tree():
    inbox, events = Inbox(), Inbox()
    spec = SupervisorSpec(
        children=(
            recorder("checkpointer", inbox),
            recorder("classifier", inbox),
            ChildSpec(
                "node",
                lambda ctx: TradingNodeActor.start(ctx, FAST, ping_interval_s=0.5),
                shutdown_timeout_s=20,
            ),
        ),
        max_restarts=3,
        period_s=60,
    )
    sup = Supervisor.start(spec, parent=events)
    yield sup, inbox, events
    sup.stop(timeout=60)


def node_message(inbox: Inbox, kind: type, timeout: float = 60.0, where=lambda m: True):
    return inbox.expect(
        Recorded,
        timeout,
        lambda r: r.role == "checkpointer" and isinstance(r.message, kind) and where(r.message),
    ).message


def snapshot_of(sup) -> Snapshot:
    node = sup.ask(WhereIs("node"), timeout=5)
    reply = Inbox()
    node.tell(TakeSnapshot(reply_to=reply))
    return reply.expect(Snapshot, timeout=15)


def test_replay_and_sandbox_produce_a_fill_and_a_position(node_tree):
    sup, inbox, _ = node_tree
    started = node_message(inbox, NodeStarted)
    assert started.trader_id == "NODETEST-001"

    fill = node_message(inbox, OrderFilled)
    assert fill.instrument_id == "BTCUSDT-PERP.BINANCE"
    assert fill.quantity > 0 and fill.price > 0

    snap = snapshot_of(sup)
    assert snap.positions, "a filled market order opens a position"
    assert snap.replay_cursor > 0
    assert snap.balance != FAST.starting_balance  # commission was paid
    assert snap.trading_state is TradingState.ACTIVE


def test_halt_blocks_orders_and_resume_trades_again(node_tree):
    sup, inbox, _ = node_tree
    node_message(inbox, OrderFilled)
    node = sup.ask(WhereIs("node"), timeout=5)

    node.tell(Halt("test halt"))
    assert node_message(inbox, TradingStateChanged).state is TradingState.HALTED
    node_message(inbox, OrdersCanceled)
    assert snapshot_of(sup).trading_state is TradingState.HALTED

    node.tell(Resume("test resume"))
    changed = node_message(
        inbox, TradingStateChanged, where=lambda m: m.state is TradingState.ACTIVE
    )
    assert changed.reason == "test resume"


def test_a_killed_node_child_is_replaced_and_trading_goes_on(node_tree):
    sup, inbox, events = node_tree
    first = node_message(inbox, NodeStarted)
    node_message(inbox, OrderFilled)

    os.kill(first.pid, signal.SIGKILL)

    restarted = events.expect(ChildStarted, 30, lambda m: m.role == "node" and m.restart)
    second = node_message(inbox, NodeStarted)
    assert second.pid != first.pid
    assert restarted.actor_urn == sup.ask(WhereIs("node"), timeout=5).actor_urn
    fill = node_message(inbox, OrderFilled)
    assert fill.quantity > Decimal(0)
    with pytest.raises(ProcessLookupError):
        os.kill(first.pid, 0)
