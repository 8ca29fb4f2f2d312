"""binance-testnet's account: the funding-income poll (its retry budget, paging, schedule
and request rate), one session per testnet account on the host, and the endpoints a
session uses. The poll is driven here with a fake signed client and a real classifier;
the sessions run against the loopback emulator (``tests.binance_emulator``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.adapters.binance.common.enums import BinanceAccountType, BinanceEnvironment
from nautilus_trader.adapters.binance.common.urls import (
    get_futures_user_stream_url,
    get_http_base_url,
    get_ws_api_base_url,
    get_ws_base_url,
    get_ws_private_base_url,
    get_ws_public_base_url,
)
from nautilus_trader.adapters.binance.http.error import BinanceClientError, BinanceServerError
from nautilus_trader.core.nautilus_pyo3 import HttpMethod

from actors.classifier import ClassifierActor, classify
from actors.inbox import Inbox
from node.funding import (
    INCOME_OPERATION,
    INCOME_PATH,
    LOOKBACK_MS,
    PAGE_LIMIT,
    IncomeSchedule,
    VenueIncome,
)
from protocol import (
    BinanceSettings,
    Decision,
    DecisionKind,
    ErrorRaised,
    FundingPaid,
    Halt,
    Mode,
    OperationSucceeded,
    WhereIs,
)
from sessions.launcher import Launcher
from sessions.presets import default_preset
from storage import AppDatabase
from storage.lock import LOCK_DIR_ENV, account_lock_dir
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from supervisor import endpoints as ep
from tests.binance_emulator import BinanceEmulator
from tests.helpers import Recorded, recorder, settled
from tests.service import CLI, ServiceProcess, cli, wait_for
from tests.test_binance_modes import KEY, SECRET, env, write

SECOND = 10**9
HOUR = 3600 * SECOND
# Ten seconds after a settlement (2026-03-02 00:00 UTC).
T0 = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp()) * SECOND + 10 * SECOND
OWNERS = {"BTCUSDT": ("BTCUSDT-PERP.BINANCE", "EmaCross-000")}


# ---------------------------------------------------------------- the income poll, unit-level


class FakeVenue:
    """``/fapi/v1/income`` as Binance serves it (``startTime``/``endTime`` inclusive,
    oldest first, at most ``limit`` rows); the next ``failures`` calls fail instead."""

    def __init__(self, rows: list[dict[str, object]] | None = None) -> None:
        self.rows = rows or []
        self.failures: list[Exception] = []
        self.calls: list[dict[str, str]] = []

    async def sign_request(
        self,
        http_method: HttpMethod,
        url_path: str,
        payload: dict[str, str] | None = None,
        ratelimiter_keys: list[str] | None = None,
    ) -> object:
        assert http_method == HttpMethod.GET and url_path == INCOME_PATH
        params = dict(payload or {})
        self.calls.append(params)
        if self.failures:
            raise self.failures.pop(0)
        start, end = int(params["startTime"]), int(params["endTime"])
        chosen = [r for r in self.rows if start <= int(str(r["time"])) <= end]
        return json.dumps(chosen[: int(params["limit"])]).encode()


def row(tran_id: int, at_ms: int, amount: str = "-0.25", symbol: str = "BTCUSDT"):
    return {
        "symbol": symbol,
        "incomeType": "FUNDING_FEE",
        "income": amount,
        "asset": "USDT",
        "info": "",
        "time": at_ms,
        "tranId": tran_id,
        "tradeId": "",
    }


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def classifier() -> Iterator[tuple[object, Inbox, object, Clock]]:
    """A real classifier (the default retry budget, 5 in 600 s) on a fake clock, with
    recording peers: the gate would get its halt."""
    inbox, clock = Inbox(), Clock()
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            recorder("gate", inbox),
            ChildSpec("classifier", lambda ctx: ClassifierActor.start(ctx, clock=clock)),
        )
    )
    sup = Supervisor.start(spec, parent=Inbox())
    try:
        yield sup.ask(WhereIs("classifier"), timeout=5), inbox, sup, clock
    finally:
        sup.stop(timeout=10)


def drive(
    income: VenueIncome, until_ns: int, start_ns: int = T0, step_ns: int = SECOND
) -> list[int]:
    """Tick the node's report timer from ``start_ns`` to ``until_ns``; when each poll ran."""
    ran: list[int] = []
    now = start_ns
    while now < until_ns:
        if income.due(now):
            ran.append(now)
            asyncio.run(income.run(now))
        now += step_ns
    return ran


