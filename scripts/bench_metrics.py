"""Benchmark: what metrics cost the trading path - the same session with metrics off and
on, in the same run (issue 18).

    python -m scripts.bench_metrics [--strategies N] [--bars N] [--rounds N] [--out PATH]

Each round plays the same bars (5 EMA-cross strategies, 50 bars/s) through the service's
actor tree around a real node child (``bench_latency.node_tree``: its traced child and
stamping pipe reader, the real checkpointer writing to SQLite), once without the metrics
actor and once with it serving ``/metrics`` on loopback while a scraper in another process
fetches it every second (``--scrape-every``; Prometheus's usual pace is 15-60 s) and
``/readyz`` every fifth time. Off and on alternate, so drift of the machine falls on both. Per side:

- fill -> parent: from the venue's fill event to the checkpointer handling it (p50, p99);
- the checkpoint stall: each checkpoint write (store.write_checkpoint: JSON, insert,
  retention trim) and how late the node's loop ran its report timer (its lag, which a
  snapshot's build on the loop shows as), p99 and max;
- with metrics on: each scrape's duration and the number of series.

Goal: metrics on within noise of off - fill -> parent p99 and the checkpoint write p99
each at most max(25 %, 1 ms) above off. Writes ``test-artifacts/bench-metrics.json``.
``scripts.bench`` runs three rounds of 1,200 bars in its full run, one of 300 in ``--quick``
(reported, not judged: a p99 of 60 fills is their slowest).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypedDict, override

import pykka

from actors.base import ChildContext
from actors.inbox import Inbox
from actors.metrics import MetricsActor
from protocol import BreakerSettings, MetricsSettings, NodeReport, NodeStarted
from scripts import bench_latency
from scripts.bench_common import ROOT, SCRATCH, Row, pct, print_rows
from scripts.bench_strategies import CheckpointLog, TimedCheckpointer, node_settings
from storage import RunInfo, Store
from supervisor import ChildSpec

SPEED = 3000.0  # 50 one-minute bars a second, as the other node benches play
SCRAPE_EVERY_S = 1.0  # Prometheus scrapes every 15-60 s; a second is already eager
READY_EVERY = 5  # a /readyz every fifth scrape
SLACK = 0.25  # on may be this much slower than off (or ``FLOOR_MS``), as noise
FLOOR_MS = 1.0


class Side(TypedDict):
    metrics: bool
    fills: int
    fill_p50_ms: float
    fill_p99_ms: float
    writes: int
    write_p50_ms: float
    write_p99_ms: float
    write_max_ms: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    scrapes: int
    scrape_p99_ms: float
    series: int


@dataclass
class Lags:
    """The node's report-timer lag, as the checkpointer receives its reports."""

    values: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, lag_s: float) -> None:
        with self.lock:
            self.values.append(lag_s * 1e3)


class LagCheckpointer(TimedCheckpointer):
    def __init__(
        self,
        ctx: ChildContext,
        inbox: Inbox,
        log: CheckpointLog,
        db: Path,
        run: RunInfo,
        lags: Lags,
    ) -> None:
        super().__init__(ctx, inbox, log, db, run)
        self._lags = lags

    @override
    def receive(self, message: object) -> object:
        if isinstance(message, NodeReport):
            self._lags.add(message.loop_lag_s)
        return super().receive(message)


SCRAPER = """
import sys, time, urllib.error, urllib.request
port, every, ready_every = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
def get(path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.read()
    except urllib.error.HTTPError as exc:
        return exc.read()
n = 0
while True:
    time.sleep(every)
    try:
        t0 = time.perf_counter()
        body = get("/metrics")
        ms = (time.perf_counter() - t0) * 1e3
    except OSError:
        continue
    series = sum(1 for l in body.decode().splitlines() if l and not l.startswith("#"))
    print(f"{ms:.3f} {series}", flush=True)
    n += 1
    if n % ready_every == 0:
        get("/readyz")
"""


