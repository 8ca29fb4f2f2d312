"""Prometheus metrics and the health probes, scraped from a running service as Prometheus
and a load balancer would: over HTTP on loopback, parsed with prometheus-client's own
text parser, checked against ``status --json``, a node killed, a halt, a stalled feed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import test_binance_modes as binance_modes
from tests.binance_emulator import BinanceEmulator
from tests.service import ServiceProcess, cli, node_pids, wait_for, write_config
from tests.test_binance_modes import env, write

pytestmark = pytest.mark.node


emulator = binance_modes.emulator  # the loopback Binance those tests use (a fixture)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def probe(port: int, path: str) -> tuple[int, dict[str, object]]:
    """A probe's answer; 0 while nothing listens yet (the service is starting)."""
    try:
        code, body = get(port, path)
    except urllib.error.URLError as exc:
        return 0, {"reasons": [str(exc.reason)]}
    return code, json.loads(body)


def scrape(port: int) -> tuple[str, Samples]:
    code, text = get(port, "/metrics")
    assert code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return text, samples


def total(samples: Samples, name: str, **labels: str) -> float:
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def metrics_section(port: int) -> str:
    return f"[metrics]\nenabled = true\nport = {port}\n"


def test_metrics_match_status_and_count_a_forced_restart(tmp_path: Path):
    port = free_port()
    config, db = write_config(
        tmp_path,
        trader="MET-001",
        speed=0,
        replay="bars = 1500\nstop_when_done = false",
        extra=metrics_section(port),
    )
    service = ServiceProcess(config, db, tmp_path)
    try:
        report = service.wait_status(
            "the replay played to its end",
            lambda r: r["replay_cursor"] == r["replay_total"] and r["fills"] > 0,
            120,
        )
        assert probe(port, "/healthz")[0] == 200
        code, ready = probe(port, "/readyz")
        assert code == 200, ready
        # Nothing moves once the replay is done: the checkpoint, the status and the
        # metrics tell the same numbers.
        report = service.wait_status(
            "a checkpoint after the end", lambda r: r["fills"] == report["fills"], 10
        )
        status = json.loads(cli("status", "--config", str(config), "--json", cwd=tmp_path).stdout)
        text, samples = scrape(port)
        trader = {"trader": "MET-001"}
        assert total(samples, "paper_equity", **trader) == pytest.approx(
            float(Decimal(status["equity"])), abs=1e-6
        )
        assert total(samples, "paper_balance", **trader) == pytest.approx(
            float(Decimal(status["balance"])), abs=1e-6
        )
        assert total(samples, "paper_fills_total", **trader) == status["fills"] > 0
        # The account's return on its starting balance, each strategy's on its own capital.
        assert total(samples, "paper_return_ratio", **trader) == pytest.approx(
            float(Decimal(status["account_return"])), abs=1e-9
        )
        for row in status["strategies"]:
            own = {**trader, "strategy": row["strategy_id"]}
            assert total(samples, "paper_strategy_capital", **own) == float(row["capital"])
            assert total(samples, "paper_strategy_return_ratio", **own) == pytest.approx(
                float(Decimal(row["return_on_capital"])), abs=1e-9
            )
        assert total(samples, "paper_open_orders", **trader) == status["open_orders"]
        assert total(samples, "paper_positions", **trader) == len(status["positions"])
        assert total(samples, "paper_actor_restarts_total") == 0
        assert total(samples, "paper_checkpoint_write_seconds_count") > 0
        assert total(samples, "paper_fill_to_parent_seconds_count") == status["fills"]
        # Measured on the wall clock, though a replay's venue stamps its fills with the
        # bars' market time: a fill takes milliseconds, not the years since its bar.
        latency = total(samples, "paper_fill_to_parent_seconds_sum") / status["fills"]
        assert 0 <= latency < 1
        assert total(samples, "paper_checkpoint_age_seconds") < 5
        assert 0 <= total(samples, "paper_heartbeat_age_seconds") < 5
        assert total(samples, "paper_ready") == 1
        if shutil.which("promtool"):
            checked = subprocess.run(
                ["promtool", "check", "metrics"],
                input=text,
                capture_output=True,
                text=True,
                check=False,
            )
            assert checked.returncode == 0, checked.stdout + checked.stderr

        # The node child killed: not ready while it comes back, healthy all along.
        (pid,) = node_pids(db)
        os.kill(pid, signal.SIGKILL)
        seen_not_ready: list[dict[str, object]] = []
        health_codes: list[int] = []

        def back() -> bool:
            health_codes.append(probe(port, "/healthz")[0])
            code, body = probe(port, "/readyz")
            if code == 503:
                seen_not_ready.append(body)
            return bool(seen_not_ready) and code == 200

        wait_for("not ready, then ready again", back, 90)
        reasons = " ".join(str(r) for b in seen_not_ready for r in b["reasons"])  # type: ignore[attr-defined]
        assert "node" in reasons, seen_not_ready
        assert set(health_codes) == {200}, health_codes
        _, samples = scrape(port)
        assert total(samples, "paper_actor_restarts_total", role="node") == 1
        assert len(node_pids(db)) == 2

        # A halt: not ready, and says why; resumed: ready.
        halted = cli("halt", "--config", str(config), "--reason", "probe test", cwd=tmp_path)
        assert halted.returncode == 0, halted.stdout + halted.stderr
        code, body = probe(port, "/readyz")
        assert code == 503 and "halted" in " ".join(body["reasons"]), body  # type: ignore[arg-type]
        assert total(scrape(port)[1], "paper_trading_halted") == 1
        resumed = cli("resume", "--config", str(config), "--reason", "done", cwd=tmp_path)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert wait_for("ready again", lambda: probe(port, "/readyz")[0] == 200, 30)
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    with pytest.raises(OSError):  # the port is closed with the service
        get(port, "/healthz")


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` listens on: its socket inodes among the listening
    sockets the kernel lists (state 0A)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def test_metrics_are_off_by_default(tmp_path: Path):
    """No metrics actor, no listening socket, and nobody warns about the missing role."""
    config, db = write_config(
        tmp_path, trader="MET-OFF", speed=0, replay="bars = 300\nstop_when_done = false"
    )
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("trading", lambda r: r["state"] == "running" and r["fills"] > 0, 90)
        assert listening_ports(service.proc.pid) == set()
        port = free_port()
        with_metrics, db2 = write_config(
            tmp_path,
            trader="MET-ON",
            speed=0,
            replay="bars = 300\nstop_when_done = false",
            extra=metrics_section(port),
            name="on",
        )
        other = ServiceProcess(with_metrics, db2, tmp_path)
        try:  # the check itself can see a port: the same service with metrics on
            wait_for("listening", lambda: port in listening_ports(other.proc.pid), 60)
        finally:
            other.ensure_dead()
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    log = service.log_path.read_text()
    assert "started metrics" not in log and "'metrics'" not in log, log


def test_readyz_says_when_market_data_stalls(tmp_path: Path, emulator: BinanceEmulator):
    port = free_port()
    config, db = write(
        tmp_path, emulator, "MET-STALL", "binance-sandbox", extra=metrics_section(port)
    )
    service = ServiceProcess(config, db, tmp_path, env=env())
    try:
        # Bars have come long enough for their pace to be known (and a fill to happen).
        service.wait_status("trading", lambda r: r["state"] == "running" and r["fills"] > 0, 90)
        wait_for("ready", lambda: probe(port, "/readyz")[0] == 200, 30)
        emulator.pause_market(True)

        def stalled() -> dict[str, object] | None:
            code, body = probe(port, "/readyz")
            return body if code == 503 else None

        body = wait_for("not ready on a stalled feed", stalled, 30)
        assert "market data stalled" in body["reasons"], body  # type: ignore[operator]
        assert probe(port, "/healthz")[0] == 200
        _, samples = scrape(port)
        assert total(samples, "paper_market_data_age_seconds") > 1
        emulator.pause_market(False)
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
