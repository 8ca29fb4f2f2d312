"""The service as an operator runs it: the CLI, a real node, SIGTERM, the database."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from storage import StorageError, read_status

pytestmark = pytest.mark.node

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "scripts" / "run_supervisor.py")]


def cli(*args: str, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )


def node_pids(db: Path) -> list[int]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT payload FROM events WHERE kind = 'node_started'").fetchall()
    finally:
        conn.close()
    return [json.loads(r[0])["pid"] for r in rows]


def test_default_run_trades_within_a_minute_and_stops_cleanly_on_sigterm(tmp_path):
    db = tmp_path / "paper.db"
    log = (tmp_path / "service.log").open("w")
    started = time.monotonic()
    proc = subprocess.Popen(
        [*CLI, "run", "--db", str(db)], cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        report = None
        while time.monotonic() - started < 60:
            if db.exists():
                try:
                    report = read_status(db, None, stale_after_s=15)
                except StorageError:  # created, schema not written yet
                    report = None
                if report and report["fills"] > 0 and report["last_checkpoint_at"]:
                    break
            assert proc.poll() is None, (tmp_path / "service.log").read_text()
            time.sleep(0.5)
        assert report and report["fills"] > 0, "no fill within 60 s"

        shown = cli("status", "--db", str(db), "--json", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        status = json.loads(shown.stdout)
        for key in (
            "state", "mode", "trader_id", "heartbeat_at", "last_checkpoint_at", "balance",
            "equity", "open_orders", "positions", "fills", "realized_pnl",
        ):  # fmt: skip
            assert key in status
        assert status["state"] == "running" and status["mode"] == "replay"
        assert isinstance(status["positions"], list)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=45) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()

    conn = sqlite3.connect(db)
    final = conn.execute("SELECT count(*) FROM checkpoints WHERE final = 1").fetchone()[0]
    conn.close()
    assert final == 1
    after = json.loads(cli("status", "--db", str(db), "--json", cwd=tmp_path).stdout)
    assert after["state"] == "stopped"
    for pid in node_pids(db):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert (
        sorted(p.name for p in tmp_path.iterdir())
        == sorted(["paper.db", "paper.db-wal", "paper.db-shm", "service.log"])
        or not (tmp_path / "state").exists()
    )


def test_duration_ends_the_run_with_a_final_checkpoint_and_exit_0(tmp_path):
    config = tmp_path / "fast.toml"
    config.write_text(
        '[service]\ntrader_id = "FAST-001"\ncheckpoint_interval_s = 1\n'
        f'db_path = "{tmp_path / "fast.db"}"\n'
        "[replay]\nspeed = 0\nbars = 3000\n"
    )
    done = cli("run", "--config", str(config), "--duration", "6", cwd=tmp_path, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final checkpoint" in done.stderr
    report = read_status(tmp_path / "fast.db", "FAST-001", 15)
    assert report["state"] == "stopped"
    assert report["fills"] > 0
    assert report["checkpoints"] >= 3  # the first, periodic ones, the final


def test_status_of_an_empty_or_missing_database_is_a_clear_error(tmp_path):
    done = cli("status", "--db", str(tmp_path / "none.db"), cwd=tmp_path)
    assert done.returncode == 1
    assert "no database at" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_the_node_log_shows_each_order_event_exactly_when_its_level_prints_them(tmp_path, level):
    """Above INFO the strategies' event lines and the portfolio's account line are not
    even formatted (issue 29: they cost a fifth of each order event); at INFO an operator
    still reads every one of them."""
    config = tmp_path / "fast.toml"
    config.write_text(
        f'[service]\ntrader_id = "LOGS-001"\nnode_log_level = "{level}"\n'
        f'db_path = "{tmp_path / "fast.db"}"\n'
        "[replay]\nspeed = 0\nbars = 1500\n"
    )
    done = cli("run", "--config", str(config), "--duration", "5", cwd=tmp_path, timeout=90)
    assert done.returncode == 0, done.stderr[-3000:]
    assert read_status(tmp_path / "fast.db", "LOGS-001", 15)["fills"] > 0
    shown = level == "INFO"
    for line in ("<--[EVT] OrderFilled", "[CMD]--> [Risk] SubmitOrder", "Updated AccountState"):
        assert (line in done.stderr) is shown, f"{line!r} at {level}"
