"""Trade statistics as an operator asks for them, from the database of a real replay:
``paper-node report trades|stats`` and the alerter's Telegram ``/profit``, ``/daily``,
``/trades``, ``/balance`` and ``/performance`` against the loopback Bot API, which reply
with exactly the text the CLI prints for the same database."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from actors.alerter import AlerterActor
from actors.inbox import Inbox
from protocol import ServiceSettings
from storage import MAX_TRADES, Store
from storage.stats_text import exact, money
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.fake_telegram import FakeTelegram
from tests.service import ROOT, ServiceProcess, bars_of, cli, entry, write_config
from tests.test_alerter import loopback_telegram

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BTC = "BTCUSDT-PERP.BINANCE"
TRADER = "STATS-001"
TOKEN = "987654321:AAF4keTokenForLoopbackTestsOnly_xyz"
CHAT = 1001


def ema(tag: str, fast: int, slow: int) -> str:
    return entry(
        "EmaCross",
        {
            "instrument_id": BTC,
            "bar_type": bars_of(BTC),
            "order_id_tag": tag,
            "strategy": {"fast_period": fast, "slow_period": slow, "ladder_orders": 0},
        },
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database of a short replay at full speed: two EMA crosses on 600 one-minute bars,
    funding settled every hour, so there are round trips, fees and funding to report."""
    tmp_path = tmp_path_factory.mktemp("replay")
    config, db = write_config(
        tmp_path,
        trader=TRADER,
        speed=0,
        ladder=0,
        replay="bars = 600\nstop_when_done = true",
        extra=ema("001", 10, 30)
        + ema("002", 5, 20)
        + '[simulation]\nfunding_rate = "0.0001"\nfunding_interval_hours = 1\n',
        name="stats",
    )
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        assert service.wait(120) == 0, service.log_path.read_text()[-3000:]
    finally:
        service.ensure_dead()
    return db


