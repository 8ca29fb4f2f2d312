"""Funding on perpetuals in a simulated venue: the replay's and the parity backtest's.

NautilusTrader's sandbox charges no funding, so a paper session on a perpetual was better
than the venue by every payment. Here a ``SimulationModule`` of the simulated exchange
settles it: at each settlement, every open position on an instrument pays (long,
positive rate) or receives ``quantity x mark x rate``, the mark being the open of the
first bar at or after the settlement, as a balance adjustment
(``SimulatedExchange.adjust_account``), rounded to the settlement currency like any
amount the account holds.

Settlements fall at the venue's times, in market time: every ``funding_interval_hours``
from 00:00 UTC (00:00, 08:00, 16:00 by default) at the constant rate, and at the times
of a funding file's rows - the venue's own history (``fundingTime,fundingRate``, as
Binance serves it) - at theirs. It runs in ``pre_process(bar)``, which the exchange calls
once for each bar before it matches anything, in the replay's lockstep venue and in
``BacktestEngine`` alike, and charges every settlement since the instrument's previous
bar: the same positions pay the same amounts at the same bar, so a replay with funding
still equals its backtest, and a gap in the data neither skips a settlement nor charges
one twice. A restored node starts after the last bar it had played, so funding before a
checkpoint lives in its balance and is never charged again.
"""

from __future__ import annotations

import csv
import json
import re
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate
from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.engine import SimulatedExchange
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.core.data import Data
from nautilus_trader.core.nautilus_pyo3 import HttpMethod
from nautilus_trader.model.data import Bar, QuoteTick, TradeTick
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Money

from node.bars import parse_time
from node.replay import ReplayData
from protocol import (
    ErrorRaised,
    FundingPaid,
    OperationSucceeded,
    SimulationSettings,
    exponential_delay,
)

TOPIC = "funding.payments"


class FundingFileError(ValueError):
    """The funding file is missing or not ``fundingTime,fundingRate`` (or ``bar,rate``)
    rows."""


NS_PER_HOUR = 3600 * 10**9


