"""The dashboard's trades page on a session that really traded: a short replay of a
registered strategy, played to its end by the real service.

The bars are rebuilt from the settings the run recorded; that they are the bars the
session played shows in its fills, each of which lies inside its own bar. In headless
Chromium the chart is drawn as SVG, so its candles and fill markers are elements to
count against the database; the screenshot is kept in
``test-artifacts/dashboard-trades.png`` for a human to look at.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from contextlib import closing
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from pyarrow import ipc

from node import BarSeries
from protocol import Snapshot, TradingState
from protocol.settings import MAX_BARS
from sessions.trades import BACKTEST, instruments, trade_chart
from storage import AppDatabase, Store, read_trade_report
from tests.browser import Browser
from tests.service import ROOT, ServiceProcess, entry, query, write_config
from tests.test_dashboard import BAR_TYPE, app, frame, registered, seed
from tests.test_dashboard_browser import login, serve

pytestmark = pytest.mark.node

ARTIFACT = ROOT / "test-artifacts" / "dashboard-trades.png"
TRADER = "BREAKOUT_V1-001"
BARS = 300  # few enough that each candle is a few pixels wide in the screenshot
# Paced (15 ms a bar): a replay played at full speed is over within a tenth of a second of
# the node trading, and on a loaded machine its final checkpoint can fail, leaving the
# session's end at the last periodic checkpoint (1 s) - a handful of bars in.
SPEED = 4_000
CHART = '[data-testid="stVegaLiteChart"]'
BREAKOUT = {"lookback": 5, "trade_size": "0.050"}


@pytest.fixture(scope="module")
def traded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with one finished replay session of ``breakout-v1``, launched from its
    registry entry (so its page sets its statistics beside the entry's metrics)."""
    tmp = tmp_path_factory.mktemp("trades")
    strategy = entry(
        "Breakout", {"instrument_id": "BTCUSDT-PERP.BINANCE", "bar_type": BAR_TYPE, **BREAKOUT}
    )
    config, db = write_config(
        tmp,
        trader=TRADER,
        speed=SPEED,
        ladder=0,
        replay=f"bars = {BARS}\nstop_when_done = true",
        extra=strategy,
    )
    # The node child imports the trader's module from PYTHONPATH.
    service = ServiceProcess(config, db, tmp, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        code = service.wait(120)
    finally:
        service.ensure_dead()
    assert code == 0, service.log_path.read_text()[-3000:]
    assert played_bars(db) > BARS * 2 // 3, service.log_path.read_text()[-3000:]
    appdb = AppDatabase(db)
    try:
        launched = registered("breakout-v1", **BREAKOUT)
        appdb.record_launch(TRADER, "fast", service.proc.pid, config, service.log_path, launched)
        appdb.record_exit(TRADER, 0)
    finally:
        appdb.close()
    return db


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    st.cache_resource.clear()


def played_bars(db: Path) -> int:
    return int(query(db, "SELECT replay_cursor FROM checkpoints ORDER BY id DESC LIMIT 1")[0][0])


def fill_events(db: Path) -> list[dict[str, object]]:
    """The fills before the session's end (its last checkpoint's cursor)."""
    end = played_bars(db)
    rows = query(db, "SELECT payload FROM events WHERE kind = 'fill' ORDER BY id")
    payloads = [json.loads(r["payload"]) for r in rows]
    return [p for p in payloads if int(str(p["bar"])) < end]


def test_each_fill_lies_on_its_bar_of_the_series_rebuilt_from_the_recorded_settings(
    traded: Path,
) -> None:
    appdb = AppDatabase(traded)
    played = appdb.played(TRADER)
    appdb.close()
    total = played_bars(traded)
    assert played is not None and played.bars == total
    chart = trade_chart(played, instruments(played)[0])
    assert (chart.total, chart.first, len(chart.candles), chart.notes) == (total, 0, total, ())
    # The series' time: bar i one bar length (a minute) after bar i - 1.
    assert chart.candles[1].at_ns - chart.candles[0].at_ns == 60 * 10**9
    events = fill_events(traded)
    assert len(chart.fills) == len(events) > 3
    for fill, event in zip(chart.fills, events, strict=True):
        candle = chart.candles[fill.bar or 0]
        assert candle.index == fill.bar == event["bar"]
        assert fill.price == Decimal(str(event["price"]))
        assert fill.at_ns == candle.at_ns == event["market_ns"], "dated as its round trip is"
        assert candle.low <= fill.price <= candle.high, f"fill at bar {fill.bar}: {fill.price}"

    # A window of the last 100 bars, and one ending at bar 150: only their own fills.
    last = trade_chart(played, chart.instrument_id, cap=100)
    start = total - 100
    assert [c.index for c in (last.candles[0], last.candles[-1])] == [start, total - 1]
    assert all(start <= (f.bar or 0) < total for f in last.fills)
    assert len(last.fills) == sum(1 for e in events if int(str(e["bar"])) >= start)
    assert last.notes and last.notes[0].startswith(f"bars {start}-{total - 1} of {total} drawn")
    middle = trade_chart(played, chart.instrument_id, cap=100, end=150)
    assert (middle.first, middle.candles[-1].index) == (50, 149)


def test_a_session_whose_bars_cannot_be_had_shows_its_fills_alone_and_says_why(
    traded: Path, tmp_path: Path
) -> None:
    appdb = AppDatabase(traded)
    played = appdb.played(TRADER)
    appdb.close()
    assert played is not None and played.settings is not None
    settings = json.loads(played.settings)
    settings["config"]["service"]["mode"] = "binance-sandbox"
    unrecorded = replace(played, mode="binance-sandbox", settings=json.dumps(settings))
    chart = trade_chart(unrecorded, "BTCUSDT-PERP.BINANCE")
    assert not chart.candles
    assert len(chart.fills) == len(played.fills)
    assert "did not record its market data" in chart.notes[0]

    settings["recording"] = str(tmp_path / "recordings" / TRADER)
    empty = trade_chart(replace(unrecorded, settings=json.dumps(settings)), "BTCUSDT-PERP.BINANCE")
    assert not empty.candles and "holds no bars" in empty.notes[0]

    older = trade_chart(replace(played, settings=None), "BTCUSDT-PERP.BINANCE")
    assert not older.candles and "recorded no settings" in older.notes[0]


def test_the_trades_page_sets_the_statistics_beside_the_registered_backtest(
    traded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = app(traded, monkeypatch)
    at.query_params["page"] = "Trades"
    at.query_params["trader"] = TRADER
    at.run()
    assert not at.exception
    report = read_trade_report(traded, TRADER)
    trips = frame(at, "closed")
    assert len(trips) == len(report["round_trips"]) > 3
    assert trips[0]["direction"] == report["round_trips"][-1]["direction"], "newest first"
    stats = {r["statistic"]: r for r in frame(at, "statistic")}
    overall = report["overall"]
    assert stats["round trips"]["overall"] == str(overall["trades"])
    assert stats["round trips"][BACKTEST] == "340"
    assert stats["Sharpe"][BACKTEST] == "1.4200"
    assert stats["max drawdown %"][BACKTEST] == "12.5"
    assert stats["PBO"][BACKTEST] == "0.08"
    assert stats["win rate %"]["Breakout-000"] == f"{overall['win_rate'] * 100:.2f}"
    assert stats["net PnL"]["overall"] == f"{overall['net_pnl']:,.2f}"
    assert "Statistics beside breakout-v1's backtest" in [s.value for s in at.subheader]


def test_a_session_from_an_older_service_shows_its_fills_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No recorded settings: no bars to draw, the fills alone, on their market time."""
    db = tmp_path / "paper.db"
    seed(db, "OLD-001", ["100000"])
    store = Store(db)
    run = store.open_run("OLD-001", "replay")
    now = time.time_ns()
    for i, (side, price) in enumerate((("BUY", "100"), ("SELL", "110"))):
        store.append_event(
            run,
            "fill",
            {
                "client_order_id": f"O-{i}",
                "instrument_id": "BTCUSDT-PERP.BINANCE",
                "side": side,
                "quantity": "1",
                "price": price,
                "commission": "0.1",
                "ts_event": now + i,
                "strategy_id": "S-1",
                "bar": i,
                "market_ns": now + i * 60_000_000_000,
            },
        )
    store.write_checkpoint(
        run,
        Snapshot(
            taken_at_ns=now,
            trader_id="OLD-001",
            trading_state=TradingState.ACTIVE,
            currency="USDT",
            balance=Decimal("100009.8"),
            equity=Decimal("100009.8"),
            realized_pnl=Decimal("9.8"),
            unrealized_pnl=Decimal(0),
            replay_cursor=5,
        ),
    )
    store.close()
    at = app(db, monkeypatch)
    at.query_params["page"] = "Trades"
    at.query_params["trader"] = "OLD-001"
    at.run()
    assert not at.exception
    assert any("recorded no settings" in c.value for c in at.caption)
    (trip,) = frame(at, "closed")
    assert (trip["direction"], trip["PnL USDT"]) == ("LONG", "9.80")


def test_the_trades_page_draws_the_bars_and_fills_in_headless_chromium(
    traded: Path, tmp_path: Path
) -> None:
    candles, fills = played_bars(traded), len(fill_events(traded))
    trips = len(read_trade_report(traded, TRADER)["round_trips"])
    with serve(traded, tmp_path) as base, Browser(tmp_path / "chromium", height=2500) as browser:
        login(browser, f"{base}/?page=Trades&trader={TRADER}")
        marks = f"document.querySelectorAll('{CHART} svg g.role-mark')"
        browser.wait_until(
            f"{marks}.length >= 3 && "
            "document.querySelectorAll('[data-testid=\"stDataFrame\"] canvas').length >= 3",
            timeout=90,
        )
        # Each layer's marks: the wicks (rules), the bodies (rects), the fills (symbols).
        drawn = browser.evaluate(
            f"JSON.stringify(Array.from({marks}).map(g => "
            "[g.getAttribute('aria-roledescription'), g.children.length]))"
        )
        assert json.loads(str(drawn)) == [
            ["rule mark container", candles],
            ["rect mark container", candles],
            ["symbol mark container", fills],
        ]
        text = browser.evaluate("document.body.innerText")
        assert isinstance(text, str)
        assert f"Trades: {TRADER}" in text and f"Round trips ({trips})" in text
        assert "Statistics beside breakout-v1's backtest" in text
        assert "market time (UTC)" in text
        png = browser.screenshot(ARTIFACT)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def huge(traded: Path, tmp_path: Path) -> Path:
    """The session's database as if its preset had asked for ``MAX_BARS`` bars: it played
    ``BARS`` of them (its checkpoint's cursor) before it stopped."""
    db = tmp_path / "huge.db"
    with closing(sqlite3.connect(traded)) as src, closing(sqlite3.connect(db)) as dst:
        src.backup(dst)
        for run_id, text in dst.execute("SELECT id, settings FROM runs").fetchall():
            settings = json.loads(text)
            settings["config"]["replay"]["bars"] = MAX_BARS
            dst.execute("UPDATE runs SET settings = ? WHERE id = ?", [json.dumps(settings), run_id])
        dst.commit()
    return db


@pytest.fixture
def rows_built(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the bar rows this (the dashboard's) process builds; past ``10 * BARS`` it
    refuses, so a page building the configured series fails at once, not in minutes."""
    built: list[int] = []
    append = BarSeries.append_ticks

    def counted(self: BarSeries, *row: int) -> None:
        built.append(1)
        if len(built) > 10 * BARS:
            raise RuntimeError("the dashboard built bars the session never played")
        append(self, *row)

    monkeypatch.setattr(BarSeries, "append_ticks", counted)
    return built


def test_a_session_of_a_huge_preset_is_charted_from_the_bars_it_played_in_a_child(
    huge: Path, rows_built: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27: ``bars = 2000000`` in a preset made the Trades page build the whole walk
    in the dashboard's process. Now the chart is built in a child, from the bars the
    session played: the page builds no bar itself and draws them all."""
    total = played_bars(huge)
    at = app(huge, monkeypatch)
    at.query_params["page"] = "Trades"
    at.query_params["trader"] = TRADER
    started = time.monotonic()
    at.run()
    took = time.monotonic() - started
    assert not at.exception, at.exception
    assert rows_built == [], "the dashboard's process built bars"
    assert not [c.value for c in at.caption if "not drawn" in c.value]
    (chart,) = at.get("vega_lite_chart")  # its candles' and its fills' rows
    drawn = sorted(ipc.open_stream(d.data.data).read_all().num_rows for d in chart.proto.datasets)
    assert drawn == [len(fill_events(huge)), total]
    assert len(frame(at, "closed")) == len(read_trade_report(huge, TRADER)["round_trips"]) > 3
    assert took < 30, f"the page took {took:.1f} s"

    # What the child runs builds the bars played, not the preset's two million.
    played = AppDatabase(huge).played(TRADER)
    assert played is not None
    direct = trade_chart(played, instruments(played)[0])
    assert (direct.total, len(direct.candles), len(rows_built)) == (total, total, total)


def test_a_chart_out_of_time_is_one_line_and_the_trades_still_show(
    huge: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sessions.chart.CHART_TIMEOUT_S", 0.01)
    at = app(huge, monkeypatch)
    at.query_params["page"] = "Trades"
    at.query_params["trader"] = TRADER
    at.run()
    assert not at.exception, at.exception
    notes = [c.value for c in at.caption if "not drawn" in c.value]
    assert notes == ["the bars were not drawn: building them took longer than 0.01 s"]
    assert len(frame(at, "closed")) == len(read_trade_report(huge, TRADER)["round_trips"]) > 3
