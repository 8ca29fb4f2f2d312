"""A live Nautilus data client that replays a bar series into a running TradingNode,
in lockstep with it, so a replay's fills equal ``BacktestEngine``'s at any speed.

It is a real ``LiveMarketDataClient``: bars enter through ``_handle_data`` exactly as
exchange data would. Each bar is one step of the venue (``node.lockstep``): the
simulated venue takes the bar, the strategy gets it, the venue settles what the
strategy sent - all before the next bar, as in a backtest. ``speed`` only paces
wall-clock time between steps (one bar interval a step, a gap in the data included:
a gap is market time, not a pause); the sequence of fills is the same at every speed.

A step is synchronous, so the cursor (the index of the next step) moves only at a
step's end and nothing else on the loop - a snapshot, an operator's command - runs in
the middle of one: a checkpoint never holds a bar half done, and a restore resumes at
the right bar without re-trading or skipping one. Each bar is stamped with its market
time (``node.bars``), as the parity backtest stamps it: the venue's fills, funding
settlements and the breakers' days follow the data's clock, not the machine's.

The host builds it itself, registers it with the data engine and hands it the venue:
no factory and no registry stand between it, the venue and the bridge that reads it.
"""

from __future__ import annotations

import asyncio
import time
from array import array
from bisect import bisect_left
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
from nautilus_trader.model.objects import FIXED_PRECISION

from node.bars import VOLUME_DECIMALS, BarSeries, Ohlcv, load
from node.instruments import BUNDLED_START_PRICE, make_instrument, with_fees
from protocol import NodeSettings, ReplaySettings

REPLAY_CLIENT = "REPLAY"
SEED_STEP = 1_000  # a second instrument's synthetic walk: its own seed, not a copy
LOOP_PASS_EVERY_S = 0.001  # speed 0: wall time between two passes of the node's loop
MAX_GAPS_LOGGED = 20


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


class BarMaker:
    """``to_bar`` for one feed's rows by index, from the series' integers (``Bar.from_raw``):
    no Decimal, no float, no rounding - a step's largest cost beyond the backtest's was
    building its bar through Decimal (about 28 us of a step). The bars are ``to_bar``'s to
    the last bit: ``make_price`` and ``make_qty`` round to the instrument's increments, so
    the raw path is taken only where that rounding leaves a value on the series' grid as
    it is (one tick, one thousandth of volume, checked here); elsewhere the rounding is
    done, from a float equal to the Decimal's ``float()``."""

    def __init__(self, instrument: Instrument, bar_type: BarType, series: BarSeries) -> None:
        self._instrument = instrument
        self._bar_type = bar_type
        self._series = series
        self._price_precision = int(instrument.price_precision)
        self._size_precision = int(instrument.size_precision)
        self._price_scale = 10**series.price_decimals
        self._volume_scale = 10**VOLUME_DECIMALS
        tick = 10 ** (FIXED_PRECISION - series.price_decimals)
        self._tick_raw = (
            tick
            if series.price_decimals == self._price_precision
            and instrument.make_price(1 / self._price_scale).raw == tick
            else None
        )
        unit = 10 ** (FIXED_PRECISION - VOLUME_DECIMALS)
        try:
            smallest = instrument.make_qty(1 / self._volume_scale)
        except ValueError:  # coarser than a thousandth: make_qty rounds
            smallest = None
        self._unit_raw = unit if smallest is not None and smallest.raw == unit else None

    @property
    def exact(self) -> bool:
        """Built from the raw integers (not rounded through a float)."""
        return self._tick_raw is not None and self._unit_raw is not None

    def __call__(self, index: int, ts: int) -> Bar:
        o, h, lo, c, v = self._series.ticks(index)
        tick, unit = self._tick_raw, self._unit_raw
        if tick is None or unit is None:
            return self._rounded(o, h, lo, c, v, ts)
        return Bar.from_raw(
            self._bar_type,
            o * tick,
            h * tick,
            lo * tick,
            c * tick,
            self._price_precision,
            v * unit,
            self._size_precision,
            ts,
            ts,
        )

    def _rounded(self, o: int, h: int, lo: int, c: int, v: int, ts: int) -> Bar:
        make_price, scale = self._instrument.make_price, self._price_scale
        return Bar(
            bar_type=self._bar_type,
            open=make_price(o / scale),
            high=make_price(h / scale),
            low=make_price(lo / scale),
            close=make_price(c / scale),
            volume=self._instrument.make_qty(v / self._volume_scale),
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


def feeds_for(settings: NodeSettings, limit: int | None = None) -> list[Feed]:
    """Every instrument the node trades, with the bars a replay plays for it (``limit``:
    each feed's first rows only - the ones the first ``limit`` steps can play, since a
    step plays at least one feed's next row)."""
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
                load(replay, instrument.price_precision, limit),
            )
        )
    return feeds


