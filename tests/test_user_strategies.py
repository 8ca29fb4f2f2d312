"""The trader's own strategy, by import path: checked at load time, traded, checkpointed,
restored under its own ids after a SIGKILL, and equal to its backtest."""

from __future__ import annotations

import json
import os
import signal
from decimal import Decimal

import pytest

from tests.service import (
    ROOT,
    ServiceProcess,
    cli,
    events,
    last_checkpoint_of,
    query,
    wait_for,
    write_config,
)

BARS = ROOT / "tests" / "data" / "btc-perp-2022-01-1m.csv"
BAR_TYPE = "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
# The trader's module is importable the way a trader's research code is: on PYTHONPATH.
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def breakout(tag: str | None = "007", **config: object) -> str:
    body = {
        "instrument_id": "BTCUSDT-PERP.BINANCE",
        "bar_type": BAR_TYPE,
        "lookback": 5,
        "trade_size": "0.050",
        **({"order_id_tag": tag} if tag is not None else {}),
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
    # Another instrument is allowed (the node trades it too), but not with the first's bars.
    assert (
        f"strategies[0].config.bar_type: {BAR_TYPE} is not "
        "ETHUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
    ) in out


def test_several_strategies_need_their_own_tags_and_one_instrument_each_on_the_testnet(
    tmp_path,
):
    untagged = breakout(tag=None) + breakout(tag=None, lookback=9)
    config, _ = write_config(tmp_path, extra=untagged)
    testnet = '[service]\nmode = "binance-testnet"\n'
    config.write_text(config.read_text().replace("[service]\n", testnet))
    done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=ENV)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    for problem in (
        "strategies[0, 1]: 2 strategies on BTCUSDT-PERP.BINANCE in binance-testnet: the venue's "
        "one-way mode nets them into one position",
        "strategies[0].config.order_id_tag: required when several strategies share a node",
        "strategies[1].config.order_id_tag: required when several strategies share a node",
    ):
        assert problem in out, out


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


LIMITS = {
    # the account's notional limit, one strategy's own, the account's leverage limit
    "max-notional": ('max_notional_per_order = "1500"\n', "", "NOTIONAL_EXCEEDS_MAX_PER_ORDER"),
    "own-max-notional": ("", 'max_notional_per_order = "1500"\n', "NOTIONAL_EXCEEDS_MAX"),
    "leverage": ('leverage_limit = "0.02"\n', "", "LEVERAGE_EXCEEDS_MAX"),
}


