"""A restarted binance-sandbox node plays the market it missed before it goes live.

While the service was down the market went on: a resting order it traded through, a stop
it crossed, a settlement, the bars the strategies would have acted on. Going on from the
live feed as if none of it happened leaves a paper record that differs from the strategy's
by an amount nobody can tell. So a node restored from a checkpoint first replays the
venue's history from the checkpoint's data marks (``DataMark``: the last trade id, the
last bar) to the live feed:

- ``Seam`` holds the live feed's market data back from the moment the node connects
  (the Binance data client's output, wrapped), so nothing live reaches the venue or the
  strategies while the past plays;
- ``CatchUp`` plays the venue's aggregate trades, the closed bars of every bar type the
  strategies subscribed to and the funding settlements, merged in market time, each
  through the data engine as the live feed's would go, with the engines' queues drained
  after each (the strategies' orders reach the simulated venue before the next trade, as
  they do live when the node keeps up with the feed): resting orders and stops fill at
  the gap's trades, at their prices and times; the funding is charged at the venue's rate
  and mark;
- the seam then lets the held data through, less what the history played (trades by id,
  bars by close time, quotes older than the last trade played), and the feed goes on.

The history goes on until it meets the first live trade held (so the seam has no hole
even if the live subscription came late), and its settlements until the live mark-price
stream's first update held (which announces only the next one: a settlement between the
history's first read and that update was charged by neither side), bounded by
``catch_up_max``: a longer gap plays its last part. A venue that cannot serve its history
leaves the rest of the gap unplayed; either way the ``CaughtUp`` event says what was and
was not played.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol

from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import Bar, BarType, CustomData, QuoteTick, TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Price

from node.funding import KLINE_END_NS
from node.history import HistoryUnavailable, Settlement, VenueHistory
from protocol import CaughtUp, DataMark

NS_PER_MS = 1_000_000
SEAM_WAIT_S = 10.0  # how long the catch-up waits for the live feed's first trade
SEAM_POLL_S = 0.25  # between two reads of the tape's end while it waits
DRAIN_ROUNDS = 10_000  # loop passes to settle one item's consequences, at most
# Within one millisecond (``_Timeline``): its trades, a settlement at its end, its bar.
_SETTLEMENT, _BAR = 1, 2


class DataSource(Protocol):
    """The Binance data client's output, which the seam wraps (an instance attribute
    shadows the method the adapter's stream handlers call)."""

    def _handle_data(self, data: Data) -> None: ...


class FeedMarks:
    """The last trade (id, market time) and bar (close) a live feed delivered, per
    instrument: a checkpoint's ``data_marks``, where a restart's catch-up begins."""

    def __init__(self, restored: Sequence[DataMark] = ()) -> None:
        self._trades: dict[str, tuple[int, int]] = {}
        self._bars: dict[str, int] = {}
        for mark in restored:
            self._trades[mark.instrument_id] = (mark.trade_id, mark.trade_ns)
            self._bars[mark.instrument_id] = mark.bar_ns

    def trade(self, tick: TradeTick) -> None:
        try:
            trade_id = int(tick.trade_id.value)
        except ValueError:  # not a venue's numeric id: its time still counts
            trade_id = 0
        key = tick.instrument_id.value
        last_id, _ = self._trades.get(key, (0, 0))
        self._trades[key] = (max(trade_id, last_id), tick.ts_event)

    def bar(self, bar: Bar) -> None:
        key = bar.bar_type.instrument_id.value
        self._bars[key] = max(self._bars.get(key, 0), bar.ts_event)

    def marks(self, settled: Mapping[str, int] | None = None) -> tuple[DataMark, ...]:
        """``settled``: the last settlement each instrument's funding charged (the
        funding's own record, which starts from the restored marks')."""
        last = settled or {}
        keys = sorted(set(self._trades) | set(self._bars) | set(last))
        return tuple(
            DataMark(
                k,
                *self._trades.get(k, (0, 0)),
                bar_ns=self._bars.get(k, 0),
                settled_ns=last.get(k, 0),
            )
            for k in keys
        )


HELD = (TradeTick, QuoteTick, Bar, CustomData)


