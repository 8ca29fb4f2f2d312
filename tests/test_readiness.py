"""The readiness report end to end: a strategy registered with its backtest's returns,
paper-traded in three replays of the same process - long enough (READY), with its edge
(the drift) removed (NO, naming the failed criteria), and too short (NOT YET, with the
days and round trips still needed) - and judged by `paper-node report readiness`."""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import random
import shutil
import socket
import sqlite3
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from actors.alerter import AlerterActor
from actors.inbox import Inbox
from actors.metrics import MetricsActor
from cli.readiness import report_readiness
from protocol import (
    BreakerSettings,
    MetricsSettings,
    ReadinessSettings,
    RegisteredStrategy,
    WhereIs,
)
from storage.store import connect
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.browser import Browser
from tests.fake_telegram import FakeTelegram
from tests.service import ROOT, ServiceProcess, cli, entry, query, wait_for, write_config
from tests.test_alerter import CHAT, TOKEN, loopback_telegram

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BTC = "BTCUSDT-PERP.BINANCE"
BAR_TYPE = f"{BTC}-1-HOUR-LAST-EXTERNAL"
START = datetime(2024, 1, 1, tzinfo=UTC)
CAPITAL = Decimal(100_000)
NOTIONAL = Decimal(60_000)
FEE = Decimal("0.0004")
CYCLE, HOLD = 12, 11  # long from the first bar of every 12 to the 12th: 2 round trips a day
DRIFT, VOL = 0.008, 0.01  # the price's daily drift and volatility (log returns)


def prices(seed: int, days: int, drift: float) -> list[Decimal]:
    """Hourly closes of a geometric random walk from 60,000 (a tenth of a dollar)."""
    rng = random.Random(seed)
    price, out = 60_000.0, []
    for _ in range(days * 24):
        price *= math.exp(rng.gauss(drift / 24, VOL / math.sqrt(24)))
        out.append(Decimal(str(round(price, 1))))
    return out


def bars_file(path: Path, closes: list[Decimal]) -> Path:
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["timestamp", "open", "high", "low", "close", "volume"])
        previous = closes[0]
        for n, close in enumerate(closes):
            at = (START + timedelta(hours=n)).isoformat()
            out.writerow([at, previous, max(previous, close), min(previous, close), close, 100])
            previous = close
    return path


def simulate(closes: list[Decimal]) -> tuple[list[Decimal], list[Decimal]]:
    """The strategy's daily and per-trade returns on ``closes`` by hand: each market
    order fills at the close of the bar it was decided on, paying the taker fee; the
    balance moves at each fill (the fee; a sale's PnL), its day's end over the day
    before is the day's return."""
    balance, ends, trades = CAPITAL, [], []
    held, entry_price, entry_fee = Decimal(0), Decimal(0), Decimal(0)
    for n, close in enumerate(closes):
        phase = n % CYCLE
        if phase == 0 and not held:
            held = (NOTIONAL / close).quantize(Decimal("0.001"), ROUND_HALF_EVEN)
            entry_price, entry_fee = close, held * close * FEE
            balance -= entry_fee
        elif phase == HOLD and held:
            fee = held * close * FEE
            pnl = held * (close - entry_price)
            balance += pnl - fee
            trades.append((pnl - fee - entry_fee) / CAPITAL)
            held = Decimal(0)
        if n % 24 == 23:
            ends.append(balance)
    daily, previous = [], CAPITAL
    for end in ends:
        daily.append(end / previous - 1)
        previous = end
    return daily, trades


def returns_csv(path: Path, returns: list[Decimal]) -> Path:
    path.write_text("return\n" + "".join(f"{r}\n" for r in returns))
    return path


def session(tmp_path: Path, db: Path, trader: str, closes: list[Decimal]) -> ServiceProcess:
    strategy = entry(
        "Cycle",
        {
            "instrument_id": BTC,
            "bar_type": BAR_TYPE,
            "cycle": CYCLE,
            "hold": HOLD,
            "notional": str(NOTIONAL),
        },
        module="tests.readiness_strategy",
    )
    config, _ = write_config(
        tmp_path,
        trader=trader,
        speed=0,
        ladder=0,
        name=trader.lower(),
        replay=(
            f'source = "file"\npath = "{bars_file(tmp_path / f"{trader}.csv", closes)}"\n'
            "bar_minutes = 60\nstop_when_done = true"
        ),
        extra=f'{strategy}[simulation]\ntaker_fee = "{FEE}"\nprob_slippage = 0\n',
    )
    text = config.read_text().replace(
        f'db_path = "{tmp_path / (trader.lower() + ".db")}"', f'db_path = "{db}"'
    )
    config.write_text(text)
    return ServiceProcess(config, db, tmp_path, env=ENV)


