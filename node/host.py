"""Entry point of the node host child process: one real TradingNode per process.

A TradingNode cannot be rebuilt in the same process (dispose stops its loop and the
Rust logger is process-global), and a panic or deadlock in it must not take the
supervisor down, so the parent spawns this function in a fresh ``spawn`` child and
talks to it only through a pipe of typed messages. When the pipe breaks (the parent
died) the node stops itself, so no child outlives its supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import os
import signal
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler

from nautilus_trader.adapters.binance import BinanceAccountType
from nautilus_trader.adapters.binance.common.credentials import get_api_key, get_api_secret
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.adapters.binance.factories import get_cached_binance_http_client
from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.execution import SandboxExecutionClient
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.common.component import MessageBus
from nautilus_trader.common.enums import ComponentState
from nautilus_trader.config import (
    LiveDataEngineConfig,
    LiveExecEngineConfig,
    LiveRiskEngineConfig,
    LoggingConfig,
    PortfolioConfig,
    TradingNodeConfig,
)
from nautilus_trader.core import nautilus_pyo3
from nautilus_trader.live.execution_engine import LiveExecutionEngine
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.data import Bar, QuoteTick, TradeTick
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import CryptoPerpetual
from nautilus_trader.persistence.config import StreamingConfig
from nautilus_trader.trading.strategy import Strategy

from node.bridge import Bridge
from node.catchup import PlayedMarks, Seam
from node.claims import claim_reconciled
from node.funding import TOPIC as FUNDING_TOPIC
from node.funding import VenueIncome, replay_funding
from node.live_start import WARM_UP_BARS, bar_type_of, go_live, install_seam
from node.lockstep import LockstepVenue, run_engines_inline
from node.order_limits import (
    HaltedStrategies,
    Limit,
    OrderLimits,
    Wrap,
    chain,
    install,
    limits_for,
)
from node.reconcile import compare_with_checkpoint, owners_for
from node.replay import ReplayData, ReplayDataClient, bar_type_for
from node.strategies import WarmsUp, build_strategies, instrument_of, logs_info
from node.venues import Clients, LiveSandbox, SeededFillModel, clients_for, fill_model
from protocol import (
    ErrorRaised,
    FundingPaid,
    Halt,
    Mode,
    NodeCommand,
    NodeEvent,
    NodeSettings,
    NodeStarted,
    NodeStopped,
    ReconciliationDiff,
    Snapshot,
    pin_process,
)
from storage.lock import InstanceLock

STARTUP_POLL_S = 0.02
PIPE_DRAIN_S = 5.0
NODE_LOCK_WAIT_S = 10.0
ROLE = "node"


class _Pipe:
    """Sends from the loop thread, in order, without ever blocking the loop.

    A message is pickled and framed as ``multiprocessing.Connection`` frames it, then
    written at once with a non-blocking send: a fill reaches the parent with no thread
    hop (handing every message to a thread cost ~1 ms: the thread waits for the GIL
    the loop holds). Whatever does not fit into the socket's buffer now - a parent slow
    to read, a checkpoint's 1.4 MB snapshot with 10k orders - is queued for a writer
    thread, and everything sent after it queues behind it, so the parent receives all
    in order and the loop never waits for the parent. A broken pipe means the parent
    is gone.
    """

    def __init__(self, conn: Connection[NodeEvent, NodeCommand]) -> None:
        # A socket object over a duplicate of the pipe's descriptor: a send can be
        # non-blocking per call (MSG_DONTWAIT), while the reader thread's receives on
        # the same socket pair stay blocking.
        self._sock = socket.socket(fileno=os.dup(conn.fileno()))
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queued: deque[bytes | memoryview] = deque()
        self._writing = False
        self._writer = threading.Thread(
            target=self._write_queued, name="node-pipe-writer", daemon=True
        )
        self._writer.start()
        self.broken = False

    def send(self, message: NodeEvent) -> None:
        # The frame's header and the pickle go out as two pieces (one ``sendmsg``), not
        # joined: joining copied a checkpoint's 1.4 MB once more on the loop, into fresh
        # memory whose page faults made it the slowest part of a large snapshot's send.
        if self.broken:
            return
        payload = ForkingPickler.dumps(message)
        pieces: list[bytes | memoryview] = [_header(len(payload)), payload]
        with self._lock:
            if not self._queued and not self._writing:
                try:
                    sent = self._sock.sendmsg(pieces, [], socket.MSG_DONTWAIT)
                except BlockingIOError:
                    sent = 0
                except OSError:
                    self.broken = True
                    return
                pieces = _unsent(pieces, sent)
                if not pieces:
                    return
            self._queued.extend(pieces)
            self._changed.notify_all()

    def drain(self, timeout_s: float) -> None:
        """Wait until everything queued is written (or the pipe broke); blocks: call it
        from a worker thread, never on the loop."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while (self._queued or self._writing) and not self.broken:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    def _write_queued(self) -> None:
        while True:
            with self._lock:
                while not self._queued:
                    self._changed.wait()
                data = self._queued.popleft()
                self._writing = True
            if not self.broken:
                try:
                    self._sock.sendall(data)
                except OSError:
                    self.broken = True
            with self._lock:
                self._writing = False
                self._changed.notify_all()