class Seam:
    """Holds the live feed's market data while the gap plays, then lets through what the
    gap did not play. Installed before the node connects, so nothing live slips past."""

    def __init__(self, source: DataSource) -> None:
        self._source = source
        self._forward: Callable[[Data], None] = source._handle_data
        self.held: list[Data] = []
        self.holding = True
        # instrument -> the time of the first mark-price update held (see ``first_mark_ns``)
        self._first_marks: dict[str, int] = {}
        source._handle_data = self._take  # type: ignore[method-assign]

    def _take(self, data: Data) -> None:
        if self.holding and isinstance(data, HELD):
            self.held.append(data)
            if isinstance(data, CustomData) and isinstance(
                data.data, BinanceFuturesMarkPriceUpdate
            ):
                update = data.data
                self._first_marks.setdefault(update.instrument_id.value, int(update.ts_event))
            return
        self._forward(data)

    def first_mark_ns(self, instrument_id: str) -> int | None:
        """The venue time of the live mark-price stream's first update held: it announces
        the settlement after it, so the live side charges those and the catch-up every
        one up to it."""
        return self._first_marks.get(instrument_id)

    def first_live_trade(self, instrument_id: str) -> int | None:
        for data in self.held:
            if isinstance(data, TradeTick) and data.instrument_id.value == instrument_id:
                with contextlib.suppress(ValueError):
                    return int(data.trade_id.value)
        return None

    def first_live_bar_ns(self, bar_type: BarType) -> int | None:
        for data in self.held:
            if isinstance(data, Bar) and data.bar_type == bar_type:
                return int(data.ts_event)
        return None

    def release(self, played: PlayedMarks) -> int:
        """The held data the gap did not play goes on, in the order it came; the rest is
        dropped (returned: how many). From now on the feed passes straight through."""
        self.holding = False
        held, self.held = self.held, []
        dropped = 0
        for data in held:
            if played.covers(data):
                dropped += 1
            else:
                self._forward(data)
        with contextlib.suppress(AttributeError):
            del self._source._handle_data  # the adapter's own method again
        return dropped


@dataclass
class PlayedMarks:
    """How far the catch-up played: the last trade id and time per instrument, the last
    bar per bar type."""

    trade_ids: dict[str, int] = field(default_factory=dict)
    trade_ns: dict[str, int] = field(default_factory=dict)
    bar_ns: dict[str, int] = field(default_factory=dict)

    def covers(self, data: Data) -> bool:
        """The live feed's ``data`` was played from history already (or is older)."""
        if isinstance(data, TradeTick):
            last = self.trade_ids.get(data.instrument_id.value)
            if last is None:
                return False
            try:
                return int(data.trade_id.value) <= last
            except ValueError:
                return bool(data.ts_event <= self.trade_ns.get(data.instrument_id.value, 0))
        if isinstance(data, Bar):
            return bool(data.ts_event <= self.bar_ns.get(str(data.bar_type), -1))
        if isinstance(data, QuoteTick):
            return bool(data.ts_event < self.trade_ns.get(data.instrument_id.value, 0))
        return False


class Charge(Protocol):
    """Charges one settlement on the simulated positions; returns how many paid."""

    def __call__(self, settlement: Settlement) -> int: ...