@pytest.mark.node
@pytest.mark.parametrize("limit", [None, *LIMITS], ids=["no-limit", *LIMITS])
def test_two_trader_strategies_replay_equals_their_backtest(tmp_path, limit):
    """Also under a limit that denies every order of one strategy (0.05 BTC at 46-48k:
    2,300-2,400 USDT, 0.023-0.024x the equity) and none of the other's (0.03): the
    account's notional or leverage limit, or the strategy's own notional limit (its
    entry's). The backtest holds them to the same limits."""
    account, own, denial = LIMITS[limit] if limit else ("", "", "")
    risk = '[risk]\nmax_drawdown_pct = "90"\n' + account
    if limit:
        risk += "[breakers]\nmax_consecutive_rejects = 10000\n"
    config, db = write_config(
        tmp_path,
        trader="USER-002",
        speed=0,
        ladder=0,
        replay=f'source = "file"\npath = "{BARS}"\nstop_when_done = true',
        extra=breakout(lookback=30)
        + own
        + breakout(tag="008", lookback=90, trade_size="0.030")
        + risk,
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
    views = {v["strategy_id"]: v for v in last_checkpoint_of(db, "USER-002")["strategies"]}
    if limit is None:
        assert all(int(v["fills"]) > 0 for v in views.values()), views
    else:
        assert int(views["Breakout-007"]["fills"]) == 0 < int(views["Breakout-008"]["fills"])
        denied = [p for _, p in events(db, "reject") if p["denied"]]
        assert denied and all("-007-" in str(p["client_order_id"]) for p in denied)
        assert all(denial in str(p["reason"]) for p in denied), denied[0]


def strategy_sums(snapshot: dict[str, object]) -> tuple[int, Decimal, Decimal]:
    views = snapshot["strategies"]
    assert isinstance(views, list)
    return (
        sum(int(v["fills"]) for v in views),
        sum((Decimal(v["realized_pnl"]) for v in views), Decimal(0)),
        sum((Decimal(v["fees"]) for v in views), Decimal(0)),
    )


@pytest.mark.node
def test_two_strategies_in_one_node_each_keep_their_own_books_across_a_sigkill(tmp_path):
    two = breakout(tag="007", lookback=5) + breakout(tag="008", lookback=12, trade_size="0.020")
    config, db = write_config(
        tmp_path, trader="USER-003", speed=3000, ladder=0, extra=two, name="two"
    )
    ids = ("Breakout-007", "Breakout-008")

    def by(strategy_id: str) -> list[dict[str, object]]:
        return [p for _, p in events(db, "fill") if p["strategy_id"] == strategy_id]

    first = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        wait_for("fills of both", lambda: all(len(by(s)) >= 2 for s in ids), 90)
        first.kill()
    finally:
        first.ensure_dead()
    checkpoint = last_checkpoint_of(db, "USER-003")
    views = {v["strategy_id"]: v for v in checkpoint["strategies"]}
    assert set(views) == set(ids)
    for position in checkpoint["positions"]:
        assert position["position_id"] == f"BTCUSDT-PERP.BINANCE-{position['strategy_id']}"
    fills, realized, fees = strategy_sums(checkpoint)
    assert realized == Decimal(checkpoint["realized_pnl"])

    second = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        restored = wait_for(
            "the restore", lambda: [p for run, p in events(db, "restored") if run == 2]
        )[0]["snapshot"]
        assert isinstance(restored, dict)
        back = {v["strategy_id"]: v for v in restored["strategies"]}
        for sid in ids:
            for key in ("fills", "realized_pnl", "fees"):
                assert back[sid][key] == views[sid][key], (sid, key)
            # Its id counter goes on (the restore's own fills take ids after it).
            assert back[sid]["orders_total"] >= views[sid]["orders_total"]
        wait_for(
            "fills of both after the restart",
            lambda: all(
                any(run == 2 and p["strategy_id"] == s for run, p in events(db, "fill"))
                for s in ids
            ),
            90,
        )
        assert second.terminate() == 0
    finally:
        second.ensure_dead()
    final = last_checkpoint_of(db, "USER-003")
    fills, realized, fees = strategy_sums(final)
    restored_fills, _, restored_fees = strategy_sums(restored)
    run2 = [p for run, p in events(db, "fill") if run == 2]
    # Every fill is one strategy's, and the strategies' books add up to the account's:
    # what was restored plus what the second run filled.
    assert fills == restored_fills + len(run2)
    assert fees == restored_fees + sum((Decimal(str(p["commission"])) for p in run2), Decimal(0))
    assert realized == Decimal(final["realized_pnl"])
    for sid, tag in zip(ids, ("-007-", "-008-"), strict=True):
        assert by(sid) and all(tag in str(p["client_order_id"]) for p in by(sid))
    assert len({str(p["client_order_id"]) for p in run2}) == len(run2)


@pytest.mark.node
def test_an_order_over_the_max_notional_is_denied_classified_and_alerted(tmp_path):
    """The trader's strategy sizes itself; the node holds it to the limit (NautilusTrader's
    RiskEngine skips its notional check on a margin account)."""
    config, db = write_config(
        tmp_path,
        trader="USER-004",
        speed=3000,
        ladder=0,
        extra=breakout(trade_size="1.000") + '[risk]\nmax_notional_per_order = "5000"\n',
        name="limit",
    )
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        alerts = wait_for(
            "the denial's alert",
            lambda: query(
                db, "SELECT title, text FROM alert_outbox WHERE title LIKE 'Order denied%'"
            ),
            90,
        )
        assert alerts[0]["title"] == "Order denied: NOTIONAL_EXCEEDS_MAX_PER_ORDER"
        assert "max_notional=5000" in alerts[0]["text"]
        rejects = [p for _, p in events(db, "reject")]
        assert rejects and all(p["denied"] for p in rejects)
        assert not events(db, "fill"), "an order over the limit reached the venue"
    finally:
        service.ensure_dead()


def test_the_bundled_ema_cross_is_one_more_strategy_by_import_path(tmp_path):
    """The example strategy is named like any other, its settings tables in its config;
    their problems are named like any other's."""

    def entry(method: str) -> str:
        return (
            "[[strategies]]\n"
            'strategy_path = "node.strategy:EmaCross"\n'
            'config_path = "node.strategy:EmaCrossConfig"\n'
            f'config = {{ instrument_id = "BTCUSDT-PERP.BINANCE", bar_type = "{BAR_TYPE}", '
            'order_id_tag = "001", strategy = { fast_period = 5, slow_period = 20 }, '
            f'sizing = {{ method = "{method}" }} }}\n'
        )

    config, _ = write_config(tmp_path, extra=entry("atr") + breakout())
    done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "node.strategy:EmaCross, tests.user_strategy:Breakout" in done.stdout
    config.write_text(config.read_text().replace('"atr"', '"martingale"'))
    done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=ENV)
    assert done.returncode == 2
    assert "strategies[0].config.sizing.method: Input should be" in done.stderr, done.stderr


@pytest.mark.node
def test_a_reloaded_notional_limit_holds_the_running_strategy(tmp_path):
    """SIGHUP with a new risk.max_notional_per_order: the node's check takes it from the
    next order on, for code the service did not write (it had no limit at start)."""
    config, db = write_config(
        tmp_path,
        trader="USER-005",
        speed=3000,
        ladder=0,
        extra=breakout(trade_size="1.000") + "[breakers]\nmax_consecutive_rejects = 1000\n",
        name="reload",
    )
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        wait_for("fills without a limit", lambda: len(events(db, "fill")) >= 2, 90)
        assert not events(db, "reject")
        config.write_text(config.read_text() + '[risk]\nmax_notional_per_order = "5000"\n')
        service.proc.send_signal(signal.SIGHUP)
        denied = wait_for(
            "a denial under the reloaded limit",
            lambda: [p for _, p in events(db, "reject") if p["denied"]],
            90,
        )
        assert "NOTIONAL_EXCEEDS_MAX_PER_ORDER" in str(denied[0]["reason"])
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
