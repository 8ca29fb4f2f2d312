"""The operator dashboard, driven through Streamlit's app testing API.

Pages read a real database (seeded through ``Store`` or written by a real
service); control buttons act on a real replay service through the control
table; launching starts a real session from a saved preset, or from a registered
strategy (the promotion record) with a preset.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import streamlit as st
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from protocol import (
    OrderView,
    PositionView,
    RegisteredStrategy,
    Snapshot,
    StrategyView,
    TradingState,
)
from sessions.access import TOKEN_ENV
from sessions.launcher import Launcher, LaunchError, session_state
from sessions.presets import default_preset, validate_preset
from storage import AppDatabase, Job, StatusReport, StorageError, Store, register
from storage.store import connect
from supervisor.config import ConfigError
from tests.filewatch import FileWrites
from tests.service import (
    ROOT,
    ServiceProcess,
    alive,
    ema,
    events,
    last_checkpoint_of,
    node_pids,
    wait_for,
    write_config,
)

APP = str(ROOT / "scripts" / "dashboard.py")
SECRET = "dashboard-test-secret-value-7f3a"
DASHBOARD_TOKEN = "apptest-dashboard-token-5c1e9"
LOGGED_IN = "_dashboard_logged_in"


def app(db: Path, monkeypatch: pytest.MonkeyPatch, logged_in: bool = True) -> AppTest:
    """The dashboard over ``db`` with a login token set; ``logged_in``: this browser
    session has passed the login (the login itself is tested on its own)."""
    monkeypatch.setenv("PAPER_NODE_DB", str(db))
    monkeypatch.setenv(TOKEN_ENV, DASHBOARD_TOKEN)
    at = AppTest.from_file(APP, default_timeout=60)
    if logged_in:
        at.session_state[LOGGED_IN] = True
    return at


def goto(at: AppTest, page: str) -> AppTest:
    return at.sidebar.radio(key="page").set_value(page).run()


def test_the_session_page_shows_each_restarts_catch_up_and_the_gap_it_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 25: a binance-sandbox session's catch-ups, as status and report parity show
    them: the market played, what it held, how long it took, and a gap with its reason."""
    db = tmp_path / "paper.db"
    seed(db, "CU-DASH", ["10000", "10010"])
    store = Store(db)
    run = store.open_run("CU-DASH", "binance-sandbox")
    minute = 60 * 10**9
    store.append_event(
        run,
        "catch_up",
        {"from_ns": 0, "to_ns": 50 * minute, "trades": 4321, "bars": 50, "fills": 3,
         "settlements": 1, "took_s": 1.25, "skipped_ns": 0, "failure": "", "warmed_bars": 40,
         "mode": "binance-sandbox"},
    )  # fmt: skip
    store.append_event(
        run,
        "catch_up",
        {"from_ns": 0, "to_ns": 10 * minute, "trades": 0, "bars": 0, "fills": 0,
         "settlements": 0, "took_s": 7.5, "skipped_ns": 10 * minute,
         "failure": "klines: HTTP 503 unable to process (4 tries)", "warmed_bars": 0,
         "mode": "binance-sandbox"},
    )  # fmt: skip
    store.beat(run, "running")
    store.close()

    at = app(db, monkeypatch)
    at.query_params["page"] = "Session"
    at.query_params["trader"] = "CU-DASH"
    at.run()

    assert not at.exception
    (rows,) = [
        f.value.to_dict("records") for f in at.dataframe if "market played" in f.value.columns
    ]
    assert [(r["trades"], r["fills"], r["took"], r["gap left"]) for r in rows] == [
        ("0", "0", "7.5 s", "10 min"),
        ("4321", "3", "1.2 s", "none"),
    ]
    assert "HTTP 503" in str(rows[0]["why"])


def seed(db: Path, trader_id: str, equities: list[str], beat: bool = True) -> None:
    store = Store(db)
    run = store.open_run(trader_id, "replay")
    now = time.time_ns()
    for i, equity in enumerate(equities):
        store.write_checkpoint(
            run,
            Snapshot(
                taken_at_ns=now + i * 1_000_000_000,
                trader_id=trader_id,
                trading_state=TradingState.ACTIVE,
                currency="USDT",
                balance=Decimal(equity),
                equity=Decimal(equity),
                realized_pnl=Decimal("12.5"),
                unrealized_pnl=Decimal("-3.25"),
                replay_cursor=i,
                open_orders=(
                    OrderView(
                        "O-77",
                        "BTCUSDT-PERP.BINANCE",
                        "BUY",
                        "LIMIT",
                        Decimal("0.010"),
                        Decimal(0),
                        Decimal("25000.5"),
                        "ACCEPTED",
                    ),
                ),
                positions=(
                    PositionView(
                        "P-9",
                        "BTCUSDT-PERP.BINANCE",
                        "LONG",
                        Decimal("0.020"),
                        Decimal("25100"),
                        Decimal("12.5"),
                        Decimal("-3.25"),
                        strategy_id="EmaCross-000",
                    ),
                ),
                strategies=(
                    StrategyView(
                        "EmaCross-000",
                        orders_total=4,
                        fills=3,
                        realized_pnl=Decimal("12.5"),
                        unrealized_pnl=Decimal("-3.25"),
                        fees=Decimal("0.75"),
                        capital=Decimal(50000),
                        equity=Decimal("51000.5"),
                    ),
                ),
            ),
        )
    store.append_event(run, "fill", {"client_order_id": "O-1", "last_qty": "0.02"})
    if beat:
        store.beat(run, "running")
    store.close()


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    """Each test is a new app process as far as cached resources go."""
    st.cache_resource.clear()
    yield
    st.cache_resource.clear()


