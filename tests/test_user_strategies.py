"""The trader's own strategy, by import path: checked at load time, traded, checkpointed,
restored under its own ids after a SIGKILL, and equal to its backtest."""

from __future__ import annotations

import json
import os

import pytest

from tests.service import (
    ROOT,
    ServiceProcess,
    cli,
    events,
    last_checkpoint_of,
    wait_for,
    write_config,
)

BARS = ROOT / "tests" / "data" / "btc-perp-2022-01-1m.csv"
BAR_TYPE = "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
# The trader's module is importable the way a trader's research code is: on PYTHONPATH.
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def breakout(tag: str = "007", **config: object) -> str:
    body = {
        "instrument_id": "BTCUSDT-PERP.BINANCE",
        "bar_type": BAR_TYPE,
        "lookback": 5,
        "trade_size": "0.050",
        "order_id_tag": tag,
        **config,
    }
    table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in body.items())
    return (
        "[[strategies]]\n"
        'strategy_path = "tests.user_strategy:Breakout"\n'
        'config_path = "tests.user_strategy:BreakoutConfig"\n'
        f"config = {{ {table} }}\n"
    )


def test_config_check_names_every_problem_of_every_strategy(tmp_path):
    entries = (
        breakout(lookback="five", instrument_id="ETHUSDT-PERP.BINANCE")
        + breakout(tag="008").replace('tests.user_strategy:Breakout"', 'tests.nowhere:Breakout"')
        + '[[strategies]]\nstrategy_path = "tests.user_strategy:BreakoutConfig"\n'
        'config_path = "tests.user_strategy:Breakout"\ncolour = "red"\n'
    )
    config, _ = write_config(tmp_path, extra=entries)
    done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=ENV)
    assert done.returncode == 2, done.stdout + done.stderr
    out = done.stdout + done.stderr
    # The entry's own keys: checked before anything is imported.
    assert "strategies[2].colour: unknown key" in out
    assert "strategies[0]" not in out  # one bad entry stops the import check
    fixed = entries.replace('colour = "red"\n', "")
    config.write_text(config.read_text().replace(entries, fixed))
    done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=ENV)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    for problem in (
        "strategies: 3 entries; one strategy per node for now",
        "strategies[0].config.lookback: Expected `int`, got `str`",
        "strategies[1].strategy_path: cannot import tests.nowhere:Breakout",
        "strategies[2].strategy_path: tests.user_strategy:BreakoutConfig is not a "
        "NautilusTrader Strategy",
        "strategies[2].config_path: tests.user_strategy:Breakout is not a NautilusTrader "
        "StrategyConfig",
    ):
        assert problem in out, out
    config.write_text(config.read_text().replace('"five"', "5"))
    done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=ENV)
    out = done.stdout + done.stderr
    assert (
        "strategies[0].config.instrument_id: ETHUSDT-PERP.BINANCE is not the node's "
        "BTCUSDT-PERP.BINANCE"
    ) in out


@pytest.mark.node
def test_a_strategy_from_a_test_module_trades_and_survives_a_sigkill_under_its_ids(tmp_path):
    config, db = write_config(
        tmp_path, trader="USER-001", speed=3000, ladder=0, extra=breakout(), name="user"
    )
    first = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        first.wait_status("three fills", lambda r: r["fills"] >= 3, 90)
        checkpoint = wait_for(
            "a checkpoint holding a position",
            lambda: (c := last_checkpoint_of(db, "USER-001"))["positions"] and c,
        )
        first.kill()
    finally:
        first.ensure_dead()
    checkpoint = last_checkpoint_of(db, "USER-001")
    (position,) = checkpoint["positions"]
    assert isinstance(position, dict)
    assert position["position_id"] == "BTCUSDT-PERP.BINANCE-Breakout-007"
    fills_before = [p["client_order_id"] for _, p in events(db, "fill")]
    assert all("-007-" in c for c in fills_before), fills_before

    second = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        restored = wait_for(
            "the restore", lambda: [p for run, p in events(db, "restored") if run == 2]
        )[0]
        assert restored["balance"] == checkpoint["balance"]
        snapshot = restored["snapshot"]
        assert isinstance(snapshot, dict)
        (back,) = snapshot["positions"]
        assert back["position_id"] == position["position_id"]
        assert (back["side"], back["quantity"]) == (position["side"], position["quantity"])
        wait_for(
            "a fill after the restart",
            lambda: [p for run, p in events(db, "fill") if run == 2 and "RESTORE" not in str(p)],
            90,
        )
    finally:
        assert second.terminate() == 0
        second.ensure_dead()
    fills = [p["client_order_id"] for _, p in events(db, "fill")]
    assert len(fills) == len(set(fills)), "an order id was issued twice"
    assert all("-007-" in c for c in fills), fills


@pytest.mark.node
def test_the_trader_strategy_replay_equals_its_backtest(tmp_path):
    config, db = write_config(
        tmp_path,
        trader="USER-002",
        speed=0,
        ladder=0,
        replay=f'source = "file"\npath = "{BARS}"\nstop_when_done = true',
        extra=breakout(lookback=30) + '[risk]\nmax_drawdown_pct = "90"\n',
        name="parity",
    )
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        assert service.wait(240) == 0, service.log_path.read_text()[-3000:]
    finally:
        service.ensure_dead()
    report = cli(
        "report", "parity", "--config", str(config), "--json", cwd=tmp_path, env=ENV, timeout=240
    )
    assert report.returncode == 0, report.stdout + report.stderr
    result = json.loads(report.stdout)
    assert result["equal"] is True
    assert result["session"]["fills"] == result["backtest"]["fills"] > 10