def judged(db: Path, trader: str) -> dict[str, object]:
    """The report in this process (the CLI's own function: one NautilusTrader import for
    the test rather than one a command)."""
    text = report_readiness(db, trader, ReadinessSettings(), "cycle-v1", json_output=True)
    (strategy,) = json.loads(text)["strategies"]
    return strategy


def readiness(tmp_path: Path, db: Path, trader: str) -> dict[str, object]:
    done = cli(
        "report",
        "readiness",
        "--db",
        str(db),
        "--trader",
        trader,
        "--strategy",
        "cycle-v1",
        "--json",
        cwd=tmp_path,
        env=ENV,
    )
    assert done.returncode == 0, done.stderr
    (strategy,) = json.loads(done.stdout)["strategies"]
    return strategy


def criteria(strategy: dict[str, object]) -> dict[str, dict[str, object]]:
    listed = strategy["criteria"]
    assert isinstance(listed, list)
    return {str(c["key"]): c for c in listed}


def register_and_trade(tmp_path: Path) -> Path:
    """One registry entry and the three sessions judged against it, in one database."""
    db = tmp_path / "paper.db"
    # The backtest: 10 stretches of 30 days of the same process, each from 60,000.
    daily, trades = [], []
    for seed in range(100, 110):
        d, t = simulate(prices(seed, 30, DRIFT))
        daily += d
        trades += t
    conf = json.dumps(
        {
            "instrument_id": BTC,
            "bar_type": BAR_TYPE,
            "cycle": CYCLE,
            "hold": HOLD,
            "notional": str(NOTIONAL),
        }
    )
    added = cli(
        "strategies",
        "add",
        "cycle-v1",
        "--strategy-path",
        "tests.readiness_strategy:Cycle",
        "--config-path",
        "tests.readiness_strategy:CycleConfig",
        "--strategy-config",
        conf,
        "--returns",
        str(returns_csv(tmp_path / "daily.csv", daily)),
        "--trade-returns",
        str(returns_csv(tmp_path / "trades.csv", trades)),
        "--trials",
        "3",
        "--fee-bps",
        "4",
        "--slippage-bps",
        "0",
        "--db",
        str(db),
        cwd=tmp_path,
        env=ENV,
    )
    assert added.returncode == 0, added.stderr
    listed = json.loads(
        cli("strategies", "list", "--json", "--db", str(db), cwd=tmp_path, env=ENV).stdout
    )
    stored = RegisteredStrategy.model_validate(listed[0]).evidence
    assert stored.daily_returns == tuple(daily) and stored.trials == 3
    assert stored.fills.fee_bps == Decimal(4)

    runs = {
        "READY-001": prices(7, 40, DRIFT),
        "GONE-001": prices(7, 40, 0.0),  # the same shocks, the drift removed
        "SHORT-001": prices(8, 5, DRIFT),
    }
    services = {t: session(tmp_path, db, t, closes) for t, closes in runs.items()}
    try:
        for trader, service in services.items():
            assert service.wait(120) == 0, (trader, service.log_path.read_text()[-3000:])
    finally:
        for service in services.values():
            service.ensure_dead()
    return db


@pytest.mark.node
def test_ready_no_and_not_yet_then_telegram_metrics_alert_and_dashboard(tmp_path, telegram):
    """The three sessions run once (each a whole service): every front end reads them."""
    db = register_and_trade(tmp_path)
    verdicts(tmp_path, db)
    telegram_metrics_and_alert(db, telegram, tmp_path / "alerter")
    readiness_page(db, tmp_path / "dashboard")


