"""Benchmarks of the whole service as a process, as systemd runs it.

- ``cold_restart``: SIGKILL the service, start it again at once (``Restart=always`` with
  no delay), and time the kill -> the new node trading (its ``node_started`` event),
  beside the node child's own start (process start -> trading, reported by the child)
  as the floor: what a restart costs beyond starting a node is ours.
- ``soak``: a long replay at full speed (1,000,000 bars in the full run) with every
  retention and purge setting short, sampling the supervisor's and the node's RSS and
  the database's size as the bars go by: each must level off, not climb with the bar
  count - the database's but for its ledger, which is kept and grows with the fills
  (reported beside, per fill). The samples go to ``test-artifacts/soak.json``.
- ``parity_report``: a session played to its end, then ``paper-node report parity``
  on it: the report's wall time, and whether the session equalled the backtest.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from scripts.bench_common import ROOT, Row, pct

CLI = [sys.executable, str(ROOT / "scripts" / "run_supervisor.py")]

CONFIG = """
[service]
trader_id = "{trader}"
db_path = "{db}"
checkpoint_interval_s = 1
heartbeat_interval_s = 0.5
node_log_level = "ERROR"
{service}
[replay]
speed = {speed}
bars = {bars}
{extra}"""


def _start(config: Path, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*CLI, "run", "--config", str(config)], cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )


def _query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return []  # created, schema not written yet
    finally:
        conn.close()


def _node_started(db: Path, run_id: int) -> dict[str, object] | None:
    rows = _query(
        db, "SELECT payload FROM events WHERE kind = 'node_started' AND run_id = ?", (run_id,)
    )
    return json.loads(str(rows[0][0])) if rows else None


def _wait(what: str, probe: object, timeout: float) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe() if callable(probe) else None
        if value:
            return value
        time.sleep(0.01)
    raise TimeoutError(f"{what} not within {timeout} s")


def cold_restart(kills: int) -> list[Row]:
    with tempfile.TemporaryDirectory(dir=ROOT / "test-artifacts") as tmp:
        work = Path(tmp)
        db, config, log = work / "cold.db", work / "cold.toml", work / "cold.log"
        config.write_text(
            CONFIG.format(trader="COLD-001", db=db, service="", speed=240, bars=50_000, extra="")
        )
        proc = _start(config, work, log)
        restarts: list[float] = []
        floors: list[float] = []
        try:
            first = _wait("the first node", lambda: _node_started(db, 1), 90)
            assert isinstance(first, dict)
            floors.append(float(str(first.get("startup_s", 0))))
            for run in range(2, kills + 2):
                time.sleep(1.0)
                t0 = time.monotonic()
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                proc = _start(config, work, log)  # systemd: Restart=always, RestartSec=0
                started = _wait(f"run {run} trading", lambda r=run: _node_started(db, r), 90)
                restarts.append(time.monotonic() - t0)
                assert isinstance(started, dict)
                floors.append(float(str(started.get("startup_s", 0))))
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(60)
    floor = statistics.median(floors)
    return [
        Row(name=f"cold restart: service SIGKILL -> trading again, p50 ({kills} kills)",
            value=statistics.median(restarts), unit="s", target="-",
            anchor=f"node child's own start (process -> trading) p50 {floor:.2f} s", ok=None),
        Row(name=f"cold restart: service SIGKILL -> trading again, p95 ({kills} kills)",
            value=pct(restarts, 0.95), unit="s", target="<= 5 s",
            anchor=f"floor p95 {pct(floors, 0.95):.2f} s; max {max(restarts):.2f} s",
            ok=pct(restarts, 0.95) <= 5.0),
    ]  # fmt: skip


class Sample(TypedDict):
    t_s: float
    cursor: int
    supervisor_rss_mb: float
    node_rss_mb: float
    db_mb: float
    ledger_mb: float  # the ledger's pages (and its indexes'), inside db_mb


@dataclass
class _Soak:
    db: Path
    service_pid: int

    def node_pid(self) -> int | None:
        rows = _query(self.db, "SELECT payload FROM events WHERE kind = 'node_started' "
                      "ORDER BY id DESC LIMIT 1")  # fmt: skip
        return int(json.loads(str(rows[0][0]))["pid"]) if rows else None

    def cursor(self) -> tuple[int, int] | None:
        rows = _query(self.db, "SELECT replay_cursor, snapshot FROM checkpoints "
                      "ORDER BY id DESC LIMIT 1")  # fmt: skip
        if not rows:
            return None
        return int(str(rows[0][0])), int(json.loads(str(rows[0][1]))["replay_total"])

    def db_mb(self) -> float:
        files = [self.db, self.db.with_name(self.db.name + "-wal")]
        return sum(f.stat().st_size for f in files if f.exists()) / 1e6

    def ledger_mb(self) -> float:
        rows = _query(self.db, "SELECT sum(pgsize) FROM dbstat WHERE name LIKE 'ledger%'")
        return int(str(rows[0][0] or 0)) / 1e6 if rows else 0.0


def _rss_mb(pid: int | None) -> float:
    if pid is None:
        return 0.0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    kb = next((line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")), "0")
    return int(kb) / 1024


SOAK_SERVICE = """keep_checkpoints = 200
keep_hourly_h = 0
keep_daily_d = 0
keep_events_d = 0
retention_sweep_s = 10
node_purge_interval_mins = 1
node_purge_buffer_mins = 1"""
# The EMA cross compounds on the synthetic walk's trends (100k became 8M in 60k bars);
# at 1 % risk its orders outgrow the replay's trade sizes and rest partly filled by the
# hundred. A soak measures the service, not that: 0.1 % keeps every order fillable.
SOAK_RISK = '[risk]\nrisk_per_trade = "0.001"\n'


def soak(bars: int, out: Path) -> list[Row]:
    with tempfile.TemporaryDirectory(dir=ROOT / "test-artifacts") as tmp:
        work = Path(tmp)
        db, config, log = work / "soak.db", work / "soak.toml", work / "soak.log"
        config.write_text(
            CONFIG.format(
                trader="SOAK-001", db=db, service=SOAK_SERVICE, speed=0, bars=bars, extra=SOAK_RISK
            )
        )
        proc = _start(config, work, log)
        soak = _Soak(db, proc.pid)
        samples: list[Sample] = []
        t0 = time.monotonic()
        try:
            _wait("the node", soak.node_pid, 120)
            node = soak.node_pid()
            while True:
                time.sleep(2.0)
                assert proc.poll() is None, log.read_text()[-3000:]
                position = soak.cursor()
                if position is None:
                    continue
                cursor, total = position
                samples.append(Sample(t_s=round(time.monotonic() - t0, 1), cursor=cursor,
                                      supervisor_rss_mb=round(_rss_mb(proc.pid), 1),
                                      node_rss_mb=round(_rss_mb(node), 1),
                                      db_mb=round(soak.db_mb(), 2),
                                      ledger_mb=round(soak.ledger_mb(), 2)))  # fmt: skip
                if cursor >= total or time.monotonic() - t0 > 3600:
                    break
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                proc.wait(120)
        fills = _query(db, "SELECT n FROM event_counts WHERE kind = 'fill'")
    filled = int(str(fills[0][0])) if fills else 0
    out.write_text(json.dumps({"bars": bars, "fills": filled, "samples": samples},
                              indent=1))  # fmt: skip
    return _soak_rows(bars, samples, filled)


def _soak_rows(bars: int, samples: list[Sample], fills: int = 0) -> list[Row]:
    """Start = the first sample past 10 % of the bars (start-up and the first fills
    done), mid = half way, end = the last: growth flattens when the second half grows
    (much) less than the first."""
    total = samples[-1]["cursor"]
    start = next(s for s in samples if s["cursor"] >= total * 0.1)
    mid = next(s for s in samples if s["cursor"] >= total * 0.5)
    end = samples[-1]
    elapsed = end["t_s"] - samples[0]["t_s"]
    rate = (end["cursor"] - samples[0]["cursor"]) / elapsed if elapsed > 0 else 0.0
    rows = [Row(name=f"soak: {total:,} bars replayed at full speed", value=rate, unit="bars/s",
                target="-", anchor=f"{end['t_s']:.0f} s in all", ok=None)]  # fmt: skip
    measures: tuple[tuple[str, Callable[[Sample], float], float], ...] = (
        ("supervisor RSS", lambda s: s["supervisor_rss_mb"], 5.0),
        ("node child RSS", lambda s: s["node_rss_mb"], 20.0),
        (
            "database + WAL size less the ledger",
            lambda s: round(s["db_mb"] - s["ledger_mb"], 2),
            2.0,
        ),
    )
    for what, value, slack in measures:
        first_half, second_half = value(mid) - value(start), value(end) - value(mid)
        rows.append(Row(
            name=f"soak: {what} at 10% / 50% / end", value=value(end), unit="MB",
            target="flattens",
            anchor=f"{value(start)} / {value(mid)} / {value(end)} MB; "
            f"growth {first_half:+.1f} then {second_half:+.1f} MB",
            ok=second_half <= max(first_half * 0.5, slack),
        ))  # fmt: skip
    per_fill = f"{end['ledger_mb'] * 1e6 / fills:.0f} B per fill" if fills else "no fill"
    rows.append(Row(name="soak: the ledger (kept: grows with the fills) at the end",
                    value=end["ledger_mb"], unit="MB", target="-",
                    anchor=f"{per_fill}, {fills:,} fill(s)", ok=None))  # fmt: skip
    return rows


REAL_BARS = ROOT / "tests" / "data" / "btc-perp-2022-01-1m.csv"
PARITY_REPLAY = {
    "real": f'source = "file"\npath = "{REAL_BARS}"',
    "synthetic": "",  # the bundled example's seeded walk
}
# Breakers out of the way: a backtest has none (a halted session is reported as such).
PARITY_EXTRA = """stop_when_done = true
[strategy]
ladder_orders = 3
ladder_step_pct = "0.001"
[risk]
max_drawdown_pct = "90"
daily_loss_limit_pct = "90"
"""


def parity_report(quick: bool) -> list[Row]:
    """A session played to its end at speed 0, then ``paper-node report parity`` on it:
    the report's own wall time (NautilusTrader's import, the session read back, the
    backtest) and whether the two were equal."""
    rows: list[Row] = []
    cases = [("real", 4320)] if quick else [("real", 4320), ("synthetic", 50_000)]
    for name, bars in cases:
        with tempfile.TemporaryDirectory(dir=ROOT / "test-artifacts") as tmp:
            work = Path(tmp)
            db, config, log = work / "parity.db", work / "parity.toml", work / "parity.log"
            extra = PARITY_REPLAY[name] + "\n" + PARITY_EXTRA  # [replay] goes on
            config.write_text(
                CONFIG.format(trader="PARITY-001", db=db, service="", speed=0, bars=bars,
                              extra=extra)
            )  # fmt: skip
            proc = _start(config, work, log)
            if proc.wait(900) != 0:
                raise RuntimeError(f"parity session failed: {log.read_text()[-3000:]}")
            t0 = time.perf_counter()
            done = subprocess.run(
                [*CLI, "report", "parity", "--db", str(db), "--json"],
                capture_output=True, text=True, timeout=900, check=False, cwd=work,
            )  # fmt: skip
            elapsed = time.perf_counter() - t0
        if done.returncode not in (0, 6):
            raise RuntimeError(f"parity report failed: {done.stderr[-3000:]}")
        report = json.loads(done.stdout)
        fills = report["session"]["fills"]
        rows.append(Row(
            name=f"parity report, {name} bars ({bars:,}), wall time", value=elapsed, unit="s",
            target="equal", ok=bool(report["equal"]),
            anchor=f"{'equal' if report['equal'] else 'DIFFERENT'}: {fills} fills; its "
            f"BacktestEngine run {report['backtest_s']:.1f} s",
        ))  # fmt: skip
    return rows
