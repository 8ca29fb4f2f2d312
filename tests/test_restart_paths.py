"""Restart paths that must lose nothing, driven from outside as an operator would see them.

Each test reproduces one defect of issue 13 with the service as a subprocess (signals,
the CLI, the database) and fails if its fix is taken away.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import time
from decimal import Decimal
from pathlib import Path

import pytest

from storage import SCHEMA_VERSION
from tests.service import (
    ServiceProcess,
    alive,
    cli,
    events,
    node_pids,
    query,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.node

HANG_FAST = "heartbeat_interval_s = 0.5\nnode_hang_timeout_s = 2"


def hang_fast(config: Path) -> None:
    config.write_text(config.read_text().replace("heartbeat_interval_s = 0.5", HANG_FAST))


def new_node(db: Path, known: int, timeout: float = 60) -> dict[str, object]:
    started = wait_for(
        "a new node",
        lambda: (s := events(db, "node_started")) and len(s) > known and s,
        timeout,
    )
    return started[known][1]


def checkpoints(db: Path) -> list[sqlite3.Row]:
    return query(db, "SELECT id, final, taken_at, saved_at FROM checkpoints ORDER BY id")


def test_after_a_hung_node_is_replaced_fills_are_checkpointed_and_the_stop_is_final(tmp_path):
    """Defect 1: snapshot requests lost with a hung node must not shift replies: the
    fills after the restart get their checkpoints, and the stop's checkpoint is final."""
    config, db = write_config(tmp_path, trader="LOST-001", ladder=0)
    hang_fast(config)
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("a fill", lambda r: r["fills"] > 0)
        known = len(events(db, "node_started"))
        pid = node_pids(db)[-1]
        os.kill(pid, signal.SIGSTOP)  # every snapshot request sent now is lost with it
        try:
            new_node(db, known)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the hang check killed it
                os.kill(pid, signal.SIGKILL)
        fills_before = len(events(db, "fill"))
        wait_for("fills after the restart", lambda: len(events(db, "fill")) >= fills_before + 2)
        # The checkpointer asks right after a fill: a checkpoint follows within a moment,
        # long before the 1 s timer would take one.
        last_fill_at = query(db, "SELECT at FROM events WHERE kind = 'fill' ORDER BY id DESC")[0]
        wait_for(
            "a checkpoint after the last fill",
            lambda: [c for c in checkpoints(db) if c["saved_at"] >= last_fill_at["at"]],
            5,
        )
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    last = checkpoints(db)[-1]
    assert last["final"] == 1, "the stop's checkpoint is written as the final one"
    assert not [p for p in node_pids(db) if alive(p)]


def position_notionals(db: Path, after_id: int = 0) -> list[Decimal]:
    """Each checkpoint's open position notional as a fraction of its equity."""
    rows = query(
        db, "SELECT id, equity, snapshot FROM checkpoints WHERE id > ? ORDER BY id", (after_id,)
    )
    out: list[Decimal] = []
    for row in rows:
        for p in json.loads(row["snapshot"])["positions"]:
            notional = Decimal(p["quantity"]) * Decimal(p["avg_px_open"])
            out.append(notional / Decimal(row["equity"]))
    return out


def last_id(db: Path) -> int:
    rows = query(db, "SELECT max(id) AS n FROM checkpoints")
    return int(rows[0]["n"] or 0)


def test_a_reloaded_risk_limit_sizes_the_next_orders_and_survives_a_node_restart(tmp_path):
    """Defect 2: SIGHUP with risk_per_trade 0.01 -> 0.002 must change the order sizes in
    the node (fixed fractional, stop 2 %: a position of 0.5 x equity becomes 0.1 x), and
    a node restarted afterwards must size with the reloaded limit too."""
    config, db = write_config(tmp_path, trader="HUP-002", ladder=0, speed=1200)
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("a position", lambda r: bool(r["positions"]))
        before = position_notionals(db)
        assert before and all(Decimal("0.45") < n < Decimal("0.55") for n in before), before

        config.write_text(config.read_text() + '[risk]\nrisk_per_trade = "0.002"\n')
        service.proc.send_signal(signal.SIGHUP)
        wait_for("the reload", lambda: events(db, "config_reloaded"))
        mark = last_id(db)
        fills = len(events(db, "fill"))
        wait_for("two turns after the reload", lambda: len(events(db, "fill")) >= fills + 2, 90)
        after = position_notionals(db, mark)
        assert after[-1] < Decimal("0.12"), f"sizes after the reload: {after[-5:]}"

        known = len(events(db, "node_started"))
        os.kill(node_pids(db)[-1], signal.SIGKILL)
        new_node(db, known)
        mark = last_id(db)
        fills = len(events(db, "fill"))
        wait_for("two turns after the restart", lambda: len(events(db, "fill")) >= fills + 2, 90)
        restarted = position_notionals(db, mark)
        assert restarted[-1] < Decimal("0.12"), f"sizes after a node restart: {restarted[-5:]}"
        assert service.terminate() == 0
    finally:
        service.ensure_dead()