def verdicts(tmp_path: Path, db: Path) -> None:
    ready = readiness(tmp_path, db, "READY-001")
    assert ready["verdict"] == "READY", ready["reasons"]
    assert ready["registered"] == "cycle-v1"
    got = criteria(ready)
    assert got["min_trl"]["status"] == "pass" and got["round_trips"]["figure"] >= 60
    assert got["psr"]["figure"] >= 0.95 and got["dsr"]["figure"] >= 0.95
    # Market orders fill at their decision bar's close: no slippage in a replay without it.
    assert got["slippage"]["figure"] == 0.0
    assert got["costs"]["figure"] == pytest.approx(1.0, abs=0.01)
    cone = ready["cone"]
    assert isinstance(cone, dict) and len(cone["paper"]) == len(cone["lower"]) >= 39
    assert cone["lower"][-1] <= cone["paper"][-1] <= cone["upper"][-1]

    gone = judged(db, "GONE-001")
    assert gone["verdict"] == "NO"
    failed = {k for k, c in criteria(gone).items() if c["status"] == "fail"}
    assert {"cone", "psr", "drawdown"} <= failed, gone["reasons"]
    assert criteria(gone)["returns_test"]["figure"] < 0  # paper worse, if not by enough
    assert any(
        r.startswith("Cumulative return in the bootstrap cone: paper") and "below the cone" in r
        for r in gone["reasons"]
    )

    short = judged(db, "SHORT-001")
    assert short["verdict"] == "NOT YET", short["reasons"]
    waiting = criteria(short)
    need = math.ceil(float(str(waiting["min_trl"]["threshold"]).split()[1]))
    assert f"needs {need - 5} more days by MinTRL" in short["reasons"]
    assert "needs 20 more round trips" in short["reasons"]

    text = cli(
        "report",
        "readiness",
        "--db",
        str(db),
        "--trader",
        "SHORT-001",
        "--strategy",
        "cycle-v1",
        cwd=tmp_path,
        env=ENV,
    ).stdout
    assert "Cycle-000: NOT YET" in text or ": NOT YET" in text
    assert "needs 20 more round trips" in text and "Bailey & López de Prado 2012" in text


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(TOKEN).start()
    yield fake
    fake.stop()


def sample(actor: object, **labels: str) -> float | None:
    registry = actor.proxy().m.get().registry  # type: ignore[attr-defined]
    return registry.get_sample_value("paper_readiness", {"trader": "READY-001", **labels})


