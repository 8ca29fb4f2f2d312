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
from tests.fill_probe import EDGE_FILLS
from tests.service import ROOT, ServiceProcess, bars_of, cli, entry, events, write_config

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BTC = "BTCUSDT-PERP.BINANCE"
FLOOR = Decimal("60000.0")  # every bar's low: the resting buy is touched, never traded through
BARS = 300
REAL = ROOT / "tests" / "data" / "btc-perp-2022-01-1m.csv"


def floor_market(path: Path, side: str = "BUY") -> Path:
    """Bars whose low (a BUY's market) or high (a SELL's) is exactly the floor, closing
    alternately 0.5 and 1.5 away from it: a resting limit there is touched, never traded
    through."""
    rows = ["open,high,low,close,volume"]
    sign = 1 if side == "BUY" else -1
    for n in range(BARS):
        close = FLOOR + sign * (Decimal("0.5") if n % 2 else Decimal("1.5"))
        far, near = FLOOR + sign * 2, FLOOR + sign
        high, low = (far, FLOOR) if side == "BUY" else (FLOOR, far)
        rows.append(f"{near},{high},{low},{close},10")
    path.write_text("\n".join(rows) + "\n")
    return path


def replay(tmp_path: Path, side: str = "BUY") -> str:
    return f'source = "file"\npath = "{floor_market(tmp_path / f"floor-{side}.csv", side)}"\n'


def probe(simulation: str, side: str = "BUY") -> str:
    return f"[simulation]\n{simulation}\n" + entry(
        "TouchLimit",
        {"instrument_id": BTC, "bar_type": bars_of(BTC), "price": str(FLOOR), "side": side},
        module="tests.fill_probe",
    )


def limit_fills(
    tmp_path: Path, simulation: str, side: str = "BUY"
) -> tuple[list[Decimal], Decimal]:
    """The backtest's resting-limit fill prices and its first (market) fill's price."""
    text = f"[replay]\n{replay(tmp_path, side)}" + probe(simulation, side)
    settings = parse_config(text, "t.toml", env=ENV).node
    trades = run_backtest(settings).trades
    return [t.price for t in trades[1:]], trades[0].price


def test_a_touched_limit_fills_with_its_probability(tmp_path):
    always, _ = limit_fills(tmp_path, "prob_fill_on_limit = 1\nprob_slippage = 0")
    never, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0\nprob_slippage = 0")
    half, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0.5\nprob_slippage = 0\nseed = 7")
    again, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0.5\nprob_slippage = 0\nseed = 7")
    other, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0.5\nprob_slippage = 0\nseed = 8")
    assert len(always) > 100 and not never
    assert set(always) == {FLOOR}
    assert 0 < len(half) < len(always), "a touched limit order sometimes does not fill"
    assert again == half, "seeded: the same fills again"
    assert 0 < len(other) < len(always)


@pytest.mark.parametrize("side", ["BUY", "SELL"])
def test_slippage_moves_market_orders_a_tick_and_never_a_limit_past_its_price(tmp_path, side):
    """With every fill slipped, the market order pays a tick; a touched limit still fills
    at its price, with its queue's probability, and never a tick through it."""
    _, ideal_price = limit_fills(tmp_path, "prob_fill_on_limit = 1\nprob_slippage = 0", side)
    touched, slipped = limit_fills(tmp_path, "prob_fill_on_limit = 1\nprob_slippage = 1", side)
    tick = Decimal("0.1")
    assert slipped == ideal_price + (tick if side == "BUY" else -tick), "a taker pays a tick"
    assert len(touched) > 100
    assert set(touched) == {FLOOR}, "a touched limit fills at its price, not a tick worse"
    queued, _ = limit_fills(tmp_path, "prob_fill_on_limit = 0.5\nprob_slippage = 1", side)
    assert 0 < len(queued) < len(touched) and set(queued) == {FLOOR}


def test_limits_at_each_bars_edges_on_real_bars_never_fill_worse_than_their_price(tmp_path):
    """Real minute bars, a BUY limit at every bar's low and a SELL at its high, every fill
    slipped: each limit fill is at its price or better."""
    EDGE_FILLS.clear()
    text = (
        f'[replay]\nsource = "file"\npath = "{REAL}"\n'
        "[simulation]\nprob_fill_on_limit = 1\nprob_slippage = 1\n"
        + entry(
            "EdgeLimits",
            {"instrument_id": BTC, "bar_type": bars_of(BTC)},
            module="tests.fill_probe",
        )
    )
    run_backtest(parse_config(text, "t.toml", env=ENV).node, bars=1500)
    worse = [f for f in EDGE_FILLS if (f[2] > f[1] if f[0] == "BUY" else f[2] < f[1])]
    assert len(EDGE_FILLS) > 200
    assert not worse, f"{len(worse)} of {len(EDGE_FILLS)} limit fills worse than their price"


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