def texts(at: AppTest) -> str:
    """The page's messages as a reader sees them: text from outside is shown as text,
    its Markdown characters backslash-escaped in the element (``sessions.plain``)."""
    parts = [e.value for e in (*at.error, *at.success, *at.warning, *at.info)]
    return re.sub(r"\\([^\w\s])", r"\1", "\n".join(str(p) for p in parts))


def frame(at: AppTest, first_column: str) -> list[dict[str, object]]:
    """The rows of the page's table whose first column is ``first_column``."""
    return next(
        f.value.to_dict("records") for f in at.dataframe if f.value.columns[0] == first_column
    )


BAR_TYPE = "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
METRICS = {"sharpe": "1.4200", "max_drawdown_pct": "12.5", "trade_count": 340, "pbo": "0.08"}


def registered(
    name: str,
    strategy_path: str = "tests.user_strategy:Breakout",
    metrics: dict[str, object] | None = None,
    **config: object,
) -> RegisteredStrategy:
    return RegisteredStrategy.model_validate(
        {
            "name": name,
            "entry": {
                "strategy_path": strategy_path,
                "config_path": "tests.user_strategy:BreakoutConfig",
                "config": {
                    "instrument_id": "BTCUSDT-PERP.BINANCE",
                    "bar_type": BAR_TYPE,
                    "lookback": 5,
                    "trade_size": "0.050",
                    **config,
                },
            },
            "metrics": METRICS if metrics is None else metrics,
        }
    )


def register_all(db: Path, *entries: RegisteredStrategy) -> None:
    """Straight into the registry, as ``paper-node strategies add`` stores them (without
    its import check: an entry may stop importing after it was registered)."""
    store = connect(db)
    try:
        for entry in entries:
            register(store, entry)
    finally:
        store.close()


# ---------------------------------------------------------------- pages on a seeded database


def test_sessions_page_shows_each_session_with_state_money_and_staleness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    seed(db, "LIVE-001", ["100000", "100250.129"])
    seed(db, "GONE-001", ["100000"], beat=False)

    at = app(db, monkeypatch).run()

    assert not at.exception
    assert at.title[0].value == "Paper-trading sessions"
    table = at.dataframe[0].value
    rows = {r["session"]: r for r in table.to_dict("records")}
    assert set(rows) == {"LIVE-001", "GONE-001"}
    assert "running" in rows["LIVE-001"]["state"]
    assert "not_running" in rows["GONE-001"]["state"]
    assert rows["LIVE-001"]["equity"] == "100,250.13"  # rounded for display only
    assert rows["LIVE-001"]["open orders"] == 1
    assert rows["LIVE-001"]["positions"] == 1
    assert rows["LIVE-001"]["realized PnL"] == "12.50"
    assert rows["LIVE-001"]["fills"] == 1


def test_session_page_charts_equity_and_drawdown_and_lists_orders_events_alerts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    seed(db, "CURVE-001", ["100000", "101000", "98980", "102000"])
    appdb = AppDatabase(db)
    curve = appdb.equity_curve("CURVE-001")
    appdb.close()
    expected = [Decimal(x) for x in ("100000", "101000", "98980", "102000")]
    assert [p["equity"] for p in curve] == expected
    assert curve[2]["drawdown_pct"] == Decimal("-2")  # 98980 is 2 % under the 101000 peak
    assert curve[3]["drawdown_pct"] == 0

    at = app(db, monkeypatch)
    at.query_params["page"] = "Session"
    at.query_params["trader"] = "CURVE-001"
    at.run()

    assert not at.exception
    assert at.title[0].value.startswith("CURVE-001")
    charts = at.get("vega_lite_chart")
    assert len(charts) == 2, "an equity curve and a drawdown chart"
    assert '"equity"' in charts[0].proto.spec and "drawdown" in charts[1].proto.spec
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Equity USDT"] == "102,000.00"
    assert metrics["Unrealized PnL"] == "-3.25"
    frames = [f.value.to_dict("records") for f in at.dataframe]
    assert frames[0][0]["position_id"] == "P-9"
    assert {"strategy_id": "EmaCross-000", "fills": 3, "fees": "0.75"}.items() <= frames[1][
        0
    ].items()
    assert frames[1][0]["return on capital"] == "+2.00%", "its return on its own capital"
    assert {"client_order_id": "O-77"}.items() <= frames[2][0].items()
    assert frames[2][0]["price"] == "25000.5"
    assert frames[3][0]["kind"] == "fill"