def test_six_transient_income_failures_then_a_success_do_not_halt(classifier):
    """The venue fails the income poll six times, then answers: no failure is fatal (the
    poll's retries back off inside the classifier's budget), the success clears the
    budget (the next failure is the first again), and the payment is recorded once."""
    ref, inbox, sup, clock = classifier
    venue = FakeVenue([row(9_000_001, T0 // 10**6 + 100_000)])
    venue.failures = [
        BinanceServerError(503, "Service Unavailable", {}),
        TimeoutError("timed out"),
        ConnectionResetError("connection reset by peer"),
        BinanceServerError(503, {"code": -1001, "msg": "Internal error; try again."}, {}),
        TimeoutError("timed out"),
        BinanceServerError(504, "Gateway Timeout", {}),
    ]
    paid: list[FundingPaid] = []
    told: list[tuple[object, object]] = []

    def report(message: ErrorRaised | OperationSucceeded) -> None:
        told.append((message, ref.ask(message, timeout=5)))

    income = VenueIncome(venue, OWNERS, paid.append, lambda: 7, T0 // 10**6, report)
    now = T0
    while not any(isinstance(m, OperationSucceeded) for m, _ in told):
        clock.now = now / SECOND
        if income.due(now):
            asyncio.run(income.run(now))
        now += SECOND
        assert now < T0 + 2 * HOUR, told
    failures = [(m, d) for m, d in told if isinstance(m, ErrorRaised)]
    assert len(failures) == 6 and isinstance(told[-1][0], OperationSucceeded)
    for message, decision in failures:
        assert isinstance(decision, Decision) and message.operation == INCOME_OPERATION
        assert decision.kind is DecisionKind.TRANSIENT, decision
        assert decision.attempt <= 4, "at most 4 failures in any 10 minutes"
    assert len(venue.calls) == 7
    assert [(p.strategy_id, p.amount, p.bar) for p in paid] == [
        ("EmaCross-000", Decimal("-0.25"), 7)
    ]
    # The success cleared the budget: a failure now is the first again.
    timeout = ErrorRaised("node.funding", "TimeoutError", "timed out", operation="income")
    again = ref.ask(timeout, timeout=5)
    assert again.kind is DecisionKind.TRANSIENT and again.attempt == 1
    settled(sup, "gate")
    assert not [r for r in inbox.seen if isinstance(r, Recorded) and isinstance(r.message, Halt)]


def test_a_success_between_failures_clears_the_income_budget(classifier):
    """A venue that fails every other poll for 32 hours (old code: every failure counted
    against a budget no success ever cleared): each success starts it over."""
    ref, inbox, sup, clock = classifier
    venue = FakeVenue()
    decisions: list[object] = []

    def report(message: ErrorRaised | OperationSucceeded) -> None:
        decisions.append(ref.ask(message, timeout=5))
        if isinstance(message, OperationSucceeded):  # the next poll fails again
            venue.failures.append(TimeoutError("timed out"))

    venue.failures.append(TimeoutError("timed out"))
    income = VenueIncome(venue, OWNERS, lambda _: None, lambda: 0, T0 // 10**6, report)
    now = T0
    while now < T0 + 32 * HOUR:
        clock.now = now / SECOND
        if income.due(now):
            asyncio.run(income.run(now))
        now += SECOND
    failed = [d for d in decisions if isinstance(d, Decision)]
    assert len(failed) >= 4 and all(d.attempt == 1 for d in failed), failed
    settled(sup, "gate")
    assert not [r for r in inbox.seen if isinstance(r, Recorded) and isinstance(r.message, Halt)]


def test_the_income_poll_pages_from_the_last_row_it_saw_and_forgets_old_ids():
    """2,500 payments since the start: three pages of at most 1,000 rows, each page from
    the last row's time; every payment recorded once; the next poll starts a lookback
    before the last row; only the ids inside that lookback are remembered."""
    since = T0 // 10**6
    venue = FakeVenue([row(1_000 + i, since + 1_000 * i) for i in range(2_500)])
    paid: list[FundingPaid] = []
    income = VenueIncome(venue, OWNERS, paid.append, lambda: 0, since)
    now_ms = since + 3_000_000
    assert asyncio.run(income.poll(now_ms)) == (2_500, False)
    assert [int(c["startTime"]) for c in venue.calls] == [since, since + 999_000, since + 1_998_000]
    assert all(c["endTime"] == str(now_ms) and c["limit"] == str(PAGE_LIMIT) for c in venue.calls)
    assert all(c["incomeType"] == "FUNDING_FEE" for c in venue.calls)
    assert len({p.settled_at_ns for p in paid}) == len(paid) == 2_500
    last_ms = since + 2_499_000
    assert income.remembered == LOOKBACK_MS // 1_000 + 1, "the ids within the lookback only"
    venue.rows.append(row(9_999, last_ms + 500_000, "0.5"))
    assert asyncio.run(income.poll(now_ms + 600_000)) == (1, False)
    assert int(venue.calls[-1]["startTime"]) == last_ms - LOOKBACK_MS
    assert paid[-1].amount == Decimal("0.5") and len(paid) == 2_501
    assert income.remembered <= LOOKBACK_MS // 1_000 + 1


def test_the_income_poll_runs_at_start_and_once_after_each_settlement():
    """A day of report ticks: four polls (the start's and one after each 8-hour
    settlement), not one every 5 s (17,280 at weight 30); with the venue announcing
    4-hourly settlements on its mark-price stream, one after each of those."""
    venue = FakeVenue()
    income = VenueIncome(venue, OWNERS, lambda _: None, lambda: 0, T0 // 10**6)
    ran = drive(income, T0 + 24 * HOUR + 60 * SECOND)
    midnight = T0 - 10 * SECOND
    assert ran == [T0] + [midnight + h * HOUR + 30 * SECOND for h in (8, 16, 24)]
    assert len(venue.calls) == 4

    announced = VenueIncome(FakeVenue(), OWNERS, lambda _: None, lambda: 0, T0 // 10**6)
    now, ran = T0, []
    while now < T0 + 12 * HOUR + 60 * SECOND:
        # The stream announces the next 4-hourly settlement, every second.
        announced.on_mark_price("BTCUSDT-PERP.BINANCE", (now // (4 * HOUR) + 1) * 4 * HOUR)
        if announced.due(now):
            ran.append(now)
            asyncio.run(announced.run(now))
        now += SECOND
    assert ran == [T0] + [midnight + h * HOUR + 30 * SECOND for h in (4, 8, 12)]


def test_a_failed_poll_backs_off_and_a_schedule_keeps_a_settlement_it_passed():
    schedule = IncomeSchedule()
    assert schedule.due(T0), "the start's poll"
    schedule.failed(T0)
    retries = [schedule.due_ns() - T0]
    for _ in range(6):
        schedule.failed(schedule.due_ns())
        retries.append(schedule.due_ns() - T0)
    assert retries == [s * SECOND for s in (60, 180, 420, 900, 1_860, 3_660, 5_460)]
    schedule.succeeded(T0 + 5_460 * SECOND)
    # The stream announces 08:00, then (after it) 16:00: the poll for 08:00 still runs.
    midnight = T0 - 10 * SECOND
    schedule.announce("BTCUSDT-PERP.BINANCE", midnight + 8 * HOUR)
    schedule.announce("BTCUSDT-PERP.BINANCE", midnight + 16 * HOUR)
    assert schedule.due_ns() == midnight + 8 * HOUR + 30 * SECOND


def test_a_gateway_error_without_a_binance_code_is_judged_by_its_http_status():
    """A proxy's 502 page carries no Binance code: the poll reports its status, which the
    classifier knows as transient; a 400 with -2015 keeps its own code (fatal)."""
    reports: list[ErrorRaised | OperationSucceeded] = []
    venue = FakeVenue()
    venue.failures = [
        BinanceServerError(502, "<html>502 Bad Gateway</html>", {}),
        BinanceClientError(401, {"code": -2015, "msg": "Invalid API-key, IP, or permissions"}, {}),
    ]
    income = VenueIncome(venue, OWNERS, lambda _: None, lambda: 0, T0 // 10**6, reports.append)
    asyncio.run(income.run(T0))
    asyncio.run(income.run(T0 + 60 * SECOND))
    gateway, key = reports
    assert isinstance(gateway, ErrorRaised) and gateway.code == 502
    assert classify(gateway).kind is DecisionKind.TRANSIENT
    assert isinstance(key, ErrorRaised) and key.code is None
    assert classify(key).kind is DecisionKind.FATAL


# ---------------------------------------------------------------- sessions on the emulator


@pytest.fixture
def emulator() -> Iterator[BinanceEmulator]:
    emu = BinanceEmulator(KEY, SECRET, kline_interval_s=0.2, volatility=Decimal("0.0008"))
    emu.start()
    yield emu
    emu.stop()


def _session_dir(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


@pytest.mark.node
def test_a_testnet_session_reads_its_income_once_at_start_not_every_5_s(tmp_path, emulator):
    """The emulator settles every 8 h: in its first 8 s a session asks ``/fapi/v1/income``
    once (its start), where it asked every 5 s (weight 30 each: 15 % of the minute's
    2,400)."""
    config, db = write(tmp_path, emulator, "TN-RATE", "binance-testnet")
    service = ServiceProcess(config, db, tmp_path, env=env())
    try:

        def income_requests() -> list[object]:
            return [r for r in emulator.requests() if r.path == INCOME_PATH]

        wait_for("the start's income poll", income_requests, 60)
        first = time.monotonic()
        service.wait_status("the session running", lambda r: r["state"] == "running", 30)
        time.sleep(max(0.0, 8 - (time.monotonic() - first)))
        polled = income_requests()
        assert len(polled) == 1, polled
        assert all(r.status == 200 for r in polled)
        assert service.terminate() == 0
    finally:
        service.ensure_dead()


def _refused(args: list[str], cwd: Path, timeout: float = 30) -> tuple[int | None, str]:
    """Run ``args``; its exit code and stderr, or ``None`` if it still ran after
    ``timeout`` (it was let in: killed)."""
    proc = subprocess.Popen(
        args, cwd=cwd, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _, err = proc.communicate(timeout=timeout)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        return None, err


@pytest.mark.node
def test_a_second_session_on_the_same_testnet_keys_is_refused(tmp_path, emulator):
    """Session A trades on the testnet keys (trader TN-A, its own database). A second
    session of another trader on another database - from the CLI, or launched by the
    dashboard, which gives each launch a new trader id - exits 5 with one line, which
    reaches the dashboard's view; the key is in no file name, file, log or message."""
    dir_a, dir_b, dir_c = (_session_dir(tmp_path, n) for n in ("a", "b", "dashboard"))
    config_a, db_a = write(dir_a, emulator, "TN-A", "binance-testnet")
    config_b, db_b = write(dir_b, emulator, "TN-B", "binance-testnet")
    service = ServiceProcess(config_a, db_a, dir_a, env=env())
    launched: list[int] = []
    try:
        service.wait_status("session A running", lambda r: r["state"] == "running", 60)

        code, err = _refused([*CLI, "run", "--config", str(config_b)], dir_b)
        assert code == 5, (code, err[-2000:])
        lines = err.strip().splitlines()
        assert len(lines) == 1, lines
        assert "account" in lines[0] and "already traded by another session" in lines[0]
        assert "trader TN-A" in lines[0] and str(db_a) in lines[0]
        assert not db_b.exists(), "refused before it recorded anything"

        appdb = AppDatabase(dir_c / "paper.db")
        preset = default_preset()
        preset["service"]["mode"] = "binance-testnet"
        appdb.save_preset("tn", preset)
        launcher = Launcher(appdb, dir_c, env=env())
        job = launcher.launch("tn")
        launched.append(job.pid)
        view = wait_for(
            "the launch's exit",
            lambda: (v := launcher.session(job.trader_id, 5)) and v["exit_code"] is not None and v,
            30,
        )
        assert view["exit_code"] == 5 and view["state"] == "crashed", view
        assert view["exit_line"] is not None
        assert "already traded by another session" in view["exit_line"], view["exit_line"]

        # The key itself is nowhere: lock file names and contents, logs, databases.
        locks = account_lock_dir()
        assert locks == Path(os.environ[LOCK_DIR_ENV])
        written = [*locks.iterdir(), *dir_a.rglob("*"), *dir_b.rglob("*"), *dir_c.rglob("*")]
        for path in written:
            assert KEY not in path.name
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path
        assert KEY not in err and KEY not in view["exit_line"]
        assert service.proc.poll() is None, "session A trades on"
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
        for pid in launched:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)


def test_the_account_lock_is_per_user_not_per_database_or_environment(tmp_path):
    """Two databases, two traders, one key: one lock file, found the same way from the
    CLI, a dashboard launch (its own TMPDIR) and systemd (no XDG_RUNTIME_DIR); named by
    a hash, never the key."""
    from storage.lock import account_hash, account_lock_path

    default = account_lock_dir({})
    for env_of in ({"TMPDIR": str(tmp_path)}, {"XDG_RUNTIME_DIR": "/run/user/1", "HOME": "/x"}):
        assert account_lock_dir(env_of) == default
    assert default.parts[-3:] == ("state", "paper-node", "accounts")
    path = account_lock_path("binance-testnet", KEY, env={})
    assert path.parent == default and KEY not in str(path)
    assert account_hash(KEY) in path.name and account_hash(KEY) != account_hash(KEY + "x")
    assert account_lock_path("binance-testnet", KEY, env={LOCK_DIR_ENV: "/d"}) == Path(
        "/d", path.name
    )


# ---------------------------------------------------------------- endpoints


def test_the_endpoints_written_out_are_the_adapters():
    usdm, testnet, live = (
        BinanceAccountType.USDT_FUTURES,
        BinanceEnvironment.TESTNET,
        BinanceEnvironment.LIVE,
    )
    assert get_http_base_url(usdm, testnet, False) == ep.TESTNET_REST
    assert get_ws_base_url(usdm, testnet, False) == ep.TESTNET_STREAMS
    assert get_ws_private_base_url(usdm, testnet, False) == ep.TESTNET_STREAMS
    assert get_ws_api_base_url(usdm, testnet, False) == ep.TESTNET_WS_API
    assert get_http_base_url(usdm, live, False) == ep.LIVE_REST
    assert get_ws_base_url(usdm, live, False) == ep.LIVE_MARKET_STREAMS
    assert get_ws_public_base_url(usdm, live, False) == ep.LIVE_PUBLIC_STREAMS
    for base in (ep.TESTNET_STREAMS, "ws://127.0.0.1:9/", "ws://127.0.0.1:9/x"):
        stream = get_futures_user_stream_url(usdm, base, "...")
        assert ep.user_stream_url(base) == stream, base
    settings = BinanceSettings(
        base_url_http=ep.TESTNET_REST,
        base_url_ws=ep.TESTNET_STREAMS,
        base_url_ws_stream=ep.TESTNET_STREAMS,
    )
    assert ep.url_problems(Mode.BINANCE_TESTNET, settings) == []


def test_the_endpoints_of_each_binance_mode_by_default():
    defaults = BinanceSettings()
    testnet = ep.endpoints(Mode.BINANCE_TESTNET, defaults, SECRET)
    assert testnet is not None and testnet.lines() == [
        "REST: https://demo-fapi.binance.com",
        "market streams: wss://stream.binancefuture.com",
        "user data stream: wss://stream.binancefuture.com/ws?listenKey=... "
        "(the key from POST /fapi/v1/listenKey)",
    ]
    sandbox = ep.endpoints(Mode.BINANCE_SANDBOX, defaults)
    assert sandbox is not None and sandbox.lines() == [
        "REST: https://fapi.binance.com",
        "market streams: wss://fstream.binance.com/market "
        "(book data: wss://fstream.binance.com/public)",
        "user data stream: none (the sandbox fills the orders; no keys)",
    ]
    assert ep.endpoints(Mode.REPLAY, defaults) is None


def test_config_check_names_the_endpoints_a_session_will_use(tmp_path, emulator):
    """``config check`` asks the venue for its instruments, so here the venue is the
    emulator, and the endpoints are its."""
    config, _db = write(tmp_path, emulator, "TN-CHECK", "binance-testnet")
    done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=env())
    assert done.returncode == 0, done.stderr
    http, ws = emulator.http_url, emulator.ws_url
    assert f"  REST: {http}\n" in done.stdout
    assert f"  market streams: {ws}\n" in done.stdout
    assert f"  user data stream: {ws}/ws?listenKey=..." in done.stdout
    assert KEY not in done.stdout + done.stderr and SECRET not in done.stdout + done.stderr
