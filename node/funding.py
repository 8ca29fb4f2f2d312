"""Funding on perpetuals in a simulated venue: the replay's and the parity backtest's.

NautilusTrader's sandbox charges no funding, so a paper session on a perpetual was better
than the venue by every payment. Here a ``SimulationModule`` of the simulated exchange
settles it: at each settlement bar, every open position on that bar's instrument pays
(long, positive rate) or receives ``quantity x mark x rate``, the mark being the bar's
open, as a balance adjustment (``SimulatedExchange.adjust_account``), rounded to the
settlement currency like any amount the account holds.

It runs in ``pre_process(bar)``, which the exchange calls once for each bar before it
matches anything, in the replay's lockstep venue and in ``BacktestEngine`` alike: the
same positions pay the same amounts at the same bar, so a replay with funding still
equals its backtest. Settlement bars are counted in the replay's own bar index (a
series has no clock a funding schedule could read): every ``interval_hours`` of bars.
The module counts the bars of each instrument from ``start_index`` (a restore's
cursor), so funding before a checkpoint lives in its balance and is never charged again.
"""

from __future__ import annotations

import csv
import json
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

from protocol import FundingPaid, SimulationSettings

TOPIC = "funding.payments"


class FundingFileError(ValueError):
    """The funding file is missing or not ``bar,rate`` rows."""


@dataclass(frozen=True, slots=True)
class FundingSchedule:
    """When funding settles (every ``every_bars``, from bar index ``every_bars``) and at
    what rate: a file's rate for that bar, else the constant."""

    every_bars: int
    constant: Decimal | None
    rates: dict[int, Decimal]

    def rate(self, index: int) -> Decimal | None:
        if index <= 0 or index % self.every_bars:
            return None
        return self.rates.get(index, self.constant)

    @classmethod
    def of(cls, simulation: SimulationSettings, bar_minutes: int) -> FundingSchedule | None:
        if simulation.funding_rate is None and simulation.funding_file is None:
            return None
        every = max(1, simulation.funding_interval_hours * 60 // bar_minutes)
        rates = {} if simulation.funding_file is None else read_rates(simulation.funding_file)
        return cls(every, simulation.funding_rate, rates)


def read_rates(path: Path) -> dict[int, Decimal]:
    """A ``bar,rate`` CSV: the rate that settles at that bar index (a settlement bar)."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as exc:
        raise FundingFileError(f"funding file {path}: {exc.strerror}") from None
    rates: dict[int, Decimal] = {}
    for line, row in enumerate(rows, start=2):
        try:
            rates[int(row["bar"])] = Decimal(row["rate"])
        except (KeyError, ValueError, ArithmeticError, TypeError):
            raise FundingFileError(f"{path}:{line}: expected bar,rate; got {row}") from None
    return rates


class FundingModule(SimulationModule):
    def __init__(
        self,
        schedule: FundingSchedule,
        start_index: int = 0,
        on_payment: Callable[[FundingPaid], None] | None = None,
    ) -> None:
        super().__init__(SimulationModuleConfig())
        self.schedule = schedule
        self.start_index = start_index
        self._next: dict[str, int] = {}
        self._on_payment = on_payment
        self.paid: list[FundingPaid] = []

    def pre_process(self, data: Data) -> None:
        if not isinstance(data, Bar):
            return
        instrument_id = data.bar_type.instrument_id
        key = instrument_id.value
        index = self._next.get(key, self.start_index)
        self._next[key] = index + 1
        rate = self.schedule.rate(index)
        if rate is None or self.exchange is None:
            return
        mark = Decimal(data.open.as_decimal())
        for payment in charge(self.exchange, instrument_id, mark, rate, index, data.ts_event):
            self.paid.append(payment)
            if self._on_payment is not None:
                self._on_payment(payment)

    def process(self, ts_now: int) -> None:
        pass  # all of it happens as a bar arrives (pre_process)

    def log_diagnostics(self, logger: object) -> None:
        pass  # the payments are events, and the bridge's books

    def reset(self) -> None:
        self._next.clear()
        self.paid.clear()


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