def test_a_graceful_stop_logs_the_node_stopping(tmp_path):
    """Defect 4: the node's own ``NodeStopped`` reaches the event log on SIGTERM."""
    config, db = write_config(tmp_path, trader="STOP-001")
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("running", lambda r: r["state"] == "running")
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    stopped = events(db, "node_stopped")
    assert stopped and stopped[-1][0] == 1, "the node's stop is in the event log"
    assert "actor stopping" in str(stopped[-1][1]["reason"])


def test_an_escalation_on_the_node_leaves_a_halt_that_the_next_start_applies(tmp_path):
    """Defect 6: the node failing past the restart intensity must record a halt, so the
    service that systemd starts again comes back halted, and says so in its alert."""
    config, db = write_config(
        tmp_path, trader="ESC-001", extra="[supervisor]\nmax_restarts = 1\nperiod_s = 60\n"
    )
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("running", lambda r: r["state"] == "running")
        for n in range(2):
            known = len(events(db, "node_started"))
            os.kill(node_pids(db)[-1], signal.SIGKILL)
            if n == 0:
                new_node(db, known)
        assert service.wait(60) == 3, "the service stopped itself: restart intensity"
    finally:
        service.ensure_dead()
    alert = query(db, "SELECT text FROM alert_outbox WHERE title = 'Restart intensity exceeded'")
    assert alert and "will start halted" in alert[0]["text"], alert

    again = ServiceProcess(config, db, tmp_path)
    try:
        report = again.wait_status("back", lambda r: r["run_id"] == 2 and r["state"] != "starting")
        report = again.wait_status("halted", lambda r: r["trading_state"] == "HALTED")
        assert report["state"] == "halted"
        fills = len(events(db, "fill"))
        time.sleep(2.0)  # a cross comes every few seconds: it would trade if it could
        assert len(events(db, "fill")) == fills
        assert again.terminate() == 0
    finally:
        again.ensure_dead()


def test_a_halt_sent_while_the_node_hangs_holds_when_it_comes_back(tmp_path):
    """Defects 7 and 8: a halt that reaches a hung node dies with it unless it is on
    record; the node that replaces it must start halted, and the operator's halt is
    answered once that node confirms it."""
    config, db = write_config(tmp_path, trader="HOLD-001")
    hang_fast(config)
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("a fill", lambda r: r["fills"] > 0)
        known = len(events(db, "node_started"))
        pid = node_pids(db)[-1]
        os.kill(pid, signal.SIGSTOP)
        try:
            halted = cli("halt", "--config", str(config), "--reason", "while hung", cwd=tmp_path)
            node = new_node(db, known)
        finally:
            with contextlib.suppress(ProcessLookupError):  # the hang check killed it
                os.kill(pid, signal.SIGKILL)
        assert halted.returncode == 0, halted.stdout + halted.stderr
        assert "halted:" in halted.stdout
        assert node["trading_state"] == "HALTED"
        report = service.wait_status("halted", lambda r: r["trading_state"] == "HALTED")
        assert report["state"] == "halted"
        fills = len(events(db, "fill"))
        time.sleep(2.0)
        assert len(events(db, "fill")) == fills, "no order passes after the restart"
        assert service.terminate() == 0
    finally:
        service.ensure_dead()


def test_a_second_instance_is_refused_and_a_killed_one_does_not_block_a_restart(tmp_path):
    """Defect 9: two services of one trader on one database never trade together."""
    config, db = write_config(tmp_path, trader="ONE-001")
    first = ServiceProcess(config, db, tmp_path)
    try:
        first.wait_status("running", lambda r: r["state"] == "running")
        second = cli("run", "--config", str(config), "--duration", "30", cwd=tmp_path)
        assert second.returncode == 5, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "already running" in lines[0] and "ONE-001" in lines[0]
        assert str(first.proc.pid) in lines[0]
        runs = query(db, "SELECT count(*) AS n FROM runs")[0]["n"]
        assert runs == 1, "the refused instance recorded no run"
        first.kill()
    finally:
        first.ensure_dead()
    again = ServiceProcess(config, db, tmp_path)
    try:
        again.wait_status("trading again", lambda r: r["run_id"] == 2 and r["state"] == "running")
        assert again.terminate() == 0
    finally:
        again.ensure_dead()


