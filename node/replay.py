"""A live Nautilus data client that replays a bar series into a running TradingNode,
in lockstep with it, so a replay's fills equal ``BacktestEngine``'s at any speed.

It is a real ``LiveMarketDataClient``: bars enter through ``_handle_data`` exactly as
exchange data would. Each bar is one step of the venue (``node.lockstep``): the
simulated venue takes the bar, the strategy gets it, the venue settles what the
strategy sent - all before the next bar, as in a backtest. ``speed`` only paces
wall-clock time between steps; the sequence of fills is the same at every speed.

A step is synchronous, so the cursor (the index of the next bar) moves only at a
step's end and nothing else on the loop - a snapshot, an operator's command - runs in
the middle of one: a checkpoint never holds a bar half done, and a restore resumes at
the right bar without re-trading or skipping one. Each bar is stamped with the live
clock.

The host builds it itself, registers it with the data engine and hands it the venue:
no factory and no registry stand between it, the venue and the bridge that reads it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import LiveDataClientConfig
from nautilus_trader.data.messages import SubscribeBars, UnsubscribeBars
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.identifiers import ClientId, Venue
from nautilus_trader.model.instruments import Instrument

from node.bars import BarSeries, Ohlcv, load
from node.instruments import BUNDLED_START_PRICE, make_instrument, with_fees
from protocol import NodeSettings, ReplaySettings

REPLAY_CLIENT = "REPLAY"
SEED_STEP = 1_000  # a second instrument's synthetic walk: its own seed, not a copy
# A series' market time: bar i opens at SERIES_EPOCH_NS + i x its length. The backtest
# plays the bars at these times; the live node gets them stamped with its clock, so a
# replay's fills and funding are dated here instead (what a trader's statistics use).
SERIES_EPOCH_NS = 1_600_000_000 * 10**9


def series_time_ns(bar: int, bar_minutes: int) -> int:
    """The market time of bar ``bar`` of a replayed series."""
    return SERIES_EPOCH_NS + bar * bar_minutes * 60 * 10**9


def bar_type_for(instrument_id: str, bar_minutes: int) -> BarType:
    """NautilusTrader spells a bar in its largest whole unit (``60-MINUTE`` is refused:
    ``1-HOUR``)."""
    if bar_minutes % 1440 == 0:
        step = f"{bar_minutes // 1440}-DAY"
    elif bar_minutes % 60 == 0:
        step = f"{bar_minutes // 60}-HOUR"
    else:
        step = f"{bar_minutes}-MINUTE"
    return BarType.from_str(f"{instrument_id}-{step}-LAST-EXTERNAL")


def to_bar(instrument: Instrument, bar_type: BarType, row: Ohlcv, ts: int) -> Bar:
    """A series row as the Nautilus bar both the replay and the parity backtest play."""
    make_price = instrument.make_price
    return Bar(
        bar_type=bar_type,
        open=make_price(row.open),
        high=make_price(row.high),
        low=make_price(row.low),
        close=make_price(row.close),
        volume=instrument.make_qty(row.volume),
        ts_event=ts,
        ts_init=ts,
    )


@dataclass(frozen=True, slots=True)
class Feed:
    """One instrument's bars in a replay."""

    instrument: Instrument
    bar_type: BarType
    series: BarSeries


def series_settings(settings: NodeSettings, index: int, instrument_id: str) -> ReplaySettings:
    """``[replay]`` for the ``index``-th instrument of the node: the first plays it as
    written; another plays its ``[[instruments]]`` file, or a walk of its own seed
    from its own start price, the same length and volatility."""
    replay = settings.replay
    if index == 0:
        return replay
    spec = settings.spec(instrument_id)
    if replay.source == "file":
        path = spec.replay_path if spec is not None else None
        if path is None:
            raise ValueError(
                f"{instrument_id}: replay.source = file needs its file as "
                "[[instruments]] replay_path"
            )
        return replay.model_copy(update={"path": path})
    start = spec.start_price if spec is not None and spec.start_price is not None else None
    if start is None:
        start = BUNDLED_START_PRICE.get(instrument_id, replay.start_price)
    return replay.model_copy(update={"seed": replay.seed + SEED_STEP * index, "start_price": start})


