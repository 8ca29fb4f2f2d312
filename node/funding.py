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
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate
from nautilus_trader.adapters.binance.http.client import BinanceHttpClient
from nautilus_trader.backtest.config import SimulationModuleConfig
from nautilus_trader.backtest.engine import SimulatedExchange
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.core.data import Data
from nautilus_trader.core.nautilus_pyo3 import HttpMethod
from nautilus_trader.model.data import Bar
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Money

from node.bars import parse_time
from node.replay import ReplayData
from protocol import FundingPaid, SimulationSettings

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


class MarkPriceFunding:
    """binance-sandbox: the venue's own funding, from its mark-price stream. Each update
    announces the rate and the next settlement time; the first update at or after that
    time settles it, at that update's mark, on the sandbox's positions. A settlement
    that falls while the node is down is not charged (nothing announced it to this
    node); none is charged twice."""

    def __init__(
        self,
        exchange: SimulatedExchange,
        publish: Callable[[FundingPaid], None],
        bar: Callable[[], int],
    ) -> None:
        self._exchange = exchange
        self._publish = publish
        self._bar = bar  # the bars received: where in the session a payment falls
        self._pending: dict[str, tuple[Decimal, int]] = {}  # instrument -> (rate, at ns)

    def on_update(self, update: BinanceFuturesMarkPriceUpdate) -> None:
        key = update.instrument_id.value
        pending = self._pending.get(key)
        if pending is not None and update.ts_event >= pending[1]:
            rate, at_ns = pending
            mark = Decimal(update.mark.as_decimal())
            iid = update.instrument_id
            for payment in charge(self._exchange, iid, mark, rate, self._bar(), at_ns):
                self._publish(payment)
        self._pending[key] = (Decimal(update.funding_rate), int(update.next_funding_ns))


INCOME_PATH = "/fapi/v1/income"


class VenueIncome:
    """binance-testnet: the funding the venue itself charged, from its income history
    (``FUNDING_FEE`` rows), polled through the adapter's own signed HTTP client. The
    venue's balance holds it already (Nautilus reconciles it); this records each payment
    as a ``funding`` event and in the strategy's books. Rows from before this node
    started are not recorded again."""

    def __init__(
        self,
        client: BinanceHttpClient,
        owners: dict[str, tuple[str, str]],
        publish: Callable[[FundingPaid], None],
        bar: Callable[[], int],
        since_ms: int,
    ) -> None:
        """``owners``: venue symbol -> (instrument id, the strategy trading it)."""
        self._client = client
        self._owners = owners
        self._publish = publish
        self.bar = bar  # where in the session a payment falls (the bridge's cursor)
        self._since_ms = since_ms
        self._seen: set[int] = set()
        self.polling = False

    async def poll(self, now_ms: int) -> int:
        """Record the new payments; how many there were."""
        self.polling = True
        try:
            payload = {
                "incomeType": "FUNDING_FEE",
                "startTime": str(self._since_ms),
                "limit": "1000",
                "timestamp": str(now_ms),
            }
            raw = await self._client.sign_request(HttpMethod.GET, INCOME_PATH, payload)
        finally:
            self.polling = False
        rows = json.loads(raw)
        new = 0
        for row in rows if isinstance(rows, list) else []:
            tran_id = int(row["tranId"])
            owner = self._owners.get(str(row["symbol"]))
            if tran_id in self._seen or owner is None:
                continue
            self._seen.add(tran_id)
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
                    settled_at_ns=int(row["time"]) * 1_000_000,
                )
            )
        return new
