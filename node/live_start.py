"""What a Binance node does between connecting and going live: warm up, then catch up.

On a live feed a strategy starts with empty indicators, and after a restart it would
decide on bars that skip the downtime. So, before the first live bar reaches them:

- every strategy that can (``WarmsUp``) is fed the venue's closed klines of its own bar
  type - up to now at a fresh start and on binance-testnet (where the venue did the
  matching meanwhile and reconciliation brought the result back), up to the checkpoint's
  last bar on a restored binance-sandbox node - so it decides on the bars it would have
  seen had it never stopped;
- a restored binance-sandbox node then plays the gap (``node.catchup``).

The seam holds the live feed back throughout and lets through only what was not played.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Protocol

from nautilus_trader.live.data_engine import LiveDataEngine
from nautilus_trader.live.execution_engine import LiveExecutionEngine
from nautilus_trader.live.node import TradingNode
from nautilus_trader.live.risk_engine import LiveRiskEngine
from nautilus_trader.model.data import Bar, BarType, QuoteTick, TradeTick
from nautilus_trader.model.identifiers import ClientId, InstrumentId
from nautilus_trader.trading.strategy import Strategy

from node.batched_recording import BatchedRecording
from node.bridge import Bridge
from node.catchup import CatchUp, Plan, PlayedMarks, Seam, implied_touch
from node.history import HistoryUnavailable, Settlement, VenueHistory
from node.replay import bar_type_for
from node.strategies import WarmsUp
from node.venues import BINANCE
from protocol import CaughtUp, DataMark, Mode, NodeSettings

log = logging.getLogger(__name__)

WARM_UP_BARS = 500  # a strategy's warm-up, from a replay's series or the venue's klines
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000


class Enqueuer(Protocol):
    """A live engine's ``ThrottledEnqueuer``: it puts a message on its queue from a
    ``call_soon_threadsafe`` callback, so a message sent is on no queue for a loop pass."""

    _queue: asyncio.Queue[object]

    def enqueue(self, msg: object) -> None: ...

    def _enqueue_nowait_safely(self, queue: asyncio.Queue[object], msg: object) -> None: ...


class Queues:
    """The live engines' queues, which the catch-up lets run dry after each item: what
    is on them, and what was sent to them and is not on them yet (counted while the
    catch-up runs: ``close`` stops the count)."""

    def __init__(self, node: TradingNode) -> None:
        kernel = node.kernel
        data, risk, execution = kernel.data_engine, kernel.risk_engine, kernel.exec_engine
        if not (
            isinstance(data, LiveDataEngine)
            and isinstance(risk, LiveRiskEngine)
            and isinstance(execution, LiveExecutionEngine)
        ):
            raise TypeError("a live node's catch-up needs its live engines")
        self._enqueuers: list[Enqueuer] = [
            data._cmd_enqueuer,
            data._req_enqueuer,
            data._res_enqueuer,
            data._data_enqueuer,
            risk._cmd_enqueuer,
            risk._evt_enqueuer,
            execution._cmd_enqueuer,
            execution._evt_enqueuer,
        ]
        self._in_flight = 0
        for enqueuer in self._enqueuers:
            self._count(enqueuer)

    def _count(self, enqueuer: Enqueuer) -> None:
        enqueue, put = enqueuer.enqueue, enqueuer._enqueue_nowait_safely

        def counted_enqueue(msg: object) -> None:
            queue = enqueuer._queue
            if queue.qsize() < queue.maxsize or queue.maxsize <= 0:
                self._in_flight += 1  # put by a callback on the loop's next pass
            enqueue(msg)

        def counted_put(queue: asyncio.Queue[object], msg: object) -> None:
            self._in_flight = max(0, self._in_flight - 1)
            put(queue, msg)

        enqueuer.enqueue = counted_enqueue  # type: ignore[method-assign]
        enqueuer._enqueue_nowait_safely = counted_put  # type: ignore[method-assign]

    def queued(self) -> int:
        return self._in_flight + sum(e._queue.qsize() for e in self._enqueuers)

    def close(self) -> None:
        for enqueuer in self._enqueuers:
            for name in ("enqueue", "_enqueue_nowait_safely"):
                with contextlib.suppress(AttributeError):
                    delattr(enqueuer, name)  # the class's own method again


def install_seam(node: TradingNode, settings: NodeSettings) -> Seam | None:
    """A restarted Binance node's live feed, held back from the start (before it
    connects); a fresh start goes live at once, as its backtest starts cold."""
    if settings.mode is Mode.REPLAY or settings.restore is None:
        return None
    client = node.kernel.data_engine._clients.get(ClientId(BINANCE))
    if client is None:
        raise RuntimeError("no Binance data client in the node to hold the live feed of")
    return Seam(client)


def _history(node: TradingNode) -> VenueHistory:
    client = node.kernel.data_engine._clients[ClientId(BINANCE)]
    return VenueHistory(client._http_market, client._http_client)


def bar_type_of(strategy: Strategy, primary: BarType) -> BarType:
    """A strategy's own bars (its config's ``bar_type``, NautilusTrader's convention)."""
    own = getattr(strategy.config, "bar_type", None)
    return primary if own is None else BarType.from_str(str(own))


