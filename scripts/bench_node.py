"""Node-child instrumentation for scripts/bench.py: spawn targets that wrap the real host.

Importable without NautilusTrader (the parent only names these functions); the
child imports Nautilus itself, installs the probes and runs the unchanged
``node.host.run_node``.

- ``run_traced``: stamps (wall clock, ns) when the sandbox's fill reaches the
  execution engine's handler (the one its queue task, or a lockstep replay's inline
  route, calls), so the bench can split "ts_event -> bridge" into the trip before the
  fill exists and Nautilus's own event handling after it. Stamps go to the file it is
  bound to, off the loop.
- ``run_probed``: a bridge that also answers the bench's ``InjectOrders``,
  ``ProbeLoop`` and ``SnapshotTimes`` commands; ``ProbeLoop`` runs a loop-lag probe
  (a task asking to wake every millisecond, recording how late it woke).
"""

from __future__ import annotations

import asyncio
import gc
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

from protocol import NodeCommand, NodeEvent, NodeSettings

if TYPE_CHECKING:  # the child imports it (and Nautilus); the parent only names types
    from node.bridge import Bridge


# ---------------------------------------------------------------- fill generation stamps


class _Event(Protocol):
    @property
    def trade_id(self) -> object: ...


def run_traced(
    trace_path: str,
    conn: Connection[NodeEvent, NodeCommand],
    settings: NodeSettings,
    log_conn: Connection[bytes, bytes] | None = None,
) -> None:
    """Spawn target (bound to ``trace_path`` with functools.partial): the node with its
    fills stamped into that file as they reach the execution engine."""
    from node.entry import redirect_output

    redirect_output(log_conn)
    _trace_fills(Path(trace_path))
    from node.host import run_node

    run_node(conn, settings)


def _trace_fills(path: Path) -> None:
    from nautilus_trader.live.execution_engine import LiveExecutionEngine
    from nautilus_trader.model.events import OrderFilled

    stamps: queue.SimpleQueue[str] = queue.SimpleQueue()

    def write() -> None:
        with path.open("a", buffering=1) as out:
            while True:
                out.write(stamps.get())

    threading.Thread(target=write, name="bench-fill-trace", daemon=True).start()
    handle = LiveExecutionEngine._handle_event_with_tracking

    # What the engine's queue task calls for each event, and what a lockstep replay
    # routes "ExecEngine.process" to: replaced on the class before node.build(), it
    # sees every event a client sends, either way.
    def traced(engine: LiveExecutionEngine, event: _Event) -> None:
        if isinstance(event, OrderFilled):
            stamps.put(f"{event.trade_id} {time.time_ns()}\n")
        handle(engine, event)

    setattr(LiveExecutionEngine, "_handle_event_with_tracking", traced)  # noqa: B010


def read_fill_trace(path: Path) -> dict[str, int]:
    stamps: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            trade_id, _, ns = line.partition(" ")
            if ns:
                stamps[trade_id] = int(ns)
    return stamps


# ---------------------------------------------------------------- loop probe


@dataclass(frozen=True, slots=True)
class InjectOrders:
    """Add ``count`` accepted limit orders far from the market (they never fill)."""

    count: int


@dataclass(frozen=True, slots=True)
class OrdersInjected:
    open_orders: int
    positions: int


@dataclass(frozen=True, slots=True)
class ProbeLoop:
    seconds: float
    tick_s: float = 0.001


@dataclass(frozen=True, slots=True)
class LoopLag:
    """How late the probe woke (ms): every sample, so the bench can take quantiles."""

    late_ms: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class SnapshotTimes:
    """Ask for, and the reply: each snapshot's build and pipe-send time on the loop (ms)."""

    build_ms: tuple[float, ...] = ()
    send_ms: tuple[float, ...] = ()


def run_probed(conn: Connection[NodeEvent, NodeCommand], settings: NodeSettings) -> None:
    from node.host import run_node

    run_node(conn, settings, bridge_type=_probed_bridge())


def _probed_bridge() -> type[Bridge]:
    from nautilus_trader.common.factories import OrderFactory
    from nautilus_trader.model.enums import OrderSide
    from nautilus_trader.model.identifiers import StrategyId, VenueOrderId
    from nautilus_trader.test_kit.stubs.events import TestEventStubs

    from node.bridge import Bridge
    from protocol import EncodedSnapshotReply, SnapshotRequest

    build_ms: list[float] = []
    send_ms: list[float] = []
    probes: set[asyncio.Task[None]] = set()

    class ProbedBridge(Bridge):
        def handle(self, command: object) -> None:
            send = cast("Callable[[object], None]", self._send)
            match command:
                case SnapshotRequest(request_id=request_id):
                    t0 = time.perf_counter()
                    data = self.encoded_snapshot()
                    t1 = time.perf_counter()
                    send(EncodedSnapshotReply(request_id, data))
                    build_ms.append((t1 - t0) * 1e3)
                    send_ms.append((time.perf_counter() - t1) * 1e3)
                case SnapshotTimes():
                    send(SnapshotTimes(tuple(build_ms), tuple(send_ms)))
                    build_ms.clear()
                    send_ms.clear()
                case ProbeLoop(seconds=seconds, tick_s=tick_s):
                    # Kept: the loop holds tasks weakly, and a collection in the middle
                    # of a probe ended it silently (no LoopLag ever came).
                    task = asyncio.get_running_loop().create_task(
                        self._probe(seconds, tick_s, send)
                    )
                    probes.add(task)
                    task.add_done_callback(probes.discard)
                case InjectOrders(count=count):
                    send(self._inject(count))
                case _:
                    super().handle(cast(NodeCommand, command))

        async def _probe(
            self, seconds: float, tick_s: float, send: Callable[[object], None]
        ) -> None:
            late: list[float] = []
            end = time.perf_counter() + seconds
            while (t0 := time.perf_counter()) < end:
                await asyncio.sleep(tick_s)
                late.append((time.perf_counter() - t0 - tick_s) * 1e3)
            send(LoopLag(tuple(late)))

        def _inject(self, count: int) -> OrdersInjected:
            """Accepted orders put straight into the cache.

            Not through the execution engine: there every order event makes the
            portfolio recompute the margin of all open orders, so 10k orders would
            take minutes to arrive (1k take ~1.5 s). The snapshot reads the cache.
            """
            # Another strategy's orders: the EMA cross cancels its own working orders on
            # every cross, and 10k cancels would stall the loop for minutes (each one
            # makes the portfolio recompute the margin of all the rest).
            factory = OrderFactory(self.trader_id, StrategyId("BENCH-INJECTED"), self.clock)
            instrument = self.cache.instrument(self._instrument_ids[0])
            account_id = self.portfolio.account(self._instrument_ids[0].venue).id
            qty = instrument.make_qty(Decimal("0.001"))
            price = instrument.make_price(Decimal(1000))
            now = self.clock.timestamp_ns()
            for n in range(count):
                order = factory.limit(self._instrument_ids[0], OrderSide.BUY, qty, price)
                self.cache.add_order(order, None, None)
                order.apply(TestEventStubs.order_submitted(order, account_id, now))
                venue_order_id = VenueOrderId(f"BENCH-{n}-{now}")
                order.apply(TestEventStubs.order_accepted(order, account_id, venue_order_id, now))
                self.cache.update_order(order)
            self._open_orders()  # the bridge takes in orders that came without events
            gc.collect()  # windows with and without checkpoints start alike
            return OrdersInjected(len(self.cache.orders_open()), len(self.cache.positions_open()))

    return ProbedBridge
