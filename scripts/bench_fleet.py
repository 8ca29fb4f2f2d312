"""Benchmark: N traders on one host, each its own service and database (issue 28).

    python -m scripts.bench_fleet [--counts 1,5,10] [--speed 1] [--window 60]
                                  [--checkpoint-interval 1] [--out PATH]

For each count N: N services (``paper-node run``, the bundled synthetic replay at ``speed``,
1 = real time: a one-minute bar a minute, as a live feed brings them), each with its own
config, SQLite database and /metrics port, started together. Once every one trades, for
``window`` seconds: the RSS of every process (each service and its node child; PSS, which
shares the libraries' pages fairly, beside it), the CPU time they used (per trader, as a
share of one core), and each service's checkpoint write times from its
``paper_checkpoint_write_seconds`` histogram (every service writing its own database every
``checkpoint_interval`` seconds: the p99 over all of them, as ``histogram_quantile`` reads
buckets). The services are then stopped with SIGTERM (a graceful stop, exit 0 expected).

Writes ``test-artifacts/bench-fleet.json`` (rows as ``scripts.bench`` writes them, and each
count's figures) and prints the table. Not part of ``make bench``: it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import TypedDict

from prometheus_client.parser import text_string_to_metric_families

from scripts.bench_common import ROOT, Row, print_rows

CLI = [sys.executable, str(ROOT / "scripts" / "run_supervisor.py")]
CONFIG = """
[service]
trader_id = "FLEET-{n:03d}"
db_path = "{db}"
checkpoint_interval_s = {checkpoint}
node_log_level = "ERROR"
[replay]
speed = {speed}
seed = {n}
[metrics]
enabled = true
port = {port}
"""
PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


class Count(TypedDict):
    traders: int
    rss_mib: float  # every service and node child
    pss_mib: float
    rss_mib_per_trader: float
    cpu_pct_per_trader: float  # of one core, over the window
    cpu_pct_total: float
    checkpoint_writes: int
    checkpoint_write_p99_s: float
    start_s: float  # from launch to every trader trading
    exit_codes: list[int]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the node child, its resource tracker)."""
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                queue.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def memory_mib(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of one process, MiB."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0.0, 0.0
    values = {line.split(":")[0]: int(line.split()[1]) for line in rollup[1:] if ":" in line}
    return values.get("Rss", 0) / 1024, values.get("Pss", 0) / 1024


def trading(db: Path) -> bool:
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=2)
        try:
            row = conn.execute("SELECT state FROM heartbeat").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "running"


Buckets = dict[float, float]  # upper bound -> cumulative count


def write_buckets(port: int) -> Buckets:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    buckets: Buckets = {}
    for family in text_string_to_metric_families(text):
        if family.name == "paper_checkpoint_write_seconds":
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    bound = float(s.labels["le"])
                    buckets[bound] = buckets.get(bound, 0.0) + s.value
    return buckets


def quantile(q: float, buckets: Buckets) -> float:
    """As PromQL's histogram_quantile: linear within the bucket the rank falls in."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total == 0:
        return 0.0
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(buckets[bound] - below, 1e-12)
        lower, below = bound, buckets[bound]
    return lower


def run_count(n: int, args: argparse.Namespace, scratch: Path) -> Count:
    here = scratch / f"n{n}"
    here.mkdir(parents=True)
    ports = [free_port() for _ in range(n)]
    dbs = [here / f"t{i}.db" for i in range(n)]
    procs = []
    started = time.monotonic()
    for i in range(n):
        config = here / f"t{i}.toml"
        config.write_text(
            CONFIG.format(n=i + 1, db=dbs[i], checkpoint=args.checkpoint_interval,
                          speed=args.speed, port=ports[i])
        )  # fmt: skip
        log = (here / f"t{i}.log").open("w")
        procs.append(
            subprocess.Popen([*CLI, "run", "--config", str(config)], cwd=here, stdout=log,
                             stderr=subprocess.STDOUT)
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not all(trading(db) for db in dbs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError(f"{n} traders: not all trading (see {here})")
            time.sleep(0.5)
        start_s = time.monotonic() - started
        before = [write_buckets(p) for p in ports]
        pids = [pid for p in procs for pid in tree(p.pid)]
        cpu0, t0 = sum(cpu_s(pid) for pid in pids), time.monotonic()
        rss = pss = 0.0
        samples = 0
        while time.monotonic() - t0 < args.window:
            time.sleep(min(5.0, args.window / 4))
            pids = [pid for p in procs for pid in tree(p.pid)]
            mem = [memory_mib(pid) for pid in pids]
            rss = max(rss, sum(m[0] for m in mem))
            pss = max(pss, sum(m[1] for m in mem))
            samples += 1
        cpu = sum(cpu_s(pid) for pid in pids) - cpu0
        elapsed = time.monotonic() - t0
        after = [write_buckets(p) for p in ports]
        merged: Buckets = {}
        for b0, b1 in zip(before, after, strict=True):
            for bound, value in b1.items():
                merged[bound] = merged.get(bound, 0.0) + value - b0.get(bound, 0.0)
        writes = int(merged.get(float("inf"), 0.0))
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = []
        for p in procs:
            try:
                codes.append(p.wait(timeout=120))
            except subprocess.TimeoutExpired:
                p.kill()
                codes.append(p.wait())
    return Count(
        traders=n,
        rss_mib=round(rss, 1),
        pss_mib=round(pss, 1),
        rss_mib_per_trader=round(rss / n, 1),
        cpu_pct_per_trader=round(100 * cpu / elapsed / n, 2),
        cpu_pct_total=round(100 * cpu / elapsed, 1),
        checkpoint_writes=writes,
        checkpoint_write_p99_s=round(quantile(0.99, merged), 4),
        start_s=round(start_s, 1),
        exit_codes=codes,
    )


def rows_of(counts: list[Count]) -> list[Row]:
    rows: list[Row] = []
    for c in counts:
        n = c["traders"]
        rows.append(
            Row(
                name=f"fleet {n}: RSS per trader (service + node child)",
                value=c["rss_mib_per_trader"],
                unit="MiB",
                target="-",
                anchor=f"total {c['rss_mib']} MiB, PSS {c['pss_mib']} MiB",
                ok=None,
            )
        )
        rows.append(
            Row(
                name=f"fleet {n}: CPU per trader",
                value=c["cpu_pct_per_trader"],
                unit="% core",
                target="-",
                anchor=f"total {c['cpu_pct_total']} %",
                ok=None,
            )
        )
        rows.append(
            Row(
                name=f"fleet {n}: checkpoint write p99",
                value=c["checkpoint_write_p99_s"] * 1000,
                unit="ms",
                target="<= 100 ms",
                anchor=f"{c['checkpoint_writes']} writes",
                ok=c["checkpoint_write_p99_s"] <= 0.1,
            )
        )
    return rows  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--counts", default="1,5,10")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--checkpoint-interval", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "bench-fleet.json")
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    counts: list[Count] = []
    try:
        for n in (int(x) for x in args.counts.split(",")):
            counts.append(run_count(n, args, scratch))
            print(json.dumps(counts[-1]), flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = rows_of(counts)
    print_rows(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "rows": rows,
        "counts": counts,
        "speed": args.speed,
        "window_s": args.window,
        "checkpoint_interval_s": args.checkpoint_interval,
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30, 1),
        "load_avg_at_end": os.getloadavg(),
        "shared_machine": "measured while other agents ran tests on the same 2 cores",
    }
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(code == 0 for c in counts for code in c["exit_codes"]) else 1


if __name__ == "__main__":
    sys.exit(main())
