"""Benchmark: how long a checkpoint's snapshot stalls the node's event loop.

The bench spawns a node child with a probing bridge (the host's ``bridge_type``
seam) and speaks to it over its pipe directly.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable
from typing import cast

from actors.inbox import Inbox
from protocol import (
    EncodedSnapshotReply,
    NodeSettings,
    NodeStarted,
    ReplaySettings,
    Snapshot,
    SnapshotRequest,
    Stop,
    StrategySettings,
    decode_snapshot,
)
from scripts import bench_node
from scripts.bench_common import Row, pct


class ProbedNode:
    """A node child spawned by the bench itself, spoken to over its pipe directly."""

    def __init__(self, settings: NodeSettings) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child_end = ctx.Pipe(duplex=True)
        self._proc = ctx.Process(
            target=bench_node.run_probed, args=(child_end, settings), daemon=True
        )
        self._proc.start()
        child_end.close()
        self.inbox = Inbox()
        threading.Thread(target=self._pump, name="bench-probed-pipe", daemon=True).start()

    def _pump(self) -> None:
        with contextlib.suppress(EOFError, OSError):
            while True:
                self.inbox.tell(self._conn.recv())

    def send(self, command: object) -> None:
        cast("Callable[[object], None]", self._conn.send)(command)

    def snapshot(self, request_id: int = 0) -> Snapshot:
        self.send(SnapshotRequest(request_id))
        return decode_snapshot(self.inbox.expect(EncodedSnapshotReply, 30).data)

    def probe(self, seconds: float) -> list[float]:
        self.send(bench_node.ProbeLoop(seconds))
        return list(self.inbox.expect(bench_node.LoopLag, 30 + seconds).late_ms)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(Stop("bench done"))
        self._proc.join(20)
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join(5)
        self._conn.close()


def checkpoint_stall(quick: bool) -> list[Row]:
    """Longest stall of the node's event loop caused by a checkpoint's snapshot.

    A probe task in the child asks to wake every millisecond and records how late
    it woke, first without checkpoints, then while the bench asks for a snapshot
    every 100 ms (the request and the reply take the checkpointer's path through
    the bridge and the pipe). The child also times each snapshot's build and its
    send on the loop. Loads: what the node holds while trading, then with accepted
    limit orders added up to 100 and 10k (the node nets one instrument: it holds at
    most one position).
    """
    seconds = 0.8 if quick else 3.0
    # The strategy without its protective stop: each stop it moves is a few order
    # events, and with 10k orders resting NautilusTrader's portfolio recomputes the
    # margin of all of them on each one - the loop fell behind for over 30 s, measuring
    # that churn rather than the checkpoint's stall.
    node = ProbedNode(
        NodeSettings(
            trader_id="BENCH-004",
            replay=ReplaySettings(speed=3000.0),
            strategy=StrategySettings(protective_stop=False),
        )
    )
    rows: list[Row] = []
    try:
        node.inbox.expect(NodeStarted, 60)
        for label, orders in (("as trading", 0), ("100 orders", 100), ("10k orders", 10_000)):
            held = node.snapshot()
            if orders:
                node.send(bench_node.InjectOrders(orders - len(held.open_orders)))
                node.inbox.expect(bench_node.OrdersInjected, 120)
                held = node.snapshot()
            rows.append(stall_row(label, held, *stall_window(node, seconds)))
    finally:
        node.close()
    return rows


def stall_window(
    node: ProbedNode, seconds: float
) -> tuple[list[float], list[float], bench_node.SnapshotTimes]:
    """The loop probe for ``seconds`` without checkpoints, then again while a snapshot
    is asked for every 100 ms: (lag with, lag without, each snapshot's build and send)."""
    baseline = node.probe(seconds)  # no checkpoints
    node.send(bench_node.SnapshotTimes())
    node.inbox.expect(bench_node.SnapshotTimes, 30)  # forget the ones before
    node.send(bench_node.ProbeLoop(seconds))
    end, n = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        n += 1
        node.snapshot(n)
        time.sleep(0.1)
    lag = list(node.inbox.expect(bench_node.LoopLag, 30 + seconds).late_ms)
    node.send(bench_node.SnapshotTimes())
    return lag, baseline, node.inbox.expect(bench_node.SnapshotTimes, 30)


def stall_row(
    label: str, held: Snapshot, lag: list[float], baseline: list[float],
    times: bench_node.SnapshotTimes,
) -> Row:  # fmt: skip
    """The stall a checkpoint causes is its snapshot's build + send on the loop.

    The probe's maximum is shown beside it, with and without checkpoints: with
    many open orders it also holds Nautilus's own stalls (each order event makes
    the portfolio recompute the margin of every open order), checkpoints or not.
    """
    stalls = [b + s for b, s in zip(times.build_ms, times.send_ms, strict=True)]
    worst = max(stalls)
    return Row(
        name=f"node loop stall by a checkpoint, {label} "
             f"({len(held.open_orders)} orders, {len(held.positions)} pos.)",
        value=worst, unit="ms", target="<= 5 ms", ok=worst <= 5.0,
        anchor=f"p50 {pct(stalls, 0.5):.2f} ms of {len(stalls)}: build "
               f"{pct(list(times.build_ms), 0.5):.2f} + send {pct(list(times.send_ms), 0.5):.2f}; "
               f"loop probe max {max(lag):.2f} ms with checkpoints, {max(baseline):.2f} without",
    )  # fmt: skip