def _header(n: int) -> bytes:
    """``multiprocessing.Connection``'s frame header, so the parent's ``recv`` reads it."""
    if n > 0x7FFFFFFF:
        return struct.pack("!i", -1) + struct.pack("!Q", n)
    return struct.pack("!i", n)


def _unsent(pieces: list[bytes | memoryview], sent: int) -> list[bytes | memoryview]:
    """What is left of ``pieces`` once their first ``sent`` bytes went out."""
    left: list[bytes | memoryview] = []
    for piece in pieces:
        if sent >= len(piece):
            sent -= len(piece)
            continue
        left.append(memoryview(piece)[sent:] if sent else piece)
        sent = 0
    return left


def build_node_config(settings: NodeSettings, clients: Clients) -> TradingNodeConfig:
    # An exception in a strategy's handler (or anything else an engine's queue runs)
    # makes Nautilus os._exit(1) the process by default: nothing reaches the parent
    # but an exit code. With graceful_shutdown_on_exception the engine publishes a
    # ShutdownSystem with the reason instead, which the host passes on as an error.
    return TradingNodeConfig(
        trader_id=settings.trader_id,
        logging=LoggingConfig(log_level=settings.log_level, bypass_logging=False, log_colors=False),
        data_engine=LiveDataEngineConfig(graceful_shutdown_on_exception=True),
        portfolio=_portfolio_config(settings),
        risk_engine=LiveRiskEngineConfig(
            graceful_shutdown_on_exception=True,
            max_order_submit_rate=_order_rate(settings),
            max_order_modify_rate=_order_rate(settings),
        ),
        exec_engine=LiveExecEngineConfig(
            reconciliation=clients.reconciliation,
            graceful_shutdown_on_exception=True,
            # A weeks-long session must not keep every order and position it ever had:
            # closed ones leave the cache once they are an hour old (PnL sums survive
            # in the bridge), and so do old account events.
            purge_closed_orders_interval_mins=settings.purge_interval_mins,
            purge_closed_orders_buffer_mins=settings.purge_buffer_mins,
            purge_closed_positions_interval_mins=settings.purge_interval_mins,
            purge_closed_positions_buffer_mins=settings.purge_buffer_mins,
            purge_account_events_interval_mins=settings.purge_interval_mins,
            purge_account_events_lookback_mins=settings.purge_buffer_mins,
        ),
        data_clients=clients.data,
        exec_clients=clients.exec,
        streaming=_recording(settings),
        timeout_connection=20.0,
        timeout_reconciliation=10.0,
        timeout_disconnection=2.0,
        timeout_post_stop=0.1,
        timeout_shutdown=2.0,
    )


# Longer than any session: the portfolio's per-order-event account line is never due.
QUIET_ACCOUNT_LOG_MS = 2**31 - 1


