"""A real TradingNode in a child process, under a supervisor, driven by messages."""

from __future__ import annotations

import os
import signal
from decimal import Decimal

import pytest

from actors.gate import GateActor
from actors.inbox import Inbox
from actors.node_actor import TradingNodeActor
from protocol import (
    ChildStarted,
    Halt,
    NodeSettings,
    NodeStarted,
    OrderFilled,
    OrderRejected,
    OrdersCanceled,
    ReplaySettings,
    Resume,
    Snapshot,
    SnapshotTaken,
    StrategySettings,
    TakeSnapshot,
    TradingState,
    TradingStateChanged,
    WhereIs,
)
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
            recorder("gate", inbox),
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
    node.tell(TakeSnapshot(reply_to=reply, request_id=7))
    taken = reply.expect(SnapshotTaken, timeout=15)
    assert taken.request_id == 7
    return taken.snapshot


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
    assert snap.balance != FAST.account.starting_balance  # commission was paid
    assert snap.trading_state is TradingState.ACTIVE


LADDER = NodeSettings(
    trader_id="LADDER-001",
    replay=ReplaySettings(speed=1200.0, bars=30000),  # 20 bars/s: a cross every second or two
    strategy=StrategySettings(ladder_orders=3, ladder_step_pct=Decimal("0.05")),
)


@pytest.fixture
def ladder_tree(tmp_path):
    inbox, events = Inbox(), Inbox()
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            recorder("checkpointer", inbox),
            recorder("classifier", inbox),
            ChildSpec("gate", lambda ctx: GateActor.start(ctx, tmp_path / "gate.db", "LADDER-001")),
            ChildSpec(
                "node", lambda ctx: TradingNodeActor.start(ctx, LADDER), shutdown_timeout_s=20
            ),
        )
    )
    sup = Supervisor.start(spec, parent=events)
    yield sup, inbox
    sup.stop(timeout=60)


def test_halt_cancels_every_open_limit_order_denies_new_ones_and_resume_trades(ladder_tree):
    sup, inbox = ladder_tree
    node_message(inbox, OrderFilled)
    before = snapshot_of(sup)
    resting = {o.client_order_id for o in before.open_orders if o.order_type == "LIMIT"}
    assert len(resting) >= 3, before.open_orders

    confirmed = Inbox()
    sup.ask(WhereIs("gate"), timeout=5).tell(Halt("test halt", notify=confirmed))

    cancelled = confirmed.expect(OrdersCanceled, timeout=10)
    assert len(cancelled.client_order_ids) >= 3  # the ladder resting at that moment
    halted = snapshot_of(sup)
    assert halted.trading_state is TradingState.HALTED and halted.open_orders == ()
    alert = inbox.expect(Recorded, 10, lambda r: r.role == "alerter").message
    assert "halted" in alert.title.lower() and "cancelled" in alert.text

    denied = node_message(inbox, OrderRejected, where=lambda m: m.denied)
    assert "HALTED" in denied.reason.upper()
    later = snapshot_of(sup)
    assert later.replay_cursor > halted.replay_cursor, "bars keep flowing while halted"
    assert later.open_orders == ()

    resumed = Inbox()
    sup.ask(WhereIs("gate"), timeout=5).tell(Resume("test resume", notify=resumed))
    assert resumed.expect(TradingStateChanged, timeout=10).state is TradingState.ACTIVE
    inbox.poll()
    fill = node_message(inbox, OrderFilled)
    assert fill.quantity > 0
    assert snapshot_of(sup).trading_state is TradingState.ACTIVE


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
