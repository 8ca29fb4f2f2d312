"""Running as a service: systemd unit, sd_notify, heartbeat, signals, logs, secrets."""

from __future__ import annotations

import gc
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from protocol import unplace_supervisor
from supervisor import Service, load_config
from tests.notify_socket import NotifySocket
from tests.service import ROOT, ServiceProcess, cli, events, wait_for, write_config

UNIT = ROOT / "scripts" / "systemd" / "paper-node.service"


def test_the_unit_declares_notify_watchdog_restart_secrets_and_hardening():
    unit = UNIT.read_text()
    for directive in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "EnvironmentFile=/etc/paper-node/secrets.env",  # required: no "-" to hide it missing
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/paper-node",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert directive in unit
    assert "TOKEN" not in unit and "SECRET" not in unit


def test_the_systemd_example_config_loads_and_serves_metrics_on_loopback(tmp_path):
    config = ROOT / "scripts" / "systemd" / "paper.toml"
    checked = cli("config", "check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = config.read_text()
    assert "enabled = true" in text and 'host = "127.0.0.1"' in text
    assert "TOKEN" not in text and "SECRET" not in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    unit = tmp_path / "paper-node.service"
    unit.write_text(UNIT.read_text().replace("/opt/paper-node", str(ROOT)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "paper-node.service" not in done.stderr, done.stderr


@pytest.mark.node
def test_ready_watchdog_and_stopping_reach_notify_socket(tmp_path):
    notify = NotifySocket(tmp_path / "notify.sock")
    config, db = write_config(tmp_path, trader="SD-001")
    env = {**os.environ, "NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "1000000"}
    service = ServiceProcess(config, db, tmp_path, env=env)
    try:
        notify.wait_for("READY=1", timeout=60)
        assert any(line.startswith("STATUS=running") for line in notify.lines())
        ready_at = len(notify.lines())
        notify.wait_for("WATCHDOG=1", notify.count("WATCHDOG=1") + 3, timeout=10)
        assert notify.lines().index("READY=1") < ready_at
        assert service.terminate() == 0
        notify.wait_for("STOPPING=1", timeout=5)
    finally:
        service.ensure_dead()
        notify.close()


@pytest.mark.node
def test_a_stale_heartbeat_reads_as_not_running_with_its_own_exit_code(tmp_path):
    config, db = write_config(tmp_path, trader="HB-001")
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("beating", lambda r: r["state"] == "running")
        alive = cli("status", "--config", str(config), cwd=tmp_path)
        assert alive.returncode == 0 and "running" in alive.stdout
        service.kill()
    finally:
        service.ensure_dead()
    time.sleep(2.0)  # heartbeat every 0.5 s: stale after 1.5 s
    dead = cli("status", "--config", str(config), "--json", cwd=tmp_path)
    assert dead.returncode == 3
    assert json.loads(dead.stdout)["state"] == "not_running"


@pytest.mark.node
def test_sighup_applies_new_risk_limits_and_refuses_bad_ones(tmp_path):
    config, db = write_config(tmp_path, trader="HUP-001")
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("running", lambda r: r["state"] == "running")
        original = config.read_text()
        config.write_text(original + '[risk]\nrisk_per_trade = "0.005"\nmax_drawdown_pct = 15\n')
        service.proc.send_signal(signal.SIGHUP)
        good = wait_for("a reload", lambda: [p for _, p in events(db, "config_reloaded")])
        assert good[0]["accepted"] is True
        assert "risk_per_trade=Decimal('0.005')" in str(good[0]["detail"])

        config.write_text(original + '[risk]\nrisk_per_trade = "0.9"\n')
        service.proc.send_signal(signal.SIGHUP)

        def two_reloads() -> list[dict[str, object]] | None:
            reloads = [p for _, p in events(db, "config_reloaded")]
            return reloads if len(reloads) == 2 else None

        both = wait_for("a refused reload", two_reloads)
        assert both[1]["accepted"] is False
        assert "old limits kept" in str(both[1]["detail"])
        assert "risk.risk_per_trade" in str(both[1]["detail"])
        assert service.proc.poll() is None, "a bad reload never stops the service"
        assert service.terminate() == 0
    finally:
        service.ensure_dead()


@pytest.mark.node
def test_no_secret_reaches_a_file_the_database_or_the_logs(tmp_path):
    secrets = {
        "TELEGRAM_BOT_TOKEN": "424242:SecretTokenValueThatMustNeverBeWritten",
        "TELEGRAM_CHAT_IDS": "777",
        "BINANCE_API_KEY": "binance-key-value-never-written-0001",
        "BINANCE_API_SECRET": "binance-secret-value-never-written-0002",
    }
    state = tmp_path / "state"
    scratch = tmp_path / "tmpdir"
    state.mkdir()
    scratch.mkdir()
    config, db = write_config(
        state,
        trader="SEC-001",
        # Telegram on, pointing at a closed loopback port: deliveries fail and are retried.
        extra='[telegram]\napi_base = "http://127.0.0.1:9"\npump_interval_s = 0.2\n'
        "request_timeout_s = 1\nbackoff_max_s = 1\npoll_timeout_s = 1\n",
    )
    env = {**os.environ, **secrets, "TMPDIR": str(scratch)}
    service = ServiceProcess(config, db, tmp_path, "--log-format", "json", env=env)
    try:
        service.wait_status("a fill", lambda r: r["fills"] > 0)
        assert cli("halt", "--config", str(config), cwd=tmp_path, env=env).returncode == 0
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    log_lines = service.log_path.read_text().splitlines()
    parsed = [json.loads(line) for line in log_lines if line.startswith("{")]
    assert parsed and {"ts", "level", "logger", "msg"} <= set(parsed[0])
    scanned: list[Path] = [service.log_path, *state.rglob("*")]
    assert {p.name for p in state.iterdir()} <= {
        "svc.toml",
        "svc.db",
        "svc.db-wal",
        "svc.db-shm",
        "svc.db.SEC-001.lock",  # one service of this trader (holds only a pid)
        "svc.db.SEC-001.node.lock",  # one node of this trader
    }
    assert not list(scratch.iterdir()), "nothing is written to the temp directory"
    for path in scanned:
        data = path.read_bytes()
        for name, value in secrets.items():
            if name != "TELEGRAM_CHAT_IDS":
                assert value.encode() not in data, f"{name} found in {path}"


def test_the_supervisor_process_loads_no_numerics_nor_nautilus(tmp_path):
    """The supervisor holds the tree, not the trading: NautilusTrader lives in the node
    child, and numpy, scipy and pandas only in the commands that compute (a parity or
    readiness report). Each costs the process memory it keeps for weeks (the readiness
    statistics, imported at the top of the command line, had doubled its RSS to 129 MB).
    Checked from outside, in the process's own memory map."""
    config, db = write_config(tmp_path, trader="LEAN-001")
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("a fill", lambda r: r["fills"] > 0)
        maps = Path(f"/proc/{service.proc.pid}/maps").read_text()
    finally:
        service.ensure_dead()
    loaded = {
        line.split()[-1] for line in maps.splitlines() if line.endswith(".so") or ".so." in line
    }
    heavy = ("/numpy/", "/scipy/", "/pandas/", "/pyarrow/", "/nautilus_trader/", "/dtaidistance/")
    assert not [path for path in loaded if any(part in path for part in heavy)]
    assert any("/_sqlite3" in path for path in loaded)  # the map is the supervisor's own


def _cpus_of(pid: int) -> dict[int, frozenset[int]]:
    """Each thread of ``pid``: the CPUs it may run on (``Cpus_allowed_list``, which the
    kernel writes as ranges: "0-2,4")."""
    allowed: dict[int, str] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        line = next(x for x in status.splitlines() if x.startswith("Cpus_allowed_list:"))
        cpus: set[int] = set()
        for part in line.split(":", 1)[1].strip().split(","):
            first, _, last = part.partition("-")
            cpus.update(range(int(first), int(last or first) + 1))
        allowed[int(task.name)] = frozenset(cpus)
    return allowed


def _cpus_while_trading(
    config: Path, db: Path, cwd: Path
) -> tuple[dict[int, frozenset[int]], dict[int, frozenset[int]]]:
    """The CPUs of each thread of the supervisor and of its node child, after a fill."""
    service = ServiceProcess(config, db, cwd)
    try:
        service.wait_status("a fill", lambda r: r["fills"] > 0)
        node_pid = int(events(db, "node_started")[-1][1]["pid"])
        return _cpus_of(service.proc.pid), _cpus_of(node_pid)
    finally:
        service.ensure_dead()


def test_the_supervisor_freezes_its_start_up_heap(tmp_path):
    """Issue 29: a full collection of the supervisor's 88k start-up objects took 27-44 ms
    with the GIL held, and every fill or halt that met one waited for it (our part of a
    fill p99 up to 33 ms with 20 strategies). Once its tree is built, what the process
    holds is frozen: a full collection walks only what came after. In this process, so
    with ``split_cpus = false``, which leaves its CPUs as they were (and is read here)."""
    db = tmp_path / "heap.db"
    path = tmp_path / "heap.toml"
    path.write_text(f'[service]\ntrader_id = "HEAP-001"\ndb_path = "{db}"\nsplit_cpus = false\n')
    cpus = os.sched_getaffinity(0)
    gc.unfreeze()
    service = Service(load_config(path, import_strategies=False), restore=False)
    try:
        service.start()
        frozen = gc.get_freeze_count()
        placed = os.sched_getaffinity(0)
    finally:
        service.stop("test: heap read")
        unplace_supervisor()  # in case it did place this process
        gc.unfreeze()
    assert frozen > 10_000, frozen
    assert placed == cpus


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to split")
def test_the_supervisors_threads_share_one_cpu_and_the_node_child_has_the_others(tmp_path):
    """Issue 29: on a VM whose idle vCPUs halt, a supervisor thread woken on the other
    CPU than its waker starts up to 1 ms later - a fill's hop from the pipe thread to the
    checkpointer landed there for about one fill in three - and a busy node child on the
    supervisor's core made the pipe reader wait for its time slice. The supervisor (one
    process, one GIL) now keeps its threads on one CPU, and the node child it starts runs
    on the others (it would inherit the supervisor's). Read from outside, every thread."""
    usable = frozenset(os.sched_getaffinity(0))
    config, db = write_config(tmp_path, trader="PIN-002")
    supervisor, node = _cpus_while_trading(config, db, tmp_path)
    (home,) = set(supervisor.values())
    assert len(home) == 1 and home <= usable, supervisor
    assert set(node.values()) == {usable - home}, node
    assert len(node) > 3 and len(supervisor) > 3  # the threads, not only the main one


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to split")
def test_node_cpus_give_the_node_child_its_own_cpu_and_the_supervisor_the_others(tmp_path):
    """Issue 29: a busy node and the supervisor's threads on one core wait for each other
    (a fill's hop to the parent p99 4-6 ms, 0.6 ms apart). Read from outside: every
    thread of each process, the node's Nautilus and pipe threads too."""
    usable = sorted(os.sched_getaffinity(0))
    node_cpu, rest = usable[-1], usable[:-1]
    config, db = write_config(tmp_path, trader="PIN-001")
    text = config.read_text().replace(
        'node_log_level = "ERROR"', f'node_log_level = "ERROR"\nnode_cpus = [{node_cpu}]'
    )
    config.write_text(text)
    supervisor, node = _cpus_while_trading(config, db, tmp_path)
    assert set(node.values()) == {frozenset([node_cpu])}, node
    (home,) = set(supervisor.values())  # one of the others, all its threads on it
    assert len(home) == 1 and home <= frozenset(rest), supervisor
    assert len(node) > 3 and len(supervisor) > 3  # the threads, not only the main one

    # Every CPU to the node leaves the supervisor none: refused before anything starts.
    config.write_text(text.replace(f"node_cpus = [{node_cpu}]", f"node_cpus = {usable}"))
    done = cli("config", "check", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert "leave at least one for the supervisor" in done.stderr, done.stderr
    # A CPU the service may not run on (systemd's CPUAffinity=, or not in the machine).
    config.write_text(text.replace(f"node_cpus = [{node_cpu}]", f"node_cpus = [{usable[-1] + 1}]"))
    done = cli("config", "check", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 2
    assert f"CPU {usable[-1] + 1} is not one this service may run on" in done.stderr, done.stderr