def _portfolio_config(settings: NodeSettings) -> PortfolioConfig:
    """On every order event NautilusTrader's portfolio formats the whole account state
    into an INFO line ("Updated AccountState(...)") before the logger drops it: a fifth
    of that handler's time with 20 strategies (145 -> 115 us an event). Above INFO the
    line is never printed, so it is never due: the same account states, without it."""
    if logs_info(settings.log_level):
        return PortfolioConfig()
    return PortfolioConfig(min_account_state_logging_interval_ms=QUIET_ACCOUNT_LOG_MS)


RECORDED_TYPES: list[type] = [Bar, QuoteTick, TradeTick, CryptoPerpetual]
RECORDING_FLUSH_MS = 1000


def _recording(settings: NodeSettings) -> StreamingConfig | None:
    """A binance session records what its node receives - the bars its strategy trades
    on, the quotes and trades a simulated venue fills against, the instrument - as
    Nautilus's own stream (Feather files a ``ParquetDataCatalog`` reads back), so the
    parity report can run the backtest on exactly that market."""
    path = settings.recording_path
    if path is None:
        return None
    path.mkdir(parents=True, exist_ok=True)
    return StreamingConfig(
        catalog_path=str(path), include_types=RECORDED_TYPES, flush_interval_ms=RECORDING_FLUSH_MS
    )


VENUE_ORDER_RATE = 100  # orders a second: the RiskEngine's default, a venue's kind of limit


def _order_rate(settings: NodeSettings) -> str:
    """The RiskEngine's submit and modify rate limit, per wall-clock second.

    Live, it is the venue's (100 a second). A replay plays market time faster than
    the wall clock: the same limit per second of market time is ``speed`` times as
    many orders per wall second, and a lockstep replay as fast as the node goes
    (speed 0) has no wall-clock rate to speak of, so the limit is lifted.
    """
    if settings.mode is not Mode.REPLAY:
        return f"{VENUE_ORDER_RATE}/00:00:01"
    speed = settings.replay.speed
    per_second = VENUE_ORDER_RATE * speed if speed > 0 else 10**9
    return f"{max(VENUE_ORDER_RATE, int(per_second))}/00:00:01"


def _skip_trade_statistics(node: TradingNode) -> None:
    """Stop the portfolio's analyzer from recording every closed trade.

    Nautilus's ``PortfolioAnalyzer`` keeps each closed position's realized PnL for
    backtest statistics by ``pd.concat``-ing a one-row pandas Series onto the series
    so far: about 1.5 ms of the node's event loop per closing fill, before the fill
    reaches any subscriber, and a copy that grows with every trade of a weeks-long
    run. This service never reads those statistics (PnL comes from the portfolio
    and the checkpoints), so the recording is switched off.
    """
    node.portfolio.analyzer.record_trade = _ignore_trade


def _ignore_trade(*_: object, **__: object) -> None:
    return None


def _log_network_clients(settings: NodeSettings) -> object:
    """Turn on the logger of NautilusTrader's Rust network clients (Binance websockets).

    The Cython modules and ``nautilus_pyo3`` each link a logger of their own, and the
    node sets up only the first: a websocket that drops and cannot reconnect was
    logged nowhere. Initialised here too, at WARN whatever the node's own level (a
    failed reconnect is only a warning there), its lines reach stderr and so the
    classifier. The returned guard must live as long as the node.
    """
    return nautilus_pyo3.init_logging(
        nautilus_pyo3.TraderId(settings.trader_id),
        nautilus_pyo3.UUID4(),
        nautilus_pyo3.LogLevel("WARN"),
        is_colored=False,
    )


_BAD_STATES = frozenset({ComponentState.DEGRADED, ComponentState.FAULTED})


