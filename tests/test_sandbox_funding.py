"""The binance-sandbox's funding (``node.funding.MarkPriceFunding``) on its own, with the
mark-price stream, the market data and the simulated venue's positions injected: which
position a settlement charges when the strategies act around it. (The emulator's tests in
``tests/test_binance_modes.py`` and ``tests/test_catch_up.py`` drive whole services.)"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from decimal import Decimal

from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate
from nautilus_trader.model.data import Bar, BarType, TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.identifiers import InstrumentId, StrategyId, TradeId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Money, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from node.funding import MarkPriceFunding
from node.history import VenueHistory
from protocol import FundingPaid

PERP = TestInstrumentProvider.btcusdt_perp_binance()
S = 1_000_000_000
MS = 1_000_000
SETTLES = 1_700_000_000 * S  # a settlement: a period's end
MARK = Price.from_str("50000.00")


@dataclass
class Held:
    """A position as the venue's cache gives it (signed quantity)."""

    quantity: Decimal
    strategy_id: StrategyId = field(default_factory=lambda: StrategyId("EmaCross-000"))

    def signed_decimal_qty(self) -> Decimal:
        return self.quantity


@dataclass
class Venue:
    """What ``charge`` reads of the simulated exchange: its cache's instrument and open
    positions, and the account it adjusts."""

    held: list[Held]
    adjusted: list[Money] = field(default_factory=list)

    @property
    def cache(self) -> Venue:
        return self

    def instrument(self, instrument_id: InstrumentId) -> Instrument:
        return PERP

    def positions_open(self, instrument_id: InstrumentId) -> list[Held]:
        return [h for h in self.held if h.quantity]

    def adjust_account(self, amount: Money) -> None:
        self.adjusted.append(amount)


def announced(next_ns: int, at_ns: int) -> BinanceFuturesMarkPriceUpdate:
    return BinanceFuturesMarkPriceUpdate(
        PERP.id, MARK, MARK, MARK, Decimal("0.0001"), next_ns, at_ns, at_ns
    )


def kline(close_ns: int) -> Bar:
    bar_type = BarType.from_str(f"{PERP.id}-1-MINUTE-LAST-EXTERNAL")
    px, size = Price.from_str("50000.00"), Quantity.from_str("1.000")
    return Bar(bar_type, px, px, px, px, size, close_ns, close_ns)


def trade(at_ns: int) -> TradeTick:
    px, size = Price.from_str("50000.00"), Quantity.from_str("0.001")
    return TradeTick(PERP.id, px, size, AggressorSide.BUYER, TradeId("1"), at_ns, at_ns)


def sandbox(
    held: Held, settled: dict[str, int] | None = None
) -> tuple[MarkPriceFunding, list[FundingPaid]]:
    paid: list[FundingPaid] = []
    venue = Venue([held])
    funding = MarkPriceFunding(venue, paid.append, lambda: 0, settled)  # type: ignore[arg-type]
    funding.on_update(announced(SETTLES, SETTLES - 3 * S))
    return funding, paid


def test_a_bar_ending_at_the_settlement_settles_it_before_a_strategy_acts_on_it():
    """The kline of the period the settlement ends (stamped with its last millisecond)
    reaches the strategies after the settlement: the position held through the period
    pays, not the one a strategy's order on that bar makes - though no trade at or past
    the settlement came before the bar."""
    held = Held(Decimal("0.004"))
    funding, paid = sandbox(held)
    funding.on_market(trade(SETTLES - 2 * MS))  # the period's trades: before it
    assert paid == []
    funding.on_market(kline(SETTLES - MS))
    held.quantity = Decimal("-0.004")  # the strategy reverses on that bar
    funding.on_market(trade(SETTLES + 5 * MS))
    assert [(p.quantity, p.settled_at_ns) for p in paid] == [(Decimal("0.004"), SETTLES)]
    assert paid[0].amount == Decimal("-0.02")  # long pays 0.004 x 50,000 x 0.0001


def test_a_bar_of_an_earlier_period_leaves_the_settlement_pending():
    held = Held(Decimal("0.004"))
    funding, paid = sandbox(held)
    funding.on_market(kline(SETTLES - 60 * S - MS))  # the minute before's bar
    assert paid == []
    funding.on_market(trade(SETTLES))  # a trade at the settlement's millisecond
    assert [p.quantity for p in paid] == [Decimal("0.004")]


def test_a_settlement_charged_before_a_restart_is_not_charged_again():
    """A restored node knows the last settlement its checkpoint says was charged: neither
    the catch-up's charge of it nor the live feed's next trade pays it twice."""
    held = Held(Decimal("0.004"))
    funding, paid = sandbox(held, settled={str(PERP.id): SETTLES})
    assert funding.settle(str(PERP.id), Decimal("0.0001"), Decimal("50000"), SETTLES) == 0
    funding.on_market(trade(SETTLES + 5 * MS))
    assert paid == []
    assert funding.settled == {str(PERP.id): SETTLES}


class FundingHistory:
    """The venue's ``/fapi/v1/fundingRate`` rows, as its HTTP client returns them."""

    def __init__(self, rows: list[dict[str, object]]) -> None:
        self.rows = rows

    async def send_request(
        self,
        http_method: object,
        url_path: str,
        payload: dict[str, str] | None = None,
        ratelimiter_keys: list[str] | None = None,
    ) -> bytes:
        return json.dumps(self.rows).encode()


def test_a_recorded_settlement_a_few_ms_past_its_second_is_the_settlement_on_the_second():
    """The live side charged the settlement at the time the mark stream announced (on
    the second); the venue's record of it may say a few milliseconds later. Taken as
    such, the restart's catch-up charged it again (the checkpoint's last one is earlier)
    and ordered it after the bar of the period it ends."""
    row_ms = SETTLES // MS + 3
    rows = [{"fundingTime": row_ms, "fundingRate": "0.00010000", "markPrice": "50000.0"}]
    history = VenueHistory(None, FundingHistory(rows))  # type: ignore[arg-type]
    (settled,) = asyncio.run(history.settlements(PERP.id, row_ms - 10, row_ms + 10))
    assert settled.at_ns == SETTLES
    held = Held(Decimal("0.004"))
    funding, paid = sandbox(held, settled={str(PERP.id): SETTLES})
    assert funding.settle(settled.instrument_id, settled.rate, settled.mark, settled.at_ns) == 0
    assert paid == []
