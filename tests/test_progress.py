"""Progress where a person watches: a short replay run in a pseudo-terminal prints a
status line every ``progress_every_s`` (bars of the total with the rate and time left,
fills, equity, PnL, drawdown, trading state; a line per strategy when there are two) and a
summary on stop with the next commands; under systemd (``NOTIFY_SOCKET`` set, output to a
pipe) it prints none of them."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.notify_socket import NotifySocket
from tests.service import CLI, ema, write_config

pytestmark = pytest.mark.node

TWO_STRATEGIES = ema("001", "BTCUSDT-PERP.BINANCE") + ema("002", "BTCUSDT-PERP.BINANCE")


def config_with_progress(tmp_path: Path, name: str, bars: int) -> Path:
    config, _ = write_config(
        tmp_path,
        trader="PROG-001",
        speed=3000,  # 50 bars a second: a few seconds of replay
        replay=f"bars = {bars}\nstop_when_done = true",
        extra=TWO_STRATEGIES,
        name=name,
    )
    text = config.read_text().replace(
        'node_log_level = "ERROR"', 'node_log_level = "ERROR"\nprogress_every_s = 1'
    )
    config.write_text(text)
    return config


def run_in_terminal(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> tuple[int, str]:
    """Runs ``args`` with a pseudo-terminal as stdin, stdout and stderr; its whole output."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(args, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every writer (the service, its node child) has closed it
                break
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode(errors="replace").replace("\r\n", "\n")


def test_a_replay_in_a_terminal_shows_progress_and_a_summary(tmp_path: Path):
    config = config_with_progress(tmp_path, "tty", bars=400)
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    code, out = run_in_terminal([*CLI, "run", "--config", str(config)], tmp_path, env, 120)
    assert code == 0, out[-3000:]
    account = [line for line in out.splitlines() if line.startswith("[progress] bars ")]
    assert len(account) >= 2, out[-3000:]
    for line in account:
        assert "/400 (" in line and "| fills " in line and "| equity " in line, line
        assert "USDT" in line and "| PnL " in line and "| drawdown " in line, line
        assert line.endswith("ACTIVE"), line
    assert any("bars/s" in line and " left" in line for line in account), account
    strategies = [line for line in out.splitlines() if line.startswith("[progress]   ")]
    assert {line.split(":")[0].split()[-1] for line in strategies} == {
        "EmaCross-001",
        "EmaCross-002",
    }, out[-3000:]
    summary = out[out.index("stopped: replay finished") :]
    for part in ("bars          400 of 400", "fills", "round trips", "net PnL", "max drawdown",
                 "fees", "funding"):  # fmt: skip
        assert part in summary, summary
    assert f"paper-node report stats --config {config}" in summary
    assert f"paper-node report parity --config {config}" in summary


def test_under_systemd_there_is_no_progress(tmp_path: Path):
    config = config_with_progress(tmp_path, "journal", bars=150)
    notify = NotifySocket(tmp_path / "notify.sock")
    try:
        env = {**os.environ, "NOTIFY_SOCKET": str(notify.path)}
        done = subprocess.run(
            [*CLI, "run", "--config", str(config)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert "READY=1" in notify.lines()  # it did run as under systemd, to its end
    finally:
        notify.close()
    output = done.stdout + done.stderr
    assert "[progress]" not in output
    lines = output.splitlines()
    assert not [line for line in lines if line.startswith(("stopped: ", "next:", "  round trips"))]