def _report_failures(node: TradingNode, loop: asyncio.AbstractEventLoop, pipe: _Pipe) -> None:
    """Failures Nautilus announces but tells nobody in particular go to the classifier:
    an engine shutting the node down after an exception (with its reason), a component
    that degraded or faulted, an exception no task or callback of the loop handled.
    (What it only logs comes through stderr: ``node.logscan``.)"""

    def on_shutdown(command: object) -> None:
        component = str(getattr(command, "component_id", "node"))
        reason = str(getattr(command, "reason", "") or "shutdown requested")
        pipe.send(ErrorRaised(f"nautilus.{component}", "ShutdownSystem", reason, operation=ROLE))

    def on_state(event: object) -> None:
        state = getattr(event, "state", None)
        if state not in _BAD_STATES:
            return
        component = str(getattr(event, "component_id", "?"))
        kind = str(getattr(event, "component_type", "Component"))
        name = "FAULTED" if state == ComponentState.FAULTED else "DEGRADED"
        pipe.send(
            ErrorRaised(
                f"nautilus.{component}",
                f"Component{name.title()}",
                f"{kind} {component} is {name}",
                operation=f"nautilus.{component}",
            )
        )

    def on_loop_error(_: asyncio.AbstractEventLoop, context: dict[str, object]) -> None:
        error = context.get("exception")
        message = str(context.get("message", "unhandled error on the node's loop"))
        kind = type(error).__name__ if isinstance(error, BaseException) else "LoopError"
        detail = f"{message}: {error}" if error is not None else message
        pipe.send(ErrorRaised("node.loop", kind, detail, operation="node.loop"))

    msgbus = node.kernel.msgbus
    msgbus.subscribe(topic="commands.system.shutdown", handler=on_shutdown)
    msgbus.subscribe(topic="events.system.*", handler=on_state)
    loop.set_exception_handler(on_loop_error)


async def _serve(
    conn: Connection[NodeEvent, NodeCommand],
    settings: NodeSettings,
    started_at: float,
    bridge_type: type[Bridge],
) -> None:
    pipe = _Pipe(conn)
    try:
        await _serve_on(pipe, conn, settings, started_at, bridge_type)
    finally:
        # Whatever is queued reaches the parent before anything run_node sends; the
        # wait runs on a worker thread, so the loop can still finish its own work.
        await asyncio.get_running_loop().run_in_executor(None, pipe.drain, PIPE_DRAIN_S)


