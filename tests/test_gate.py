"""The gate: halts and resumes on record, forwarded, confirmed; driven by messages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from actors.gate import GateActor, GateTick
from actors.inbox import Inbox
from protocol import (
    Alert,
    GateQuery,
    GateState,
    Halt,
    NodeStarted,
    NotConfirmed,
    OrdersCanceled,
    Resume,
    TradingState,
    TradingStateChanged,
    WhereIs,
)
from storage import GateRow, Store
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, recorder, settled, snapshot


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def gate_tree(db: Path, inbox: Inbox, clock: Clock, with_node: bool = True):
    children = [
        recorder("alerter", inbox),
        recorder("classifier", inbox),
        ChildSpec(
            "gate",
            lambda ctx: GateActor.start(
                ctx, db, "GATE-001", confirm_timeout_s=5, tick_s=3600, clock=clock
            ),
        ),
    ]
    if with_node:
        children.append(recorder("node", inbox))
    sup = Supervisor.start(SupervisorSpec(children=tuple(children)), parent=Inbox())
    return sup, sup.ask(WhereIs("gate"), timeout=5)


@pytest.fixture
def setup(tmp_path):
    inbox, clock = Inbox(), Clock()
    sup, gate = gate_tree(tmp_path / "gate.db", inbox, clock)
    yield sup, gate, inbox, clock, tmp_path / "gate.db"
    sup.stop(timeout=10)


def stored(db: Path) -> GateRow | None:
    store = Store(db)
    try:
        return store.gate("GATE-001")
    finally:
        store.close()


def test_a_halt_is_forwarded_recorded_and_answered_once_confirmed(setup):
    _sup, gate, inbox, _, db = setup
    waiter = Inbox()
    gate.tell(Halt("test", "operator", notify=waiter))
    forwarded = inbox.expect(Recorded, where=lambda r: r.role == "node").message
    assert isinstance(forwarded, Halt) and forwarded.notify is None
    assert gate.ask(GateQuery(), timeout=5) == GateState(
        TradingState.HALTED, "test", "operator", stored(db).at
    )
    assert stored(db).state == "HALTED", "on record before it is confirmed"
    assert not waiter.seen
    gate.tell(OrdersCanceled(("O-1", "O-2")))
    assert waiter.expect(OrdersCanceled).client_order_ids == ("O-1", "O-2")
    alert = inbox.expect(Recorded, where=lambda r: r.role == "alerter").message
    assert isinstance(alert, Alert) and alert.title == "Trading halted"
    assert "test (from operator). 2 open order(s) cancelled" in alert.text


def test_a_halt_while_the_node_is_down_is_kept_and_answered_when_it_starts_halted(tmp_path):
    inbox, clock = Inbox(), Clock()
    sup, gate = gate_tree(tmp_path / "gate.db", inbox, clock, with_node=False)
    try:
        waiter = Inbox()
        gate.tell(Halt("while down", "classifier", notify=waiter))
        assert gate.ask(GateQuery(), timeout=5).state is TradingState.HALTED
        # The node that starts next asks the gate, starts halted and confirms.
        gate.tell(TradingStateChanged(TradingState.HALTED, "while down"))
        gate.tell(OrdersCanceled(()))
        assert waiter.expect(OrdersCanceled).client_order_ids == ()
    finally:
        sup.stop(timeout=10)


def test_a_waiter_gets_not_confirmed_after_the_timeout(setup):
    _, gate, _, clock, _ = setup
    waiter = Inbox()
    gate.tell(Halt("slow", "operator", notify=waiter))
    gate.ask(GateQuery(), timeout=5)  # handled: the waiter's clock starts now
    clock.now += 4
    gate.ask(GateTick(), timeout=5)
    assert not waiter.seen
    clock.now += 2
    gate.tell(GateTick())
    late = waiter.expect(NotConfirmed)
    assert late.command == "halt" and "within 5 s" in late.reason


def test_a_resume_clears_the_record_and_is_announced(setup):
    sup, gate, inbox, _, db = setup
    gate.tell(Halt("x", "operator"))
    gate.tell(OrdersCanceled(()))
    waiter = Inbox()
    gate.tell(Resume("reviewed", "operator", notify=waiter))
    gate.ask(GateQuery(), timeout=5)
    assert stored(db).state == "ACTIVE"
    gate.tell(TradingStateChanged(TradingState.ACTIVE, "reviewed"))
    assert waiter.expect(TradingStateChanged).state is TradingState.ACTIVE
    settled(sup, "gate", "alerter")
    titles = [
        r.message.title
        for r in inbox.seen
        if isinstance(r, Recorded) and isinstance(r.message, Alert)
    ]
    assert titles == ["Trading halted", "Trading resumed"]


def test_a_resume_while_the_node_is_down_is_answered_when_it_starts_active(tmp_path):
    inbox, clock = Inbox(), Clock()
    sup, gate = gate_tree(tmp_path / "gate.db", inbox, clock, with_node=False)
    try:
        gate.tell(Halt("x", "operator"))
        waiter = Inbox()
        gate.tell(Resume("go", "operator", notify=waiter))
        gate.tell(NodeStarted(1, "GATE-001", "I", 0, restored=snapshot()))
        assert waiter.expect(TradingStateChanged).state is TradingState.ACTIVE
    finally:
        sup.stop(timeout=10)


def test_a_restarted_gate_reads_the_halt_back(tmp_path):
    inbox, clock = Inbox(), Clock()
    db = tmp_path / "gate.db"
    sup, gate = gate_tree(db, inbox, clock)
    gate.tell(Halt("kept", "breaker"))
    gate.ask(GateQuery(), timeout=5)
    sup.stop(timeout=10)
    sup, gate = gate_tree(db, inbox, clock)
    try:
        state = gate.ask(GateQuery(), timeout=5)
        assert (state.state, state.reason, state.source) == (TradingState.HALTED, "kept", "breaker")
    finally:
        sup.stop(timeout=10)


def test_without_a_record_the_last_checkpoint_decides(tmp_path):
    db = tmp_path / "gate.db"
    store = Store(db)
    run = store.open_run("GATE-001", "replay")
    store.write_checkpoint(
        run, snapshot(trader_id="GATE-001", trading_state=TradingState.HALTED, halt_reason="old")
    )
    store.close()
    inbox, clock = Inbox(), Clock()
    sup, gate = gate_tree(db, inbox, clock)
    try:
        state = gate.ask(GateQuery(), timeout=5)
        assert (state.state, state.reason) == (TradingState.HALTED, "old")
    finally:
        sup.stop(timeout=10)


def test_an_unreadable_database_starts_the_gate_halted(tmp_path):
    db = tmp_path / "gate.db"
    db.write_bytes(b"not a database " * 100)
    inbox, clock = Inbox(), Clock()
    sup, gate = gate_tree(db, inbox, clock)
    try:
        state = gate.ask(GateQuery(), timeout=5)
        assert state.state is TradingState.HALTED and "unknown" in state.reason
        error = inbox.expect(Recorded, where=lambda r: r.role == "classifier").message
        assert "not a database" in error.message
    finally:
        sup.stop(timeout=10)


def test_a_locked_database_holds_the_record_and_writes_it_later(setup):
    _, gate, inbox, _, db = setup
    gate.ask(GateQuery(), timeout=5)  # started: the lock comes after
    holder = sqlite3.connect(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        gate.tell(Halt("during the lock", "checkpointer"))
        forwarded = inbox.expect(Recorded, where=lambda r: r.role == "node").message
        assert isinstance(forwarded, Halt), "the node hears of it at once"
        inbox.expect(Recorded, where=lambda r: r.role == "classifier")
    finally:
        holder.rollback()
        holder.close()
    gate.ask(GateTick(), timeout=5)
    assert stored(db).reason == "during the lock"


def test_a_strategy_halt_is_its_own_record_applied_at_start_and_answered_by_its_cancels(setup):
    sup, gate, inbox, _, db = setup
    gate.tell(NodeStarted(1, "GATE-001", "BTCUSDT-PERP.BINANCE", 0, strategy_ids=("A-1", "B-2")))
    waiter = Inbox()
    gate.tell(Halt("its drawdown", "breaker", notify=waiter, strategy_id="B-2"))
    forwarded = inbox.expect(Recorded, where=lambda r: r.role == "node").message
    assert isinstance(forwarded, Halt) and forwarded.strategy_id == "B-2"
    state = gate.ask(GateQuery(), timeout=5)
    # The account trades on; the strategy's halt is what the next node start applies.
    assert state.state is TradingState.ACTIVE
    assert state.strategies == (("B-2", "its drawdown"),)
    store = Store(db)
    try:
        assert store.strategy_gates("GATE-001")["B-2"].state == "HALTED"
    finally:
        store.close()
    gate.tell(OrdersCanceled(("O-1",)))  # the account's cancels do not answer it
    gate.ask(GateQuery(), timeout=5)
    assert not waiter.seen
    gate.tell(OrdersCanceled(("O-7",), strategy_id="B-2"))
    assert waiter.expect(OrdersCanceled).client_order_ids == ("O-7",)
    settled(sup, "gate", "alerter")
    titles = [
        r.message.title
        for r in inbox.seen
        if isinstance(r, Recorded) and isinstance(r.message, Alert)
    ]
    assert titles == ["Strategy B-2 halted"]

    resumed = Inbox()
    gate.tell(Resume("reviewed", "operator", notify=resumed, strategy_id="B-2"))
    gate.tell(TradingStateChanged(TradingState.ACTIVE, "reviewed", strategy_id="B-2"))
    assert resumed.expect(TradingStateChanged).strategy_id == "B-2"
    assert gate.ask(GateQuery(), timeout=5).strategies == ()


def test_a_halt_of_a_strategy_the_node_does_not_run_is_refused_and_not_recorded(setup):
    _, gate, _, _, db = setup
    gate.tell(NodeStarted(1, "GATE-001", "BTCUSDT-PERP.BINANCE", 0, strategy_ids=("A-1",)))
    waiter = Inbox()
    gate.tell(Halt("typo", "operator", notify=waiter, strategy_id="Z-9"))
    refused = waiter.expect(NotConfirmed)
    assert refused.reason == "no strategy Z-9 in this node (it runs A-1)"
    assert gate.ask(GateQuery(), timeout=5).strategies == ()
    store = Store(db)
    try:
        assert store.strategy_gates("GATE-001") == {}
    finally:
        store.close()
