"""The checkpointer, driven by messages with a recording fake node and classifier."""

from __future__ import annotations

import sqlite3

import pytest

from actors.checkpointer import CheckpointerActor
from actors.inbox import Inbox
from actors.messages import (
    CheckpointFailed,
    CheckpointNow,
    CheckpointSaved,
    ErrorRaised,
    OrderFilled,
    TakeSnapshot,
    WhereIs,
)
from storage import Store, read_status
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, Recorder, recorder, snapshot


@pytest.fixture
def setup(tmp_path):
    db = tmp_path / "cp.db"
    store = Store(db)
    run = store.open_run("TEST-001", "replay")
    store.close()
    inbox = Inbox()
    snap = snapshot(replay_cursor=7)
    spec = SupervisorSpec(
        children=(
            recorder("classifier", inbox),
            ChildSpec("node", lambda ctx: Recorder.start(ctx, inbox, snap)),
            ChildSpec(
                "checkpointer",
                lambda ctx: CheckpointerActor.start(
                    ctx, db, run, interval_s=3600, heartbeat_interval_s=3600, busy_timeout_s=0.2
                ),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    checkpointer = sup.ask(WhereIs("checkpointer"), timeout=5)
    yield checkpointer, inbox, db, snap
    sup.stop(timeout=10)


def test_a_checkpoint_asks_the_node_and_writes_its_snapshot(setup):
    checkpointer, inbox, db, snap = setup
    notify = Inbox()
    checkpointer.tell(CheckpointNow(notify=notify))
    saved = notify.expect(CheckpointSaved)
    assert isinstance(
        inbox.expect(Recorded, where=lambda r: r.role == "node").message, TakeSnapshot
    )
    assert saved.taken_at_ns == snap.taken_at_ns
    report = read_status(db, "TEST-001", 60)
    assert report["replay_cursor"] == 7 and report["balance"] == str(snap.balance)


def test_fills_are_logged_as_events(setup):
    checkpointer, _, db, _ = setup
    fill = OrderFilled("O-1", "T-1", "BTCUSDT-PERP.BINANCE", "BUY", 1, 2, 0, 3)
    for _ in range(3):
        checkpointer.tell(fill)
    checkpointer.ask(CheckpointNow(), timeout=5)  # handled after the fills
    assert read_status(db, "TEST-001", 60)["fills"] == 3


def test_a_failed_write_is_reported_never_swallowed(setup):
    checkpointer, inbox, db, _ = setup
    holder = sqlite3.connect(db)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        notify = Inbox()
        checkpointer.tell(CheckpointNow(notify=notify))
        failed = notify.expect(CheckpointFailed)
        assert "database is locked" in failed.reason
        error = inbox.expect(
            Recorded, where=lambda r: r.role == "classifier" and isinstance(r.message, ErrorRaised)
        ).message
        assert error.source == "checkpointer" and "locked" in error.message
    finally:
        holder.rollback()
        holder.close()
    notify = Inbox()
    checkpointer.tell(CheckpointNow(notify=notify))
    notify.expect(CheckpointSaved)  # and it recovers once the lock is gone
