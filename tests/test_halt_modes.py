"""The three halt modes on a real node holding a position, a resting entry and a stop,
from the operator's command to the database - and again after a SIGKILL."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest

from storage import StatusReport
from tests.service import (
    ROOT,
    ServiceProcess,
    bars_of,
    cli,
    entry,
    events,
    last_checkpoint_of,
    wait_for,
    write_config,
)

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BTC = "BTCUSDT-PERP.BINANCE"
PROBE = entry(
    "HaltProbe",
    {"instrument_id": BTC, "bar_type": bars_of(BTC), "size": "0.100", "probe_every": 3},
    module="tests.halt_probe",
)


def orders_of(db, trader: str) -> list[dict[str, object]]:
    orders = last_checkpoint_of(db, trader)["open_orders"]
    assert isinstance(orders, list)
    return orders


def held(report: StatusReport) -> Decimal:
    return sum((Decimal(p["quantity"]) for p in report["positions"]), Decimal(0))


def set_up(report: StatusReport) -> bool:
    """A position, the stop and the resting entry, in the status the operator reads."""
    return held(report) > 0 and report["open_orders"] == 2


@pytest.mark.node
@pytest.mark.parametrize("mode", ["cancel", "reduce", "flatten"])
def test_each_halt_mode_leaves_what_it_says_and_comes_back_after_a_sigkill(tmp_path, mode):
    trader = f"HALT-{mode.upper()}"
    config, db = write_config(tmp_path, trader=trader, speed=600, ladder=0, extra=PROBE)
    first = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        before = first.wait_status("the position, stop and entry", set_up, 90)
        done = cli("halt", "--config", str(config), "--mode", mode, "--reason", "t", cwd=tmp_path)
        assert done.returncode == 0, done.stdout + done.stderr
        assert f"(mode {mode})" in done.stdout
        after = first.wait_status(
            "the halt in a checkpoint", lambda r: r["trading_state"] != "ACTIVE"
        )
        mark = len(events(db, "fill"))
        if mode == "cancel":
            assert "2 open order(s) cancelled and confirmed" in done.stdout
            assert after["trading_state"] == "HALTED" and after["open_orders"] == 0
            assert held(after) == held(before), "a cancel leaves the position"
        elif mode == "reduce":
            assert "1 reduce-only order(s) kept" in done.stdout
            assert after["trading_state"] == "REDUCING"
            (stop,) = orders_of(db, trader)
            assert (stop["order_type"], stop["reduce_only"]) == ("STOP_MARKET", True)
            # The probe's entries are denied; its reducing orders fill.
            wait_for(
                "an entry denied while reducing",
                lambda: [p for _, p in events(db, "reject") if "REDUCING" in str(p["reason"])],
            )
            reduced = wait_for(
                "a reducing fill",
                lambda: [p for p in [p for _, p in events(db, "fill")][mark:]],
            )
            assert all(p["side"] == "SELL" for p in reduced)
            first.wait_status("the position smaller", lambda r: held(r) < held(after))
        else:
            assert "1 position(s) closed at market and confirmed" in done.stdout
            assert after["trading_state"] == "HALTED"
            assert after["open_orders"] == 0 and held(after) == 0
        first.kill()
    finally:
        first.ensure_dead()

    second = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        restored = wait_for(
            "the restore", lambda: [p for run, p in events(db, "restored") if run == 2]
        )[0]["snapshot"]
        assert isinstance(restored, dict)
        state = {"cancel": "HALTED", "reduce": "REDUCING", "flatten": "HALTED"}[mode]
        assert restored["trading_state"] == state
        kinds = [(o["order_type"], o["reduce_only"]) for o in restored["open_orders"]]
        assert kinds == ([("STOP_MARKET", True)] if mode == "reduce" else [])
        if mode == "flatten":
            assert restored["positions"] == []
        assert second.terminate() == 0
    finally:
        second.ensure_dead()
