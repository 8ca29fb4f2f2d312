"""Secrets only where needed: strategy code finds no secret it was not given.

The canary (``tests.canary_strategy``) is a trader's strategy that reports every
secret-looking variable it can see, in ``os.environ`` and in ``/proc/self/environ``,
from the config check's child that imports it and from the node child that runs it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol import child_environment, node_secrets, session_secrets
from sessions.parity import run_parity
from tests.binance_emulator import BinanceEmulator
from tests.fake_telegram import FakeTelegram
from tests.service import ROOT, ServiceProcess, bars_of, entry, wait_for, write_config
from tests.test_binance_modes import emulator, write  # noqa: F401 (the fixture)
from tests.test_binance_modes import env as binance_env

pytestmark = pytest.mark.node

TOKEN = "555000222:AACanaryFakeToken_for_tests"
SECRETS = {
    "TELEGRAM_BOT_TOKEN": TOKEN,
    "TELEGRAM_CHAT_IDS": "4242",
    "BINANCE_FUTURES_TESTNET_API_KEY": "canary-testnet-key-0001",
    "BINANCE_FUTURES_TESTNET_API_SECRET": "canary-testnet-secret-0001",
    "BINANCE_API_KEY": "canary-live-key-0001",
    "AWS_SECRET_ACCESS_KEY": "an-operator-credential-0001",
}


@pytest.fixture
def telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram(TOKEN).start()
    yield fake
    fake.stop()


def canary(instrument_id: str = "BTCUSDT-PERP.BINANCE") -> str:
    return entry(
        "Canary",
        {"instrument_id": instrument_id, "bar_type": bars_of(instrument_id), "lookback": 5},
        module="tests.canary_strategy",
    )


def test_each_child_is_given_only_its_modes_secrets() -> None:
    env = {"PATH": "/usr/bin", "HOME": "/home/x", "NOTIFY_SOCKET": "@sd", **SECRETS}
    assert child_environment(env) == {"PATH": "/usr/bin", "HOME": "/home/x"}
    replay = child_environment(env, node_secrets("replay"))
    assert set(replay) == {"PATH", "HOME"}
    testnet = child_environment(env, node_secrets("binance-testnet"))
    assert set(testnet) == {
        "PATH",
        "HOME",
        "BINANCE_FUTURES_TESTNET_API_KEY",
        "BINANCE_FUTURES_TESTNET_API_SECRET",
    }
    session = child_environment(env, session_secrets("replay"))
    assert set(session) == {"PATH", "HOME", "TELEGRAM_BOT_TOKEN", "TELEGRAM_CHAT_IDS"}
    assert "BINANCE_FUTURES_TESTNET_API_KEY" in child_environment(
        env, session_secrets("binance-testnet")
    )


def test_a_strategy_finds_no_secret_in_the_config_check_the_node_or_the_parity_backtest(
    tmp_path: Path, telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = tmp_path / "canary.jsonl"
    section = (
        f'[telegram]\napi_base = "{telegram.base_url}"\npump_interval_s = 0.2\n'
        "poll_timeout_s = 1\nrequest_timeout_s = 3\nbackoff_max_s = 2\n"
    )
    config, db = write_config(
        tmp_path, trader="CANARY-001", speed=3000, ladder=0, extra=section + canary()
    )
    env = {
        **os.environ,
        **SECRETS,
        "PYTHONPATH": str(ROOT),
        "PAPER_CANARY_FILE": str(found),
    }
    service = ServiceProcess(config, db, tmp_path, env=env)
    try:

        def lines() -> list[dict[str, object]]:
            if not found.exists():
                return []
            return [json.loads(line) for line in found.read_text().splitlines()]

        wait_for(
            "the canary started in the node", lambda: any(r["where"] == "start" for r in lines())
        )
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    # The dashboard's parity report runs the backtest (the strategy's code again) in a
    # child of a process that holds the secrets.
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    outcome = run_parity(db, "CANARY-001")
    assert outcome.report is not None, outcome.error
    reports = lines()
    # The config check's child, the node child and the backtest imported it; the node
    # and the backtest started it.
    pids = {r["pid"] for r in reports}
    assert len(pids) >= 3 and sum(r["where"] == "start" for r in reports) >= 2, reports
    for report in reports:
        assert report["environ"] == [] and report["proc"] == [], report


def test_in_binance_testnet_the_strategy_finds_the_testnet_keys_only(
    tmp_path: Path,
    telegram: FakeTelegram,
    emulator: BinanceEmulator,  # noqa: F811 (the fixture)
) -> None:
    """The node trades with the testnet keys, so its strategy code can see them; never the
    Telegram token nor any other credential of the service's environment."""
    found = tmp_path / "canary.jsonl"
    section = f'[telegram]\napi_base = "{telegram.base_url}"\n'
    config, db = write(tmp_path, emulator, "CANARY-TN", "binance-testnet", extra=section + canary())
    environment = binance_env(
        **{k: v for k, v in SECRETS.items() if not k.startswith("BINANCE_FUTURES_TESTNET")},
        PYTHONPATH=str(ROOT),
        PAPER_CANARY_FILE=str(found),
    )
    service = ServiceProcess(config, db, tmp_path, env=environment)
    try:
        wait_for(
            "the canary started in the node",
            lambda: found.exists() and '"start"' in found.read_text(),
            timeout=90,
        )
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    reports = [json.loads(line) for line in found.read_text().splitlines()]
    keys = ["BINANCE_FUTURES_TESTNET_API_KEY", "BINANCE_FUTURES_TESTNET_API_SECRET"]
    (started,) = [r for r in reports if r["where"] == "start"]
    assert started["environ"] == keys and started["proc"] == keys, started
    checks = [r for r in reports if r["pid"] != started["pid"]]
    assert checks and all(r["environ"] == [] and r["proc"] == [] for r in checks), checks
