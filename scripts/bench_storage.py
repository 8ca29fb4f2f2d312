"""Benchmark: checkpoint writes and recovery at 100 and 10k orders, and the
supervisor process's memory."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

from protocol import (
    OrderView,
    PositionView,
    Snapshot,
    TradingState,
)
from scripts.bench_common import ROOT, Row
from storage import Store


def synthetic_snapshot(orders: int, positions: int) -> Snapshot:
    d = Decimal
    return Snapshot(
        taken_at_ns=time.time_ns(),
        trader_id="BENCH-003",
        trading_state=TradingState.ACTIVE,
        currency="USDT",
        balance=d("100000.12345678"),
        equity=d("100100.5"),
        realized_pnl=d("12.5"),
        unrealized_pnl=d("88.0"),
        replay_cursor=1234,
        open_orders=tuple(
            OrderView(f"O-{i}", "BTCUSDT-PERP.BINANCE", "BUY", "LIMIT", d("0.1"), d(0),
                      d("59000.1"), "ACCEPTED")
            for i in range(orders)
        ),
        positions=tuple(
            PositionView(f"P-{i}", "BTCUSDT-PERP.BINANCE", "LONG", d("0.1"), d("60000.5"),
                         d("-1.5"), d("12.25"))
            for i in range(positions)
        ),
    )  # fmt: skip


def timed(fn: Callable[[], object], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


def storage_figures(quick: bool) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=ROOT / "test-artifacts") as tmp:
        store = Store(Path(tmp) / "bench.db")
        run = store.open_run("BENCH-003", "replay")
        for orders in (100, 10_000):
            snap = synthetic_snapshot(orders, 1000)

            def write_once(s: Snapshot = snap) -> object:
                return store.write_checkpoint(run, s)

            write = timed(write_once, 3 if quick else 10)
            read = timed(lambda: store.last_snapshot("BENCH-003"), 3 if quick else 10)
            rows.append(
                Row(
                    name=f"checkpoint write, {orders} orders + 1k positions",
                    value=write,
                    unit="ms",
                    target="<= 100 ms",
                    anchor="median",
                    ok=write <= 100,
                )
            )
            rows.append(
                Row(
                    name=f"checkpoint recovery, {orders} orders + 1k positions",
                    value=read,
                    unit="ms",
                    target="<= 500 ms",
                    anchor="median",
                    ok=read <= 500,
                )
            )
        store.close()
    return rows  # fmt: skip


def supervisor_rss() -> list[Row]:
    with tempfile.TemporaryDirectory(dir=ROOT / "test-artifacts") as tmp:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "run_supervisor.py"), "run",
             "--db", str(Path(tmp) / "rss.db"), "--duration", "8"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp,
        )  # fmt: skip
        time.sleep(6)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss_kb = int(
            next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))
        )
        proc.wait(timeout=60)
    mb = rss_kb / 1024
    return [Row(name="supervisor process RSS (node child excluded)", value=mb, unit="MB",
                target="<= 80 MB", anchor="VmRSS of the parent at 6 s", ok=mb <= 80)]  # fmt: skip