def report(*args: str, cwd: Path) -> str:
    done = cli("report", *args, cwd=cwd, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.removesuffix("\n")


def sections(text: str) -> dict[str, str]:
    """``report stats``'s sections by their title: Profit, Balance, Performance, Daily."""
    return {part.split(" - ", 1)[0]: part for part in text.split("\n\n")}


@pytest.mark.node
def test_report_stats_and_trades_print_the_json_reports_numbers(replayed, tmp_path):
    whole = json.loads(report("stats", "--db", str(replayed), "--json", cwd=tmp_path))
    text = sections(report("stats", "--db", str(replayed), cwd=tmp_path))
    assert whole["trader_id"] == TRADER and set(text) == {
        "Profit",
        "Balance",
        "Performance",
        "Daily",
    }
    trips = whole["round_trips"]
    overall = whole["overall"]
    assert len(trips) >= 4 and overall["trades"] == len(trips)
    assert set(whole["strategies"]) == {"EmaCross-001", "EmaCross-002"}
    # Exact: money is a decimal string, and the round trips add up to the net PnL.
    assert all(isinstance(t["pnl"], str) for t in trips)
    net = Decimal(overall["net_pnl"])
    assert sum((Decimal(t["pnl"]) for t in trips), Decimal(0)) == net
    assert Decimal(overall["funding"]) != 0, "funding was settled into some round trip"
    assert sum(Decimal(s["net_pnl"]) for s in whole["strategies"].values()) == net

    profit = text["Profit"].splitlines()
    assert profit[0] == f"Profit - {TRADER} (USDT)"
    assert f"Round trips: {len(trips)} ({overall['wins']} won, {overall['losses']} lost)" in profit
    assert any(line.startswith(f"Net PnL: {money(net, sign=True)} (") for line in profit)
    assert f"Fees: {money(Decimal(overall['fees']))}, " in text["Profit"]
    balance = text["Balance"].splitlines()
    assert balance[1] == f"Starting balance: {money(Decimal(whole['starting_balance']))}"
    assert balance[2].startswith(f"Balance: {money(Decimal(whole['balance']))} (")
    for name, stats in whole["strategies"].items():
        assert f"{name}: {money(Decimal(stats['net_pnl']), sign=True)} over " in text["Balance"]
        assert (
            f"{name}: {money(Decimal(stats['net_pnl']), sign=True)} over " in (text["Performance"])
        )
    for day, line in zip(whole["days"][-10:], text["Daily"].splitlines()[1:], strict=True):
        assert line.startswith(f"{day['day']}: {money(Decimal(day['pnl']), sign=True)} (")
        assert line.endswith(f", balance {money(Decimal(day['balance']))}")

    last = json.loads(report("trades", "--db", str(replayed), "--n", "3", "--json", cwd=tmp_path))
    assert last["round_trips"] == trips[-3:]
    assert last["open_positions"] == whole["open_positions"]
    table = report("trades", "--db", str(replayed), "--n", "3", cwd=tmp_path).splitlines()
    assert table[0] == f"Round trips - {TRADER}, last 3 of {len(trips)} (USDT)"
    for number, (trip, line) in enumerate(zip(trips[-3:], table[1:7:2], strict=True)):
        assert line == (
            f"#{len(trips) - 2 + number} {trip['direction']} {exact(Decimal(trip['quantity']))} "
            f"{BTC} [{trip['strategy_id']}]: {money(Decimal(trip['pnl']), sign=True)}"
        )


@pytest.mark.node
def test_statistics_are_the_same_after_retention_swept_the_sessions_events(replayed, tmp_path):
    """Issue 23: months on, the retention policy keeps only recent checkpoints and sweeps
    every event older than the oldest of them; the fills and funding stay in the ledger."""
    db = tmp_path / "old.db"
    shutil.copyfile(replayed, db)
    before = [
        report("stats", "--db", str(db), "--json", cwd=tmp_path),
        report("trades", "--db", str(db), "--json", cwd=tmp_path),
        report("stats", "--db", str(db), cwd=tmp_path),
    ]
    store = Store(db)
    try:
        conn = store.db.conn
        with conn:  # the last checkpoint (the final one, after every fill) is what is kept
            conn.execute("DELETE FROM checkpoints WHERE id < (SELECT max(id) FROM checkpoints)")
        swept = store.sweep(TRADER, ServiceSettings(), now=datetime.now(UTC) + timedelta(days=365))
        left = {k: n for k, n in conn.execute("SELECT kind, count(*) FROM events GROUP BY kind")}
    finally:
        store.close()
    assert swept.events > 0 and not {"fill", "funding", "node_started"} & set(left), left
    assert json.loads(before[0])["round_trips"], "there were round trips to forget"
    after = [
        report("stats", "--db", str(db), "--json", cwd=tmp_path),
        report("trades", "--db", str(db), "--json", cwd=tmp_path),
        report("stats", "--db", str(db), cwd=tmp_path),
    ]
    assert after == before


@pytest.mark.node
def test_report_errors_are_clear_with_the_exit_codes_of_the_module(replayed, tmp_path):
    missing = cli("report", "stats", "--db", str(tmp_path / "none.db"), cwd=tmp_path, env=ENV)
    assert missing.returncode == 1 and "error: no database at" in missing.stderr
    empty = tmp_path / "empty.db"
    Store(empty).close()
    no_run = cli("report", "trades", "--db", str(empty), cwd=tmp_path, env=ENV)
    assert no_run.returncode == 4 and "error: no run in the database" in no_run.stderr
    stranger = cli(
        "report", "stats", "--db", str(replayed), "--trader", "NOBODY-1", cwd=tmp_path, env=ENV
    )
    assert stranger.returncode == 4
    assert "error: no run of trader NOBODY-1 in the database" in stranger.stderr
    zero = cli("report", "trades", "--db", str(replayed), "--n", "0", cwd=tmp_path, env=ENV)
    assert zero.returncode == 2 and "--n: must be at least 1, got 0" in zero.stderr
    for done in (missing, no_run, stranger, zero):
        assert "Traceback" not in done.stderr


# ---------------------------------------------------------------- Telegram


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(TOKEN).start()
    yield fake
    fake.stop()


def alerter_on(db: Path, telegram: FakeTelegram, trader: str = TRADER) -> Supervisor:
    settings = loopback_telegram(telegram)
    spec = SupervisorSpec(
        children=(
            ChildSpec(
                "alerter",
                lambda ctx: AlerterActor.start(
                    ctx, db, trader, "replay", telegram=settings, token=TOKEN
                ),
            ),
        )
    )
    return Supervisor.start(spec, parent=Inbox())


def ask(telegram: FakeTelegram, command: str) -> str:
    """Send ``command`` and wait for the reply that follows it."""
    before = len(telegram.sent())
    telegram.push_command(CHAT, command)
    telegram.wait_for(lambda _: len(telegram.sent()) > before)
    chat, text = telegram.sent()[before]
    assert chat == CHAT
    return text


@pytest.fixture
def copied(replayed: Path, tmp_path: Path) -> Path:
    """The replay's database, copied: the alerter's store opens it read-write."""
    db = tmp_path / "copy.db"
    shutil.copyfile(replayed, db)
    return db


@pytest.mark.node
def test_telegram_replies_with_exactly_the_clis_sections(copied, telegram, tmp_path):
    cli_stats = sections(report("stats", "--db", str(copied), cwd=tmp_path))
    cli_trades = report("trades", "--db", str(copied), cwd=tmp_path)
    cli_three = report("trades", "--db", str(copied), "--n", "3", cwd=tmp_path)
    cli_two_days = sections(report("stats", "--db", str(copied), "--days", "2", cwd=tmp_path))
    sup = alerter_on(copied, telegram)
    try:
        assert ask(telegram, "/profit") == cli_stats["Profit"]
        assert ask(telegram, "/balance") == cli_stats["Balance"]
        assert ask(telegram, "/performance") == cli_stats["Performance"]
        assert ask(telegram, "/daily") == cli_stats["Daily"]
        assert ask(telegram, "/daily 2") == cli_two_days["Daily"]
        assert ask(telegram, "/trades") == cli_trades
        assert ask(telegram, "/trades 3") == cli_three
        assert "/trades [n] - the last n round trips" in ask(telegram, "/help")
    finally:
        sup.stop(timeout=15)


@pytest.mark.node
def test_telegram_bad_arguments_and_a_database_error_get_a_clear_reply(copied, telegram):
    sup = alerter_on(copied, telegram)
    try:
        assert ask(telegram, "/trades 0").startswith("/trades: n must be at least 1, got 0.")
        assert ask(telegram, "/trades lots").startswith("/trades: 'lots' is not a whole number.")
        assert ask(telegram, f"/trades {MAX_TRADES + 1}").startswith(
            f"/trades: at most {MAX_TRADES} in one message, got {MAX_TRADES + 1}"
        )
        assert ask(telegram, "/daily 999").startswith("/daily: at most 30 in one message")
        assert ask(telegram, "/profit today") == "/profit takes no argument (got 'today')."
        # A database written by a newer service: refused, and said so; the alerter goes on.
        conn = sqlite3.connect(copied)
        conn.execute("PRAGMA user_version = 9999")
        conn.commit()
        conn.close()
        assert ask(telegram, "/profit").startswith("Trade statistics unavailable: ")
        assert ask(telegram, "/help").startswith("/status")
    finally:
        sup.stop(timeout=15)


@pytest.mark.node
def test_telegram_statistics_before_the_trader_has_run(tmp_path, telegram):
    empty = tmp_path / "empty.db"
    Store(empty).close()
    sup = alerter_on(empty, telegram, trader="NEW-001")
    try:
        assert ask(telegram, "/profit") == "No run of NEW-001 recorded yet: no trades to report."
    finally:
        sup.stop(timeout=15)
