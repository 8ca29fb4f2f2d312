"""Operator halt/resume through the CLI, halts that survive restarts, SIGKILL recovery."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest

from storage import read_status
from tests.service import (
    CLI,
    ServiceProcess,
    alive,
    cli,
    events,
    last_checkpoint_of,
    node_pids,
    query,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.node


def test_operator_halt_is_confirmed_survives_a_kill_and_resume_trades_again(tmp_path):
    config, db = write_config(tmp_path)
    first = ServiceProcess(config, db, tmp_path)
    try:
        first.wait_status("a fill", lambda r: r["fills"] > 0)
        first.wait_status("resting orders", lambda r: r["open_orders"] > 0)

        halted = cli("halt", "--config", str(config), "--reason", "operator test", cwd=tmp_path)
        assert halted.returncode == 0, halted.stderr
        assert "halted:" in halted.stdout and "cancelled and confirmed" in halted.stdout
        report = first.wait_status("halted checkpoint", lambda r: r["trading_state"] == "HALTED")
        assert report["state"] == "halted" and report["open_orders"] == 0
        alerts = query(db, "SELECT title, text FROM alert_outbox WHERE title = 'Trading halted'")
        assert alerts and "operator test" in alerts[0]["text"]
        first.kill()
    finally:
        first.ensure_dead()

    fills_at_kill = len(events(db, "fill"))
    second = ServiceProcess(config, db, tmp_path)
    try:
        second.wait_status(
            "the restarted service", lambda r: r["run_id"] == 2 and r["heartbeat_at"]
        )
        restored = wait_for(
            "restore event", lambda: [p for r, p in events(db, "restored") if r == 2]
        )
        assert restored[0]["trading_state"] == "HALTED"
        report = second.wait_status("halted after restart", lambda r: r["state"] == "halted")
        assert report["open_orders"] == 0
        time.sleep(1.0)  # bars flow at 10/s: a cross would be tried, and denied
        assert len(events(db, "fill")) == fills_at_kill, "no order passes while halted"

        resumed = cli("resume", "--config", str(config), cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stderr
        assert "resumed" in resumed.stdout
        wait_for("a fill after resume", lambda: len(events(db, "fill")) > fills_at_kill)

        stopped = cli("stop", "--config", str(config), "--reason", "test over", cwd=tmp_path)
        assert stopped.returncode == 0 and "stopping" in stopped.stdout
        assert second.wait() == 0
    finally:
        second.ensure_dead()
    final = query(db, "SELECT count(*) AS n FROM checkpoints WHERE final = 1 AND run_id = 2")
    assert final[0]["n"] == 1
    assert not [pid for pid in node_pids(db) if alive(pid)]


def test_control_commands_refuse_when_the_service_is_not_running(tmp_path):
    config, _ = write_config(tmp_path, trader="IDLE-001")
    done = cli("halt", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 1 and "no database" in done.stderr


def test_a_halt_reaches_a_running_service_whose_heartbeat_is_late(tmp_path):
    """The heartbeat is written only when every actor answers, so it goes stale while the
    node child is being replaced (or the host stalls the service). The service still runs
    and picks the command up: an operator's halt, sent exactly then, must not be refused
    as "not running" (chaos seeds 152370 and 19125 lost it that way)."""
    config, db = write_config(tmp_path, trader="LATE-001")
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("resting orders", lambda r: r["open_orders"] > 0)
        os.kill(service.proc.pid, signal.SIGSTOP)  # no heartbeat for a while
        try:
            wait_for(
                "a stale heartbeat",
                lambda: read_status(db, "LATE-001", stale_after_s=1.5)["state"] == "not_running",
            )
            halt = subprocess.Popen(
                [*CLI, "halt", "--config", str(config), "--reason", "late heartbeat"],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            try:
                wait_for("the halt queued", lambda: query(db, "SELECT id FROM control"), 20)
            finally:
                os.kill(service.proc.pid, signal.SIGCONT)
            out, err = halt.communicate(timeout=60)
        finally:
            os.kill(service.proc.pid, signal.SIGCONT)
        assert halt.returncode == 0, out + err
        assert "halted:" in out
        report = service.wait_status("halted", lambda r: r["trading_state"] == "HALTED")
        assert report["open_orders"] == 0
    finally:
        service.ensure_dead()


def _comparable(snapshot: dict[str, object]) -> dict[str, object]:
    positions = snapshot["positions"]
    orders = snapshot["open_orders"]
    assert isinstance(positions, list) and isinstance(orders, list)
    return {
        "balance": snapshot["balance"],
        "trading_state": snapshot["trading_state"],
        "replay_cursor": snapshot["replay_cursor"],
        "positions": sorted((p["side"], p["quantity"], p["avg_px_open"]) for p in positions),
        "open_orders": sorted(
            (o["client_order_id"], o["side"], o["price"], o["quantity"]) for o in orders
        ),
    }


def test_sigkill_at_ten_random_moments_restores_the_last_checkpoint_every_time(tmp_path):
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    config, db = write_config(tmp_path, trader="CHAOS-001")
    kills = 10
    last_checkpoint: dict[int, dict[str, object]] = {}
    for run in range(1, kills + 2):
        service = ServiceProcess(config, db, tmp_path)
        try:
            wait_for(
                f"run {run} trading",
                lambda run=run: [r for r, _ in events(db, "node_started") if r == run],
            )
            if run > kills:
                before = len(events(db, "fill"))
                wait_for("trading goes on", lambda before=before: len(events(db, "fill")) > before)
                assert service.terminate() == 0
                break
            time.sleep(rng.uniform(0.1, 3.0))
            service.kill()
        finally:
            service.ensure_dead()
        last_checkpoint[run] = last_checkpoint_of(db, "CHAOS-001")

    restored = {run: p for run, p in events(db, "restored")}
    for run in range(2, kills + 2):
        assert run in restored, f"run {run} did not restore (seed {seed})"
        got = _comparable(restored[run]["snapshot"])  # type: ignore[arg-type]
        assert got == _comparable(last_checkpoint[run - 1]), f"run {run} (seed {seed})"
    fill_ids = [p["client_order_id"] for _, p in events(db, "fill")]
    assert len(fill_ids) == len(set(fill_ids)), f"an order id was used twice (seed {seed})"
    assert len(fill_ids) > 0
    assert not [pid for pid in node_pids(db) if alive(pid)]