class Timeline:
    """A replay's steps: every market time at which any feed has a bar, in order. A step
    plays the bar each feed has at that time, in the feeds' order, so instruments whose
    files have different gaps still trade side by side at the right times. The cursor is
    an index into it; one feed, or feeds on one grid, map a step to a row directly."""

    def __init__(self, feeds: Sequence[Feed]) -> None:
        self._series = [f.series for f in feeds]
        first = self._series[0]
        same = all(
            s.uniform and s.start_ns == first.start_ns and s.bar_ns == first.bar_ns
            for s in self._series
        )
        if len(self._series) == 1 or (first.uniform and same):
            self._times: array[int] | None = None
            self._rows: list[array[int] | None] = [None] * len(self._series)
            self._length = max(len(s) for s in self._series)
            return
        merged = sorted({s.time_ns(i) for s in self._series for i in range(len(s))})
        self._times = array("q", merged)
        self._length = len(merged)
        self._rows = []
        for series in self._series:
            rows = array("q", [-1]) * self._length
            for i in range(len(series)):
                rows[bisect_left(self._times, series.time_ns(i))] = i
            self._rows.append(rows)

    def __len__(self) -> int:
        return self._length

    def time_ns(self, step: int) -> int:
        """The market time of ``step`` (a step past the end: one bar after the last)."""
        if self._times is not None:
            return self._times[step]
        return self._series[0].time_ns(step)

    def rows_before(self, series: BarSeries, step: int) -> int:
        """How many of ``series``' bars the replay has played before ``step``."""
        if step >= self._length:
            return len(series)
        return series.rows_before(self.time_ns(step))

    def row(self, feed: int, step: int) -> int | None:
        """The row of feed ``feed`` played at ``step``; None: it has no bar then."""
        rows = self._rows[feed]
        if rows is None:
            return step if step < len(self._series[feed]) else None
        row = rows[step]
        return None if row < 0 else row

    def step_at(self, ts_ns: int) -> int:
        """The step of market time ``ts_ns`` (the first at or after it)."""
        if self._times is not None:
            return bisect_left(self._times, ts_ns)
        series = self._series[0]
        if not series.uniform:  # one feed: its own times
            return series.rows_before(ts_ns)
        return max(0, -(-(ts_ns - series.start_ns) // series.bar_ns))


class ReplayData:
    """What a replay plays - its feeds on one timeline, and each feed's bar maker - built
    once per node (and per parity backtest) from the settings."""

    def __init__(self, feeds: Sequence[Feed], timeline: Timeline | None = None) -> None:
        self.feeds = tuple(feeds)
        self.timeline = Timeline(self.feeds) if timeline is None else timeline
        self._makers = tuple(BarMaker(f.instrument, f.bar_type, f.series) for f in self.feeds)

    @classmethod
    def of(cls, settings: NodeSettings, steps: int | None = None) -> ReplayData:
        """``steps``: only the first steps (a session's chart of what it played); the
        timeline's first ``steps`` times and rows are the whole series' ones."""
        return cls(feeds_for(settings, steps))

    def bars_at(self, step: int) -> list[Bar]:
        """The bars a step plays, stamped with its market time, in the feeds' order."""
        timeline = self.timeline
        ts = timeline.time_ns(step)
        if len(self._makers) == 1:  # one feed: its rows are the steps
            return [self._makers[0](step, ts)]
        bars = []
        for n, make in enumerate(self._makers):
            row = timeline.row(n, step)
            if row is not None:
                bars.append(make(row, ts))
        return bars

    def history(self, bar_type: BarType, step: int, count: int) -> list[Bar]:
        """The ``count`` bars of ``bar_type`` before step ``step``, at their market times."""
        found = next(
            (
                (f, m)
                for f, m in zip(self.feeds, self._makers, strict=True)
                if f.bar_type == bar_type
            ),
            None,
        )
        if found is None:
            return []
        feed, make = found
        series = feed.series
        end = self.timeline.rows_before(series, step)
        return [make(i, series.time_ns(i)) for i in range(max(0, end - count), end)]

    def played_until(self, cursor: int) -> dict[str, int]:
        """Each instrument's last bar before step ``cursor``: its market time."""
        last: dict[str, int] = {}
        for feed in self.feeds:
            series = feed.series
            rows = self.timeline.rows_before(series, cursor)
            if rows > 0:
                last[feed.instrument.id.value] = series.time_ns(rows - 1)
        return last

    def gaps(self) -> list[str]:
        """Each feed's gaps, in words (``node.bars.Gap``)."""
        return [
            f"{feed.instrument.id.value}: {gap.describe()}"
            for feed in self.feeds
            for gap in feed.series.gaps()
        ]


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
        data: ReplayData,
        replay: ReplaySettings,
        start_cursor: int = 0,
        hold: bool = True,
        venue: SteppedVenue | None = None,
    ) -> None:
        """``venue`` is stepped with each bar (None: the bar alone, as live data). A
        step plays the bar each feed has at the cursor's time, in the feeds' order."""
        feeds = data.feeds
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
        self._feeds = feeds
        self._data = data
        self._replay = replay
        self.timeline = data.timeline
        gaps = data.gaps()
        more = len(gaps) - MAX_GAPS_LOGGED
        # What the host tells the parent's log (``NodeStarted.data_gaps``).
        self.gaps = (*gaps[:MAX_GAPS_LOGGED], *([f"... and {more} more"] if more > 0 else []))
        self._total = len(self.timeline)
        self.cursor = min(start_cursor, self._total)
        self.finished = self.cursor >= self._total
        self._task: asyncio.Task[None] | None = None
        # When the step being played began, on the wall clock (its bars carry market
        # time): what a fill's latency is measured from.
        self.step_wall_ns = 0
        self.in_step = False
        self._released = asyncio.Event()
        if not hold:  # else held until the host releases it: a restore comes first
            self._released.set()
        self._venue = venue

    def release(self) -> None:
        self._released.set()

    def history(self, count: int, bar_type: BarType) -> list[Bar]:
        """The ``count`` bars of ``bar_type`` before the cursor, at their market times,
        for warm-up."""
        return self._data.history(bar_type, self.cursor, count)

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
        venue, deliver, data, clock = self._venue, self._handle_data, self._data, self._clock
        passed = time.monotonic()  # the loop's last pass
        while self.cursor < self._total:
            started = time.monotonic()
            cursor = self.cursor
            self.step_wall_ns = clock.timestamp_ns()
            self.in_step = True
            for bar in data.bars_at(cursor):
                if venue is not None:
                    venue.step(bar, deliver, cursor)
                else:
                    deliver(bar)
            self.in_step = False
            self.cursor = cursor + 1
            if interval > 0:  # paced: the rest of the bar's wall-clock interval
                await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
            elif started - passed >= LOOP_PASS_EVERY_S:
                # As fast as possible: a pass of the loop (the timers, the pipe, the
                # operator's commands) between two steps once a millisecond, not after
                # every step - one pass cost about as much as a quiet bar's step.
                await asyncio.sleep(0)
                passed = time.monotonic()
        self.finished = True
        self._log.warning(f"replay finished after {self.cursor} bars")
