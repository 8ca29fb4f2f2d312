"""Reading a session back for the parity report: the real sequence of its fills.

The database is written the way the checkpointer writes it (``Store``); the reader must
drop what a fresh start or a restore superseded, keep what a restore did not replay,
and say what it could not compare.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from protocol import Config, HaltAt, NodeStarted, OrderFilled, RecordedSettings, StrategySettings
from storage import StorageError, Store, read_session
from tests.helpers import snapshot

TRADER = "TEST-001"


def settings(fast: int = 10) -> str:
    config = Config(strategy=StrategySettings(fast_period=fast))
    return RecordedSettings(config=config).model_dump_json()


def fill(bar: int | None, price: str = "100", side: str = "BUY") -> OrderFilled:
    return OrderFilled(
        client_order_id=f"O-{bar}",
        trade_id=f"T-{bar}",
        instrument_id="BTCUSDT-PERP.BINANCE",
        side=side,
        quantity=Decimal("0.5"),
        price=Decimal(price),
        commission=Decimal("0.02"),
        ts_event=0,
        bar=bar,
    )


def started(cursor: int) -> NodeStarted:
    return NodeStarted(pid=1, trader_id=TRADER, instrument_id="BTCUSDT-PERP.BINANCE",
                       replay_cursor=cursor)  # fmt: skip


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "t.db")
    yield s
    s.close()


def test_a_restore_supersedes_the_fills_it_plays_again(store):
    run = store.open_run(TRADER, "replay", settings=settings())
    store.append_event(run, "node_started", started(0))
    for bar in (3, 7, 12):
        store.append_event(run, "fill", fill(bar))
    # The node died after bar 12's fill, before a checkpoint held it: its successor
    # restored the checkpoint at bar 10 and plays bars 10.. again.
    store.append_event(run, "node_started", started(10))
    store.append_event(run, "fill", fill(12, price="101"))
    store.append_event(run, "fill", fill(30))
    store.append_event(run, "fill", fill(45))  # after the last checkpoint: not counted
    store.write_checkpoint(run, snapshot(replay_cursor=40, balance=Decimal("99.5")))

    record = read_session(store.path)
    trades = record.outcome.trades
    assert [(t.bar, t.price) for t in trades] == [(3, 100), (7, 100), (12, 101), (30, 100)]
    assert record.outcome.bars == 40
    assert record.outcome.balance == Decimal("99.5")
    assert record.outcome.fees == Decimal("0.08")
    assert record.from_bar == 0
    assert record.notes == ()


def test_a_fresh_start_begins_a_new_session(store):
    old = store.open_run(TRADER, "replay", settings=settings(fast=5))
    store.append_event(old, "node_started", started(0))
    store.append_event(old, "fill", fill(3))
    store.write_checkpoint(old, snapshot(replay_cursor=20))
    new = store.open_run(TRADER, "replay", settings=settings())
    store.append_event(new, "fresh_start", {"detail": "earlier checkpoints are not restored"})
    store.append_event(new, "node_started", started(0))
    store.append_event(new, "fill", fill(8))
    store.write_checkpoint(new, snapshot(replay_cursor=9))

    record = read_session(store.path, TRADER)
    assert record.runs == (new.run_id,)
    assert [t.bar for t in record.outcome.trades] == [8]
    assert record.notes == (), "the earlier session's other settings are not this one's"


def test_what_cannot_be_compared_is_said(store):
    first = store.open_run(TRADER, "replay", settings=settings(fast=5))
    store.append_event(first, "fill", fill(None))  # an older service: no bar
    store.append_event(first, "fill", fill(50))  # its start was swept by retention
    store.append_event(first, "trading_state", {"state": "HALTED", "reason": "breaker x"})
    store.append_event(first, "config_reloaded", {"changes": ["risk"]})
    second = store.open_run(TRADER, "replay", settings=settings())
    store.append_event(second, "node_started", started(60))
    store.write_checkpoint(second, snapshot(replay_cursor=70))

    record = read_session(store.path)
    assert record.from_bar == 50
    assert record.halts == (HaltAt(None, "breaker x"),), "an older record: no bar, no source"
    notes = " | ".join(record.notes)
    assert "1 fill(s) carry no bar" in notes
    assert "retention" in notes
    assert "reloaded" in notes
    assert f"run {first.run_id} traded with other strategy settings" in notes


def test_a_session_without_a_checkpoint_is_refused_clearly(store):
    store.open_run(TRADER, "replay", settings=settings())
    with pytest.raises(StorageError, match="no checkpoint yet"):
        read_session(store.path)
    with pytest.raises(StorageError, match="no run of trader OTHER-001"):
        read_session(store.path, "OTHER-001")