@dataclass(frozen=True, slots=True)
class FundingSchedule:
    """When funding settles and at what rate: a file's rows at their times; the constant
    at every ``interval_ns`` from the epoch (a UTC midnight), except where a file row is
    within half an interval (the venue's own record of that settlement)."""

    interval_ns: int
    constant: Decimal | None
    times: tuple[int, ...]  # the file's settlement times, in order
    rates: dict[int, Decimal]  # by time

    def due(self, after_ns: int, upto_ns: int) -> list[tuple[int, Decimal]]:
        """The settlements in ``(after_ns, upto_ns]``, in time order."""
        times = self.times
        found = [
            (t, self.rates[t])
            for t in times[bisect_right(times, after_ns) : bisect_right(times, upto_ns)]
        ]
        if self.constant is not None:
            step = self.interval_ns
            for t in range((after_ns // step + 1) * step, upto_ns + 1, step):
                if not self._recorded_near(t):
                    found.append((t, self.constant))
            found.sort()
        return found

    def _recorded_near(self, t: int) -> bool:
        i = bisect_left(self.times, t)
        half = self.interval_ns // 2
        return any(abs(self.times[j] - t) < half for j in (i - 1, i) if 0 <= j < len(self.times))

    @classmethod
    def of(
        cls, simulation: SimulationSettings, bar_time: Callable[[int], int] | None = None
    ) -> FundingSchedule | None:
        """``bar_time``: the market time of a replay's bar index (an older ``bar,rate``
        file names settlements by it)."""
        if simulation.funding_rate is None and simulation.funding_file is None:
            return None
        rates = (
            {} if simulation.funding_file is None else read_rates(simulation.funding_file, bar_time)
        )
        interval = simulation.funding_interval_hours * NS_PER_HOUR
        return cls(interval, simulation.funding_rate, tuple(sorted(rates)), rates)


def read_rates(path: Path, bar_time: Callable[[int], int] | None = None) -> dict[int, Decimal]:
    """A funding history CSV: ``fundingTime,fundingRate`` (Binance's own columns; epoch
    milliseconds or any time ``node.bars.parse_time`` reads), or ``bar,rate`` (the rate
    settling at that bar of the replay). Keyed by settlement time (ns)."""
    try:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            columns = set(reader.fieldnames or [])
            rows = list(reader)
    except OSError as exc:
        raise FundingFileError(f"funding file {path}: {exc.strerror}") from None
    by_bar = {"bar", "rate"} <= columns and "fundingTime" not in columns
    if not by_bar and not {"fundingTime", "fundingRate"} <= columns:
        raise FundingFileError(
            f"funding file {path}: expected columns fundingTime,fundingRate (the venue's "
            f"history) or bar,rate; got {','.join(sorted(columns)) or 'none'}"
        )
    if by_bar and bar_time is None:
        raise FundingFileError(f"funding file {path}: bar,rate rows need a replay's bars")
    rates: dict[int, Decimal] = {}
    for line, row in enumerate(rows, start=2):
        try:
            if by_bar:
                assert bar_time is not None
                at, rate = bar_time(int(row["bar"])), Decimal(row["rate"])
            else:
                at, rate = parse_time(row["fundingTime"]), Decimal(row["fundingRate"])
        except (KeyError, ValueError, ArithmeticError, TypeError, IndexError):
            expected = "bar,rate" if by_bar else "fundingTime,fundingRate"
            raise FundingFileError(f"{path}:{line}: expected {expected}; got {row}") from None
        if not rate.is_finite():
            raise FundingFileError(f"{path}:{line}: the rate {rate} is not a number")
        rates[at] = rate
    return rates


class FundingModule(SimulationModule):
    def __init__(
        self,
        schedule: FundingSchedule,
        step_of: Callable[[int], int],
        after_ns: dict[str, int] | None = None,
        on_payment: Callable[[FundingPaid], None] | None = None,
    ) -> None:
        """``step_of``: the replay's step at a market time (a payment's ``bar``);
        ``after_ns``: per instrument, the market time of the last bar played before this
        node (a restore's), whose settlements are charged already."""
        super().__init__(SimulationModuleConfig())
        self.schedule = schedule
        self._step_of = step_of
        self._after = dict(after_ns or {})
        self._on_payment = on_payment
        self.paid: list[FundingPaid] = []

    def pre_process(self, data: Data) -> None:
        if not isinstance(data, Bar):
            return
        instrument_id = data.bar_type.instrument_id
        key = instrument_id.value
        ts = data.ts_event
        after = self._after.get(key, ts - 1)  # the first bar: a settlement at its time
        self._after[key] = ts
        if self.exchange is None:
            return
        mark = Decimal(data.open.as_decimal())
        for at, rate in self.schedule.due(after, ts):
            bar = self._step_of(ts)
            for payment in charge(self.exchange, instrument_id, mark, rate, bar, at):
                self.paid.append(payment)
                if self._on_payment is not None:
                    self._on_payment(payment)

    def process(self, ts_now: int) -> None:
        pass  # all of it happens as a bar arrives (pre_process)

    def log_diagnostics(self, logger: object) -> None:
        pass  # the payments are events, and the bridge's books

    def reset(self) -> None:
        self._after.clear()
        self.paid.clear()


def replay_funding(
    simulation: SimulationSettings,
    data: ReplayData,
    cursor: int = 0,
    on_payment: Callable[[FundingPaid], None] | None = None,
) -> FundingModule | None:
    """A replay's funding module (the node's, from its cursor on; the parity backtest's,
    from the start), or None when the session pays no funding."""
    primary = data.feeds[0].series
    schedule = FundingSchedule.of(simulation, primary.time_ns)
    if schedule is None:
        return None
    return FundingModule(
        schedule, data.timeline.step_at, data.played_until(cursor) if cursor else {}, on_payment
    )


def charge(
    exchange: SimulatedExchange,
    instrument_id: InstrumentId,
    mark: Decimal,
    rate: Decimal,
    bar: int,
    settled_at_ns: int = 0,
) -> list[FundingPaid]:
    """Every open position on ``instrument_id`` pays ``quantity x mark x rate`` (rounded to
    the settlement currency), taken from the simulated account; the payments made."""
    instrument = exchange.cache.instrument(instrument_id)
    if instrument is None:
        return []
    currency = instrument.get_settlement_currency()
    multiplier = Decimal(instrument.multiplier.as_decimal())
    paid = []
    for position in exchange.cache.positions_open(instrument_id=instrument_id):
        quantity = Decimal(position.signed_decimal_qty())
        owed = Decimal(Money(quantity * mark * multiplier * rate, currency).as_decimal())
        if owed == 0:
            continue
        exchange.adjust_account(Money(-owed, currency))
        paid.append(
            FundingPaid(
                strategy_id=position.strategy_id.value,
                instrument_id=instrument_id.value,
                quantity=quantity,
                mark=mark,
                rate=rate,
                amount=-owed,
                bar=bar,
                settled_at_ns=settled_at_ns,
            )
        )
    return paid


KLINE_END_NS = 10**6  # a Binance kline's period ends a millisecond after its closeTime


class MarkPriceFunding:
    """binance-sandbox: the venue's own funding, from its mark-price stream. Each update
    announces the rate and the next settlement time. The venue charges the position held
    at that time, so the first market datum at or after it (a trade or a quote, seen
    before the sandbox matches it, or the bar of the period it ends, seen before the
    strategies act on it: ``on_market``) settles it at the last mark, or the first mark
    update at or after it does at its own mark, whichever comes first. The
    next mark push comes up to 3 s later on Binance's stream: settling there charged
    whatever the trades in between had filled, where the restart's catch-up (which plays
    the settlement before the first trade after it) charged the position of the time. A
    settlement that falls while the node is down is charged by that catch-up, at the
    venue's recorded rate and mark (``settle``); none is charged twice."""

    def __init__(
        self,
        exchange: SimulatedExchange,
        publish: Callable[[FundingPaid], None],
        bar: Callable[[], int],
        settled: Mapping[str, int] | None = None,
    ) -> None:
        """``settled``: each instrument's last settlement charged before this node (a
        checkpoint's data marks): none is charged again."""
        self._exchange = exchange
        self._publish = publish
        self._bar = bar  # the bars received: where in the session a payment falls
        # instrument -> (rate, at ns, the last mark): the settlement the stream announced
        self._pending: dict[str, tuple[Decimal, int, Decimal]] = {}
        # instrument -> its last settlement charged
        self._settled: dict[str, int] = dict(settled or {})

    @property
    def settled(self) -> Mapping[str, int]:
        """Each instrument's last settlement charged (a checkpoint keeps them)."""
        return self._settled

    def on_update(self, update: BinanceFuturesMarkPriceUpdate) -> None:
        key = update.instrument_id.value
        mark = Decimal(update.mark.as_decimal())
        pending = self._pending.get(key)
        if pending is not None and update.ts_event >= pending[1]:
            rate, at_ns, _ = pending
            self.settle(key, rate, mark, at_ns)
        self._pending[key] = (Decimal(update.funding_rate), int(update.next_funding_ns), mark)

    def on_market(self, data: object) -> None:
        """A trade, a quote or a bar on its way to the sandbox's matching or to the
        strategies: one at or past the announced settlement settles it first, on the
        positions held before it. A bar is past it when its period ends there: Binance
        stamps a kline with the period's last millisecond, and the strategies see it only
        after the period (an order on it fills after the settlement)."""
        if isinstance(data, Bar):
            key, ts = data.bar_type.instrument_id.value, data.ts_event + KLINE_END_NS
        elif isinstance(data, TradeTick | QuoteTick):
            key, ts = data.instrument_id.value, data.ts_event
        else:
            return
        pending = self._pending.get(key)
        if pending is not None and ts >= pending[1]:
            rate, at_ns, mark = pending
            self.settle(key, rate, mark, at_ns)

    def settle(self, instrument_id: str, rate: Decimal, mark: Decimal, at_ns: int) -> int:
        """Charge the settlement at ``at_ns`` once (a catch-up's and the stream's are
        the same settlement); how many positions paid."""
        if at_ns <= self._settled.get(instrument_id, 0):
            return 0
        self._settled[instrument_id] = at_ns
        iid = InstrumentId.from_str(instrument_id)
        paid = charge(self._exchange, iid, mark, rate, self._bar(), at_ns)
        for payment in paid:
            self._publish(payment)
        return len(paid)


INCOME_PATH = "/fapi/v1/income"
INCOME_OPERATION = "income"  # its failures' retry budget at the classifier; a success clears it
INCOME_WEIGHT = 30  # the endpoint's request weight (of the 2,400 a minute an IP may use)
PAGE_LIMIT = 1000  # rows a page holds (Binance's maximum)
MAX_PAGES = 10  # pages one poll reads at most (300 weight); the rest 5 s later
MORE_AFTER_NS = 5 * 10**9
LOOKBACK_MS = 10 * 60 * 1000  # a poll reads again this far before the last row it saw
SEEN_MAX = 10_000  # ids remembered at most (only those within the lookback are needed)
SETTLE_DELAY_NS = 30 * 10**9  # a poll waits this long after a settlement (a quarter
# of the interval at most): the venue writes the settlement's rows in the meantime
RETRY_FIRST_S = 60.0  # a failed poll is tried again after 1, 2, 4, ... minutes:
RETRY_MAX_S = 30 * 60.0  # at most 4 failures in any 10 minutes, inside the classifier's
# retry budget (5 in 600 s), so a venue that fails for a while costs no halt on its own
INTERVAL_NS = 8 * NS_PER_HOUR  # Binance's settlements: every 8 h from 00:00 UTC


class IncomeSchedule:
    """When the income poll runs: once at start, then once after each funding settlement,
    ``delay_ns`` after it. The settlements are the venue's: the next funding time its
    mark-price stream announces for each instrument, or, with none announced, every 8 h
    from 00:00 UTC. A failed poll is tried again after a backoff instead (the retry
    reads whatever settled meanwhile), and a poll that left pages unread goes on 5 s
    later. Times are the node clock's nanoseconds."""

    def __init__(self, interval_ns: int = INTERVAL_NS) -> None:
        self._interval_ns = interval_ns
        self._announced: dict[str, int] = {}  # instrument -> the next settlement announced
        self._periods: dict[str, int] = {}  # instrument -> between its last two settlements
        self._pending: set[int] = set()  # announced settlements no poll has covered yet
        self._covered_ns = 0  # every settlement up to here is read
        self._retry_at: int | None = 0  # the start's poll: at once
        self.failures = 0

    def announce(self, instrument: str, next_ns: int) -> None:
        """The venue's next settlement of ``instrument`` (its mark-price stream)."""
        previous = self._announced.get(instrument)
        if previous is not None and next_ns > previous:
            self._periods[instrument] = next_ns - previous
        self._announced[instrument] = next_ns
        if next_ns > self._covered_ns:
            self._pending.add(next_ns)  # kept when the stream announces the one after

    @property
    def delay_ns(self) -> int:
        interval = min(self._periods.values(), default=self._interval_ns)
        return min(SETTLE_DELAY_NS, interval // 4)

    def next_settlement_ns(self) -> int:
        grid = (self._covered_ns // self._interval_ns + 1) * self._interval_ns
        return min(min(self._pending, default=grid), grid)

    def start(self, since_ns: int) -> None:
        """The node starts at ``since_ns``: what settled before is not its to record."""
        self._covered_ns = max(self._covered_ns, since_ns)

    def due_ns(self) -> int:
        if self._retry_at is not None:
            return self._retry_at
        return self.next_settlement_ns() + self.delay_ns

    def due(self, now_ns: int) -> bool:
        return now_ns >= self.due_ns()

    def succeeded(self, now_ns: int, more: bool = False) -> None:
        """A poll at ``now_ns`` read everything up to then (``more``: a page is left)."""
        self.failures = 0
        self._covered_ns = max(self._covered_ns, now_ns - self.delay_ns)
        self._pending = {t for t in self._pending if t > self._covered_ns}
        self._retry_at = now_ns + MORE_AFTER_NS if more else None

    def failed(self, now_ns: int) -> None:
        self.failures += 1
        delay_s = exponential_delay(self.failures, RETRY_FIRST_S, RETRY_MAX_S)
        self._retry_at = now_ns + int(delay_s * 10**9)


class SignedClient(Protocol):
    """What the poll needs of the adapter's ``BinanceHttpClient`` (a fake in the tests)."""

    async def sign_request(
        self,
        http_method: HttpMethod,
        url_path: str,
        payload: dict[str, str] | None = None,
        ratelimiter_keys: list[str] | None = None,
    ) -> object: ...


type IncomeReport = ErrorRaised | OperationSucceeded


class VenueIncome:
    """binance-testnet: the funding the venue itself charged, from its income history
    (``FUNDING_FEE`` rows), read through the adapter's own signed HTTP client. The
    venue's balance holds it already (Nautilus reconciles it); this records each payment
    as a ``funding`` event and in the strategy's books. Rows from before this node
    started are not recorded again.

    It reads on ``schedule`` (once at start, once after each settlement), from the last
    row it saw (less ``LOOKBACK_MS``, for a row the venue writes late) to now, page
    after page of ``PAGE_LIMIT``; it remembers the ids of the rows within the lookback
    only, at most ``SEEN_MAX``. Each poll reports to the classifier as operation
    ``income``: a failure (``ErrorRaised``), or a success (``OperationSucceeded``),
    which clears the failures' retry budget."""

    def __init__(
        self,
        client: SignedClient,
        owners: dict[str, tuple[str, str]],
        publish: Callable[[FundingPaid], None],
        bar: Callable[[], int],
        since_ms: int,
        report: Callable[[IncomeReport], None] | None = None,
        schedule: IncomeSchedule | None = None,
    ) -> None:
        """``owners``: venue symbol -> (instrument id, the strategy trading it)."""
        self._client = client
        self._owners = owners
        self._publish = publish
        self.bar = bar  # where in the session a payment falls (the bridge's cursor)
        self.report: Callable[[IncomeReport], None] = report or (lambda _: None)
        self.schedule = schedule or IncomeSchedule()
        self.schedule.start(since_ms * 1_000_000)
        self._since_ms = since_ms
        self._last_ms = since_ms  # the time of the last row seen
        self._seen: OrderedDict[int, int] = OrderedDict()  # tran id -> its row's time
        self.polling = False
        self.requests = 0

    def due(self, now_ns: int) -> bool:
        return not self.polling and self.schedule.due(now_ns)

    def on_mark_price(self, instrument: str, next_funding_ns: int) -> None:
        if next_funding_ns > 0:
            self.schedule.announce(instrument, next_funding_ns)

    async def run(self, now_ns: int) -> int:
        """One scheduled poll at ``now_ns``, reported; how many payments it recorded."""
        self.polling = True
        try:
            new, more = await self.poll(now_ns // 1_000_000)
        except Exception as exc:  # the classifier judges it (a timeout is transient)
            self.schedule.failed(now_ns)
            self.report(
                ErrorRaised(
                    "node.funding",
                    type(exc).__name__,
                    str(exc),
                    code=_http_code(exc),
                    operation=INCOME_OPERATION,
                )
            )
            return 0
        finally:
            self.polling = False
        self.schedule.succeeded(now_ns, more)
        self.report(OperationSucceeded(INCOME_OPERATION))
        return new

    async def poll(self, now_ms: int) -> tuple[int, bool]:
        """Record the new payments up to ``now_ms``: how many, and whether pages are left."""
        start = max(self._since_ms, self._last_ms - LOOKBACK_MS)
        new = 0
        for _ in range(MAX_PAGES):
            rows = await self._page(start, now_ms)
            new += self._record(rows)
            if len(rows) < PAGE_LIMIT:
                return new, False
            last = max(int(str(row["time"])) for row in rows)
            # The next page starts at the last row's time (inclusive: rows share a time);
            # a full page all at one millisecond would repeat itself: step past it.
            start = last if last > start else last + 1
        return new, True

    async def _page(self, start_ms: int, end_ms: int) -> list[dict[str, object]]:
        payload = {
            "incomeType": "FUNDING_FEE",
            "startTime": str(start_ms),
            "endTime": str(end_ms),
            "limit": str(PAGE_LIMIT),
            "timestamp": str(end_ms),
        }
        self.requests += 1
        raw = await self._client.sign_request(HttpMethod.GET, INCOME_PATH, payload)
        rows = json.loads(raw) if isinstance(raw, bytes | str) else None
        if not isinstance(rows, list):
            raise ValueError(f"{INCOME_PATH} answered no list: {str(rows)[:200]}")
        return [row for row in rows if isinstance(row, dict)]

    def _record(self, rows: list[dict[str, object]]) -> int:
        new = 0
        for row in rows:
            tran_id, at_ms = int(str(row["tranId"])), int(str(row["time"]))
            self._last_ms = max(self._last_ms, at_ms)
            owner = self._owners.get(str(row["symbol"]))
            if tran_id in self._seen or owner is None or at_ms < self._since_ms:
                continue
            self._seen[tran_id] = at_ms
            new += 1
            self._publish(
                FundingPaid(
                    strategy_id=owner[1],
                    instrument_id=owner[0],
                    quantity=Decimal(0),  # the venue reports the amount only
                    mark=Decimal(0),
                    rate=Decimal(0),
                    amount=Decimal(str(row["income"])),
                    bar=self.bar(),
                    settled_at_ns=at_ms * 1_000_000,
                )
            )
        self._forget()
        return new

    def _forget(self) -> None:
        """Keep the ids a later poll can read again (within the lookback), at most
        ``SEEN_MAX``: the oldest go first."""
        horizon = self._last_ms - LOOKBACK_MS
        for tran_id, at_ms in list(self._seen.items()):
            if at_ms < horizon or len(self._seen) > SEEN_MAX:
                del self._seen[tran_id]

    @property
    def remembered(self) -> int:
        return len(self._seen)


def _http_code(exc: Exception) -> int | None:
    """A Binance error's HTTP status when it is one the classifier knows (429, 418, 5xx)
    and the body carries no Binance code of its own."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or re.search(r"-[12]\d{3}", str(exc)):
        return None
    return status if status in (418, 429) or status >= 500 else None