def test_one_database_connection_serves_every_page_and_browser_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    seed(db, "ONE-001", ["100000", "100100"])
    register_all(db, registered("breakout-v1"))
    opened: list[str] = []
    real_connect = sqlite3.connect

    def counting_connect(*args: object, **kwargs: object) -> sqlite3.Connection:
        opened.append(str(args[0]) if args else "?")
        return real_connect(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite3, "connect", counting_connect)
    first, second = app(db, monkeypatch), app(db, monkeypatch)
    for at in (first, second):
        at.run()
        for page in ("Session", "Trades", "Registry", "Presets & launch", "Sessions", "Session"):
            goto(at, page)
            assert not at.exception, page
    assert opened == [str(db)]


# ---------------------------------------------------------------- login


def test_without_a_login_only_the_login_form_shows_and_the_right_token_opens_the_page(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    seed(db, "LOGIN-001", ["100000", "100100"])
    at = app(db, monkeypatch, logged_in=False)
    at.query_params["page"] = "Session"
    at.query_params["trader"] = "LOGIN-001"
    at.run()
    assert not at.exception
    assert [b.key for b in at.button] == ["login"]  # no control, no page, no sidebar
    assert not at.sidebar.radio and not at.dataframe and "LOGIN-001" not in texts(at)

    at.text_input(key="login_token").input(DASHBOARD_TOKEN[:-1] + "x")
    at.button(key="login").click().run()
    assert "Wrong token." in texts(at)
    assert [b.key for b in at.button] == ["login"]

    at.text_input(key="login_token").input(DASHBOARD_TOKEN)
    at.button(key="login").click().run()
    assert not at.exception
    assert not at.button(key="control_halt").disabled  # the session page, as before
    assert "LOGIN-001" in at.title[0].value


@pytest.mark.parametrize(
    ("address", "where"),
    [(None, "every interface (no server.address)"), ("0.0.0.0", "address 0.0.0.0")],
)
def test_another_address_than_loopback_without_a_login_is_refused_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, address: str | None, where: str
) -> None:
    """Streamlit with no ``server.address`` (started away from the repository's
    .streamlit/config.toml, which says 127.0.0.1) listens on every interface: without a
    token there is no page, only the refusal."""
    db = tmp_path / "paper.db"
    seed(db, "OPEN-001", ["100000"])
    at = app(db, monkeypatch)
    monkeypatch.delenv(TOKEN_ENV)
    configured = st_config.get_option("server.address")
    st_config.set_option("server.address", address)
    try:
        at.run()
    finally:
        st_config.set_option("server.address", configured)
    [error] = at.error
    assert error.value.startswith(
        f"refusing to serve the dashboard on {where} without a login: set {TOKEN_ENV}"
    )
    assert not at.button and not at.sidebar.radio and not at.dataframe

    at.run()  # on loopback (the repository's config) it serves without a login
    assert not at.error and at.sidebar.radio(key="page").value == "Sessions"


# ---------------------------------------------------------------- presets


def test_preset_validation_names_each_bad_field() -> None:
    body = default_preset()
    body["sizing"]["stop_loss_pct"] = "0"
    body["strategy"]["fast_period"] = "ten"
    body["risk"]["max_leverage"] = "9"  # above account.leverage 5
    body["service"]["trader_id"] = "X-1"
    with pytest.raises(ConfigError) as caught:
        validate_preset("swing", body, env={})
    problems = "\n".join(caught.value.problems)
    assert "sizing.stop_loss_pct: must be > 0" in problems
    assert "strategy.fast_period: expected an integer, got 'ten'" in problems
    assert "risk.max_leverage (9) exceeds account.leverage (5)" in problems
    assert "service.trader_id: set per session" in problems

    kelly = default_preset()
    kelly["sizing"].update(method="kelly", win_rate="0.3", payoff_ratio="1")
    with pytest.raises(ConfigError, match=r"kelly with win_rate 0\.3 and payoff_ratio 1 has no"):
        validate_preset("kelly", kelly, env={})

    testnet = default_preset()
    testnet["service"]["mode"] = "binance-testnet"
    with pytest.raises(ConfigError, match="needs environment variable BINANCE_FUTURES_TESTNET"):
        validate_preset("tn", testnet, env={})
    with pytest.raises(ConfigError, match="name: 'bad name!' is not valid"):
        validate_preset("bad name!", default_preset(), env={})

    config = validate_preset("swing", default_preset(), env={})
    assert config.node.sizing.stop_loss_pct == Decimal("0.02")


