"""Bad input gets one clear line: refused at start, refused by a running service's SIGHUP
(which trades on with its old settings), never a traceback or a stopped service. The
service run also checks that what ``run`` creates is owner-only."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from supervisor.config import ConfigError, load_config
from tests.service import ServiceProcess, cli, events, wait_for, write_config

NOT_UTF8 = b'[service]\ntrader_id = "PAPER-\xff\xfe01"\n'
HUGE_INT = f"[service]\nkeep_checkpoints = {'9' * 5000}\n".encode()
DEEP = ("[service]\nx = " + "[" * 50_000 + "]" * 50_000 + "\n").encode()
UNBOUNDED = b"""
[service]
checkpoint_interval_s = inf
heartbeat_interval_s = nan
keep_checkpoints = 1000000000000000000000000000000
[replay]
bars = 1000000000
speed = inf
[strategy]
slow_period = 10000000
[supervisor]
period_s = inf
[account]
starting_balance = "1e30"
"""


def problems_of(tmp_path: Path, content: bytes) -> tuple[str, ...]:
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as refused:
        load_config(path, env={}, import_strategies=False)
    return refused.value.problems


def test_every_number_has_bounds_and_is_finite(tmp_path: Path) -> None:
    problems = problems_of(tmp_path, UNBOUNDED)
    for field in (
        "service.checkpoint_interval_s",
        "service.heartbeat_interval_s",
        "service.keep_checkpoints",
        "replay.bars",
        "replay.speed",
        "strategy.slow_period",
        "supervisor.period_s",
        "account.starting_balance",
    ):
        assert any(p.startswith(field) for p in problems), (field, problems)
    assert all("\n" not in p for p in problems), problems


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (NOT_UTF8, "not UTF-8 text: byte 0xff at offset 29"),
        (HUGE_INT, "4300"),
        (DEEP, "nested too deeply"),
        (b"#" * (2 * 1024 * 1024), "larger than 1024 KiB"),
    ],
    ids=["not-utf8", "huge-int", "deep", "huge-file"],
)
def test_a_file_that_cannot_be_read_as_a_config_is_one_line(
    tmp_path: Path, content: bytes, said: str
) -> None:
    problems = problems_of(tmp_path, content)
    assert len(problems) == 1 and said in problems[0] and "\n" not in problems[0], problems


@pytest.mark.parametrize("where", ["not-a-directory", "sysfs"])
def test_run_on_a_database_it_cannot_create_says_so_in_one_line(tmp_path: Path, where: str) -> None:
    """The instance lock file beside the database is the first thing ``run`` creates;
    where it cannot - the database's directory is a file, or /sys, where even root may
    not create a file (PermissionError, as in a directory the service may not write) -
    ``run`` says why in one line."""
    config, _ = write_config(tmp_path)
    (tmp_path / "not-a-dir").write_text("")
    db = tmp_path / "not-a-dir" / "p.db" if where == "not-a-directory" else Path("/sys/p.db")
    done = cli("run", "--config", str(config), "--db", str(db), cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: cannot create the lock file"), lines
    if where == "sysfs":
        assert lines[0].endswith(": Permission denied"), lines


@pytest.mark.node
def test_sighup_refuses_every_bad_file_and_the_service_trades_on(tmp_path: Path) -> None:
    config, db = write_config(tmp_path, trader="HUP-BAD", speed=300)
    good = config.read_bytes()
    old_umask = os.umask(0o022)  # an ordinary login's: the service sets its own
    try:
        service = ServiceProcess(config, db, tmp_path)
    finally:
        os.umask(old_umask)
    try:
        service.wait_status("a fill", lambda r: r["fills"] > 0)
        bad_files = [NOT_UTF8, HUGE_INT, DEEP, good + b"\n[replay]\nbars = 1000000000\n"]
        for number, content in enumerate(bad_files, start=1):
            config.write_bytes(content)
            service.proc.send_signal(signal.SIGHUP)

            def reloads(n: int = number) -> list[dict[str, object]] | None:
                found = [p for _, p in events(db, "config_reloaded")]
                assert service.proc.poll() is None, service.log_path.read_text()[-3000:]
                return found if len(found) == n else None

            last = wait_for(f"reload {number} answered", reloads)[-1]
            assert last["accepted"] is False, last
            assert "old limits kept" in str(last["detail"]), last
        fills = service.status()
        assert fills is not None
        # What the service created is its user's alone (the test's umask is 022).
        created = {p.name: stat.filemode(p.stat().st_mode) for p in tmp_path.glob(f"{db.name}*")}
        assert {"svc.db", "svc.db-wal", "svc.db-shm", "svc.db.HUP-BAD.lock"} <= set(created)
        assert set(created.values()) == {"-rw-------"}, created
        service.wait_status("trading on", lambda r: r["fills"] > fills["fills"])
        config.write_bytes(good + b'\n[risk]\nrisk_per_trade = "0.005"\n')
        service.proc.send_signal(signal.SIGHUP)
        wait_for("the good file applied", lambda: len(events(db, "config_reloaded")) == 5)
        assert events(db, "config_reloaded")[-1][1]["accepted"] is True
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    log = service.log_path.read_text()
    assert "not UTF-8 text" in log and "nested too deeply" in log
