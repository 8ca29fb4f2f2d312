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
from collections.abc import Callable
from typing import Protocol

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import LiveDataClientConfig
from nautilus_trader.data.messages import SubscribeBars, UnsubscribeBars
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.identifiers import ClientId, InstrumentId, Venue
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from node.bars import BarSeries, Ohlcv, load
from protocol import ReplaySettings

REPLAY_CLIENT = "REPLAY"

_INSTRUMENTS = {
    "BTCUSDT-PERP.BINANCE": TestInstrumentProvider.btcusdt_perp_binance,
    "ETHUSDT-PERP.BINANCE": TestInstrumentProvider.ethusdt_perp_binance,
}


def make_instrument(instrument_id: str) -> Instrument:
    return _INSTRUMENTS[instrument_id]()


def bar_type_for(instrument_id: str, bar_minutes: int) -> BarType:
    return BarType.from_str(f"{instrument_id}-{bar_minutes}-MINUTE-LAST-EXTERNAL")


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


class SteppedVenue(Protocol):
    """The simulated venue as the replay steps it (``node.lockstep.LockstepVenue``)."""

    def step(self, bar: Bar, deliver: Callable[[Bar], None]) -> None:
        """The venue takes ``bar``, ``deliver`` hands it to the node, the venue settles."""
        ...


class ReplayDataClient(LiveMarketDataClient):
    """Plays ``bars`` from ``cursor`` on; the cursor is the index of the next bar."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        instrument_id: str,
        replay: ReplaySettings,
        start_cursor: int = 0,
        hold: bool = True,
        venue: SteppedVenue | None = None,
    ) -> None:
        """``venue`` is stepped with each bar (None: the bar alone, as live data)."""
        instrument = make_instrument(instrument_id)
        super().__init__(
            loop=loop,
            client_id=ClientId(REPLAY_CLIENT),
            venue=Venue(instrument.id.venue.value),
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=InstrumentProvider(),
            config=LiveDataClientConfig(),
        )
        # The sandbox exec client reads the venue's instruments from the cache at
        # connect, which happens before any data client connects.
        cache.add_instrument(instrument)
        self._instrument = instrument
        self._replay = replay
        self._series: BarSeries = load(replay, instrument.price_precision)
        self.cursor = min(start_cursor, len(self._series))
        self.finished = self.cursor >= len(self._series)
        self._task: asyncio.Task[None] | None = None
        self._released = asyncio.Event()
        if not hold:  # else held until the host releases it: a restore comes first
            self._released.set()
        self._bar_type = bar_type_for(instrument_id, replay.bar_minutes)
        self._venue = venue

    def release(self) -> None:
        self._released.set()

    def history(self, count: int) -> list[Bar]:
        """The ``count`` bars before the cursor, stamped in the past, for warm-up."""
        start = max(0, self.cursor - count)
        step_ns = self._bar_type.spec.step * 60 * 1_000_000_000
        now = self._clock.timestamp_ns()
        return [
            self._bar(self._series[i], now - (self.cursor - i) * step_ns)
            for i in range(start, self.cursor)
        ]

    def _bar(self, row: Ohlcv, ts: int) -> Bar:
        return to_bar(self._instrument, self._bar_type, row, ts)

    @property
    def total_bars(self) -> int:
        return len(self._series)

    async def _connect(self) -> None:
        self._log.info(f"replay ready: {len(self._series)} bars, cursor {self.cursor}")

    async def _disconnect(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None

    async def _subscribe_bars(self, command: SubscribeBars) -> None:
        if self._task is None:
            self._task = self._loop.create_task(self._play(command.bar_type))

    async def _unsubscribe_bars(self, command: UnsubscribeBars) -> None:
        await self._disconnect()

    async def _play(self, bar_type: BarType) -> None:
        interval = bar_type.spec.step * 60 / self._replay.speed if self._replay.speed > 0 else 0.0
        await self._released.wait()
        while self.cursor < len(self._series):
            started = time.monotonic()
            bar = self._bar(self._series[self.cursor], self._clock.timestamp_ns())
            if self._venue is not None:
                self._venue.step(bar, self._handle_data)
            else:
                self._handle_data(bar)
            self.cursor += 1
            # Paced: the rest of the bar's wall-clock interval; as fast as possible: one
            # pass of the loop, for the timers, the pipe and the operator's commands.
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
        self.finished = True
        self._log.warning(f"replay finished after {self.cursor} bars")


def parse_instrument_id(value: str) -> InstrumentId:
    return InstrumentId.from_str(value)
