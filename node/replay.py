"""A live Nautilus data client that replays a bar series into a running TradingNode.

It is a real ``LiveMarketDataClient``: bars enter through ``_handle_data`` exactly as
exchange data would, so the DataEngine, the strategy and the sandbox execution
client's matching engine all see the same stream. Each bar is stamped with the live
clock; its position in the series (the cursor) is what a checkpoint records.

The host builds it itself, from the replay settings, and registers it with the data
engine: no factory and no registry stand between it and the bridge that reads it.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import LiveDataClientConfig
from nautilus_trader.data.messages import SubscribeBars, UnsubscribeBars
from nautilus_trader.live.data_client import LiveMarketDataClient
from nautilus_trader.model.data import Bar, BarType, TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.identifiers import ClientId, InstrumentId, TradeId, Venue
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
    ) -> None:
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
        make_price = self._instrument.make_price
        return Bar(
            bar_type=self._bar_type,
            open=make_price(row.open),
            high=make_price(row.high),
            low=make_price(row.low),
            close=make_price(row.close),
            volume=self._instrument.make_qty(row.volume),
            ts_event=ts,
            ts_init=ts,
        )

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
        make_price = self._instrument.make_price
        await self._released.wait()
        while self.cursor < len(self._series):
            row = self._series[self.cursor]
            now = self._clock.timestamp_ns()
            bar = self._bar(row, now)
            # The sandbox matching engine listens to the venue's trades, not its
            # bars: the bar's path O -> H/L -> C is played as trades first, so
            # market orders fill at the last price and resting limits can touch.
            for k, px in enumerate(_path(row)):
                self._handle_data(
                    TradeTick(
                        instrument_id=self._instrument.id,
                        price=make_price(px),
                        size=self._instrument.make_qty(row.volume / 4),
                        aggressor_side=AggressorSide.NO_AGGRESSOR,
                        trade_id=TradeId(f"R{self.cursor}-{k}"),
                        ts_event=now,
                        ts_init=now,
                    )
                )
            self.cursor += 1
            self._handle_data(bar)
            await asyncio.sleep(interval)
        self.finished = True
        self._log.warning(f"replay finished after {self.cursor} bars")


def _path(row: Ohlcv) -> tuple[Decimal, Decimal, Decimal, Decimal]:
    if row.close >= row.open:
        return (row.open, row.low, row.high, row.close)
    return (row.open, row.high, row.low, row.close)


def parse_instrument_id(value: str) -> InstrumentId:
    return InstrumentId.from_str(value)
