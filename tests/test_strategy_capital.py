"""Each strategy trades its own capital: its equity, drawdown and daily loss are of it.

With several strategies on one account, a strategy's equity used to be the whole
account's starting balance plus its PnL: one of two strategies on a 100,000 account had
to lose 20,000 - 40 % of its own half - before its own 20 % drawdown breaker tripped."""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path

import pytest

from protocol import Config, NodeSettings, StrategyEntry
from supervisor.config import ConfigError, parse_config
from tests.service import (
    ROOT,
    ServiceProcess,
    bars_of,
    cli,
    entry,
    events,
    last_checkpoint_of,
    write_config,
)

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BTC = "BTCUSDT-PERP.BINANCE"
LOSER, STEADY = "Hold-001", "Hold-002"
START_NS = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC


def falling_market(path: Path, bars: int = 400) -> Path:
    """A market that falls 30 a minute from 60,000: a long of 1 BTC loses 10,000 - a
    fifth of 50,000 - in about 333 bars."""
    rows = ["timestamp,open,high,low,close,volume"]
    price = Decimal(60000)
    for n in range(bars):
        close = price - 30
        rows.append(f"{(START_NS + n * 60 * 10**9) // 10**6},{price},{price},{close},{close},10")
        price = close
    path.write_text("\n".join(rows) + "\n")
    return path


def holds(capital: str | None) -> str:
    def one(sid: str, size: str) -> str:
        config: dict[str, object] = {
            "instrument_id": BTC,
            "bar_type": bars_of(BTC),
            "size": size,
            "at_bar": 2,
            "order_id_tag": sid[-3:],
        }
        text = entry("Hold", config, module="tests.fill_probe")
        return text + (f'capital = "{capital}"\n' if capital is not None else "")

    return one(LOSER, "1") + one(STEADY, "0.01")


def test_capital_is_an_even_share_unless_stated_and_never_more_than_the_account():
    def settings(*capitals: str | None) -> Config:
        entries = "".join(
            '[[strategies]]\nstrategy_path = "tests.fill_probe:Hold"\n'
            'config_path = "tests.fill_probe:HoldConfig"\n'
            + (f'capital = "{c}"\n' if c is not None else "")
            for c in capitals
        )
        return parse_config(entries, "t.toml", env=ENV, import_strategies=False).settings

    node = parse_config("", "t.toml", env=ENV).node
    assert node.capitals() == (Decimal("100000"),), "the bundled strategy: the whole account"
    three = settings(None, None, None)
    assert three.strategies[0].capital is None
    assert NodeSettings.of(three).capitals() == (Decimal("100000") / 3,) * 3
    mixed = NodeSettings.of(settings("60000", None, None)).capitals()
    assert mixed == (Decimal("60000"), Decimal("20000"), Decimal("20000"))
    with pytest.raises(ConfigError, match=r"adds up to 120000, more than account\.starting"):
        settings("70000", "50000")
    with pytest.raises(ConfigError, match="state no capital, but the others take all"):
        settings("100000", None)
    with pytest.raises(ValueError, match="greater than 0"):
        StrategyEntry(strategy_path="a.b:C", config_path="a.b:D", capital=Decimal(0))


@pytest.mark.node
def test_a_strategy_losing_a_fifth_of_its_own_capital_trips_its_own_breaker_alone(tmp_path):
    """Two strategies with 50,000 each (the even share) on a 100,000 account: the one that
    loses 20 % of its own capital (10 % of the account's) is halted by its own drawdown
    breaker, judged on market time; the other and the account trade on; status shows each
    strategy's return on its own capital; the parity backtest halts it at the same bar."""
    market = falling_market(tmp_path / "falling.csv")
    config, db = write_config(
        tmp_path,
        trader="CAP-001",
        speed=0,
        ladder=0,
        replay=f'source = "file"\npath = "{market}"\nstop_when_done = true',
        extra=holds(None)  # an even share each: 50,000
        + '[simulation]\nprob_slippage = 0\n[risk]\ndaily_loss_limit_pct = "90"\n',
        name="capital",
    )
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        assert service.wait(120) == 0, service.log_path.read_text()[-3000:]
    finally:
        service.ensure_dead()
    tripped = [p for _, p in events(db, "breaker")]
    assert [p.get("strategy_id") for p in tripped] == [LOSER], tripped
    assert "max_drawdown" in str(tripped[0]["breaker"])
    final = last_checkpoint_of(db, "CAP-001")
    assert final["trading_state"] == "ACTIVE", "the account trades on"
    views = {str(v["strategy_id"]): v for v in final["strategies"]}  # type: ignore[union-attr]
    assert views[LOSER]["trading_state"] == "HALTED"
    assert views[STEADY]["trading_state"] == "ACTIVE"
    assert Decimal(str(views[LOSER]["capital"])) == Decimal(50000)
    loser_return = (Decimal(str(views[LOSER]["equity"])) - 50000) / 50000
    assert loser_return < Decimal("-0.2"), "its loss, on its own capital"
    account_loss = (100000 - Decimal(str(final["equity"]))) / 100000
    assert Decimal("0.1") < account_loss < Decimal("0.2"), "the account's own breaker holds"

    status = cli("status", "--db", str(db), "--json", cwd=tmp_path, env=ENV)
    body = json.loads(status.stdout)
    rows = {r["strategy_id"]: r for r in body["strategies"]}
    assert rows[LOSER]["capital"] == "50000"
    assert Decimal(rows[LOSER]["return_on_capital"]) == loser_return
    assert Decimal(body["account_return"]) == -account_loss
    text = cli("status", "--db", str(db), cwd=tmp_path, env=ENV).stdout
    shown = f"return {loser_return * 100:+.2f}% of its capital 50000.00"
    assert shown in text, text
    assert f"({-account_loss * 100:+.2f}% on the start)" in text
    report = cli("report", "parity", "--db", str(db), "--json", cwd=tmp_path, env=ENV, timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr
    parity = json.loads(report.stdout)
    assert parity["equal"] is True
    assert [h["strategy_id"] for h in parity["backtest_halts"]] == [LOSER]
