"""A replay node that steps as ``BacktestEngine`` steps: the same fills at any speed.

Played as fast as a live node goes, a replay's result depended on the machine: at 700
bars a second orders filled a bar late and two runs on one file differed by thousands
of USDT. Waiting for the live engines' queues to drain is not enough either: the
simulated venue fills a market order's remainder one tick away only if it sees the
first partial fill applied to the order at once, as a backtest applies it, while a live
engine applies it later, from its queue.

So a replay node runs its engines the way a backtest kernel does:

- ``run_engines_inline``: the data, risk and execution engines handle each message
  when it is sent, as the engine's own queue task would handle it, minus the queue;
  an exception takes the same way to a graceful shutdown as one in the queue task.
- ``LockstepVenue``: the sandbox venue with a backtest venue's message queue. A bar is
  one ``step``: the venue processes the bar (its open, high, low and close), the bar
  goes to the strategy, then the commands the strategy sent are drained and the
  matching engines iterated until no new command comes - the backtest's settle.
  Commands sent between steps (an operator's halt, a restore's resting orders) are
  processed at once, as a venue would.

Binance-sandbox mode keeps Nautilus's own ``SandboxExecutionClient`` and live engines:
there the market, not the node, sets the pace.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import Bar
from nautilus_trader.portfolio.base import PortfolioFacade

from node.venues import LiveSandbox

MAX_SETTLE_ROUNDS = 1000  # a strategy answering every fill with a new order is a bug


Handler = Callable[[object], None]


class QueuedEngine(Protocol):
    """A live engine: what its queue task does when a handler raises."""

    def _handle_queue_exception(self, e: Exception, queue_name: str) -> None: ...


def run_engines_inline(
    node: TradingNode, risk_gate: Callable[[Handler], Handler] | None = None
) -> None:
    """Point the engines' message endpoints at the handlers their queue tasks call;
    ``risk_gate`` wraps the RiskEngine's command handler (``node.order_limits``)."""
    kernel = node.kernel
    data, risk, execution = kernel.data_engine, kernel.risk_engine, kernel.exec_engine
    # endpoint (its queueing handler is the engine's method of that name), the engine,
    # what the engine's queue task calls, the queue's name in its error report
    routes: tuple[tuple[str, QueuedEngine, Handler, str], ...] = (
        ("DataEngine.process", data, data._handle_data, "Data"),
        ("RiskEngine.execute", risk, risk._execute_command, "command"),
        ("RiskEngine.process", risk, risk._handle_event, "event"),
        ("ExecEngine.execute", execution, execution._execute_command, "command"),
        ("ExecEngine.process", execution, execution._handle_event_with_tracking, "event"),
    )
    msgbus = kernel.msgbus
    for endpoint, engine, handle, queue_name in routes:
        msgbus.deregister(endpoint, getattr(engine, endpoint.rsplit(".", 1)[1]))
        inline = _inline(handle, engine, queue_name)
        if endpoint == "RiskEngine.execute" and risk_gate is not None:
            inline = risk_gate(inline)
        msgbus.register(endpoint, inline)


def _inline(handle: Handler, engine: QueuedEngine, queue_name: str) -> Handler:
    def handler(message: object) -> None:
        try:
            handle(message)
        except Exception as exc:  # as the queue task: a graceful shutdown, reported
            engine._handle_queue_exception(exc, queue_name)

    return handler


class LockstepVenue(LiveSandbox):
    """The sandbox venue with a backtest venue's message queue, stepped bar by bar."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        portfolio: PortfolioFacade,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        config: SandboxExecutionClientConfig,
        fill_model: FillModel | None = None,
        modules: list[SimulationModule] | None = None,
        latency_ns: int = 0,
    ) -> None:
        """``modules``: the exchange's simulation modules (``node.funding``);
        ``latency_ns``: how much market time a strategy's command takes to reach the
        venue."""
        # The exchange queues every command, as a backtest venue's; the latency is held
        # here, in market time (``_route``), not by the exchange's latency model.
        super().__init__(
            loop, portfolio, msgbus, cache, clock, config, fill_model, modules, message_queue=True
        )
        self._sent = 0  # commands handed to the venue
        self._drained = 0  # of which the venue has processed
        self._stepping = False
        self._latency_ns = latency_ns  # held here, not by the exchange: ``_route``
        self._step_ns = 0  # the market time of the bar being stepped

    def connect(self) -> None:
        """The instruments, no market data subscription: the replay hands bars in."""
        for instrument in self.exchange.cache.instruments(venue=self.venue):
            self.exchange.add_instrument(instrument)
        self._client._set_connected(True)
        self._set_connected(True)

    def _route(self, send: Callable[[], None]) -> None:
        """A command to the venue. With latency, one a strategy sends in a step arrives at
        the settle of the first bar at least ``latency_ns`` of market time later - where
        ``BacktestEngine`` with a ``LatencyModel`` of the same latency drains it."""
        if self._stepping and self._latency_ns:
            self._held.append((self._step_ns + self._latency_ns, send))
            return
        send()
        self._sent_one()

    def _sent_one(self) -> None:
        self._sent += 1
        if not self._stepping:  # between bars: the venue answers now, at the market's time
            self._settle(self.test_clock.timestamp_ns())

    # ------------------------------------------------------------ stepping

    def step(self, bar: Bar, deliver: Callable[[Bar], None], index: int = 0) -> None:
        """One bar, as ``BacktestEngine`` runs one data point: the venue first, then the
        strategy (``deliver``), then the commands due by the bar's market time arrive,
        then the venue settled. ``index``: the replay's step (the caller's bookkeeping)."""
        ts = bar.ts_init
        self._stepping = True
        self._step_ns = ts
        try:
            self.test_clock.set_time(ts)
            self.exchange.process_bar(bar)
            deliver(bar)
            if self._held:
                due = [send for at, send in self._held if at <= ts]
                self._held = [(at, send) for at, send in self._held if at > ts]
                for send in due:
                    send()
                    self._sent += 1
            if self._drained != self._sent:  # else there is nothing to settle
                self._settle(ts)
        finally:
            self._stepping = False

    def _settle(self, ts_ns: int) -> None:
        """While commands are waiting: drain them, then iterate the matching engines (a
        fill may bring a new order, which goes round again)."""
        for _ in range(MAX_SETTLE_ROUNDS):
            if self._drained == self._sent:
                return
            self._drained = self._sent
            self.exchange.process(ts_ns)
            for engine in self.exchange.get_matching_engines().values():
                engine.iterate(ts_ns)
        self._log.error(f"still settling after {MAX_SETTLE_ROUNDS} rounds")