async def _serve_on(
    pipe: _Pipe,
    conn: Connection[NodeEvent, NodeCommand],
    settings: NodeSettings,
    started_at: float,
    bridge_type: type[Bridge],
) -> None:
    loop = asyncio.get_running_loop()
    stop_requested = asyncio.Event()
    stop_reason: list[str] = []

    def request_stop(reason: str) -> None:
        stop_reason.append(reason)
        stop_requested.set()

    network_logs = _log_network_clients(settings)
    data = ReplayData.of(settings) if settings.mode is Mode.REPLAY else None
    node, sandbox, halts, limits = _build_node(settings, loop, pipe, data)
    seam = install_seam(node, settings)  # a Binance node's live feed, held until it is live
    replay = _add_replay(node, settings, loop, sandbox, data)
    strategies, bridge = _add_components(
        node, settings, pipe, request_stop, replay, bridge_type, halts, limits, sandbox
    )

    def read_commands() -> None:
        while True:
            try:
                command: NodeCommand = conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(request_stop, "parent pipe closed")
                return
            loop.call_soon_threadsafe(bridge.handle, command)

    run_task = loop.create_task(node.run_async())
    while not all(s.is_running for s in strategies) and not run_task.done():
        await asyncio.sleep(STARTUP_POLL_S)
    if run_task.done():
        run_task.result()  # surfaces the start-up failure
        raise RuntimeError("node stopped during start-up")
    _instruments_loaded(node, settings, sandbox)
    restored = await _restore(settings, bridge, pipe)
    if settings.start_halted is not None:
        # The gate's record: halted until resumed, whatever the checkpoint says.
        bridge.handle(Halt(settings.start_halted, source="gate", mode=settings.start_halt_mode))
    for strategy_id, reason in settings.start_halted_strategies:
        bridge.handle(Halt(reason, source="gate", strategy_id=strategy_id))
    if restored is not None and (settings.start_halted or settings.start_halted_strategies):
        restored = bridge.snapshot()
    if replay is not None:
        _warm_up(settings, replay, strategies)
    # Commands the parent sent while the node was starting (a halt sent during a
    # restart, above all) apply before the first bar, not after it.
    while conn.poll():
        bridge.handle(conn.recv())
    pipe.send(
        NodeStarted(
            pid=os.getpid(),
            trader_id=settings.trader_id,
            instrument_id=settings.instrument_id,
            replay_cursor=bridge.cursor,
            restored=restored,
            restored_from_ns=settings.restore.taken_at_ns if settings.restore else None,
            trading_state=bridge.trading_state,
            startup_s=time.monotonic() - started_at,
            strategy_ids=tuple(s.id.value for s in strategies),
            data_gaps=replay.gaps if replay is not None else (),
        )
    )
    # Everything so far (Nautilus, pandas, pyarrow, the built node) lives as long
    # as the process: out of the collector's sight, a full collection no longer
    # walks it. One such collection stalled the loop ~65 ms in the bench. No
    # gc.collect() first: it would add those 65 ms to every start and restart.
    gc.freeze()
    if replay is not None:
        replay.release()
    threading.Thread(target=read_commands, name="node-pipe-reader", daemon=True).start()
    await _go_live(node, settings, bridge, strategies, seam, pipe)

    stop_wait = loop.create_task(stop_requested.wait())
    await asyncio.wait({run_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    await node.stop_async()
    run_task.cancel()
    stop_wait.cancel()
    reason = stop_reason[0] if stop_reason else "node stopped by itself"
    pipe.send(NodeStopped(reason, _final_snapshot(bridge, pipe)))
    del network_logs


async def _go_live(
    node: TradingNode,
    settings: NodeSettings,
    bridge: Bridge,
    strategies: list[Strategy],
    seam: Seam | None,
    pipe: _Pipe,
) -> None:
    """A Binance node's warm-up and a restart's catch-up (``node.live_start``), then the
    live feed; whatever goes wrong there is reported and the feed opened all the same."""
    if seam is None:
        return
    try:
        caught = await go_live(node, settings, bridge, strategies, seam)
    except Exception as exc:
        pipe.send(ErrorRaised("node.catchup", type(exc).__name__, f"catch-up: {exc}"))
        if seam.holding:
            seam.release(PlayedMarks())
        return
    if caught is not None:
        pipe.send(caught)


def _instruments_loaded(
    node: TradingNode, settings: NodeSettings, sandbox: SandboxExecutionClient | None
) -> None:
    """Every instrument the node trades is in its cache - in a Binance mode from the
    venue's exchange info, each one (``node.venues``) - and in the simulated venue's,
    or the node does not start: a strategy without its instrument trades nothing and
    says so only in a log line (the bundled one stops). The loader refused a symbol the
    venue does not list already; this holds when the venue changed since.

    binance-sandbox's venue takes each instrument as the data client publishes it, from
    the bus it subscribed to at connect; one it has not (a publication before it
    listened) is added from the cache, where the instrument is at the fee tier."""
    cache = node.kernel.cache
    ids = [InstrumentId.from_str(i) for i in settings.instrument_ids]
    missing = [i.value for i in ids if cache.instrument(i) is None]
    if missing:
        raise RuntimeError(
            f"no instrument {', '.join(missing)} in the node: the venue's exchange info "
            "did not give it (is it listed, and trading?)"
        )
    if sandbox is None:
        return
    exchange = sandbox.exchange
    for instrument_id in ids:
        if instrument_id not in exchange.instruments:
            exchange.add_instrument(cache.instrument(instrument_id))


def _warm_up(settings: NodeSettings, replay: ReplayDataClient, strategies: list[Strategy]) -> None:
    """Each strategy that can warms its indicators up on the bars before the cursor, so a
    restored replay does not re-trade an old cross."""
    primary = bar_type_for(settings.instrument_id, settings.replay.bar_minutes)
    for strategy in strategies:
        if isinstance(strategy, WarmsUp):
            strategy.warm_up(replay.history(WARM_UP_BARS, bar_type_of(strategy, primary)))


def _final_snapshot(bridge: Bridge, pipe: _Pipe) -> bytes | None:
    """Taken once nothing trades any more: the state no fill can change now."""
    try:
        return bridge.encoded_snapshot()
    except Exception as exc:  # reported; the last checkpoint then stays the last one
        pipe.send(ErrorRaised("node.host", type(exc).__name__, f"final snapshot: {exc}"))
        return None


def _build_node(
    settings: NodeSettings,
    loop: asyncio.AbstractEventLoop,
    pipe: _Pipe,
    data: ReplayData | None = None,
) -> tuple[TradingNode, SandboxExecutionClient | None, HaltedStrategies, OrderLimits | None]:
    clients = clients_for(settings)
    node = TradingNode(config=build_node_config(settings, clients), loop=loop)
    # Shutdown is the parent's decision, sent over the pipe: a terminal's Ctrl-C or
    # systemd's SIGTERM to the whole cgroup must not kill the node before the
    # parent has taken its final checkpoint.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    clients.register(node, settings.mode)
    node.build()
    _skip_trade_statistics(node)
    _report_failures(node, loop, pipe)
    # The service's pre-trade checks, in front of the RiskEngine: a halted strategy's
    # orders, then the notional limit.
    kernel = node.kernel
    halts = HaltedStrategies(kernel.cache, kernel.msgbus, kernel.clock)
    limits = order_limits(node, settings)
    checks = (halts.wrap, limits.wrap)
    sandbox = _add_sandbox(
        node,
        clients.sandbox,
        loop,
        settings.mode,
        chain(*checks),
        fill_model(settings.simulation, settings.restore.fill_draws if settings.restore else 0),
        _funding(settings, kernel.msgbus, data),
        settings.simulation.latency_ns,
    )
    if settings.mode is not Mode.REPLAY:
        install(kernel.msgbus, kernel.risk_engine.execute, *checks)
    return node, sandbox, halts, limits


def _funding(
    settings: NodeSettings, msgbus: MessageBus, data: ReplayData | None
) -> list[SimulationModule]:
    """A replay's funding (``node.funding``), from the restore's cursor on; each payment
    published for the bridge."""
    if data is None:
        return []

    def publish(payment: FundingPaid) -> None:
        msgbus.publish(FUNDING_TOPIC, payment)

    module = replay_funding(settings.simulation, data, settings.start_cursor, publish)
    return [] if module is None else [module]


def _venue_income(
    node: TradingNode, settings: NodeSettings, strategies: list[Strategy]
) -> VenueIncome | None:
    """binance-testnet: the venue's funding record, through the exec client's own signed
    HTTP client (the adapter caches one per key and URL)."""
    if settings.mode is not Mode.BINANCE_TESTNET:
        return None
    kernel = node.kernel
    account, environment = BinanceAccountType.USDT_FUTURES, BinanceEnvironment.TESTNET
    client = get_cached_binance_http_client(
        clock=kernel.clock,
        account_type=account,
        api_key=get_api_key(account, environment),
        api_secret=get_api_secret(account, environment),
        base_url=settings.binance.base_url_http,
        environment=environment,
    )
    owners: dict[str, tuple[str, str]] = {}
    for strategy in strategies:
        instrument_id = InstrumentId.from_str(instrument_of(strategy, settings.instrument_id))
        symbol = instrument_id.symbol.value.removesuffix("-PERP")
        owners.setdefault(symbol, (instrument_id.value, strategy.id.value))
    return VenueIncome(
        client,
        owners,
        lambda payment: kernel.msgbus.publish(FUNDING_TOPIC, payment),
        lambda: settings.start_cursor,
        since_ms=kernel.clock.timestamp_ns() // 1_000_000,
    )


def order_limits(node: TradingNode, settings: NodeSettings) -> OrderLimits:
    """The node's limits; in place even with none set, so a reload can set some."""
    kernel = node.kernel
    limits = limits_for(settings, kernel.cache, kernel.msgbus, kernel.clock)
    if limits is None:
        bar_minutes = settings.replay.bar_minutes
        limits = OrderLimits(kernel.cache, kernel.msgbus, kernel.clock, bar_minutes, Limit())
    return limits


def _add_sandbox(
    node: TradingNode,
    config: SandboxExecutionClientConfig | None,
    loop: asyncio.AbstractEventLoop,
    mode: Mode,
    checks: Wrap | None = None,
    fills: FillModel | None = None,
    modules: list[SimulationModule] | None = None,
    latency_ns: int = 0,
) -> SandboxExecutionClient | None:
    """The simulated venue's execution client, built here rather than by a factory so
    the host reaches its exchange. A replay's steps with the replay, its engines
    inline (``node.lockstep``); a sandbox on live data is Nautilus's own, with the
    session's latency (``node.venues.LiveSandbox``)."""
    if config is None:
        return None
    kernel = node.kernel
    parts = (loop, kernel.portfolio, kernel.msgbus, kernel.cache, kernel.clock, config)
    client: SandboxExecutionClient
    if mode is Mode.REPLAY:
        run_engines_inline(node, risk_gate=checks)
        client = LockstepVenue(*parts, fill_model=fills, modules=modules, latency_ns=latency_ns)
    else:
        client = LiveSandbox(*parts, fill_model=fills, modules=modules, latency_ns=latency_ns)
    kernel.exec_engine.register_client(client)
    return client


def _add_replay(
    node: TradingNode,
    settings: NodeSettings,
    loop: asyncio.AbstractEventLoop,
    venue: SandboxExecutionClient | None,
    data: ReplayData | None,
) -> ReplayDataClient | None:
    """In replay mode, the data client that plays the bars in lockstep with the node and
    its simulated venue, registered with the data engine before the node runs. The
    venue's clock starts at the market time the replay resumes from."""
    if data is None:
        return None
    kernel = node.kernel
    lockstep = venue if isinstance(venue, LockstepVenue) else None
    client = ReplayDataClient(
        loop,
        kernel.msgbus,
        kernel.cache,
        kernel.clock,
        data,
        settings.replay,
        settings.start_cursor,
        venue=lockstep,
    )
    if lockstep is not None:
        lockstep.test_clock.set_time(max(data.played_until(client.cursor).values(), default=0))
    kernel.data_engine.register_client(client)
    return client


def _add_components(
    node: TradingNode,
    settings: NodeSettings,
    pipe: _Pipe,
    request_stop: Callable[[str], None],
    replay: ReplayDataClient | None,
    bridge_type: type[Bridge],
    halts: HaltedStrategies,
    limits: OrderLimits | None = None,
    sandbox: SandboxExecutionClient | None = None,
) -> tuple[list[Strategy], Bridge]:
    """The strategies and the bridge that speaks for the node, added to the built node."""
    bar_type = bar_type_for(settings.instrument_id, settings.replay.bar_minutes)
    strategies = build_strategies(settings, bar_type)
    for strategy in strategies:
        node.trader.add_strategy(strategy)
    if settings.mode is Mode.BINANCE_TESTNET:
        _claim_reconciled(node, settings, strategies)
    if limits is not None:
        limits.assign(strategies)  # each entry's own limits, under its strategy's id
    kernel = node.kernel
    bridge = bridge_type(
        send=pipe.send,
        request_stop=request_stop,
        risk_engine=kernel.risk_engine,
        exec_engine=kernel.exec_engine,
        cache=kernel.cache,
        portfolio=kernel.portfolio,
        clock=kernel.clock,
        strategies=strategies,
        capitals=settings.capitals(),
        # A replay's node judges the equity breakers itself, on market time.
        breakers=(settings.risk, settings.breakers) if replay is not None else None,
        halts=halts,
        limits=limits,
        income=_venue_income(node, settings, strategies),
        fills=sandbox.exchange.fill_model
        if sandbox is not None and isinstance(sandbox.exchange.fill_model, SeededFillModel)
        else None,
        # binance-sandbox: the venue's funding on the simulated positions
        funding_venue=sandbox.exchange
        if sandbox is not None
        and settings.mode is Mode.BINANCE_SANDBOX
        and settings.simulation.venue_funding
        else None,
        replay=replay,
        instrument_ids=settings.instrument_ids,
        bar_minutes=settings.replay.bar_minutes,
        currency=settings.account.currency,
        feed_sandbox=settings.mode is Mode.BINANCE_SANDBOX,
        data_interval_s=_data_interval_s(settings),
        bars_received=settings.start_cursor if replay is None else 0,
        recording=settings.recording_path is not None,
        data_marks=settings.restore.data_marks if settings.restore is not None else (),
    )
    node.trader.add_actor(bridge)
    return strategies, bridge


def _claim_reconciled(
    node: TradingNode, settings: NodeSettings, strategies: list[Strategy]
) -> None:
    """binance-testnet: what reconciliation brings back from the venue is its owner's -
    an order its tag's strategy's, a position its instrument's strategy's, checked
    against the last checkpoint (``node.reconcile``). After the strategies were added:
    the trader gives a strategy without a tag its id there."""
    engine = node.kernel.exec_engine
    if not isinstance(engine, LiveExecutionEngine):
        raise TypeError(f"binance-testnet needs a live execution engine, not {type(engine)}")
    owned = [(s.id.value, instrument_of(s, settings.instrument_id)) for s in strategies]
    claim_reconciled(engine, owners_for(settings.trader_id, owned, settings.restore))


async def _restore(settings: NodeSettings, bridge: Bridge, pipe: _Pipe) -> Snapshot | None:
    """Bring the last checkpoint back before the first bar; the node's state after it."""
    if settings.restore is None:
        return None
    if settings.mode is Mode.BINANCE_TESTNET:
        # The venue is the truth: Nautilus reconciled from it, each order and position
        # under its owner (``_claim_reconciled``); report what differs. The strategies'
        # order id counters carry on from the checkpoint's, as after any restore.
        bridge.restore_marks(settings.restore)
        bridge.restorer.continue_counters(settings.restore)
        venue = bridge.snapshot()
        differences = compare_with_checkpoint(settings.restore, venue)
        if differences:
            pipe.send(ReconciliationDiff(tuple(differences)))
        return venue
    await bridge.restore(
        settings.restore,
        halted=settings.start_halt_mode if settings.start_halted is not None else None,
        halted_strategies=frozenset(s for s, _ in settings.start_halted_strategies),
    )
    return bridge.snapshot()


def _data_interval_s(settings: NodeSettings) -> float:
    """How often a bar is expected, in wall-clock seconds (the staleness rule's unit)."""
    bar_s = settings.replay.bar_minutes * 60.0
    if settings.mode is not Mode.REPLAY:
        return bar_s
    # As fast as possible: any pause is a stall; the rule's floors set the limits.
    return bar_s / settings.replay.speed if settings.replay.speed > 0 else 0.001


# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 << 20
TRIM_THRESHOLD_BYTES = 128 << 20


def keep_large_buffers() -> None:
    """Large buffers from the heap, and kept there when freed.

    A checkpoint with 10k open orders encodes, pickles and sends 1.4 MB on the node's
    loop. glibc maps each such buffer fresh and unmaps it when freed, so every one
    page-faulted in anew: on this project's 2-core VM one send of it took 1.6-5.7 ms
    where a reused buffer takes 0.5 (node loop stall by a checkpoint, 10k orders: max
    5.2 -> 4.4 ms over two rounds of 22). The heap keeps up to ``TRIM_THRESHOLD_BYTES``
    of freed memory for the next one; a libc without ``mallopt`` keeps its default."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)


def run_node(
    conn: Connection[NodeEvent, NodeCommand],
    settings: NodeSettings,
    started_at: float = 0.0,
    bridge_type: type[Bridge] = Bridge,
) -> None:
    """Spawn target: serve until told to stop; a start-up failure is reported, exit 1."""
    if settings.cpus:  # its own CPUs, the supervisor's threads on the others
        pin_process(settings.cpus)
    keep_large_buffers()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    lock: InstanceLock | None = None
    account: InstanceLock | None = None
    try:
        if settings.lock_path is not None:
            # One node per trader: a previous service's orphaned child (its parent was
            # SIGKILLed) stops itself within a second or two; wait for it, no longer.
            lock = InstanceLock(settings.lock_path, f"a node of {settings.trader_id}")
            lock.acquire(wait_s=NODE_LOCK_WAIT_S)
        if settings.account_lock_path is not None:
            # One node per testnet account, alike: another trader's orphaned child on
            # the same keys (its service holds the account's own lock no more).
            account = InstanceLock(settings.account_lock_path, "a node on this account")
            account.acquire(wait_s=NODE_LOCK_WAIT_S)
        asyncio.run(_serve(conn, settings, started_at or time.monotonic(), bridge_type))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(ErrorRaised("node.host", type(exc).__name__, str(exc)))
        conn.close()
        os._exit(1)
    conn.close()
