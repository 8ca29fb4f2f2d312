"""The ledger that is kept: a session's trade statistics, its round trips, its chart's
fills and the parity report's session side read the same after the retention sweep has
deleted every event they were recorded with, and a database from before the ledger gets
one backfilled from the events it still holds.

The sessions are written the way the checkpointer writes them (``Store``), and dated in
2024, so the retention policy's defaults (events older than 90 days and than the oldest
checkpoint kept) sweep every one of their events.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cli.trades import report_stats, report_trades
from protocol import (
    Config,
    ConfigReloaded,
    FundingPaid,
    HaltAt,
    NodeStarted,
    OrderFilled,
    RecordedSettings,
    ServiceSettings,
    StrategySettings,
    TradingState,
    TradingStateChanged,
)
from storage import SCHEMA_VERSION, AppDatabase, StorageError, Store, read_session
from storage.codec import to_json
from storage.schema import MIGRATIONS
from storage.store import ns_to_iso
from tests.helpers import snapshot

D = Decimal
TRADER = "LEDGER-001"
BTC = "BTCUSDT-PERP.BINANCE"
ETH = "ETHUSDT-PERP.BINANCE"
MINUTE = 60 * 10**9
DAY0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC: the bars' series time
BEFORE_LEDGER = 10  # the schema version the ledger's migration follows


def settings(fast: int = 10) -> str:
    config = Config(strategy=StrategySettings(fast_period=fast))
    return RecordedSettings(config=config).model_dump_json()


def when(bar: int) -> str:
    """An event recorded as its bar played (a replay at speed 1)."""
    return ns_to_iso(DAY0 + bar * MINUTE + 250_000_000)


def fill(bar: int, side: str, qty: str, price: str, fee: str, strategy: str = "S-001",
         instrument: str = BTC) -> OrderFilled:  # fmt: skip
    return OrderFilled(
        client_order_id=f"O-{strategy}-{bar}-{price}",
        trade_id=f"T-{bar}-{price}",
        instrument_id=instrument,
        side=side,
        quantity=D(qty),
        price=D(price),
        commission=D(fee),
        ts_event=DAY0 + bar * MINUTE + 1_000,
        ts_bridge=DAY0 + bar * MINUTE + 2_000,
        strategy_id=strategy,
        bar=bar,
        market_ns=DAY0 + bar * MINUTE,
    )


def funding(bar: int, amount: str, strategy: str = "S-001") -> FundingPaid:
    return FundingPaid(strategy, BTC, D("0.5"), D("42000.1"), D("0.0001"), D(amount), bar,
                       settled_at_ns=DAY0 + bar * MINUTE)  # fmt: skip


def started(cursor: int) -> NodeStarted:
    return NodeStarted(pid=1, trader_id=TRADER, instrument_id=BTC, replay_cursor=cursor)


def record(store: Store) -> None:
    """Two runs started over (``--fresh``), then a session of two strategies with funding,
    a halt and its resume, a reload, a node that died after two fills no checkpoint held
    (its successor restored bar 60 and played them again, one at another price), and a
    fill past the last checkpoint."""
    old = store.open_run(TRADER, "replay", settings=settings(fast=5))
    store.append_event(old, "node_started", started(0), at=when(0))
    store.append_event(old, "fill", fill(2, "BUY", "1", "100", "0.1"), at=when(2))
    store.write_checkpoint(old, snapshot(trader_id=TRADER, replay_cursor=10))

    run = store.open_run(TRADER, "replay", settings=settings())
    store.append_event(run, "fresh_start", {"detail": "earlier checkpoints are not restored"},
                       at=when(0))  # fmt: skip
    store.append_event(run, "node_started", started(0), at=when(0))
    events: list[tuple[str, object, int]] = [
        ("fill", fill(5, "BUY", "0.5", "42000.5", "0.21"), 5),
        ("fill", fill(8, "SELL", "2", "2200.25", "0.44", "S-002", ETH), 8),
        ("funding", funding(20, "-2.10000005"), 20),
        ("fill", fill(30, "SELL", "0.5", "42100", "0.2105"), 30),
        ("trading_state", TradingStateChanged(TradingState.HALTED, "max drawdown 5%"), 31),
        ("trading_state", TradingStateChanged(TradingState.ACTIVE, "operator"), 35),
        ("fill", fill(40, "SELL", "1", "42050", "0.42"), 40),
        ("fill", fill(50, "BUY", "2", "2190", "0.438", "S-002", ETH), 50),
        ("funding", funding(55, "0.75", "S-001"), 55),
        ("fill", fill(62, "BUY", "1", "41900", "0.419"), 62),  # superseded
        ("fill", fill(66, "SELL", "1", "2180", "0.218", "S-002", ETH), 66),  # superseded
    ]
    for kind, payload, bar in events:
        store.append_event(run, kind, payload, at=when(bar))
    store.write_checkpoint(run, snapshot(trader_id=TRADER, replay_cursor=60))
    # The node died here; its successor restored the checkpoint at bar 60.
    store.append_event(run, "node_started", started(60), at=when(70))
    store.append_event(run, "fill", fill(62, "BUY", "1", "41950", "0.4195"), at=when(72))
    store.append_event(run, "config_reloaded", ConfigReloaded(True, "risk"), at=when(80))
    store.append_event(run, "fill", fill(90, "SELL", "1", "42300.75", "0.423"), at=when(90))
    store.write_checkpoint(run, snapshot(trader_id=TRADER, replay_cursor=100), final=True)
    store.append_event(run, "fill", fill(101, "BUY", "1", "42000", "0.42"), at=when(101))


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "paper.db"
    store = Store(path)
    record(store)
    store.close()
    yield path


def readings(path: Path, dashboard: bool = True) -> dict[str, object]:
    """Everything that is read from a session's trades: ``report stats|trades`` (the JSON
    and the text Telegram replies with), the parity report's session side and (the
    dashboard's connection migrates the file) the dashboard's statistics and chart."""
    read = {
        "stats --json": report_stats(path, TRADER, 10, json_output=True),
        "stats": report_stats(path, TRADER, 10, json_output=False),
        "trades --json": report_trades(path, TRADER, 10, json_output=True),
        "trades": report_trades(path, TRADER, 10, json_output=False),
        "parity": read_session(path, TRADER),
    }
    if dashboard:
        app = AppDatabase(path)
        try:
            read |= {"dashboard": app.trade_report(TRADER), "chart": app.played(TRADER)}
        finally:
            app.close()
    return read


def sweep(path: Path) -> int:
    """The hourly retention sweep with the default policy, today."""
    store = Store(path)
    try:
        swept = store.sweep(TRADER, ServiceSettings(), now=datetime.now(UTC))
        left = store.db.execute("SELECT count(*) FROM events WHERE trader_id = ?", [TRADER])
        assert left.fetchone()[0] == 0, "every event of the session is older than the policy"
    finally:
        store.close()
    return swept.events


def test_a_sessions_statistics_are_the_same_after_retention_swept_its_events(db):
    before = readings(db)
    assert sweep(db) == 20

    assert readings(db) == before
    # ... and they are the session's: the restore and the fresh start still hold.
    record_ = read_session(db, TRADER)
    assert [(t.bar, t.price) for t in record_.outcome.trades] == [
        (5, D("42000.5")),
        (8, D("2200.25")),
        (30, D("42100")),
        (40, D("42050")),
        (50, D("2190")),
        (62, D("41950")),  # played again after the restore: the first bar 62 is gone
        (90, D("42300.75")),
    ]
    assert record_.from_bar == 0 and record_.halts == (HaltAt(None, "max drawdown 5%"),)
    assert record_.notes == (
        "the config was reloaded during the session; the backtest uses the settings the "
        "last run started with",
    ), "no word of retention: the ledger holds the session from its first bar"
    report = before["dashboard"]
    assert isinstance(report, dict)
    trips = [(t["strategy_id"], t["direction"], t["pnl"]) for t in report["round_trips"]]
    assert trips == [
        ("S-001", "LONG", D("49.75") - D("0.21") - D("0.2105") - D("2.10000005")),
        ("S-002", "SHORT", D("20.5") - D("0.44") - D("0.438")),
        ("S-001", "SHORT", D(100) - D("0.42") - D("0.4195") + D("0.75")),
    ]
    (still,) = report["open_positions"]  # bar 90's; bar 101 is past the last checkpoint
    assert (still["direction"], still["entry_price"]) == ("SHORT", D("42300.75"))


def test_a_database_from_before_the_ledger_gets_it_backfilled_from_its_events(db, tmp_path):
    """Issue 23: the same session in a database of schema 10 (no ledger): read as it is,
    then opened by this service, which backfills the ledger; retention may sweep then."""
    old = tmp_path / "schema10.db"
    conn = before_the_ledger(old)
    conn.execute("ATTACH DATABASE ? AS live", [str(db)])
    for table in ("runs", "checkpoints", "events", "event_counts"):
        names = ", ".join(r[1] for r in conn.execute(f"PRAGMA main.table_info({table})"))
        conn.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM live.{table}")
    conn.commit()
    conn.execute("DETACH DATABASE live")
    conn.close()
    live = readings(db)

    before = readings(old, dashboard=False)
    assert _version(old) == BEFORE_LEDGER
    assert before == readings(db, dashboard=False), "read-only, unmigrated: from the events"
    Store(old).close()
    assert _version(old) == SCHEMA_VERSION
    assert _ledger(old) == _ledger(db), "backfilled as the checkpointer writes it"
    assert sweep(old) == 20
    assert readings(old) == live


def test_a_damaged_event_does_not_keep_the_database_from_its_migration(tmp_path):
    path = tmp_path / "schema10.db"
    conn = before_the_ledger(path)
    conn.execute("INSERT INTO runs (trader_id, mode, pid, started_at) VALUES (?, 'replay', 1, ?)",
                 [TRADER, when(0)])  # fmt: skip
    for payload in ("{truncated", fill(5, "BUY", "1", "100", "0.1")):
        text = payload if isinstance(payload, str) else to_json(payload)
        conn.execute("INSERT INTO events (run_id, trader_id, at, kind, payload) "
                     "VALUES (1, ?, ?, 'fill', ?)", [TRADER, when(5), text])  # fmt: skip
    conn.commit()
    conn.close()
    Store(path).close()
    assert [row[1] for row in _ledger(path)] == [2], "the damaged event is left out"


def before_the_ledger(path: Path) -> sqlite3.Connection:
    """A new database at schema 10, as the service before the ledger created it."""
    conn = sqlite3.connect(path)
    for migration in MIGRATIONS[:BEFORE_LEDGER]:
        for statement in migration.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute(f"PRAGMA user_version = {BEFORE_LEDGER}")
    conn.commit()
    return conn


def test_an_event_and_its_ledger_row_are_written_together_or_not_at_all(tmp_path):
    store = Store(tmp_path / "t.db")
    try:
        run = store.open_run(TRADER, "replay", settings=settings())
        store.db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON ledger BEGIN SELECT RAISE(ABORT, 'full'); END"
        )
        with pytest.raises(StorageError, match="appending a fill event"):
            store.append_event(run, "fill", fill(5, "BUY", "1", "100", "0.1"))
        assert store.db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
        assert store.db.execute("SELECT count(*) FROM event_counts").fetchone()[0] == 0
        store.db.execute("DROP TRIGGER refuse")
        store.append_event(run, "fill", fill(5, "BUY", "1", "100", "0.1"))
        store.append_event(run, "reject", {"client_order_id": "O-1", "reason": "x"})
        kept = store.db.execute(
            "SELECT kind, client_order_id, trade_id, instrument_id, strategy_id, side, "
            "quantity, price, commission, bar, market_ns, ts_event, ts_bridge FROM ledger"
        ).fetchall()
        assert kept == [
            ("fill", "O-S-001-5-100", "T-5-100", BTC, "S-001", "BUY", "1", "100", "0.1", 5,
             DAY0 + 5 * MINUTE, DAY0 + 5 * MINUTE + 1_000, DAY0 + 5 * MINUTE + 2_000)
        ], "exact strings for money; a reject is not the ledger's"  # fmt: skip
    finally:
        store.close()


def _version(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def _ledger(path: Path) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return [tuple(r) for r in conn.execute("SELECT * FROM ledger ORDER BY id")]
    finally:
        conn.close()