class Scraper:
    """Fetches ``/metrics`` every ``every_s`` (and ``/readyz``) from a process of its
    own, as Prometheus would: only the serving side runs in the service's process."""

    def __init__(self, port: int, every_s: float) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", SCRAPER, str(port), str(every_s), str(READY_EVERY)],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.durations: list[float] = []
        self.series = 0

    def stop(self) -> None:
        self._proc.terminate()
        out, _ = self._proc.communicate(timeout=10)
        for line in out.splitlines():
            ms, series = line.split()
            self.durations.append(float(ms))
            self.series = int(series)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_side(
    metrics: bool, strategies: int, bars: int, work: Path, tag: str, every_s: float = SCRAPE_EVERY_S
) -> Side:
    settings = node_settings(strategies, bars, SPEED)
    db = work / f"metrics-{tag}.db"
    store = Store(db)
    run = store.open_run(settings.trader_id, settings.mode.value)
    store.close()
    inbox, events, trace, log = Inbox(), Inbox(), bench_latency.FillTrace(), CheckpointLog()
    lags = Lags()
    port = free_port()
    first: tuple[ChildSpec, ...] = ()
    if metrics:
        on = MetricsSettings(enabled=True, port=port)
        first = (
            ChildSpec(
                "metrics",
                lambda ctx: MetricsActor.start(
                    ctx, settings.trader_id, on, BreakerSettings(), 1.0, 0.5
                ),
            ),
        )

    def start_checkpointer(ctx: ChildContext) -> pykka.ActorRef[LagCheckpointer]:
        return LagCheckpointer.start(ctx, inbox, log, db, run, lags)

    sup = bench_latency.node_tree(
        settings,
        inbox,
        events,
        (trace, work / f"fills-{tag}.txt"),
        checkpointer=start_checkpointer,
        first=first,
    )
    scraper = Scraper(port, every_s) if metrics else None
    try:
        _, started = bench_latency.arrived(inbox, NodeStarted, 120)
        assert isinstance(started, NodeStarted)
        fills = bench_latency.collect_fills(
            inbox, trace, work / f"fills-{tag}.txt", bars / (SPEED / 60)
        )
    finally:
        if scraper is not None:
            scraper.stop()
        sup.stop(timeout=60)
    writes = [w.ms for w in log.writes]
    with lags.lock:
        lag = list(lags.values)
    durations = scraper.durations if scraper is not None else []
    return Side(
        metrics=metrics,
        fills=len(fills.total),
        fill_p50_ms=_pct(fills.total, 0.5),
        fill_p99_ms=_pct(fills.total, 0.99),
        writes=len(writes),
        write_p50_ms=_pct(writes, 0.5),
        write_p99_ms=_pct(writes, 0.99),
        write_max_ms=max(writes, default=float("nan")),
        loop_lag_p99_ms=_pct(lag, 0.99),
        loop_lag_max_ms=max(lag, default=float("nan")),
        scrapes=len(durations),
        scrape_p99_ms=_pct(durations, 0.99),
        series=scraper.series if scraper is not None else 0,
    )


def _pct(samples: list[float], q: float) -> float:
    return pct(samples, q) if samples else float("nan")


def _within(on: float, off: float) -> bool:
    return on <= off + max(off * SLACK, FLOOR_MS)


def _median(sides: list[Side], key: str) -> float:
    values = [float(s[key]) for s in sides]  # type: ignore[literal-required]
    return statistics.median(values) if values else float("nan")


def metrics_cost(
    strategies: int = 5,
    bars: int = 1200,
    rounds: int = 3,
    sides: list[Side] | None = None,
    every_s: float = SCRAPE_EVERY_S,
    judge: bool = True,
) -> list[Row]:
    """The rows: each figure with metrics off beside on (medians over the rounds). Without
    ``judge`` (one short round: its p99 is its slowest sample) nothing is called a miss."""
    work = SCRATCH / "metrics"
    work.mkdir(parents=True, exist_ok=True)
    done: list[Side] = []
    for r in range(rounds):
        for metrics in (False, True):
            side = one_side(metrics, strategies, bars, work, f"{r}-{int(metrics)}", every_s)
            print(f"  round {r + 1}, metrics {'on' if metrics else 'off'}: {side}", flush=True)
            done.append(side)
    if sides is not None:
        sides.extend(done)
    off = [s for s in done if not s["metrics"]]
    on = [s for s in done if s["metrics"]]
    rows: list[Row] = []
    for key, name, goal in (
        ("fill_p99_ms", "fill -> parent p99", True),
        ("fill_p50_ms", "fill -> parent p50", False),
        ("write_p99_ms", "checkpoint write p99", True),
        ("write_p50_ms", "checkpoint write p50", False),
        ("write_max_ms", "checkpoint write max", False),
        ("loop_lag_max_ms", "node loop lag max (report timer)", False),
    ):
        a, b = _median(off, key), _median(on, key)
        rows.append(
            Row(
                name=f"metrics on vs off: {name}",
                value=round(b, 3),
                unit="ms",
                target=f"<= off + max(25 %, 1 ms) (off {a:.3f} ms)"
                if goal and judge
                else "reported",
                anchor=f"off {a:.3f} ms, on {b:.3f} ms; {strategies} strategies, {bars} bars, "
                f"median of {rounds} round(s)",
                ok=_within(b, a) if goal and judge else None,
            )
        )
    rows.append(
        Row(
            name="metrics: one /metrics scrape, p99",
            value=round(_median(on, "scrape_p99_ms"), 3),
            unit="ms",
            target="reported",
            anchor=f"{int(_median(on, 'series'))} series, scraped every {every_s:g} s",
            ok=None,
        )
    )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     prog="scripts.bench_metrics")  # fmt: skip
    parser.add_argument("--strategies", type=int, default=5)
    parser.add_argument("--bars", type=int, default=1200, help="bars a side (default 1200: 24 s)")
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs (default 3)")
    parser.add_argument("--scrape-every", type=float, default=SCRAPE_EVERY_S,
                        help="seconds between scrapes (default 1; 0.1 to stress)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "bench-metrics.json")
    args = parser.parse_args()
    if args.strategies < 1 or args.bars < 100 or args.rounds < 1:
        parser.error("--strategies >= 1, --bars >= 100 and --rounds >= 1")
    SCRATCH.mkdir(parents=True, exist_ok=True)
    sides: list[Side] = []
    try:
        rows = metrics_cost(args.strategies, args.bars, args.rounds, sides, args.scrape_every)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "rows": rows, "sides": sides}, indent=2))
    print_rows(rows)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
