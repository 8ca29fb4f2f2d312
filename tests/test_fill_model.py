"""The simulated venue's fill model: a touched limit order fills only sometimes (seeded),
a market order pays a tick; the replay and its parity backtest draw the same numbers."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from node.backtest import run_backtest
from supervisor.config import parse_config
from tests.service import ROOT, ServiceProcess, bars_of, cli, entry, events, write_config

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BTC = "BTCUSDT-PERP.BINANCE"
FLOOR = Decimal("60000.0")  # every bar's low: the resting buy is touched, never traded through
BARS = 300


def floor_market(path: Path) -> Path:
    """Bars whose low is exactly the floor, closing alternately 0.5 and 1.5 above it."""
    rows = ["open,high,low,close,volume"]
    for n in range(BARS):
        close = FLOOR + (Decimal("0.5") if n % 2 else Decimal("1.5"))
        rows.append(f"{FLOOR + 1},{FLOOR + 2},{FLOOR},{close},10")
    path.write_text("\n".join(rows) + "\n")
    return path


def replay(tmp_path: Path) -> str:
    return f'source = "file"\npath = "{floor_market(tmp_path / "floor.csv")}"\n'


def probe(simulation: str) -> str:
    return f"[simulation]\n{simulation}\n" + entry(
        "TouchLimit",
        {"instrument_id": BTC, "bar_type": bars_of(BTC), "price": str(FLOOR)},
        module="tests.fill_probe",
    )


def limit_fills(tmp_path: Path, simulation: str) -> tuple[int, Decimal]:
    """The backtest's touched-limit fills and its first (market) fill's price."""
    text = f"[replay]\n{replay(tmp_path)}" + probe(simulation)
    settings = parse_config(text, "t.toml", env=ENV).node
    trades = run_backtest(settings).trades
    return sum(1 for t in trades[1:] if t.price == FLOOR), trades[0].price


def test_a_touched_limit_fills_with_its_probability_and_a_taker_pays_a_tick(tmp_path):
    always, ideal_price = limit_fills(tmp_path, "prob_fill_on_limit = 1\nprob_slippage = 0")
    never, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0\nprob_slippage = 0")
    half, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0.5\nprob_slippage = 0\nseed = 7")
    again, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0.5\nprob_slippage = 0\nseed = 7")
    other, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0.5\nprob_slippage = 0\nseed = 8")
    # Slipped, the market is a tick away: a taker pays it, and a touch fills nothing.
    touched, slipped = limit_fills(tmp_path, "prob_fill_on_limit = 1\nprob_slippage = 1")
    assert always > 100 and never == 0
    assert 0 < half < always, "a touched limit order sometimes does not fill"
    assert again == half, "seeded: the same fills again"
    assert 0 < other < always
    assert slipped == ideal_price + Decimal("0.1"), "one tick (0.1) worse for the taker"
    assert touched == 0


@pytest.mark.node
def test_a_replay_with_the_fill_model_equals_its_backtest_and_reports_the_models_effect(
    tmp_path,
):
    config, db = write_config(
        tmp_path,
        trader="FILL-001",
        speed=0,
        ladder=0,
        replay=replay(tmp_path) + "stop_when_done = true",
        extra=probe("prob_fill_on_limit = 0.5\nprob_slippage = 1"),
        name="fill",
    )
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        assert service.wait(120) == 0, service.log_path.read_text()[-3000:]
    finally:
        service.ensure_dead()
    report = cli("report", "parity", "--config", str(config), "--json", cwd=tmp_path, env=ENV)
    assert report.returncode == 0, report.stdout + report.stderr
    result = json.loads(report.stdout)
    assert result["equal"] is True
    ideal = result["ideal_fills"]
    assert ideal is not None and ideal["fills"] > result["backtest"]["fills"] > 1
    text = cli("report", "parity", "--config", str(config), cwd=tmp_path, env=ENV).stdout
    assert "the fill model's effect" in text


REAL = ROOT / "tests" / "data" / "btc-perp-2022-01-1m.csv"


@pytest.mark.node
def test_with_latency_an_order_reaches_the_venue_a_bar_later_equal_to_its_backtest(tmp_path):
    """200 ms of latency: an order decided on a bar's close cannot fill at that close; it
    reaches the venue at the next bar (60 s of market time later, no earlier than the
    latency), in the replay as in BacktestEngine with a LatencyModel of 200 ms."""
    ideal = "prob_fill_on_limit = 1\nprob_slippage = 0\n"
    config, db = write_config(
        tmp_path,
        trader="LAT-001",
        speed=0,
        ladder=0,
        replay=f'source = "file"\npath = "{REAL}"\nstop_when_done = true',
        extra=f"[simulation]\n{ideal}latency_ms = 200\n",
        name="latency",
    )
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        assert service.wait(180) == 0, service.log_path.read_text()[-3000:]
    finally:
        service.ensure_dead()
    report = cli("report", "parity", "--config", str(config), "--json", cwd=tmp_path, env=ENV)
    assert report.returncode == 0, report.stdout + report.stderr
    assert json.loads(report.stdout)["equal"] is True
    session = [p for _, p in events(db, "fill")]
    text = config.read_text().replace("latency_ms = 200\n", "")
    instant = run_backtest(parse_config(text, "t.toml", env=ENV).node).trades
    first = instant[0].bar
    assert session[0]["bar"] == first + 1, "a bar later than without latency"
    closes = [row.split(",")[4] for row in REAL.read_text().splitlines()[1:]]
    assert Decimal(str(session[0]["price"])) == Decimal(closes[first + 1])


def test_a_fee_tier_replaces_the_instruments_fees(tmp_path):
    text = f"[replay]\n{replay(tmp_path)}" + probe('prob_slippage = 0\ntaker_fee = "0.001"')
    trades = run_backtest(parse_config(text, "t.toml", env=ENV).node).trades
    market = trades[0]
    assert market.commission == (market.quantity * market.price * Decimal("0.001")).quantize(
        Decimal("1e-8")
    )
    bundled = run_backtest(
        parse_config(text.replace('taker_fee = "0.001"', ""), "t.toml", env=ENV).node
    ).trades[0]
    assert bundled.commission == (bundled.quantity * bundled.price * Decimal("0.00018")).quantize(
        Decimal("1e-8")
    ), "the bundled instrument's own taker fee"
