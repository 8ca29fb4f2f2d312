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
import os
import signal
import threading
from multiprocessing.connection import Connection

from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.factory import SandboxLiveExecClientFactory
from nautilus_trader.config import LiveExecEngineConfig, LoggingConfig, TradingNodeConfig
from nautilus_trader.live.node import TradingNode

from actors.messages import ErrorRaised, NodeCommand, NodeEvent, NodeStarted, NodeStopped
from actors.node.bridge import Bridge
from actors.node.replay import (
    REPLAY_CLIENT,
    ReplayDataClientConfig,
    ReplayDataClientFactory,
    bar_type_for,
)
from actors.node.strategy import EmaCross, EmaCrossConfig
from actors.settings import NodeSettings

STARTUP_POLL_S = 0.02
WARM_UP_BARS = 500


class _Pipe:
    """Serialises sends from the loop thread; a broken pipe means the parent is gone."""

    def __init__(self, conn: Connection[NodeEvent, NodeCommand]) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self.broken = False

    def send(self, message: NodeEvent) -> None:
        if self.broken:
            return
        with self._lock:
            try:
                self._conn.send(message)
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                self.broken = True


def build_node_config(settings: NodeSettings) -> TradingNodeConfig:
    venue = settings.instrument_id.rsplit(".", 1)[1]
    replay = settings.replay
    return TradingNodeConfig(
        trader_id=settings.trader_id,
        logging=LoggingConfig(log_level=settings.log_level, bypass_logging=False),
        exec_engine=LiveExecEngineConfig(reconciliation=False),
        data_clients={
            REPLAY_CLIENT: ReplayDataClientConfig(
                instrument_id=settings.instrument_id,
                source=replay.source,
                path=str(replay.path) if replay.path else None,
                seed=replay.seed,
                bars=replay.bars,
                bar_minutes=replay.bar_minutes,
                speed=replay.speed,
                start_price=str(replay.start_price),
                volatility=str(replay.volatility),
                start_cursor=settings.start_cursor,
                hold=True,
            )
        },
        exec_clients={
            venue: SandboxExecutionClientConfig(
                venue=venue,
                starting_balances=[f"{settings.starting_balance} {settings.currency}"],
                oms_type="NETTING",
                account_type="MARGIN",
                default_leverage=settings.leverage,
            )
        },
        timeout_connection=20.0,
        timeout_disconnection=2.0,
        timeout_post_stop=0.1,
        timeout_shutdown=2.0,
    )


async def _serve(conn: Connection[NodeEvent, NodeCommand], settings: NodeSettings) -> None:
    loop = asyncio.get_running_loop()
    pipe = _Pipe(conn)
    stop_requested = asyncio.Event()
    stop_reason: list[str] = []

    def request_stop(reason: str) -> None:
        stop_reason.append(reason)
        stop_requested.set()

    node = TradingNode(config=build_node_config(settings), loop=loop)
    # Shutdown is the parent's decision, sent over the pipe: a terminal's Ctrl-C or
    # systemd's SIGTERM to the whole cgroup must not kill the node before the
    # parent has taken its final checkpoint.
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.remove_signal_handler(sig)
        signal.signal(sig, signal.SIG_IGN)
    venue = settings.instrument_id.rsplit(".", 1)[1]
    node.add_data_client_factory(REPLAY_CLIENT, ReplayDataClientFactory)
    node.add_exec_client_factory(venue, SandboxLiveExecClientFactory)
    node.build()

    bar_type = bar_type_for(settings.instrument_id, settings.replay.bar_minutes)
    strategy = EmaCross(
        EmaCrossConfig.build(
            instrument_id=settings.instrument_id,
            bar_type=str(bar_type),
            strategy=settings.strategy,
            sizing=settings.sizing,
            risk=settings.risk,
        )
    )
    node.trader.add_strategy(strategy)
    bridge = Bridge(
        send=pipe.send,
        request_stop=request_stop,
        risk_engine=node.kernel.risk_engine,
        exec_engine=node.kernel.exec_engine,
        strategy=strategy,
        replay=ReplayDataClientFactory.created.get(REPLAY_CLIENT),
        instrument_id=settings.instrument_id,
        bar_type=bar_type,
        currency=settings.currency,
    )
    node.trader.add_actor(bridge)

    def read_commands() -> None:
        while True:
            try:
                command: NodeCommand = conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(request_stop, "parent pipe closed")
                return
            loop.call_soon_threadsafe(bridge.handle, command)

    run_task = loop.create_task(node.run_async())
    while not strategy.is_running and not run_task.done():
        await asyncio.sleep(STARTUP_POLL_S)
    if run_task.done():
        run_task.result()  # surfaces the start-up failure
        raise RuntimeError("node stopped during start-up")
    replay = ReplayDataClientFactory.created.get(REPLAY_CLIENT)
    restored = None
    if settings.restore is not None:
        await bridge.restore(settings.restore)
        restored = bridge.snapshot()
    if replay is not None:
        strategy.warm_up(replay.history(WARM_UP_BARS))
    pipe.send(
        NodeStarted(
            pid=os.getpid(),
            trader_id=settings.trader_id,
            instrument_id=settings.instrument_id,
            replay_cursor=replay.cursor if replay is not None else 0,
            restored=restored,
            restored_from_ns=settings.restore.taken_at_ns if settings.restore else None,
        )
    )
    if replay is not None:
        replay.release()
    threading.Thread(target=read_commands, name="node-pipe-reader", daemon=True).start()

    stop_wait = loop.create_task(stop_requested.wait())
    await asyncio.wait({run_task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
    await node.stop_async()
    run_task.cancel()
    stop_wait.cancel()
    pipe.send(NodeStopped(stop_reason[0] if stop_reason else "node stopped by itself"))


def run_node(conn: Connection[NodeEvent, NodeCommand], settings: NodeSettings) -> None:
    """Spawn target: serve until told to stop; a start-up failure is reported, exit 1."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    try:
        asyncio.run(_serve(conn, settings))
    except Exception as exc:
        with contextlib.suppress(OSError):
            conn.send(ErrorRaised("node.host", type(exc).__name__, str(exc)))
        conn.close()
        os._exit(1)
    conn.close()
