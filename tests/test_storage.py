"""The database: exact round trips, atomic bounded checkpoints, status, bad files."""

from __future__ import annotations

import sqlite3
from decimal import Decimal

import pytest

from protocol import Alert, OrderFilled, OrderView, PositionView, ServiceSettings, Severity
from storage import SCHEMA_VERSION, SchemaError, StorageError, Store, read_status
from tests.helpers import snapshot


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "state" / "t.db")
    yield s
    s.close()


TEN = ServiceSettings(keep_checkpoints=10, keep_hourly_h=0, keep_daily_d=0)


def full_snapshot():
    return snapshot(
        open_orders=(
            OrderView(
                "O-1",
                "BTCUSDT-PERP.BINANCE",
                "BUY",
                "LIMIT",
                D("0.5"),
                D(0),
                D("59000.1"),
                "ACCEPTED",
            ),
        ),
        positions=(
            PositionView(
                "P-1",
                "BTCUSDT-PERP.BINANCE",
                "LONG",
                D("0.123"),
                D("60000.5"),
                D("-1.5"),
                D("12.25"),
            ),
        ),
    )


D = Decimal


def test_checkpoint_round_trips_exactly(store):
    run = store.open_run("TEST-001", "replay")
    snap = full_snapshot()
    store.write_checkpoint(run, snap)
    assert store.last_snapshot("TEST-001") == snap
    assert store.last_snapshot("OTHER-001") is None


def test_wal_and_schema_version(store):
    assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_retention_keeps_only_the_last_n(store):
    run = store.open_run("TEST-001", "replay")
    for cursor in range(50):
        store.write_checkpoint(run, snapshot(replay_cursor=cursor), retention=TEN)
    rows = list(store.db.query("SELECT replay_cursor FROM checkpoints ORDER BY id"))
    assert [r["replay_cursor"] for r in rows] == list(range(40, 50))


def test_status_reports_the_contract_keys(tmp_path, store):
    run = store.open_run("TEST-001", "replay")
    store.beat(run, "running")
    store.write_checkpoint(run, full_snapshot())
    fill = OrderFilled("O-1", "T-1", "BTCUSDT-PERP.BINANCE", "BUY", D("0.1"), D(60000), D("1.2"), 1)
    store.append_event(run, "fill", fill)
    store.append_event(run, "fill", fill)

    report = read_status(store.path, None, stale_after_s=60)
    assert report is not None
    assert report["state"] == "running"
    assert (report["mode"], report["trader_id"]) == ("replay", "TEST-001")
    assert report["fills"] == 2
    assert report["balance"] == "100000.12345678"
    assert report["open_orders"] == 1
    assert report["positions"][0]["quantity"] == "0.123"
    assert report["heartbeat_at"] and report["last_checkpoint_at"]

    store.close_run(run, "test over")
    assert read_status(store.path, "TEST-001", 60)["state"] == "stopped"


def test_stale_heartbeat_reads_as_not_running(store):
    run = store.open_run("TEST-001", "replay")
    store.beat(run, "running")
    store.db.execute("UPDATE heartbeat SET at_epoch = at_epoch - 100")
    store.db.conn.commit()
    assert read_status(store.path, None, stale_after_s=15)["state"] == "not_running"


def test_alerts_are_queued_in_the_outbox(store):
    store.enqueue_alert("TEST-001", Alert(Severity.CRITICAL, "Halted", "because"))
    row = next(store.db.query("SELECT * FROM alert_outbox"))
    assert (row["severity"], row["status"], row["title"]) == ("critical", "pending", "Halted")


def test_missing_database_is_a_clear_error(tmp_path):
    with pytest.raises(StorageError, match="no database at"):
        read_status(tmp_path / "absent.db", None, 15)


def test_corrupt_file_is_refused_with_its_path(tmp_path):
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StorageError, match=str(path)):
        Store(path)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="newer"):
        Store(path)


def test_locked_database_fails_the_write_instead_of_hanging(tmp_path):
    store = Store(tmp_path / "locked.db", timeout_s=0.2)
    run = store.open_run("TEST-001", "replay")
    holder = sqlite3.connect(store.path)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="database is locked"):
            store.write_checkpoint(run, snapshot())
    finally:
        holder.rollback()
        holder.close()
        store.close()
    reopened = Store(store.path)
    assert reopened.last_snapshot("TEST-001") is None
    reopened.close()


def test_a_sweep_keeps_what_is_owed_and_drops_what_the_policy_no_longer_keeps(store):
    """Issue 13, defect 13: events, the alert outbox and operator commands were unbounded."""
    run = store.open_run("TEST-001", "replay")
    db = store.db
    old, recent = "2026-01-01T00:00:00.000+00:00", "2026-11-26T00:00:00.000+00:00"
    for at in (old, recent):
        store.append_event(run, "fill", {"n": 1}, at=at)
        store.enqueue_alert("TEST-001", Alert(Severity.INFO, "t", "x"), created_at=at)
        store.enqueue_alert("TEST-001", Alert(Severity.INFO, "local", "x"), at, deliver=False)
    db.execute("UPDATE alert_outbox SET status = 'delivered' WHERE title = 't' AND created_at = ?",
               [recent])  # fmt: skip
    db.conn.commit()
    cid = store.write_checkpoint(run, snapshot(taken_at_ns=1_790_000_000 * 10**9))
    db.execute("UPDATE checkpoints SET saved_at = ? WHERE id = ?", [recent, cid])
    for status in ("done", "pending"):
        db.execute(
            "INSERT INTO control (trader_id, command, reason, requested_at, status) "
            "VALUES ('TEST-001', 'halt', 'r', ?, ?)",
            [old, status],
        )
    db.conn.commit()
    from datetime import UTC, datetime

    swept = store.sweep("TEST-001", ServiceSettings(), now=datetime(2026, 11, 27, tzinfo=UTC))
    assert (swept.events, swept.alerts, swept.commands) == (1, 1, 1)
    left = [tuple(r) for r in db.execute("SELECT title, status, created_at FROM alert_outbox")]
    assert (("t", "pending", old) in left) and ("local", "local", recent) in left
    assert [r[0] for r in db.execute("SELECT status FROM control")] == ["pending"]
    assert [r[0] for r in db.execute("SELECT at FROM events")] == [recent]
    assert read_status(store.path, "TEST-001", 60)["fills"] == 2, "totals outlive the events"


def test_the_cursor_of_the_last_checkpoint_moves_on_in_place(store):
    run = store.open_run("TEST-001", "replay")
    cid = store.write_checkpoint(run, snapshot(replay_cursor=10))
    store.advance_cursor(cid, 25)
    store.advance_cursor(cid, 20)  # never backwards
    found = store.last_checkpoint("TEST-001")
    assert found is not None and found[0] == cid and found[1].replay_cursor == 25


def test_a_fresh_run_does_not_see_earlier_checkpoints(store):
    run = store.open_run("TEST-001", "replay")
    store.write_checkpoint(run, snapshot())
    fresh = store.open_run("TEST-001", "replay")
    assert store.last_snapshot("TEST-001", since_run=fresh.run_id) is None
    assert store.last_snapshot("TEST-001") is not None


def test_several_connections_opening_a_new_file_migrate_it_once(tmp_path):
    import threading

    path = tmp_path / "new.db"
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            Store(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
