"""Retention beside the database: recorded runs by age and total size, the log file by size
(and the running service caps its own log from its retention sweep)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from storage import cap_output_log, prune_recordings
from tests.service import CLI, wait_for, write_config

DAY = 86_400


def recorded_run(root: Path, name: str, size: int, age_days: float) -> Path:
    run = root / "live" / name / "bar"
    run.mkdir(parents=True)
    data = run / "part-0.feather"
    data.write_bytes(b"x" * size)
    then = time.time() - age_days * DAY
    os.utime(data, (then, then))
    os.utime(run, (then, then))
    os.utime(run.parent, (then, then))
    return run.parent


def test_recorded_runs_go_by_age_then_by_size_but_never_the_newest(tmp_path: Path) -> None:
    old = recorded_run(tmp_path, "run-1", 1000, age_days=40)
    middle = recorded_run(tmp_path, "run-2", 5000, age_days=2)
    newest = recorded_run(tmp_path, "run-3", 9000, age_days=0)
    pruned = prune_recordings(tmp_path, keep_days=30, max_bytes=100_000)
    assert (pruned.runs, pruned.bytes) == (1, 1000)
    assert not old.exists() and middle.exists() and newest.exists()
    pruned = prune_recordings(tmp_path, keep_days=30, max_bytes=1000)
    assert (pruned.runs, pruned.bytes) == (1, 5000)
    assert not middle.exists() and newest.exists()  # over the cap alone, but being written


def test_a_log_file_past_its_cap_keeps_its_last_half_and_no_hole(tmp_path: Path) -> None:
    path = tmp_path / "service.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)  # not O_APPEND: the harder case
    try:
        for i in range(40_000):
            os.write(fd, f"line {i:05d} {'.' * 60}\n".encode())
        dropped = cap_output_log(1_000_000, fd)
        os.write(fd, b"after the cap\n")
    finally:
        os.close(fd)
    text = path.read_bytes()
    assert dropped > 2_000_000 and len(text) < 600_000
    assert b"\0" not in text
    assert text.startswith(b"[log capped at 1,000,000 bytes: ")
    assert text.endswith(b"line 39999 " + b"." * 60 + b"\nafter the cap\n")


def test_the_service_caps_its_log_file_from_its_retention_sweep(tmp_path: Path) -> None:
    config, _ = write_config(tmp_path, trader="LOG-001")
    settings = "[service]\nmax_log_mb = 1\nretention_sweep_s = 1\n"
    config.write_text(config.read_text().replace("[service]\n", settings, 1))
    log = tmp_path / "service.log"
    log.write_bytes(b"an old line\n" * 300_000)  # 3.6 MB from earlier runs
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [*CLI, "run", "--config", str(config)],
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for("the log capped", lambda: log.stat().st_size < 1_100_000, timeout=60)
        assert proc.poll() is None
        assert b"[log capped at 1,048,576 bytes" in log.read_bytes()
    finally:
        proc.terminate()
        proc.wait(timeout=45)
    assert b"retention: the log file kept its last half" in log.read_bytes()
