"""Benchmark of a binance-sandbox restart's catch-up (``node.catchup``) on a busy market.

A session trades the loopback Binance emulator's market, is SIGKILLed and stays down for a
gap of ``gap_bars`` bars, then starts again (the feed back at ten trades a second): the
figures are how fast the catch-up plays the gap (bars - market minutes - per wall second,
and trades per second) and how long the restart takes from the service's start to the node
trading live (its ``catch_up`` event), beside the node's own start (its ``node_started``
startup) as the floor. Time is compressed as the emulator compresses it: a "1m" bar lasts
a second, so a 60-bar gap - an hour of one-minute bars - takes a minute of wall time to
happen, with ``trades_per_bar`` trades in each bar (BTCUSDT's perpetual prints about
1,000-2,000 aggregate trades a minute). The catch-up reads the tape at the venue's page
size (1,000 trades a request) within its weight budget, so a real venue's hour costs what
the emulator's does here, but for the network's round trips.

Run: ``.venv/bin/python -m scripts.bench_catchup [--gap-bars 60] [--trades-per-bar 1000]``
(writes ``test-artifacts/bench-catchup.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from scripts.bench_common import ROOT, Row, print_rows
from tests.binance_emulator import BinanceEmulator

CLI = [sys.executable, str(ROOT / "scripts" / "run_supervisor.py")]
KEY, SECRET = "bench-key-5b1c0f0e2d4a49c6a7", "bench-secret-9e8d7c6b5a4938"
TICK_S = 0.1
OUT = ROOT / "test-artifacts" / "bench-catchup.json"


class CatchUpFigures(TypedDict):
    gap_bars: int
    trades_per_bar: int
    trades: int
    bars: int
    fills: int
    took_s: float
    waited_s: float
    bars_per_s: float
    cpu_trades_per_s: float
    trades_per_s: float
    restart_to_live_s: float
    node_start_s: float


def _config(home: Path, emu: BinanceEmulator) -> Path:
    path = home / "bench.toml"
    path.write_text(
        f"""
[service]
trader_id = "BENCH-CU"
mode = "binance-sandbox"
db_path = "{home / "bench.db"}"
checkpoint_interval_s = 1
heartbeat_interval_s = 0.5
node_log_level = "ERROR"
[binance]
base_url_http = "{emu.http_url}"
base_url_ws = "{emu.ws_url}"
base_url_ws_stream = "{emu.ws_stream_url}"
[account]
starting_balance = "10000"
[strategy]
fast_period = 3
slow_period = 6
ladder_orders = 1
[simulation]
catch_up_max = "1d"
[breakers]
data_stale_alert_bars = 5000
data_stale_halt_bars = 10000
"""
    )
    return path


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql).fetchall()
    except sqlite3.Error:
        return []
    finally:
        conn.close()


def _wait[T](what: str, probe: Callable[[], T | None], timeout_s: float) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not seen within {timeout_s:.0f} s")


def _marked(db: Path) -> bool:
    """The last checkpoint holds the live feed's position (a trade id)."""
    found = _rows(db, "SELECT snapshot FROM checkpoints ORDER BY id DESC LIMIT 1")
    if not found:
        return False
    marks = json.loads(str(found[0][0])).get("data_marks") or []
    return any(int(m.get("trade_id", 0)) > 0 for m in marks)


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BINANCE_", "TELEGRAM_"))}
    with log.open("ab") as out:
        return subprocess.Popen(
            [*CLI, "run", "--config", str(config)],
            cwd=config.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def measure(gap_bars: int, trades_per_bar: int) -> CatchUpFigures:
    per_tick = max(1, round(trades_per_bar * TICK_S))
    emu = BinanceEmulator(
        KEY,
        SECRET,
        kline_interval_s=1.0,
        tick_interval_s=TICK_S,
        trades_per_tick=per_tick,
        volatility=Decimal("0.00005"),
        tape=max(10_000, 3 * gap_bars * trades_per_bar),
    )
    emu.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-catchup-") as tmp:
            home = Path(tmp)
            config = _config(home, emu)
            db, log = home / "bench.db", home / "service.log"
            service = _start(config, log)
            try:
                _wait("a checkpoint with the feed's marks", lambda: _marked(db), 120)
                service.send_signal(signal.SIGKILL)
                service.wait(10)
                time.sleep(gap_bars * 1.0)  # the market trades on: gap_bars bars
                # From the restart on, the feed goes at a live market's pace (a real
                # hour's catch-up chases 30 trades a second, not this gap's thousand).
                emu.set_trades_per_tick(1)
                started = time.monotonic()
                service = _start(config, log)
                payload = _wait(
                    "the catch-up",
                    lambda: _rows(db, "SELECT payload FROM events WHERE kind = 'catch_up'"),
                    600,
                )
                live_s = time.monotonic() - started
                caught = json.loads(str(payload[-1][0]))
                starts = _rows(
                    db, "SELECT payload FROM events WHERE kind = 'node_started' ORDER BY id"
                )
                node_start_s = float(json.loads(str(starts[-1][0])).get("startup_s", 0.0))
                service.send_signal(signal.SIGTERM)
                service.wait(45)
            finally:
                if service.poll() is None:
                    service.kill()
                    service.wait()
    finally:
        emu.stop()
    took = max(float(caught["took_s"]), 1e-9)
    return CatchUpFigures(
        gap_bars=gap_bars,
        trades_per_bar=trades_per_bar,
        trades=int(caught["trades"]),
        bars=int(caught["bars"]),
        fills=int(caught["fills"]),
        took_s=round(took, 3),
        waited_s=round(float(caught.get("waited_s", 0.0)), 3),
        bars_per_s=round(int(caught["bars"]) / took, 1),
        trades_per_s=round(int(caught["trades"]) / took),
        cpu_trades_per_s=round(
            int(caught["trades"]) / max(took - float(caught.get("waited_s", 0.0)), 1e-9)
        ),
        restart_to_live_s=round(live_s, 2),
        node_start_s=round(node_start_s, 2),
    )


def rows(figures: CatchUpFigures) -> list[Row]:
    return [
        Row(
            name=f"catch-up speed, {figures['gap_bars']}-bar gap ({figures['trades']:,} trades)",
            value=figures["bars_per_s"],
            unit="gap minutes/s",
            target=">= 1 (an hour a minute)",
            anchor=f"{figures['trades_per_s']:,} trades/s; {figures['cpu_trades_per_s']:,} "
            f"when not waiting on the venue's weight limit ({figures['waited_s']} s)",
            ok=figures["bars_per_s"] >= 1,
        ),
        Row(
            name=f"restart -> trading live after a {figures['gap_bars']}-minute gap",
            value=figures["restart_to_live_s"],
            unit="s",
            target="",
            anchor=f"node start {figures['node_start_s']} s, catch-up {figures['took_s']} s",
            ok=None,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gap-bars", type=int, default=60)
    parser.add_argument("--trades-per-bar", type=int, default=1000)
    args = parser.parse_args()
    figures = measure(args.gap_bars, args.trades_per_bar)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"catch_up": figures, "rows": rows(figures)}, indent=2) + "\n")
    print_rows(rows(figures))
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
