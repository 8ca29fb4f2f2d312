"""The checkpointer, driven by messages with a recording fake node and classifier."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import replace
from decimal import Decimal

import pytest

from actors.checkpointer import CheckpointerActor
from actors.inbox import Inbox
from protocol import (
    CheckpointFailed,
    CheckpointNow,
    CheckpointSaved,
    ErrorRaised,
    FinalSnapshot,
    NodeReport,
    NodeStarted,
    OrderFilled,
    OrderView,
    QueryState,
    ServiceSettings,
    TakeSnapshot,
    WhereIs,
)
from storage import Store, read_status
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, Recorder, recorder, snapshot

QUIET = ServiceSettings(checkpoint_interval_s=3600, heartbeat_interval_s=3600)  # tests drive it


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
                lambda ctx: CheckpointerActor.start(ctx, db, run, QUIET, busy_timeout_s=0.2),
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


class Forgetful(Recorder):
    """A node that loses the first snapshot request it gets, as one that dies with it."""

    def __init__(self, ctx, inbox, snapshot):
        super().__init__(ctx, inbox, snapshot)
        self.lost = 0

    def receive(self, message):
        if isinstance(message, TakeSnapshot) and self.lost == 0:
            self.lost += 1
            self.inbox.tell(Recorded(self.ctx.role, self.actor_urn, message))
            return None
        return super().receive(message)


@pytest.fixture
def forgetful(tmp_path):
    db = tmp_path / "cp.db"
    store = Store(db)
    run = store.open_run("TEST-001", "replay")
    store.close()
    inbox = Inbox()
    spec = SupervisorSpec(
        children=(
            recorder("classifier", inbox),
            ChildSpec("node", lambda ctx: Forgetful.start(ctx, inbox, snapshot(replay_cursor=7))),
            ChildSpec(
                "checkpointer",
                lambda ctx: CheckpointerActor.start(
                    ctx,
                    db,
                    run,
                    QUIET.model_copy(update={"snapshot_timeout_s": 0.5}),
                ),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    yield sup.ask(WhereIs("checkpointer"), timeout=5), inbox, db
    sup.stop(timeout=10)


def rows(db):
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT id, final FROM checkpoints ORDER BY id").fetchall()
    finally:
        conn.close()


def test_after_a_lost_reply_a_fill_still_gets_its_checkpoint(forgetful):
    """Issue 13, defect 1: one lost request used to stop fill checkpoints for good."""
    checkpointer, _inbox, db = forgetful
    lost = Inbox()
    checkpointer.tell(CheckpointNow(notify=lost))  # the node loses this one
    assert "did not answer" in lost.expect(CheckpointFailed, timeout=5).reason
    fill = OrderFilled("O-1", "T-1", "BTCUSDT-PERP.BINANCE", "BUY", 1, 2, 0, 3)
    checkpointer.tell(fill)
    deadline = time.monotonic() + 5
    while not rows(db) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert rows(db), "the fill was checkpointed"


def test_a_final_checkpoint_after_a_lost_reply_is_final(forgetful):
    checkpointer, _, db = forgetful
    checkpointer.tell(CheckpointNow())  # lost
    final = Inbox()
    checkpointer.tell(CheckpointNow(final=True, notify=final))
    saved = final.expect(CheckpointSaved, timeout=5)
    assert saved.final and rows(db)[-1] == (saved.checkpoint_id, 1)


def test_a_node_start_asks_the_new_node_again(forgetful):
    checkpointer, _inbox, _db = forgetful
    waiting = Inbox()
    checkpointer.tell(CheckpointNow(final=True, notify=waiting))  # lost with the old node
    checkpointer.tell(NodeStarted(2, "TEST-001", "BTCUSDT-PERP.BINANCE", 7))
    saved = waiting.expect(CheckpointSaved, timeout=5)
    assert saved.final, "the request kept what it was for"


def test_the_cursor_moves_on_in_place_while_nothing_else_changed(setup):
    checkpointer, _, db, _snap = setup
    checkpointer.ask(CheckpointNow(), timeout=5)
    notify = Inbox()
    checkpointer.tell(CheckpointNow(notify=notify))
    notify.expect(CheckpointSaved)
    report = NodeReport(Decimal(1), Decimal(1), 0, replay_cursor=50, state_version=0)
    checkpointer.ask(report, timeout=5)
    assert read_status(db, "TEST-001", 60)["replay_cursor"] == 50
    store = Store(db)
    assert store.last_snapshot("TEST-001").replay_cursor == 50
    store.close()
    changed = NodeReport(Decimal(1), Decimal(1), 0, replay_cursor=90, state_version=1)
    checkpointer.ask(changed, timeout=5)
    assert read_status(db, "TEST-001", 60)["replay_cursor"] == 50, "a changed state waits"


def _wal_tree(db, run, wal_every_s: float):
    spec = SupervisorSpec(
        children=(
            ChildSpec(
                "checkpointer",
                lambda ctx: CheckpointerActor.start(ctx, db, run, QUIET, wal_every_s=wal_every_s),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    return sup, sup.ask(WhereIs("checkpointer"), timeout=5)


def test_a_checkpoint_write_never_folds_the_wal_its_keeper_does(tmp_path):
    """Issue 29: SQLite folded the WAL into the database on the commit that took it past
    1,000 pages - a checkpoint write of 5-7 ms instead of 0.5, once in a few hundred,
    and the fills that reached the checkpointer meanwhile waited for it. The checkpointer's
    commits now leave the WAL alone (up to a backstop); a keeper thread folds it."""
    db = tmp_path / "wal.db"
    store = Store(db)
    run = store.open_run("TEST-001", "replay")
    store.close()
    orders = tuple(
        OrderView(f"O-{i}", "BTCUSDT-PERP.BINANCE", "BUY", "LIMIT", Decimal("0.010"),
                  Decimal(0), Decimal(42000 + i), "ACCEPTED")
        for i in range(2000)
    )  # fmt: skip
    big = snapshot(open_orders=orders)  # ~80 pages of JSON a checkpoint
    wal = db.with_name(db.name + "-wal")

    sup, checkpointer = _wal_tree(db, run, wal_every_s=3600)  # its keeper waits an hour
    try:
        for i in range(20):
            checkpointer.tell(FinalSnapshot(replace(big, replay_cursor=i)))
        checkpointer.ask(QueryState(), timeout=30)  # after the 20 writes
        assert wal.stat().st_size > 5 * 1024 * 1024  # past 1,000 pages, and not folded
        assert db.stat().st_size < 1024 * 1024, "a commit folded the WAL"
    finally:
        sup.stop(timeout=10)

    sup, checkpointer = _wal_tree(db, run, wal_every_s=0.05)
    try:
        for i in range(20):
            checkpointer.tell(FinalSnapshot(replace(big, replay_cursor=100 + i)))
        checkpointer.ask(QueryState(), timeout=30)
        start = db.stat().st_size
        deadline = time.monotonic() + 10
        while db.stat().st_size <= max(start, 4 * 1024 * 1024) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert db.stat().st_size > 4 * 1024 * 1024, "the keeper folded the WAL"
    finally:
        sup.stop(timeout=10)
