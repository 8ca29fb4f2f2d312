"""The instruments a replay trades: the two bundled ones, or the trader's definitions.

In the Binance modes the venue's exchange info defines every instrument (Nautilus's
instrument provider loads the ones the strategies name); a replay has no venue to ask,
so it builds each instrument from ``[[instruments]]`` (tick size, step size, margins,
fees) or, for BTCUSDT and ETHUSDT, from NautilusTrader's own definitions. One function
builds them for the replay, the parity backtest and the sandbox venue, so the three
cannot disagree on a tick.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.identifiers import InstrumentId, Symbol
from nautilus_trader.model.instruments import CryptoPerpetual, Instrument
from nautilus_trader.model.objects import Currency, Price, Quantity
from nautilus_trader.test_kit.providers import TestInstrumentProvider

from protocol import InstrumentSpec

BUNDLED: dict[str, Callable[[], CryptoPerpetual]] = {
    "BTCUSDT-PERP.BINANCE": TestInstrumentProvider.btcusdt_perp_binance,
    "ETHUSDT-PERP.BINANCE": TestInstrumentProvider.ethusdt_perp_binance,
}
# A synthetic walk's first price when the definition gives none.
BUNDLED_START_PRICE = {"ETHUSDT-PERP.BINANCE": Decimal("3000")}
QUOTE = "USDT"


class UnknownInstrument(ValueError):
    """A replay was asked for an instrument nobody defined."""


def make_instrument(instrument_id: str, specs: tuple[InstrumentSpec, ...] = ()) -> Instrument:
    """``instrument_id`` from the trader's definition, else NautilusTrader's bundled one."""
    spec = next((s for s in specs if s.id == instrument_id and s.defined), None)
    if spec is not None:
        return _perpetual(spec)
    bundled = BUNDLED.get(instrument_id)
    if bundled is None:
        raise UnknownInstrument(
            f"{instrument_id}: no definition; give tick_size, step_size, margin_init, "
            "margin_maint, maker_fee and taker_fee in [[instruments]] (the Binance modes "
            "read them from the venue)"
        )
    return bundled()


def with_fees(
    instrument: Instrument, maker_fee: Decimal | None, taker_fee: Decimal | None
) -> Instrument:
    """``instrument`` at a fee tier of the trader's (``[simulation]``): the simulated venue
    charges an instrument's own maker and taker fees."""
    if maker_fee is None and taker_fee is None:
        return instrument
    kind = type(instrument)
    data = kind.to_dict(instrument)
    if maker_fee is not None:
        data["maker_fee"] = str(maker_fee)
    if taker_fee is not None:
        data["taker_fee"] = str(taker_fee)
    tiered: Instrument = kind.from_dict(data)
    return tiered


def known(instrument_id: str, specs: tuple[InstrumentSpec, ...]) -> bool:
    return instrument_id in BUNDLED or any(s.id == instrument_id and s.defined for s in specs)


def _perpetual(spec: InstrumentSpec) -> CryptoPerpetual:
    assert spec.tick_size is not None and spec.step_size is not None
    assert spec.margin_init is not None and spec.margin_maint is not None
    assert spec.maker_fee is not None and spec.taker_fee is not None
    instrument_id = InstrumentId.from_str(spec.id)
    symbol = instrument_id.symbol.value.removesuffix("-PERP")
    base = symbol.removesuffix(QUOTE)
    tick, step = spec.tick_size.normalize(), spec.step_size.normalize()
    price_precision = max(0, -int(tick.as_tuple().exponent))
    size_precision = max(0, -int(step.as_tuple().exponent))
    max_quantity = spec.max_quantity if spec.max_quantity is not None else step * 10**9
    return CryptoPerpetual(
        instrument_id=instrument_id,
        raw_symbol=Symbol(symbol),
        base_currency=Currency.from_str(base, strict=False),
        quote_currency=USDT,
        settlement_currency=USDT,
        is_inverse=False,
        price_precision=price_precision,
        size_precision=size_precision,
        price_increment=Price(tick, price_precision),
        size_increment=Quantity(step, size_precision),
        max_quantity=Quantity(max_quantity, size_precision),
        min_quantity=Quantity(step, size_precision),
        max_notional=None,
        min_notional=None,
        max_price=None,
        min_price=None,
        margin_init=spec.margin_init,
        margin_maint=spec.margin_maint,
        maker_fee=spec.maker_fee,
        taker_fee=spec.taker_fee,
        ts_event=0,
        ts_init=0,
    )