def test_presets_page_rejects_bad_values_with_the_field_named_and_saves_good_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    at = goto(app(db, monkeypatch).run(), "Presets & launch")
    at.text_input(key="preset_name").set_value("swing")
    at.text_input(key="preset_sizing.stop_loss_pct").set_value("-1")
    at.text_input(key="preset_strategy.slow_period").set_value("5")
    at.selectbox(key="preset_sizing.method").set_value("atr")
    at.button(key="preset_save").click().run()

    error = "\n".join(e.value for e in at.error)
    assert "Not saved" in error
    assert "sizing.stop_loss_pct: must be > 0, got -1" in error
    assert "strategy: fast_period (10) must be less than slow_period (5)" in error
    assert AppDatabase(db).preset_names() == []

    at.text_input(key="preset_sizing.stop_loss_pct").set_value("0.03")
    at.text_input(key="preset_strategy.slow_period").set_value("40")
    at.button(key="preset_save").click().run()
    assert "Preset 'swing' saved." in texts(at)
    saved = AppDatabase(db).load_preset("swing")
    assert saved is not None
    assert saved["sizing"] == saved["sizing"] | {"method": "atr", "stop_loss_pct": "0.03"}
    assert saved["strategy"]["slow_period"] == 40

    # editing the saved preset starts from its values
    at.selectbox(key="preset_pick").set_value("swing").run()
    assert at.text_input(key="preset_sizing.stop_loss_pct").value == "0.03"
    assert at.selectbox(key="preset_sizing.method").value == "atr"


# ---------------------------------------------------------------- control on a real service


def test_control_buttons_halt_resume_and_stop_a_running_replay_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config, db = write_config(tmp_path, trader="CTL-001", speed=300, ladder=2)
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("running", lambda r: r["state"] == "running" and r["checkpoints"] > 0)
        at = app(db, monkeypatch)
        at.query_params["page"] = "Session"
        at.query_params["trader"] = "CTL-001"
        at.run()
        assert not at.exception
        assert at.button(key="control_resume").disabled

        at.text_input(key="control_reason").set_value("operator test")
        at.button(key="control_halt").click().run()
        assert "Halt CTL-001?" in texts(at), "a halt needs a confirmation"
        assert service.status()["state"] == "running"  # type: ignore[index]
        at.button(key="control_confirm").click().run(timeout=60)
        assert "halt done" in texts(at), texts(at)
        report = service.wait_status("halted", lambda r: r["state"] == "halted")
        assert report["open_orders"] == 0
        at.run()
        assert not at.button(key="control_resume").disabled
        assert at.button(key="control_halt").disabled

        at.button(key="control_resume").click().run()
        at.button(key="control_confirm").click().run(timeout=60)
        assert "resume done" in texts(at), texts(at)
        service.wait_status("running again", lambda r: r["state"] == "running")

        at.button(key="control_stop").click().run()
        at.button(key="control_cancel").click().run()
        assert service.proc.poll() is None, "cancel must not stop the service"
        at.button(key="control_stop").click().run()
        at.button(key="control_confirm").click().run(timeout=60)
        assert "stop done" in texts(at), texts(at)
        assert service.wait(timeout=60) == 0
        history = AppDatabase(db).control_history("CTL-001")
        assert [(h["command"], h["status"]) for h in history] == [
            ("stop", "done"),
            ("resume", "done"),
            ("halt", "done"),
        ]
        assert history[-1]["reason"] == "operator test"
    finally:
        service.ensure_dead()


