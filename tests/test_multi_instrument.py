"""Several strategies on several instruments in one node: each its own books, its own
halt and resume, its own breakers - and the account's totals their sum."""

from __future__ import annotations

import json
import os
from decimal import Decimal

import pytest

from storage import StatusReport
from tests.service import (
    ROOT,
    ServiceProcess,
    bars_of,
    cli,
    ema,
    entry,
    events,
    last_checkpoint_of,
    query,
    wait_for,
    write_config,
)

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SOL = "SOLUSDT-PERP.BINANCE"
SOL_DEFINITION = f"""
[[instruments]]
id = "{SOL}"
tick_size = "0.01"
step_size = "0.1"
margin_init = "0.05"
margin_maint = "0.025"
maker_fee = "0.0002"
taker_fee = "0.0004"
start_price = "150"
"""
EMA_BTC, EMA_SOL, BREAKOUT_ETH = "EmaCross-001", "EmaCross-002", "Breakout-003"


def three_strategies() -> str:
    """Two EMA crosses resting ladders on BTC and SOL, and a breakout on ETH whose every
    order is over the notional limit: denied, until its own reject breaker halts it."""
    breakout = entry(
        "Breakout",
        {
            "instrument_id": "ETHUSDT-PERP.BINANCE",
            "bar_type": bars_of("ETHUSDT-PERP.BINANCE"),
            "lookback": 3,
            "trade_size": "500",
            "order_id_tag": "003",
        },
    )
    limits = (
        '[risk]\nmax_drawdown_pct = "90"\ndaily_loss_limit_pct = "90"\n'
        'max_notional_per_order = "400000"\n[breakers]\nmax_consecutive_rejects = 3\n'
    )
    return ema("001", "BTCUSDT-PERP.BINANCE") + ema("002", SOL) + breakout + SOL_DEFINITION + limits


def views(report: StatusReport) -> dict[str, dict[str, object]]:
    return {str(s["strategy_id"]): dict(s) for s in report["strategies"]}


def fills_of(db, strategy_id: str, after_id: int = 0) -> list[dict[str, object]]:
    rows = query(
        db, "SELECT id, payload FROM events WHERE kind = 'fill' AND id > ? ORDER BY id", (after_id,)
    )
    payloads = [json.loads(r["payload"]) for r in rows]
    return [p for p in payloads if p["strategy_id"] == strategy_id]


def last_event_id(db) -> int:
    return int(query(db, "SELECT max(id) AS n FROM events")[0]["n"] or 0)