@pytest.mark.parametrize("value", ["-5", "nan", "inf", "0", "soon"])
def test_a_bad_duration_is_a_one_line_usage_error(tmp_path, value):
    """Defect 14: a bad argument never starts the tree: exit 2, one line, nothing left."""
    config, db = write_config(tmp_path, trader="ARG-001")
    done = cli("run", "--config", str(config), f"--duration={value}", cwd=tmp_path, timeout=30)
    assert done.returncode == 2
    assert "--duration" in done.stderr and "Traceback" not in done.stderr
    assert not db.exists(), "nothing started"


def test_status_and_events_refuse_a_database_of_a_newer_schema(tmp_path):
    """Defect 15: a newer schema is refused by the readers too, as the README says."""
    config, db = write_config(tmp_path, trader="NEW-001")
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY)")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    for command in ("status", "events"):
        done = cli(command, "--config", str(config), cwd=tmp_path)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        assert "newer" in done.stderr and "Traceback" not in done.stderr


def test_the_replay_cursor_moves_on_in_the_database_between_trades(tmp_path):
    """Defect 15: without a fill there is no checkpoint for a minute, yet a restart must
    resume at the bar the replay had reached, not replay the same bars again."""
    config, db = write_config(tmp_path, trader="CUR-001", speed=60, ladder=0)
    config.write_text(
        config.read_text().replace("checkpoint_interval_s = 1", "checkpoint_interval_s = 60")
    )
    service = ServiceProcess(config, db, tmp_path)
    try:
        first = service.wait_status("a checkpoint", lambda r: r["replay_cursor"] is not None)
        rows_then = len(checkpoints(db))
        moved = service.wait_status(
            "the cursor moving on", lambda r: r["replay_cursor"] >= first["replay_cursor"] + 3, 20
        )
        # From cursor 0 the EMAs need 30 bars (30 s here) before any trade: no fill, so no
        # new checkpoint either - the cursor moved on in the same row.
        assert len(checkpoints(db)) == rows_then and moved["fills"] == 0
        cursor = moved["replay_cursor"]
        known = len(events(db, "node_started"))
        service.kill()
    finally:
        service.ensure_dead()
    again = ServiceProcess(config, db, tmp_path)
    try:
        node = new_node(db, known)
        assert node["replay_cursor"] >= cursor
        assert again.terminate() == 0
    finally:
        again.ensure_dead()


def test_a_restart_brings_back_each_positions_pnl_and_the_breakers_marks(tmp_path):
    """Defects 12 and 15: a restored position's own realized PnL came back as 0, and the
    equity peak and the day's start were forgotten on every restart."""
    config, db = write_config(tmp_path, trader="MARK-001", ladder=0, speed=1200)
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("a position", lambda r: bool(r["positions"]) and r["fills"] > 1)
        time.sleep(1.5)  # a node report or two: the marks are set
        known = len(events(db, "node_started"))
        service.kill()
    finally:
        service.ensure_dead()
    rows = query(db, "SELECT snapshot FROM checkpoints ORDER BY id DESC LIMIT 1")
    last = json.loads(rows[0]["snapshot"])
    again = ServiceProcess(config, db, tmp_path)
    try:
        restored = new_node(db, known)["restored"]
        assert isinstance(restored, dict)
        assert last["equity_peak"] is not None and last["day"]
        assert restored["equity_peak"] == last["equity_peak"]
        assert (restored["day"], restored["day_start_equity"]) == (
            last["day"],
            last["day_start_equity"],
        )
        before = {p["side"]: p["realized_pnl"] for p in last["positions"]}
        after = {p["side"]: p["realized_pnl"] for p in restored["positions"]}
        assert before == after and any(Decimal(v) != 0 for v in before.values()), before
        assert again.terminate() == 0
    finally:
        again.ensure_dead()
    for row in query(db, "SELECT snapshot FROM checkpoints"):
        for p in json.loads(row["snapshot"])["positions"]:
            digits = len(p["avg_px_open"].partition(".")[2])
            assert digits <= 5, f"a float-formatted price: {p['avg_px_open']}"  # tick 0.1 + 4