async def go_live(
    node: TradingNode,
    settings: NodeSettings,
    bridge: Bridge,
    strategies: Sequence[Strategy],
    seam: Seam,
) -> CaughtUp | None:
    """Warm the strategies up, play the gap (a restored binance-sandbox node), open the
    seam; what the restart played, for the record."""
    history = _history(node)
    restore = settings.restore
    if restore is None:
        seam.release(PlayedMarks())
        return None
    catch_up = (
        settings.mode is Mode.BINANCE_SANDBOX
        and restore is not None
        and settings.simulation.catch_up_max > 0
    )
    marks = {m.instrument_id: m for m in restore.data_marks}
    now_ns = int(node.kernel.clock.timestamp_ns())
    last_data_ns = restore.last_data_ns

    def warm_until(bar_type: BarType) -> int:
        return _mark_ns(marks, bar_type, last_data_ns) if catch_up else now_ns

    primary = bar_type_for(settings.instrument_id, settings.replay.bar_minutes)
    warmed = PlayedMarks()
    failure = ""
    try:
        # The session's bars so far, as many as it received (the checkpoint's cursor):
        # the indicators then hold what they held, not what older bars would make them.
        session = await history.recent_bars(
            primary, _mark_ns(marks, primary, last_data_ns) // NS_PER_MS, restore.replay_cursor
        )
        since_ns = int(session[0].ts_event) if session else now_ns
        warmed_bars = await _warm_up(history, strategies, primary, warm_until, since_ns, warmed)
    except HistoryUnavailable as exc:
        warmed_bars, failure = 0, f"warm-up: {exc}"
        log.warning("strategies not warmed up: the venue served no klines (%s)", exc)
    if not catch_up:
        seam.release(warmed)
        caught = CaughtUp(from_ns=last_data_ns, to_ns=last_data_ns)
    else:
        plan = Plan(
            instruments=[InstrumentId.from_str(i) for i in settings.instrument_ids],
            bar_types=_bar_types(node, settings),
            marks=marks,
            last_data_ns=last_data_ns,
            max_ns=settings.simulation.catch_up_max * NS_PER_S,
            mark_stream=bridge.venue_funding is not None,
        )
        caught = await _catch_up(node, bridge, plan, history, seam)
    return replace(
        caught,
        warmed_bars=warmed_bars,
        failure=caught.failure or failure,
        mode=settings.mode.value,
    )


async def _catch_up(
    node: TradingNode, bridge: Bridge, plan: Plan, history: VenueHistory, seam: Seam
) -> CaughtUp:
    """The gap played through the node's own engines, the bridge told (its bar pace)."""
    funding = bridge.venue_funding
    cache = node.kernel.cache

    def charge(settlement: Settlement) -> int:
        if funding is None:
            return 0
        return funding.settle(
            settlement.instrument_id, settlement.rate, settlement.mark, settlement.at_ns
        )

    # Each instrument's tick, looked up once, not at every trade of the gap.
    increments = {
        i.value: instrument.price_increment
        for i in plan.instruments
        if (instrument := cache.instrument(i)) is not None
    }

    def touch(tick: TradeTick) -> QuoteTick | None:
        increment = increments.get(tick.instrument_id.value)
        return None if increment is None else implied_touch(tick, increment)

    queues = Queues(node)
    recording = BatchedRecording(node.kernel.msgbus, node.kernel.writer)
    player = CatchUp(
        plan,
        history,
        seam,
        node.kernel.data_engine._handle_data,
        queues,
        charge,
        now_ns=node.kernel.clock.timestamp_ns,
        touch=touch,
    )
    msgbus = node.kernel.msgbus
    msgbus.subscribe(topic="events.order.*", handler=player.on_order_event)
    bridge.catching_up = True
    try:
        return await player.run()
    finally:
        bridge.catching_up = False
        queues.close()
        recording.close()
        with contextlib.suppress(Exception):
            msgbus.unsubscribe(topic="events.order.*", handler=player.on_order_event)


def _mark_ns(marks: Mapping[str, DataMark], bar_type: BarType, last_data_ns: int) -> int:
    """The last bar of ``bar_type``'s instrument the checkpoint's node had received."""
    mark = marks.get(bar_type.instrument_id.value)
    return mark.bar_ns if mark is not None and mark.bar_ns else last_data_ns


def _bar_types(node: TradingNode, settings: NodeSettings) -> list[BarType]:
    """Every bar type the strategies subscribed to from the venue (and the service's own
    per instrument, which the bridge counts)."""
    wanted = {
        str(bar_type_for(i, settings.replay.bar_minutes)): bar_type_for(
            i, settings.replay.bar_minutes
        )
        for i in settings.instrument_ids
    }
    for bar_type in node.kernel.data_engine.subscribed_bars():
        if bar_type.instrument_id.venue.value == BINANCE and bar_type.is_externally_aggregated():
            wanted.setdefault(str(bar_type), bar_type)
    return list(wanted.values())


async def _warm_up(
    history: VenueHistory,
    strategies: Sequence[Strategy],
    primary: BarType,
    until: Callable[[BarType], int],
    since_ns: int,
    warmed: PlayedMarks,
) -> int:
    """Each strategy that can warms up on the closed bars of its bar type from
    ``since_ns`` (the session's first) to ``until(bar_type)`` (ns); the bars it was given
    count as played (the seam drops a live copy). Returns the most bars one strategy was
    given."""
    fetched: dict[str, list[Bar]] = {}
    most = 0
    for strategy in strategies:
        if not isinstance(strategy, WarmsUp):
            continue
        bar_type = bar_type_of(strategy, primary)
        key = str(bar_type)
        if key not in fetched:
            end_ns = until(bar_type)
            bars = await history.recent_bars(bar_type, end_ns // NS_PER_MS, WARM_UP_BARS)
            bars = [b for b in bars if b.ts_event >= since_ns]
            fetched[key] = list(bars)
            if bars:
                warmed.bar_ns[key] = max(warmed.bar_ns.get(key, 0), int(bars[-1].ts_event))
        strategy.warm_up(fetched[key])
        most = max(most, len(fetched[key]))
    return most