class Engines(Protocol):
    """What the catch-up waits on: the live engines' queues."""

    def queued(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Plan:
    """What to play: from the checkpoint's marks, within ``max_ns`` of now."""

    instruments: Sequence[InstrumentId]
    bar_types: Sequence[BarType]
    marks: Mapping[str, DataMark]
    last_data_ns: int  # the checkpoint's last bar's arrival: a start without marks
    max_ns: int
    # The node takes the venue's mark-price stream (its funding): the live feed's first
    # update says from when on the stream announces the settlements.
    mark_stream: bool = False


class CatchUp:
    """Plays the gap's history through the node, then opens the seam."""

    def __init__(
        self,
        plan: Plan,
        history: VenueHistory,
        seam: Seam,
        deliver: Callable[[Data], None],
        engines: Engines,
        charge: Charge,
        now_ns: Callable[[], int] = time.time_ns,
        seam_wait_s: float = SEAM_WAIT_S,
        touch: Callable[[TradeTick], QuoteTick | None] = lambda _: None,
    ) -> None:
        """``touch``: the top of book a trade implies (``implied_touch``), played before
        it: the venue's history has no quotes, and without them the simulated venue
        would take a trade hitting the bid as no sign of where the bid was."""
        self._plan = plan
        self._history = history
        self._seam = seam
        self._deliver = deliver
        self._engines = engines
        self._charge = charge
        self._now_ns = now_ns
        self._seam_wait_s = seam_wait_s
        self._touch = touch
        self.played = PlayedMarks()
        self.fills = 0
        self._trades = 0
        self._bars = 0
        self._settlements = 0
        self._last_price: dict[str, Decimal] = {}
        # How far the history was read (ms): each bar type's bars, each instrument's
        # settlements, by key; and the time the timeline holds everything up to (a bar
        # type's bars past the live feed's first bar of it are the feed's).
        self._read_to: dict[str, int] = {}
        self._horizon_ms = 0

    def on_order_event(self, event: object) -> None:
        if isinstance(event, OrderFilled):
            self.fills += 1

    async def run(self) -> CaughtUp:
        started = time.monotonic()
        plan = self._plan
        now_ns = self._now_ns()
        floor_ns = now_ns - plan.max_ns
        starts = {
            i.value: self._resume_ns(plan.marks.get(i.value), plan.last_data_ns)
            for i in plan.instruments
        }
        from_ns = min(starts.values(), default=now_ns)
        skipped_ns = max(0, floor_ns - from_ns)
        begin_ns = max(from_ns, floor_ns)
        for key, mark in plan.marks.items():
            self.played.trade_ids[key] = mark.trade_id
            self.played.trade_ns[key] = mark.trade_ns
        failure = ""
        try:
            await self._play(starts, floor_ns, begin_ns, now_ns)
        except HistoryUnavailable as exc:
            failure = str(exc)
        to_ns = max([begin_ns, *self.played.trade_ns.values(), *self.played.bar_ns.values()])
        if failure:
            skipped_ns += max(0, self._now_ns() - to_ns)
        self._seam.release(self.played)
        return CaughtUp(
            from_ns=from_ns,
            to_ns=to_ns,
            trades=self._trades,
            bars=self._bars,
            fills=self.fills,
            settlements=self._settlements,
            took_s=time.monotonic() - started,
            waited_s=self._history.budget.waited_s,
            skipped_ns=skipped_ns,
            failure=failure,
        )

    @staticmethod
    def _resume_ns(mark: DataMark | None, last_data_ns: int) -> int:
        if mark is None:
            return last_data_ns
        return max(mark.trade_ns, mark.bar_ns) or last_data_ns

    async def _play(
        self, starts: Mapping[str, int], floor_ns: int, begin_ns: int, now_ns: int
    ) -> None:
        plan = self._plan
        deadline = time.monotonic() + self._seam_wait_s
        # The bars that closed and the settlements that fell in the gap so far; the
        # trades page by page, merged with them in market time; before a trade past
        # what was read, what closed or settled up to it (``_extend``).
        for bar_type in plan.bar_types:
            key = bar_type.instrument_id.value
            after = max(starts.get(key, begin_ns), floor_ns)
            bar_mark = plan.marks.get(key)
            if bar_mark is not None and bar_mark.bar_ns:
                after = max(bar_mark.bar_ns, floor_ns)
            self._read_to[str(bar_type)] = after // NS_PER_MS
        for instrument_id in plan.instruments:
            key = instrument_id.value
            start = max(starts[key], floor_ns)
            mark = plan.marks.get(key)
            if mark is not None:  # not a settlement already charged before the restart
                start = max(start, mark.settled_ns)
            self._read_to[key] = start // NS_PER_MS
        pending = _Timeline((), ())
        await self._extend(pending, now_ns // NS_PER_MS, to_live_bar=False)
        await self._play_trades(starts, floor_ns, pending, deadline)
        # The rest: what closed until the live feed's first bar (which the seam lets
        # through) or now; what settled until the live mark stream's first update (those
        # after it are the live side's: it announces them, and charges each before the
        # first trade past it), or now without one.
        marks_ns = await self._first_marks_ns(deadline)
        now_ms = self._now_ns() // NS_PER_MS
        await self._extend(pending, now_ms, settled_ms=marks_ns // NS_PER_MS or now_ms)
        await self._play_until(pending, None)

    async def _extend(
        self,
        pending: _Timeline,
        upto_ms: int,
        *,
        to_live_bar: bool = True,
        settled_ms: int | None = None,
    ) -> None:
        """Onto the timeline: the bars that closed and the settlements that fell up to
        ``upto_ms`` (the settlements: ``settled_ms``, when given) and were not read yet;
        each bar type's only until the live feed's first bar of it (``to_live_bar``),
        which the seam lets through."""
        settled_ms = upto_ms if settled_ms is None else settled_ms
        for bar_type in self._plan.bar_types:
            key = str(bar_type)
            first_live = self._seam.first_live_bar_ns(bar_type) if to_live_bar else None
            upto = upto_ms if first_live is None else min(upto_ms, first_live // NS_PER_MS - 1)
            if upto > self._read_to[key]:
                pending.add_bars(await self._history.bars(bar_type, self._read_to[key] + 1, upto))
                self._read_to[key] = upto
        for instrument_id in self._plan.instruments:
            key = instrument_id.value
            if settled_ms > self._read_to[key]:
                start_ms = self._read_to[key] + 1
                found = await self._history.settlements(instrument_id, start_ms, settled_ms)
                pending.add_settlements(found)
                self._read_to[key] = settled_ms
        self._horizon_ms = max(self._horizon_ms, upto_ms)

    async def _first_marks_ns(self, deadline: float) -> int:
        """The latest of the live mark stream's first updates (0: the node takes no mark
        stream, or none came by ``deadline``)."""
        if not self._plan.mark_stream:
            return 0
        keys = [i.value for i in self._plan.instruments]
        while True:
            firsts = [self._seam.first_mark_ns(key) for key in keys]
            if all(f is not None for f in firsts) or time.monotonic() > deadline:
                return max((f for f in firsts if f is not None), default=0)
            await asyncio.sleep(SEAM_POLL_S)

    async def _play_trades(
        self, starts: Mapping[str, int], floor_ns: int, pending: _Timeline, deadline: float
    ) -> None:
        """The gap's trades of every instrument, merged in market time (a strategy on one
        instrument may act on another's bar), each instrument's until the history read
        after the live feed's first trade of it came (that read holds every trade before
        it), or until its feed stayed quiet until ``deadline``."""
        tapes = [self._tape(i, starts, floor_ns) for i in self._plan.instruments]
        while True:
            for tape in tapes:
                if not tape.ticks and not tape.done:
                    await tape.refill(deadline)
            waiting = [t for t in tapes if t.ticks]
            if not waiting:
                return
            tape = min(waiting, key=lambda t: t.ticks[0].ts_event)
            tick = tape.ticks.popleft()
            trade_id = int(tick.trade_id.value)
            if trade_id <= self.played.trade_ids.get(tape.key, 0):
                if trade_id == tape.resumes_at:
                    self._show_touch(tick)  # see ``_tape``
                continue
            if tick.ts_event // NS_PER_MS > self._horizon_ms:
                now_ms = max(self._now_ns(), tick.ts_event) // NS_PER_MS
                await self._extend(pending, now_ms)
            await self._play_until(pending, tick.ts_event)
            self._play_trade(tick, trade_id)
            await self._settle()

    def _tape(self, instrument_id: InstrumentId, starts: Mapping[str, int], floor_ns: int) -> _Tape:
        key = instrument_id.value
        mark = self._plan.marks.get(key)
        resume = starts[key]
        bounded = resume < floor_ns
        # The tape starts at the checkpoint's own last trade: read again, not played
        # twice, its touch is where the market stood when the session stopped. The
        # restarted simulated venue knew no market at all, so an order a strategy sent
        # on a bar of the gap that closed before the gap's first trade (a quiet market's
        # kline) was rejected with "no market" where the session, never stopped, had
        # filled it.
        resumes_at = None if (mark is None or not mark.trade_id or bounded) else mark.trade_id
        start_ms = max(resume, floor_ns) // NS_PER_MS + 1
        return _Tape(instrument_id, self._history, self._seam, self.played, resumes_at, start_ms)

    def _show_touch(self, tick: TradeTick) -> None:
        """The top of book ``tick`` implies, to the simulated venue; its price is the
        last one a settlement without a mark is charged at."""
        touch = self._touch(tick)
        if touch is not None:
            self._deliver(touch)
        self._last_price[tick.instrument_id.value] = tick.price.as_decimal()

    def _play_trade(self, tick: TradeTick, trade_id: int) -> None:
        key = tick.instrument_id.value
        self._show_touch(tick)
        self._deliver(tick)
        self._trades += 1
        self.played.trade_ids[key] = max(trade_id, self.played.trade_ids.get(key, 0))
        self.played.trade_ns[key] = tick.ts_event

    async def _play_until(self, pending: _Timeline, ts_ns: int | None) -> None:
        """Every bar and settlement due before the trade at ``ts_ns`` (None: all)."""
        for item in pending.until(ts_ns):
            if isinstance(item, Bar):
                if item.ts_event <= self.played.bar_ns.get(str(item.bar_type), 0):
                    continue
                self._deliver(item)
                self._bars += 1
                self.played.bar_ns[str(item.bar_type)] = item.ts_event
            else:
                mark = item.mark or self._last_price.get(item.instrument_id, Decimal(0))
                if mark > 0:
                    settled = Settlement(item.instrument_id, item.at_ns, item.rate, mark)
                    self._settlements += 1
                    self._charge(settled)
            await self._settle()

    async def _settle(self) -> None:
        """Let the engines' queues run dry: what the last item made the strategies send
        reaches the venue, and its answers the strategies, before the next item."""
        for _ in range(DRAIN_ROUNDS):
            if not self._engines.queued():
                return
            await asyncio.sleep(0)
        raise RuntimeError(f"the engines did not settle in {DRAIN_ROUNDS} loop passes")


class _Tape:
    """One instrument's trades in the gap, a page at a time: read again from the last one
    played while the live feed has not shown a trade yet (the tape then may not reach it)."""

    def __init__(
        self,
        instrument_id: InstrumentId,
        history: VenueHistory,
        seam: Seam,
        played: PlayedMarks,
        resumes_at: int | None,
        start_ms: int,
    ) -> None:
        """``resumes_at``: the checkpoint's last trade id, where the tape starts (None:
        from ``start_ms``)."""
        self.key = instrument_id.value
        self._instrument_id = instrument_id
        self._history = history
        self._seam = seam
        self._played = played
        self.resumes_at = resumes_at
        self._after_id = None if resumes_at is None else resumes_at - 1
        self._start_ms = start_ms
        self._pages: AsyncIterator[list[TradeTick]] | None = None
        self._live_came = False
        self.ticks: deque[TradeTick] = deque()
        self.done = False

    async def refill(self, deadline: float) -> None:
        """The next page; at the tape's end, done if the read began after the live feed's
        first trade (or past ``deadline``), else a new read after a pause."""
        while not self.ticks and not self.done:
            if self._pages is None:
                self._live_came = self._seam.first_live_trade(self.key) is not None
                self._pages = self._history.trades(
                    self._instrument_id, self._after_id, self._start_ms
                )
            page = await anext(self._pages, None)
            if page is not None:
                self.ticks.extend(page)
                return
            self._pages = None
            if self._live_came or time.monotonic() > deadline:
                self.done = True
                return
            await asyncio.sleep(SEAM_POLL_S)
            self._after_id = self._played.trade_ids.get(self.key) or self._after_id


def implied_touch(tick: TradeTick, increment: Price) -> QuoteTick:
    """The top of book a trade shows: a buyer lifted the ask at its price, the bid a tick
    below; a seller hit the bid, the ask a tick above (a one-tick spread, as a liquid
    perpetual's usually is), each side the trade's size. The live feed's quotes said as
    much: a resting order the market reached fills on it as it did live."""
    price = tick.price
    if tick.aggressor_side == AggressorSide.BUYER:
        bid, ask = price - increment, price
    else:
        bid, ask = price, price + increment
    return QuoteTick(
        instrument_id=tick.instrument_id,
        bid_price=Price(bid, price.precision),
        ask_price=Price(ask, price.precision),
        bid_size=tick.size,
        ask_size=tick.size,
        ts_event=tick.ts_event,
        ts_init=tick.ts_init,
    )


class _Timeline:
    """The gap's bars and settlements, in market time, as the live feed brings them.

    Binance stamps a kline with its period's last millisecond (``closeTime``) and settles
    funding at the period's end, the next millisecond. Within a millisecond: its trades
    first, then a settlement at its end (charged on the positions held through the
    period), then the bar closing in it, which reaches a strategy only once the period
    ended - an order it sends fills after the settlement. A trade at the settlement's
    own millisecond comes after it (the live feed's first trade at or past a settlement
    settles it first: ``node.funding.MarkPriceFunding``)."""

    def __init__(self, bars: Iterable[Bar], settlements: Iterable[Settlement]) -> None:
        self._items: list[tuple[int, int, Bar | Settlement]] = []
        self.add_bars(bars)
        self.add_settlements(settlements)

    def add_bars(self, bars: Iterable[Bar]) -> None:
        self._add((int(b.ts_event), _BAR, b) for b in bars)

    def add_settlements(self, settlements: Iterable[Settlement]) -> None:
        # at the close of the bar of the period it ends, before that bar
        self._add((s.at_ns - KLINE_END_NS, _SETTLEMENT, s) for s in settlements)

    def _add(self, rows: Iterable[tuple[int, int, Bar | Settlement]]) -> None:
        self._items = sorted([*self._items, *rows], key=lambda row: (row[0], row[1]))

    def until(self, ts_ns: int | None) -> list[Bar | Settlement]:
        """The items before a trade at ``ts_ns`` (None: all), taken off the timeline."""
        n = 0
        for at, _, _ in self._items:
            if ts_ns is not None and at >= ts_ns:  # a trade comes first in its millisecond
                break
            n += 1
        if not n:
            return []
        due, self._items = self._items[:n], self._items[n:]
        return [item for _, _, item in due]