def test_a_strategy_is_halted_and_resumed_alone_from_its_buttons(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    two = ema("001", "BTCUSDT-PERP.BINANCE") + ema("002", "BTCUSDT-PERP.BINANCE")
    config, db = write_config(tmp_path, trader="CTL-002", speed=300, ladder=0, extra=two)
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("both strategies in a checkpoint", lambda r: len(r["strategies"]) == 2)
        at = app(db, monkeypatch)
        at.query_params["page"] = "Session"
        at.query_params["trader"] = "CTL-002"
        at.run()
        assert not at.exception
        assert at.button(key="strategy_resume").disabled
        at.selectbox(key="strategy_pick").set_value("EmaCross-002").run()
        at.button(key="strategy_halt").click().run(timeout=60)
        assert "halt done: EmaCross-002 halted" in texts(at), texts(at)
        report = service.wait_status(
            "its halt checkpointed",
            lambda r: (
                {s["strategy_id"]: s["trading_state"] for s in r["strategies"]}
                == {"EmaCross-001": "ACTIVE", "EmaCross-002": "HALTED"}
            ),
        )
        assert report["state"] == "running", "the account trades on"
        at.run()
        assert not at.button(key="strategy_resume").disabled
        at.button(key="strategy_resume").click().run()
        assert "Resume EmaCross-002? Its orders pass again." in texts(at)
        at.button(key="strategy_confirm_yes").click().run(timeout=60)
        assert "resume done: EmaCross-002 resumed" in texts(at), texts(at)
        history = AppDatabase(db).control_history("CTL-002")
        assert [(h["command"], h["status"]) for h in history] == [
            ("resume", "done"),
            ("halt", "done"),
        ]
        assert service.terminate() == 0
    finally:
        service.ensure_dead()


# ---------------------------------------------------------------- launching


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """A state directory outside /tmp, so the launch can be checked for writes to /tmp."""
    path = ROOT / "test-artifacts" / f"dashboard-state-{uuid.uuid4().hex[:8]}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_launches_are_capped_and_a_testnet_launch_asks_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each launch is a whole service: past PAPER_DASHBOARD_MAX_SESSIONS live ones the
    dashboard launches no more; a binance-testnet preset trades with the dashboard's
    keys, so its launch waits for a confirmation."""
    db = tmp_path / "paper.db"
    appdb = AppDatabase(db)
    appdb.save_preset("swing", default_preset())
    testnet = default_preset()
    testnet["service"]["mode"] = "binance-testnet"
    appdb.save_preset("tn", testnet)
    # A live launched session, as the job table and /proc see one.
    live = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", "run_supervisor.py"]
    )
    try:
        appdb.record_launch("SWING-001", "swing", live.pid, tmp_path / "c", tmp_path / "l")
        monkeypatch.setenv("PAPER_DASHBOARD_MAX_SESSIONS", "1")
        at = goto(app(db, monkeypatch).run(), "Presets & launch")
        at.selectbox(key="launch_preset").set_value("swing")
        at.button(key="launch").click().run()
        assert (
            "not launched: 1 sessions launched from this dashboard are live, the most it "
            "keeps at once (PAPER_DASHBOARD_MAX_SESSIONS); stop one first"
        ) in texts(at)

        at.selectbox(key="launch_preset").set_value("tn")
        at.button(key="launch").click().run()
        assert "Preset 'tn' is a binance-testnet session" in texts(at)
        assert not at.error, "nothing launched before the confirmation"
        at.button(key="launch_confirm_no").click().run()
        assert "binance-testnet" not in texts(at)
        at.button(key="launch").click().run()
        at.button(key="launch_confirm_yes").click().run()
        assert "not launched: 1 sessions" in texts(at)  # confirmed: on to the cap
        assert [j.trader_id for j in appdb.jobs()] == ["SWING-001"]
    finally:
        live.kill()
        live.wait()
        for job in appdb.jobs():  # a launch the cap failed to stop: no process left behind
            if job.pid != live.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(job.pid, signal.SIGKILL)


def test_a_session_launched_from_a_preset_trades_writes_nothing_to_tmp_and_shows_a_crash(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = state_dir / "paper.db"
    preset = default_preset()
    preset["service"].update(checkpoint_interval_s=1.0, heartbeat_interval_s=0.5)
    preset["replay"]["speed"] = 300.0
    preset["strategy"]["ladder_orders"] = 2
    appdb = AppDatabase(db)
    appdb.save_preset("swing", preset)
    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_API_KEY", SECRET)
    monkeypatch.setenv("BINANCE_FUTURES_TESTNET_API_SECRET", SECRET)

    at = goto(app(db, monkeypatch).run(), "Presets & launch")
    at.button(key="launch").click().run()
    assert "Launched SWING-001" in texts(at), texts(at)
    job = appdb.job("SWING-001")
    assert job is not None
    # What the session's own processes write (its node child included), traced from
    # their system calls - not a scan of /tmp, where other processes write too.
    writes = FileWrites(job.pid, state_dir / "strace.log")
    try:
        wait_for(
            "the launched session trading with checkpoints",
            lambda: (s := appdb.status("SWING-001", 5)) and s["checkpoints"] > 1 and s["fills"] > 0,
            timeout=90,
        )
        writes.stop()
        written = writes.paths()
        assert any(p.startswith(str(state_dir)) for p in written), "the trace sees the session"
        own = str(state_dir.resolve())
        to_tmp = {p for p in written if p.startswith("/tmp/") and not p.startswith(own)}
        assert to_tmp == set(), f"launching wrote under /tmp: {sorted(to_tmp)[:10]}"

        config = Path(job.config_path)
        assert config.parent == state_dir / "sessions" / "SWING-001"
        assert config.stat().st_mode & 0o077 == 0
        for path in (config, Path(job.log_path), db):
            assert SECRET not in path.read_text(errors="replace"), path

        at.button(key="open_launched").click().run()
        assert at.title[0].value.startswith("SWING-001")
        assert "running" in at.title[0].value
        assert len(at.get("vega_lite_chart")) == 2

        os.kill(job.pid, signal.SIGKILL)
        wait_for("the job reaped", lambda: not alive(job.pid), timeout=20)
        goto(at, "Sessions")
        rows = {r["session"]: r for r in at.dataframe[0].value.to_dict("records")}
        assert "crashed" in rows["SWING-001"]["state"]
        assert rows["SWING-001"]["exit code"] == -signal.SIGKILL
        assert at.metric[2].value == "1"  # crashed count
    finally:
        writes.stop()
        if alive(job.pid):
            os.kill(job.pid, signal.SIGKILL)
        for pid in node_pids(db):
            wait_for(f"node child {pid} gone", lambda pid=pid: not alive(pid), timeout=30)
        appdb.close()


# ---------------------------------------------------------------- the strategy registry


def test_the_registry_page_lists_each_entry_with_its_import_paths_and_exact_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    at = goto(app(db, monkeypatch).run(), "Registry")
    assert not at.exception
    assert "No strategy registered yet" in texts(at)

    slow = registered("breakout-slow", metrics={"sharpe": "0.9", "period": "2022-01"}, lookback=30)
    register_all(db, registered("breakout-v1"), slow)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Strategy registry"
    rows = {r["name"]: r for r in frame(at, "name")}
    assert set(rows) == {"breakout-v1", "breakout-slow"}
    v1 = rows["breakout-v1"]
    assert v1["strategy_path"] == "tests.user_strategy:Breakout"
    assert v1["config_path"] == "tests.user_strategy:BreakoutConfig"
    assert json.loads(str(v1["config"]))["lookback"] == 5
    assert json.loads(str(rows["breakout-slow"]["config"]))["lookback"] == 30
    # Exactly as registered (Decimal strings, not floats); a metric not registered is a dash.
    assert [v1[m] for m in ("sharpe", "max_drawdown_pct", "trade_count", "pbo", "sortino")] == [
        "1.4200", "12.5", "340", "0.08", "-",
    ]  # fmt: skip
    assert rows["breakout-slow"]["period"] == "2022-01"
    assert v1["sessions"] == "-"
    assert "Save a preset first" in texts(at), "launching needs a preset for the market"


def test_a_registered_strategy_that_no_longer_runs_is_refused_with_the_checks_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    register_all(
        db,
        registered("gone", strategy_path="tests.nowhere:Breakout"),
        registered("eth", instrument_id="ETHUSDT-PERP.BINANCE"),
    )
    appdb = AppDatabase(db)
    appdb.save_preset("swing", default_preset())
    at = goto(app(db, monkeypatch).run(), "Registry")

    at.selectbox(key="registry_pick").set_value("gone")
    at.button(key="registry_launch").click().run()
    assert not at.exception
    assert (
        "registered strategy 'gone' cannot run with preset 'swing': "
        "strategy.entry.strategy_path: cannot import tests.nowhere:Breakout"
    ) in "\n".join(e.value for e in at.error)

    # It imports, but its bars are not its instrument's: the loader's cross-check says so.
    at.selectbox(key="registry_pick").set_value("eth")
    at.button(key="registry_launch").click().run()
    assert (
        "strategy.entry.config.bar_type: BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL is not "
        "ETHUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL"
    ) in "\n".join(e.value for e in at.error)
    assert appdb.jobs() == [], "nothing was started or recorded"
    assert not (tmp_path / "sessions").exists()
    appdb.close()


def test_a_registered_strategys_session_shows_its_paper_results_beside_the_backtest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a seeded session, so every paper figure is known: equity 100000 → 101000 →
    98980 → 102000 is a 2 % return and a 2 % drawdown (98980 under the 101000 peak)."""
    db = tmp_path / "paper.db"
    seed(db, "BREAKOUT_V1-001", ["100000", "101000", "98980", "102000"])
    register_all(db, registered("breakout-v1"))
    appdb = AppDatabase(db)
    launched = appdb.registered("breakout-v1")
    assert launched is not None
    # pid: this test's own process, which is no service: the session reads as gone.
    appdb.record_launch(
        "BREAKOUT_V1-001", "swing", os.getpid(), tmp_path / "c", tmp_path / "l", launched
    )
    # Re-registered since with other metrics: the session keeps the ones it was launched on.
    store = connect(db)
    register(store, registered("breakout-v1", metrics={"sharpe": "3"}), replace=True)
    store.close()

    at = app(db, monkeypatch)
    at.query_params["page"] = "Session"
    at.query_params["trader"] = "BREAKOUT_V1-001"
    at.run()
    assert not at.exception
    assert "registered strategy breakout-v1" in at.caption[0].value
    rows = {
        r["metric"]: (r["backtest (registered)"], r["paper (this session)"])
        for r in frame(at, "metric")
    }
    assert rows["sharpe"] == ("1.4200", "-")
    assert rows["max_drawdown_pct"] == ("12.5", "2.00")
    assert rows["total_return_pct"] == ("-", "2.00")
    assert rows["trade_count"] == ("340", "1")  # round trips beside fills, as the note says
    assert rows["pbo"] == ("0.08", "-")
    assert rows["period"][0] == "-" and " → " in rows["period"][1]
    assert rows["realized_pnl (USDT)"] == ("-", "12.5")
    assert rows["fees (USDT)"] == ("-", "0.75")
    assert "sortino" not in rows, "a metric neither side has is left out"

    goto(at, "Sessions")
    (row,) = at.dataframe[0].value.to_dict("records")
    assert row["registered strategy"] == "breakout-v1"
    goto(at, "Registry")
    assert frame(at, "name")[0]["sessions"] == "BREAKOUT_V1-001"
    assert frame(at, "name")[0]["sharpe"] == "3"  # the registry itself shows the new entry
    appdb.close()


def test_launching_a_registered_strategy_starts_a_session_that_trades_it(
    state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = state_dir / "paper.db"
    # The trader's module imports from PYTHONPATH, for the check and for the session.
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    fast = default_preset()
    fast["service"].update(checkpoint_interval_s=1.0, heartbeat_interval_s=0.5)
    fast["replay"]["speed"] = 300.0
    appdb = AppDatabase(db)
    appdb.save_preset("aaa", default_preset())  # listed first: the pick has to matter
    appdb.save_preset("swing", fast)
    register_all(db, registered("breakout-v1"))

    at = goto(app(db, monkeypatch).run(), "Registry")
    at.selectbox(key="registry_preset").set_value("swing")
    at.button(key="registry_launch").click().run(timeout=120)
    assert "Launched BREAKOUT_V1-001" in texts(at), texts(at)
    job = appdb.job("BREAKOUT_V1-001")
    assert job is not None
    try:
        assert job.preset == "swing"
        assert job.registered is not None and job.registered.name == "breakout-v1"
        config = tomllib.loads(Path(job.config_path).read_text())
        assert config["strategies"] == [
            {
                "strategy_path": "tests.user_strategy:Breakout",
                "config_path": "tests.user_strategy:BreakoutConfig",
                "config": {
                    "instrument_id": "BTCUSDT-PERP.BINANCE",
                    "bar_type": BAR_TYPE,
                    "lookback": 5,
                    "trade_size": "0.050",
                },
            }
        ]
        assert config["replay"]["speed"] == 300.0, "the preset's market and pace"
        wait_for(
            "the registered strategy trading, checkpointed",
            lambda: (
                (s := appdb.status("BREAKOUT_V1-001", 5))
                and s["fills"] >= 3
                and s["checkpoints"] > 1
            ),
            timeout=90,
        )
        fills = [p for _, p in events(db, "fill")]
        assert all(str(p["strategy_id"]).startswith("Breakout") for p in fills), fills
        views = last_checkpoint_of(db, "BREAKOUT_V1-001")["strategies"]
        assert isinstance(views, list) and views
        assert all(str(v["strategy_id"]).startswith("Breakout") for v in views), views
        os.kill(job.pid, signal.SIGTERM)  # a clean stop: its final checkpoint
        wait_for("the session stopped", lambda: not alive(job.pid), timeout=60)
        status = appdb.status("BREAKOUT_V1-001", 5)
        assert status is not None and status["state"] == "stopped"

        at.button(key="open_registry_launched").click().run()
        assert not at.exception
        assert at.title[0].value.startswith("BREAKOUT_V1-001")
        rows = {
            r["metric"]: (r["backtest (registered)"], r["paper (this session)"])
            for r in frame(at, "metric")
        }
        assert rows["trade_count"] == ("340", str(status["fills"]))
        assert rows["sharpe"] == ("1.4200", "-")
        assert rows["realized_pnl (USDT)"] == ("-", status["realized_pnl"])
        curve = appdb.equity_curve("BREAKOUT_V1-001")
        drawdown = -min(p["drawdown_pct"] for p in curve)
        assert rows["max_drawdown_pct"] == ("12.5", f"{drawdown:.2f}")
    finally:
        if alive(job.pid):
            os.kill(job.pid, signal.SIGKILL)
        for pid in node_pids(db):
            wait_for(f"node child {pid} gone", lambda pid=pid: not alive(pid), timeout=30)
        appdb.close()


# ---------------------------------------------------------------- how a session's state is told


def _status(state: str, heartbeat: bool = True) -> StatusReport:
    return StatusReport(
        state=state, mode="replay", trader_id="T-1", run_id=1, pid=1, started_at="",
        stopped_at=None, heartbeat_at="now" if heartbeat else None, heartbeat_age_s=None,
        last_checkpoint_at=None, checkpoints=0, trading_state=None, currency=None, balance=None,
        equity=None, realized_pnl=None, unrealized_pnl=None, open_orders=0, positions=[],
        fills=0, rejects=0, replay_cursor=None, replay_total=None, data_age_s=None,
        strategies=[], funding=None, account_return=None, catch_ups=[], gaps=0,
    )  # fmt: skip


def _job(exit_code: int | None) -> Job:
    return Job(1, "T-1", "p", 1, "c", "l", "now", None, exit_code)


@pytest.mark.parametrize(
    ("status", "job", "alive", "expected"),
    [
        (_status("running"), _job(None), True, "running"),
        (_status("halted"), None, False, "halted"),
        (_status("running"), _job(None), False, "crashed"),  # fresh beat, dead pid
        (_status("running"), _job(-9), False, "crashed"),
        (_status("stopped"), _job(3), False, "stopped"),  # escalated, but stopped cleanly
        (_status("not_running"), _job(0), False, "stopped"),
        (None, _job(None), True, "starting"),
        (None, _job(2), False, "crashed"),  # e.g. refused its config
        (_status("not_running"), _job(None), True, "unresponsive"),
        (_status("not_running"), None, False, "not_running"),
    ],
)
def test_session_state_joins_heartbeat_and_job(
    status: StatusReport | None, job: Job | None, alive: bool, expected: str
) -> None:
    assert session_state(status, job, alive) == expected


def test_a_corrupt_database_is_reported_on_the_page_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    db.write_bytes(b"this is not a database" * 100)
    at = app(db, monkeypatch).run()
    assert not at.exception
    assert "Cannot open the database" in at.error[0].value
    assert str(db) in at.error[0].value


def test_a_launch_that_cannot_be_recorded_is_stopped_not_left_untracked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    appdb = AppDatabase(tmp_path / "paper.db")
    appdb.save_preset("swing", default_preset())
    launcher = Launcher(appdb, tmp_path)
    started: list[int] = []
    real_record = appdb.record_launch

    def refuse(
        trader_id: str, preset: str, pid: int, config: Path, log: Path, registered: object = None
    ) -> Job:
        started.append(pid)
        raise StorageError("database is locked")

    monkeypatch.setattr(appdb, "record_launch", refuse)
    with pytest.raises(LaunchError, match="SWING-001 started but could not be recorded"):
        launcher.launch("swing")
    assert started and not alive(started[0])
    monkeypatch.setattr(appdb, "record_launch", real_record)
    assert appdb.jobs() == []
    appdb.close()


# ---------------------------------------------------------------- the parity report


@pytest.mark.node
def test_the_parity_panel_sets_the_session_beside_the_backtest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_parity import play, write

    config, db = write(tmp_path, "PAR-DASH", speed=0, ladder=0)
    play(config, db, tmp_path)
    at = app(db, monkeypatch)
    at.query_params["page"] = "Session"
    at.query_params["trader"] = "PAR-DASH"
    at.run()
    assert not at.exception
    at.button(key="run-parity:PAR-DASH").click().run(timeout=300)

    assert not at.exception
    assert "Equal to the backtest over 4,320 bars" in texts(at)
    table = next(
        f.value.to_dict("records")
        for f in at.dataframe
        if list(f.value.columns) == ["", "session", "backtest"]
    )
    rows = {r[""]: (r["session"], r["backtest"]) for r in table}
    assert rows["fills"][0] == rows["fills"][1] and int(rows["fills"][0]) > 100
    assert rows["balance USDT"][0] == rows["balance USDT"][1]


def test_one_parity_report_runs_at_a_time_across_browser_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each report runs a BacktestEngine in a child: a second browser asking while one
    runs is told to wait, not given a second child."""
    import sessions.parity

    db = tmp_path / "paper.db"
    seed(db, "PAR-CAP", ["100000"])
    entered, release = threading.Event(), threading.Event()
    calls: list[str] = []

    def held_report(path: Path, trader_id: str) -> sessions.parity.ParityOutcome:
        calls.append(trader_id)
        entered.set()
        release.wait(30)
        return sessions.parity.ParityOutcome(None, "held by the test")

    monkeypatch.setattr(sessions.parity, "run_parity", held_report)
    first, second = app(db, monkeypatch), app(db, monkeypatch)
    for at in (first, second):
        at.query_params["page"] = "Session"
        at.query_params["trader"] = "PAR-CAP"
        at.run()
    running = threading.Thread(
        target=lambda: first.button(key="run-parity:PAR-CAP").click().run(timeout=60)
    )
    running.start()
    try:
        assert entered.wait(30)
        second.button(key="run-parity:PAR-CAP").click().run()
        assert "1 parity report(s) already running on this dashboard" in texts(second)
    finally:
        release.set()
        running.join(60)
    assert calls == ["PAR-CAP"]
    assert "No parity report: held by the test" in texts(first)


def test_the_parity_panel_says_why_there_is_no_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    seed(db, "OLD-001", ["100000"])  # a run that recorded no settings (an older service)
    at = app(db, monkeypatch)
    at.query_params["page"] = "Session"
    at.query_params["trader"] = "OLD-001"
    at.run()
    at.button(key="run-parity:OLD-001").click().run(timeout=120)
    assert not at.exception
    assert "No parity report: error: run 1 of OLD-001 recorded no settings" in texts(at)