@pytest.mark.node
def test_strategies_on_three_instruments_halt_resume_and_trip_one_at_a_time(tmp_path):
    config, db = write_config(
        tmp_path, trader="MULTI-001", speed=3000, ladder=0, extra=three_strategies(), name="m"
    )
    control = ("--config", str(config))
    first = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        # The breakout's orders are all denied: its own breaker halts it, nothing else.
        first.wait_status(
            "the breakout halted by its own breaker",
            lambda r: views(r).get(BREAKOUT_ETH, {}).get("trading_state") == "HALTED",
            90,
        )
        alert = wait_for(
            "the breaker's alert",
            lambda: query(
                db, "SELECT title, text FROM alert_outbox WHERE title LIKE 'Circuit breaker%'"
            ),
        )[0]
        assert alert["title"] == f"Circuit breaker tripped: consecutive_rejects ({BREAKOUT_ETH})"
        assert "the other strategies trade on" in alert["text"]
        report = first.wait_status(
            "both EMA crosses resting orders",
            lambda r: all(int(views(r)[s]["open_orders"]) > 0 for s in (EMA_BTC, EMA_SOL)),
            90,
        )
        assert report["trading_state"] == "ACTIVE"
        assert {p["instrument_id"] for p in report["positions"]} >= {
            "BTCUSDT-PERP.BINANCE",
            SOL,
        }

        unknown = cli("halt", *control, "--strategy", "Nobody-9", cwd=tmp_path, env=ENV)
        assert unknown.returncode == 2
        assert "no strategy Nobody-9 in MULTI-001" in unknown.stderr

        # One strategy halted: its resting orders cancelled, the other keeps its own.
        halted = cli("halt", *control, "--strategy", EMA_SOL, "--reason", "review", cwd=tmp_path)
        assert halted.returncode == 0, halted.stdout + halted.stderr
        assert f"{EMA_SOL} halted:" in halted.stdout
        mark = last_event_id(db)
        report = first.wait_status(
            "the halt in the checkpoint",
            lambda r: views(r)[EMA_SOL]["trading_state"] == "HALTED",
        )
        assert views(report)[EMA_SOL]["open_orders"] == 0
        assert views(report)[EMA_SOL]["halt_reason"] == "review"
        assert (report["state"], report["trading_state"]) == ("running", "ACTIVE")
        wait_for("the BTC cross trading on", lambda: len(fills_of(db, EMA_BTC, mark)) >= 2, 90)
        assert not fills_of(db, EMA_SOL, mark), "a halted strategy traded"
        assert int(views(first.status())[EMA_BTC]["open_orders"]) > 0
        first.kill()
    finally:
        first.ensure_dead()

    # Across a SIGKILL: each strategy comes back under its ids, halted as it was.
    second = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        restored = wait_for(
            "the restore", lambda: [p for run, p in events(db, "restored") if run == 2]
        )[0]["snapshot"]
        assert isinstance(restored, dict)
        states = {v["strategy_id"]: v["trading_state"] for v in restored["strategies"]}
        assert states == {EMA_BTC: "ACTIVE", EMA_SOL: "HALTED", BREAKOUT_ETH: "HALTED"}
        assert not [o for o in restored["open_orders"] if o["strategy_id"] == EMA_SOL]
        mark = last_event_id(db)
        resumed = cli("resume", *control, "--strategy", EMA_SOL, cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert f"{EMA_SOL} resumed" in resumed.stdout
        wait_for("the SOL cross trading again", lambda: fills_of(db, EMA_SOL, mark), 90)
        assert second.terminate() == 0
    finally:
        second.ensure_dead()

    final = last_checkpoint_of(db, "MULTI-001")
    strategies = final["strategies"]
    assert isinstance(strategies, list)
    realized = sum((Decimal(v["realized_pnl"]) for v in strategies), Decimal(0))
    assert realized == Decimal(str(final["realized_pnl"]))
    assert Decimal(str(final["balance"])) == Decimal("100000") + realized
    # Every fill belongs to one strategy and is on that strategy's instrument.
    instrument = {EMA_BTC: "BTCUSDT-PERP.BINANCE", EMA_SOL: SOL}
    fills = [p for _, p in events(db, "fill")]
    assert fills and all(p["instrument_id"] == instrument[p["strategy_id"]] for p in fills)


@pytest.mark.node
def test_two_copies_of_the_bundled_strategy_each_trade_their_own_position(tmp_path):
    """Two EMA crosses alike but for their tags, on one instrument: each sizes from its own
    position, so their fills are the same fill for fill. (Each once read the account's net
    position, and traded the other's exposure: the scaling bench's 5 copies halted.)"""
    same = ema("001", "BTCUSDT-PERP.BINANCE") + ema("002", "BTCUSDT-PERP.BINANCE")
    same += "[simulation]\nprob_slippage = 0\nprob_fill_on_limit = 1\n"  # no dice between them
    config, db = write_config(
        tmp_path,
        trader="TWIN-001",
        speed=0,
        ladder=0,
        replay="bars = 3000\nstop_when_done = true",
        extra=same,
        name="twin",
    )
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        assert service.wait(120) == 0, service.log_path.read_text()[-3000:]
    finally:
        service.ensure_dead()

    def fills(strategy_id: str) -> list[tuple[object, ...]]:
        return [
            (p["bar"], p["side"], p["quantity"], p["price"])
            for _, p in events(db, "fill")
            if p["strategy_id"] == strategy_id
        ]

    assert not events(db, "reject")
    assert len(fills(EMA_BTC)) > 10
    assert fills(EMA_BTC) == fills("EmaCross-002")