def telegram_metrics_and_alert(original: Path, telegram: FakeTelegram, tmp_path: Path) -> None:
    """/readiness replies with the CLI's text; the periodic judgement sets
    paper_readiness; a breaker's halt landing in the ledger turns READY into NO, and the
    alerter raises the change."""
    tmp_path.mkdir()
    db = tmp_path / "copy.db"
    shutil.copyfile(original, db)  # the alerter's store opens it read-write
    text = cli(
        "report",
        "readiness",
        "--db",
        str(db),
        "--trader",
        "READY-001",
        "--strategy",
        "cycle-v1",
        cwd=tmp_path,
        env=ENV,
    ).stdout.rstrip("\n")
    assert len(text) < 4000, "one Telegram message"
    settings = ReadinessSettings(registered="cycle-v1", check_interval_s=0.3)
    spec = SupervisorSpec(
        children=(
            ChildSpec(
                "metrics",
                lambda ctx: MetricsActor.start(
                    ctx, "READY-001", MetricsSettings(), BreakerSettings(), 1.0, 0.5
                ),
            ),
            ChildSpec(
                "alerter",
                lambda ctx: AlerterActor.start(
                    ctx,
                    db,
                    "READY-001",
                    "replay",
                    telegram=loopback_telegram(telegram),
                    token=TOKEN,
                    readiness=settings,
                ),
            ),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    try:
        before = len(telegram.sent())
        telegram.push_command(CHAT, "/readiness")
        telegram.wait_for(lambda _: len(telegram.sent()) > before)
        assert telegram.sent()[before] == (CHAT, text)
        metrics = sup.ask(WhereIs("metrics"), timeout=5)
        wait_for(
            "the verdict's metric",
            lambda: sample(metrics, strategy="Cycle-000", criterion="verdict") == 2.0,
        )
        assert sample(metrics, strategy="Cycle-000", criterion="psr") == 2.0
        assert sample(metrics, strategy="Cycle-000", criterion="stops") == -1.0
        run = query(db, "SELECT max(id) AS id FROM runs WHERE trader_id = 'READY-001'")[0]["id"]
        conn = sqlite3.connect(db)
        conn.execute(
            "INSERT INTO ledger (event_id, run_id, trader_id, at, kind, state, reason, source) "
            "VALUES (0, ?, 'READY-001', '2024-02-09T00:00:00+00:00', 'trading_state', "
            "'HALTED', 'daily loss limit', 'breaker')",
            [run],
        )
        conn.commit()
        conn.close()
        wait_for(
            "the verdict's change",
            lambda: sample(metrics, strategy="Cycle-000", criterion="verdict") == 0.0,
        )
        alerts = wait_for(
            "its alert",
            lambda: query(
                db, "SELECT severity, title, text FROM alert_outbox WHERE key LIKE 'readiness:%'"
            ),
        )
        assert [(a["severity"], a["title"]) for a in alerts] == [
            ("warning", "Readiness READY -> NO")
        ]
        assert "Halts not asked for: daily loss limit (breaker)" in alerts[0]["text"]
    finally:
        sup.stop(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def dashboard(db: Path, tmp_path: Path) -> Iterator[str]:
    """``streamlit run`` of the dashboard on a loopback port over ``db``; its base URL."""
    port = free_port()
    env = {k: v for k, v in ENV.items() if k != "PAPER_DASHBOARD_TOKEN"}
    with (tmp_path / "streamlit.log").open("w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamlit",
                "run",
                str(ROOT / "scripts" / "dashboard.py"),
                "--server.address",
                "127.0.0.1",
                "--server.port",
                str(port),
                "--server.headless",
                "true",
                "--server.fileWatcherType",
                "none",
                "--browser.gatherUsageStats",
                "false",
                "--",
                "--db",
                str(db),
            ],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for("streamlit serving", lambda: proc.poll() is None and up(base), 60)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def up(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as reply:
            return reply.read().strip() == b"ok"
    except OSError:
        return False


def readiness_page(original: Path, tmp_path: Path) -> None:
    """READY-001 as launched from the registry: the page judges it against its entry,
    draws the cone (a band, its mean) with the paper curve, and lists every criterion."""
    tmp_path.mkdir()
    db = tmp_path / "copy.db"
    shutil.copyfile(original, db)
    (entry_row,) = query(db, "SELECT body FROM strategies WHERE name = 'cycle-v1'")
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO jobs (trader_id, preset, pid, config_path, log_path, launched_at, "
        "registered) VALUES ('READY-001', 'p', 1, 'c.toml', 'l.log', '2026-12-01', ?)",
        [entry_row["body"]],
    )
    conn.commit()
    conn.close()
    expected = judged(original, "READY-001")
    chart = '[data-testid="stVegaLiteChart"]'
    with dashboard(db, tmp_path) as base, Browser(tmp_path / "chromium", height=2600) as browser:
        browser.navigate(f"{base}/?page=Readiness&trader=READY-001")
        marks = f"document.querySelectorAll('{chart} svg g.role-mark')"
        # Streamlit draws the page a part at a time: the criteria table may come after
        # the chart and the verdict, so the wait is for every part the test reads.
        titles = json.dumps(
            ["Cycle-000: READY", *(str(c["title"]) for c in criteria(expected).values())]
        )
        browser.wait_until(
            f"{marks}.length >= 3 && {titles}.every(t => document.body.innerText.includes(t))",
            timeout=90,
        )
        drawn = json.loads(
            str(
                browser.evaluate(
                    f"JSON.stringify(Array.from({marks}).map("
                    "g => g.getAttribute('aria-roledescription')))"
                )
            )
        )
        assert drawn[0] == "area mark container" and drawn.count("line mark container") == 2
        text = browser.evaluate("document.body.innerText")
        assert isinstance(text, str)
        assert "Readiness: READY-001" in text and "against cycle-v1" in text
        for c in criteria(expected).values():
            assert str(c["title"]) in text
            if c["figure"] is not None:
                assert f"{c['figure']:.4g}" in text, c
        png = browser.screenshot(ROOT / "test-artifacts" / "dashboard-readiness.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000


def test_an_entry_of_the_previous_shape_reads_with_no_evidence(tmp_path):
    """A registry entry written before the readiness fields keeps reading: no series, no
    trials, and the report says what is missing."""
    db = tmp_path / "old.db"
    connect(db).close()
    body = {
        "name": "old-v1",
        "entry": {
            "strategy_path": "tests.readiness_strategy:Cycle",
            "config_path": "tests.readiness_strategy:CycleConfig",
            "config": {},
        },
        "metrics": {"sharpe": "1.2"},
        "registered_at": "2026-12-01T00:00:00+00:00",
    }
    conn = sqlite3.connect(db)
    conn.execute(
        "INSERT INTO strategies VALUES (?, ?, ?)",
        ["old-v1", json.dumps(body), body["registered_at"]],
    )
    conn.commit()
    conn.close()
    listed = json.loads(
        cli("strategies", "list", "--json", "--db", str(db), cwd=tmp_path, env=ENV).stdout
    )
    assert listed[0]["metrics"]["sharpe"] == "1.2"
    assert listed[0]["evidence"]["daily_returns"] == [] and listed[0]["evidence"]["trials"] is None
    unknown = cli(
        "report", "readiness", "--db", str(db), "--strategy", "nope", cwd=tmp_path, env=ENV
    )
    assert unknown.returncode == 2
    assert unknown.stderr.strip().splitlines() == [
        "error: no registered strategy 'nope' (paper-node strategies list)"
    ]
