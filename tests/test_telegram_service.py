"""The running service with Telegram configured against the loopback fake Bot API."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from storage import PENDING_TTL_S, Command, ControlChannel
from tests.fake_telegram import FakeTelegram
from tests.service import ServiceProcess, cli, query, write_config

pytestmark = pytest.mark.node

TOKEN = "555000111:AAServiceLevelFakeToken_for_tests"
CHAT = 4242


@pytest.fixture
def telegram():
    fake = FakeTelegram(TOKEN).start()
    yield fake
    fake.stop()


def telegram_env() -> dict[str, str]:
    return {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_CHAT_IDS": f"{CHAT}"}


def telegram_section(fake: FakeTelegram) -> str:
    return (
        f'[telegram]\napi_base = "{fake.base_url}"\npump_interval_s = 0.2\n'
        "poll_timeout_s = 1\nrequest_timeout_s = 3\nbackoff_max_s = 2\n"
    )


def test_a_cli_halt_reaches_telegram_and_the_token_reaches_no_log(tmp_path, telegram):
    """Also what waited while the service was down is not carried out at its start: a
    /halt flatten sent an hour earlier (Telegram keeps it) and a stop queued in the
    control table; and /resume waits for /confirm."""
    config, db = write_config(tmp_path, trader="TG-001", extra=telegram_section(telegram))
    telegram.push_command(CHAT, "/halt flatten", date=int(time.time()) - 3600)
    channel = ControlChannel(db)
    stale = channel.submit("TG-001", Command.STOP, "queued while the service was down")
    old = (datetime.now(UTC) - timedelta(seconds=PENDING_TTL_S + 5)).isoformat()
    channel.db.execute("UPDATE control SET requested_at = ? WHERE id = ?", [old, stale])
    channel.db.conn.commit()
    service = ServiceProcess(config, db, tmp_path, env=telegram_env())
    try:
        service.wait_status("a fill", lambda r: r["fills"] > 0)
        assert channel.get(stale).result.startswith("expired: not picked up within")
        halted = cli("halt", "--config", str(config), "--reason", "phone test", cwd=tmp_path)
        assert halted.returncode == 0, halted.stderr
        chat, text = telegram.wait_for(lambda m: "Trading halted" in m[1])
        assert chat == CHAT and "phone test" in text and "TG-001 replay" in text

        telegram.push_command(CHAT, "/status")
        telegram.wait_for(lambda m: "TG-001 (replay): halted" in m[1])
        telegram.push_command(CHAT, "/resume")
        telegram.wait_for(lambda m: "Send /confirm within 60 s" in m[1])
        assert service.wait_status("halted", lambda r: r["state"] == "halted")
        telegram.push_command(CHAT, "/confirm")
        telegram.wait_for(lambda m: m[1] == "Resumed: trading state ACTIVE.")
        service.wait_status("running again", lambda r: r["state"] == "running")
        assert service.terminate() == 0
    finally:
        channel.close()
        service.ensure_dead()
    log = service.log_path.read_text()
    assert TOKEN not in log
    assert f"ignored /halt from chat {CHAT} (sent 36" in log
    assert "telegram /halt" not in log, "the hour-old /halt flatten was carried out"
    assert "operator stop #1 of" in log and "expired unseen" in log
    dump = "\n".join(str(tuple(r)) for r in query(db, "SELECT * FROM alert_outbox"))
    dump += "\n".join(str(tuple(r)) for r in query(db, "SELECT * FROM events"))
    assert TOKEN not in dump


def test_a_tripped_circuit_breaker_reaches_telegram(tmp_path, telegram):
    config, db = write_config(
        tmp_path,
        trader="TG-002",
        extra=telegram_section(telegram) + '[risk]\nmax_drawdown_pct = "0.02"\n',
    )
    service = ServiceProcess(config, db, tmp_path, env=telegram_env())
    try:
        _, text = telegram.wait_for(lambda m: "Circuit breaker tripped" in m[1], timeout=60)
        assert "max_drawdown" in text
        report = service.wait_status("halted", lambda r: r["state"] == "halted")
        assert report["trading_state"] == "HALTED"
        assert query(db, "SELECT count(*) AS n FROM events WHERE kind = 'breaker'")[0]["n"] == 1
        assert service.terminate() == 0
    finally:
        service.ensure_dead()


def test_without_telegram_a_halt_is_an_outbox_entry_and_a_log_line(tmp_path):
    config, db = write_config(tmp_path, trader="NOTG-001")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TELEGRAM_")}
    service = ServiceProcess(config, db, tmp_path, env=env)
    try:
        service.wait_status("a fill", lambda r: r["fills"] > 0)
        assert cli("halt", "--config", str(config), cwd=tmp_path, env=env).returncode == 0
        service.wait_status("halted", lambda r: r["state"] == "halted")
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    rows = query(db, "SELECT status FROM alert_outbox WHERE title = 'Trading halted'")
    # Kept in the outbox as "local": shown in the dashboard, never sent later, swept.
    assert [r["status"] for r in rows] == ["local"]
    assert "ALERT [NOTG-001 replay] Trading halted" in service.log_path.read_text()
