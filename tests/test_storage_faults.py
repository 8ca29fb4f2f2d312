"""Storage faults simulated for real; each must alert, and halt trading when persistent.

The tree has the real checkpointer and classifier; the node and the alerter are
recording fakes, so every Halt and Alert the faults cause is visible.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actors.checkpointer import CheckpointerActor
from actors.classifier import ClassifierActor
from actors.inbox import Inbox
from protocol import (
    Alert,
    CheckpointFailed,
    CheckpointNow,
    CheckpointSaved,
    Halt,
    ServiceSettings,
    Severity,
    WhereIs,
)
from storage import Store, retention_bound
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, Recorder, recorder, snapshot


def build_tree(
    db: Path, inbox: Inbox, retry_budget: int = 5, with_node: bool = True, **checkpointer_kw
):
    store = Store(db)
    run = store.open_run("FAULT-001", "replay")
    store.close()
    node = ChildSpec("node", lambda ctx: Recorder.start(ctx, inbox, snapshot()))
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            recorder("gate", inbox),
            ChildSpec(
                "classifier", lambda ctx: ClassifierActor.start(ctx, retry_budget=retry_budget)
            ),
            *((node,) if with_node else ()),
            ChildSpec(
                "checkpointer",
                lambda ctx: CheckpointerActor.start(ctx, db, run, **checkpointer_kw),
            ),
        ),
        max_restarts=2,
        period_s=60,
    )
    return Supervisor.start(spec, parent=Inbox())


def recorded(inbox: Inbox, role: str, kind: type, timeout: float = 10.0, text: str = ""):
    return inbox.expect(
        Recorded,
        timeout,
        lambda r: (
            r.role == role
            and isinstance(r.message, kind)
            and text in (getattr(r.message, "reason", "") + getattr(r.message, "text", ""))
        ),
    ).message


def checkpoint(sup) -> object:
    reply = Inbox()
    sup.ask(WhereIs("checkpointer"), timeout=5).tell(CheckpointNow(notify=reply))
    return reply.expect_any((CheckpointSaved, CheckpointFailed), timeout=15)


def test_a_full_disk_alerts_and_halts_at_once(tmp_path):
    db = tmp_path / "full.db"
    Store(db).close()
    pages = sqlite3.connect(db).execute("PRAGMA page_count").fetchone()[0]
    inbox = Inbox()
    sup = build_tree(
        db,
        inbox,
        service=ServiceSettings(checkpoint_interval_s=3600),
        db_pragmas=(f"max_page_count = {pages + 1}",),
    )
    try:
        for _ in range(200):  # each checkpoint takes room until the page limit is hit
            failed = checkpoint(sup)
            if isinstance(failed, CheckpointFailed):
                break
        assert isinstance(failed, CheckpointFailed) and "full" in failed.reason
        halt = recorded(inbox, "gate", Halt)
        assert halt.source == "classifier" and "storage full" in halt.reason
        alert = recorded(inbox, "alerter", Alert, text="full")
        assert alert.severity is Severity.CRITICAL
    finally:
        sup.stop(timeout=10)


def test_a_held_write_lock_is_transient_until_it_lasts_then_halts(tmp_path):
    db = tmp_path / "locked.db"
    inbox = Inbox()
    sup = build_tree(
        db,
        inbox,
        retry_budget=1000,  # here the checkpointer's own staleness rule is under test
        service=ServiceSettings(checkpoint_interval_s=0.3, halt_after_failed_intervals=3),
        busy_timeout_s=0.05,
    )
    holder = sqlite3.connect(db, timeout=5)
    holder.execute("BEGIN IMMEDIATE")
    try:
        halt = recorded(inbox, "gate", Halt, timeout=15, text="no checkpoint succeeded")
        assert halt.source == "checkpointer" and "database is locked" in halt.reason
        alert = recorded(inbox, "alerter", Alert, text="no checkpoint succeeded")
        assert alert.severity is Severity.CRITICAL
        assert not [
            r
            for r in inbox.seen
            if isinstance(r, Recorded)
            and isinstance(r.message, Halt)
            and r.message.source == "classifier"
        ], "a lock alone is transient: only its persistence halts"
    finally:
        holder.rollback()
        holder.close()
    try:
        recovered = recorded(inbox, "alerter", Alert, timeout=15, text="succeed again")
        assert recovered.severity is Severity.INFO
    finally:
        sup.stop(timeout=10)


def test_a_node_slow_to_start_is_not_a_storage_failure(tmp_path):
    """No snapshot to write (the node is still starting) must not count towards the halt.

    Seen under load: a node child that took 3.4 s to start tripped a 3 x 1 s
    staleness rule and halted a healthy service before its first bar.
    """
    inbox = Inbox()
    sup = build_tree(
        tmp_path / "slow.db",
        inbox,
        with_node=False,
        service=ServiceSettings(checkpoint_interval_s=0.1, halt_after_failed_intervals=2),
    )
    try:
        # ten intervals of real time with no node at all: every checkpoint is refused
        # for want of a snapshot while the interval timer keeps checking staleness
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            failed = checkpoint(sup)
            assert isinstance(failed, CheckpointFailed) and "node is not running" in failed.reason
            time.sleep(0.05)
        with pytest.raises(TimeoutError):
            recorded(inbox, "alerter", Alert, timeout=0.5, text="no checkpoint succeeded")
    finally:
        sup.stop(timeout=10)


def _chattr(flag: str, *paths: Path) -> bool:
    if shutil.which("chattr") is None:
        return False
    done = subprocess.run(["chattr", flag, *map(str, paths)], capture_output=True, check=False)
    return done.returncode == 0


def test_a_read_only_database_file_alerts_and_halts(tmp_path):
    db = tmp_path / "ro.db"
    inbox = Inbox()
    sup = build_tree(db, inbox, service=ServiceSettings(checkpoint_interval_s=3600))
    try:
        assert isinstance(checkpoint(sup), CheckpointSaved)
        files = [p for p in (db, db.with_name("ro.db-wal")) if p.exists()]
        # Immutable even for root: the write fails for real inside SQLite.
        if not _chattr("+i", *files):
            pytest.skip("chattr +i is not available on this filesystem")
        try:
            failed = checkpoint(sup)
            assert isinstance(failed, CheckpointFailed)
            halt = recorded(inbox, "gate", Halt)
            assert halt.source == "classifier"
            alert = recorded(inbox, "alerter", Alert, text="checkpointer")
            assert alert.severity is Severity.CRITICAL
        finally:
            _chattr("-i", *files)
    finally:
        sup.stop(timeout=10)


def test_a_corrupt_database_fails_the_checkpointer_start_and_alerts(tmp_path):
    db = tmp_path / "corrupt.db"
    inbox = Inbox()
    store = Store(db)
    store.open_run("FAULT-001", "replay")
    store.close()
    with db.open("r+b") as handle:
        handle.write(b"garbage!" * 64)  # destroys the header: not a database any more
    events = Inbox()
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            ChildSpec("classifier", ClassifierActor.start),
            recorder("gate", inbox),
            recorder("node", inbox),
            ChildSpec(
                "checkpointer",
                lambda ctx: CheckpointerActor.start(
                    ctx, db, store_run(), ServiceSettings(checkpoint_interval_s=3600)
                ),
            ),
        ),
        max_restarts=5,
        period_s=60,
        backoff_initial_s=0.2,
    )
    sup = Supervisor.start(spec, parent=events)
    try:
        halt = recorded(inbox, "gate", Halt, text="storage corrupt")
        assert halt.source == "classifier"
        alert = recorded(inbox, "alerter", Alert, text="not a database")
        assert alert.severity is Severity.CRITICAL
    finally:
        if sup.is_alive():
            sup.stop(timeout=10)


def store_run():
    from storage import RunInfo

    return RunInfo(1, "FAULT-001", "replay")


def test_retention_stays_bounded_over_ten_thousand_checkpoints(tmp_path):
    store = Store(tmp_path / "retention.db")
    run = store.open_run("RET-001", "replay")
    retention = ServiceSettings(keep_checkpoints=100, keep_hourly_h=48, keep_daily_d=30)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    step = timedelta(minutes=1)  # 10k checkpoints: about a week of one a minute
    for i in range(10_000):
        at = start + i * step
        ns = int(at.timestamp() * 1e9)
        store.write_checkpoint(run, snapshot(taken_at_ns=ns, replay_cursor=i), retention=retention)
    rows = list(store.db.query("SELECT replay_cursor, taken_at FROM checkpoints ORDER BY id"))
    store.close()
    assert len(rows) <= retention_bound(retention)
    cursors = [r["replay_cursor"] for r in rows]
    assert cursors[-100:] == list(range(9_900, 10_000)), "the last N are all kept"
    hours = {r["taken_at"][:13] for r in rows}
    days = {r["taken_at"][:10] for r in rows}
    assert len(hours) >= 48 and len(days) == 7, "one per hour and per day survive"