def feeds_for(settings: NodeSettings) -> list[Feed]:
    """Every instrument the node trades, with the bars a replay plays for it."""
    feeds = []
    for index, instrument_id in enumerate(settings.instrument_ids):
        simulation = settings.simulation
        instrument = with_fees(
            make_instrument(instrument_id, settings.instruments),
            simulation.maker_fee,
            simulation.taker_fee,
        )
        replay = series_settings(settings, index, instrument_id)
        feeds.append(
            Feed(
                instrument,
                bar_type_for(instrument_id, replay.bar_minutes),
                load(replay, instrument.price_precision),
            )
        )
    return feeds


class SteppedVenue(Protocol):
    """The simulated venue as the replay steps it (``node.lockstep.LockstepVenue``)."""

    def step(self, bar: Bar, deliver: Callable[[Bar], None], index: int = 0) -> None:
        """The venue takes ``bar`` (the ``index``-th of its series), ``deliver`` hands it
        to the node, the venue settles."""
        ...


class ReplayDataClient(LiveMarketDataClient):
    """Plays ``bars`` from ``cursor`` on; the cursor is the index of the next bar."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        feeds: Sequence[Feed],
        replay: ReplaySettings,
        start_cursor: int = 0,
        hold: bool = True,
        venue: SteppedVenue | None = None,
    ) -> None:
        """``venue`` is stepped with each bar (None: the bar alone, as live data). A
        step plays the cursor's bar of every feed, in the feeds' order."""
        super().__init__(
            loop=loop,
            client_id=ClientId(REPLAY_CLIENT),
            venue=Venue(feeds[0].instrument.id.venue.value),
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=InstrumentProvider(),
            config=LiveDataClientConfig(),
        )
        # The sandbox exec client reads the venue's instruments from the cache at
        # connect, which happens before any data client connects.
        for feed in feeds:
            cache.add_instrument(feed.instrument)
        self._feeds = tuple(feeds)
        self._replay = replay
        self._total = max(len(f.series) for f in feeds)
        self.cursor = min(start_cursor, self._total)
        self.finished = self.cursor >= self._total
        self._task: asyncio.Task[None] | None = None
        self._released = asyncio.Event()
        if not hold:  # else held until the host releases it: a restore comes first
            self._released.set()
        self._venue = venue

    def release(self) -> None:
        self._released.set()

    def history(self, count: int, bar_type: BarType) -> list[Bar]:
        """The ``count`` bars of ``bar_type`` before the cursor, stamped in the past,
        for warm-up."""
        feed = next((f for f in self._feeds if f.bar_type == bar_type), None)
        if feed is None:
            return []
        end = min(self.cursor, len(feed.series))
        start = max(0, end - count)
        step_ns = bar_type.spec.step * 60 * 1_000_000_000
        now = self._clock.timestamp_ns()
        return [
            to_bar(feed.instrument, bar_type, feed.series[i], now - (self.cursor - i) * step_ns)
            for i in range(start, end)
        ]

    @property
    def total_bars(self) -> int:
        return self._total

    async def _connect(self) -> None:
        self._log.info(
            f"replay ready: {self._total} bars of {len(self._feeds)} instrument(s), "
            f"cursor {self.cursor}"
        )

    async def _disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _subscribe_bars(self, command: SubscribeBars) -> None:
        if self._task is None:  # one clock for every feed, from the first subscription
            self._task = self._loop.create_task(self._play())

    async def _unsubscribe_bars(self, command: UnsubscribeBars) -> None:
        await self._disconnect()

    async def _play(self) -> None:
        replay = self._replay
        interval = replay.bar_minutes * 60 / replay.speed if replay.speed > 0 else 0.0
        await self._released.wait()
        while self.cursor < self._total:
            started = time.monotonic()
            now = self._clock.timestamp_ns()
            for feed in self._feeds:
                if self.cursor >= len(feed.series):
                    continue  # a shorter series has ended; the others play on
                bar = to_bar(feed.instrument, feed.bar_type, feed.series[self.cursor], now)
                if self._venue is not None:
                    self._venue.step(bar, self._handle_data, self.cursor)
                else:
                    self._handle_data(bar)
            self.cursor += 1
            # Paced: the rest of the bar's wall-clock interval; as fast as possible: one
            # pass of the loop, for the timers, the pipe and the operator's commands.
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
        self.finished = True
        self._log.warning(f"replay finished after {self.cursor} bars")
