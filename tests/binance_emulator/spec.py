"""What the emulator trades: one USDT-M perpetual, described by its filters and precision.

Binance gives every symbol its own tick size, lot size, notional floor and leverage brackets,
and clients size and round orders from them. Keeping them in one frozen value per symbol lets
the emulator run as another symbol (``BinanceEmulator(..., symbol="SOLUSDT")``) without
touching the code that validates, matches or formats. The tick and step sizes and the notional
floors in :data:`SYMBOLS` are Binance's; price limits, maximum quantities and brackets are the
emulator's own, of the same shape and order of magnitude.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from .fmt import ZERO, decimals, fmt

QUOTE_ASSET: Final = "USDT"


@dataclass(frozen=True, slots=True)
class Bracket:
    """One row of a leverage bracket table: up to ``notional_cap`` USDT of position notional,
    at most ``max_leverage``, maintained at ``maint_margin_ratio``."""

    max_leverage: int
    notional_cap: int
    maint_margin_ratio: Decimal


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """A USDT-M perpetual's exchange rules, as ``GET /fapi/v1/exchangeInfo`` describes them."""

    symbol: str
    tick_size: Decimal
    step_size: Decimal
    min_notional: Decimal
    min_price: Decimal
    max_price: Decimal
    min_qty: Decimal
    max_qty: Decimal
    max_market_qty: Decimal
    start_price: Decimal
    """Where the emulated market opens unless the emulator is given another price."""
    brackets: tuple[Bracket, ...]
    """Highest leverage first, as Binance lists them."""
    multiplier_up: Decimal = Decimal("1.0500")
    multiplier_down: Decimal = Decimal("0.9500")
    onboard_ms: int = 1569398400000

    def __post_init__(self) -> None:
        if not self.symbol.endswith(QUOTE_ASSET) or self.symbol == QUOTE_ASSET:
            raise ValueError(f"{self.symbol!r} is not a USDT-M symbol")
        if not self.brackets:
            raise ValueError("a symbol needs at least one leverage bracket")
        if min(self.tick_size, self.step_size, self.min_qty, self.min_price) <= ZERO:
            raise ValueError("tick, step, minimum quantity and minimum price must be positive")

    @property
    def base_asset(self) -> str:
        return self.symbol.removesuffix(QUOTE_ASSET)

    @property
    def quote_asset(self) -> str:
        return QUOTE_ASSET

    @property
    def price_precision(self) -> int:
        return decimals(self.tick_size)

    @property
    def quantity_precision(self) -> int:
        return decimals(self.step_size)

    @property
    def max_leverage(self) -> int:
        return self.brackets[0].max_leverage

    @property
    def maint_margin_rate(self) -> Decimal:
        """The first bracket's rate; the emulator holds every position at it."""
        return self.brackets[0].maint_margin_ratio

    def px(self, value: Decimal) -> str:
        """A price as Binance writes this symbol's prices."""
        return fmt(value, Decimal(1).scaleb(-self.price_precision))

    def qty(self, value: Decimal) -> str:
        """A quantity as Binance writes this symbol's quantities."""
        return fmt(value, Decimal(1).scaleb(-self.quantity_precision))

    def max_notional(self, leverage: int) -> int:
        """The largest position notional allowed at ``leverage``."""
        cap = self.brackets[0].notional_cap
        for bracket in self.brackets:
            if bracket.max_leverage >= leverage:
                cap = bracket.notional_cap
        return cap


def _brackets(*rows: tuple[int, int]) -> tuple[Bracket, ...]:
    """Brackets whose maintenance ratio is half the initial one (1 / 2L), as Binance's are
    roughly."""
    return tuple(
        Bracket(leverage, cap, (Decimal(1) / (2 * leverage)).quantize(Decimal("0.0001")))
        for leverage, cap in rows
    )


SYMBOLS: Final[dict[str, SymbolSpec]] = {
    "BTCUSDT": SymbolSpec(
        symbol="BTCUSDT",
        tick_size=Decimal("0.10"),
        step_size=Decimal("0.001"),
        min_notional=Decimal("100"),
        min_price=Decimal("0.10"),
        max_price=Decimal("1200000.0"),
        min_qty=Decimal("0.001"),
        max_qty=Decimal(1000),
        max_market_qty=Decimal(120),
        start_price=Decimal("60000"),
        brackets=_brackets(
            (125, 300_000),
            (100, 800_000),
            (75, 3_000_000),
            (50, 12_000_000),
            (25, 70_000_000),
            (20, 100_000_000),
            (10, 230_000_000),
            (5, 480_000_000),
            (4, 600_000_000),
            (3, 800_000_000),
            (2, 1_200_000_000),
            (1, 1_800_000_000),
        ),
    ),
    "SOLUSDT": SymbolSpec(
        symbol="SOLUSDT",
        tick_size=Decimal("0.0100"),
        step_size=Decimal("0.01"),
        min_notional=Decimal("5"),
        min_price=Decimal("0.0100"),
        max_price=Decimal("6000.0000"),
        min_qty=Decimal("0.01"),
        max_qty=Decimal(1000000),
        max_market_qty=Decimal(5000),
        start_price=Decimal("150"),
        brackets=_brackets(
            (100, 50_000),
            (75, 250_000),
            (50, 1_000_000),
            (25, 5_000_000),
            (10, 20_000_000),
            (5, 50_000_000),
            (4, 65_000_000),
            (3, 100_000_000),
            (2, 150_000_000),
            (1, 200_000_000),
        ),
    ),
}


def spec_for(symbol: str | SymbolSpec) -> SymbolSpec:
    """The rules for ``symbol``: a :class:`SymbolSpec` as given, or one of :data:`SYMBOLS`."""
    if isinstance(symbol, SymbolSpec):
        return symbol
    try:
        return SYMBOLS[symbol.upper()]
    except KeyError:
        known = ", ".join(sorted(SYMBOLS))
        raise ValueError(
            f"no exchange rules for {symbol!r} (known: {known}); pass a SymbolSpec"
        ) from None
