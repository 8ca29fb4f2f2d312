"""How Binance writes values, so every reply and event formats them the same way.

Binance sends decimals as fixed-point strings (``"0.00000000"``, never ``"0E-8"``): prices and
quantities at the symbol's precision, money at eight places. Clients parse these strings, so a
stray exponent or a wrong number of places is a fidelity bug, not cosmetics.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Final

ZERO: Final = Decimal(0)
EIGHT: Final = Decimal("0.00000001")

type JsonDict = dict[str, object]
"""A JSON object as Binance sends it (REST reply or stream event)."""


def decimals(step: Decimal) -> int:
    """Decimal places as written (``Decimal("0.10")`` has 2), as the adapter derives them."""
    exponent = step.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def fmt(value: Decimal, quantum: Decimal) -> str:
    """Fixed-point text, as Binance writes numbers (``"0.00000000"``, never ``"0E-8"``)."""
    return format(value.quantize(quantum, rounding=ROUND_HALF_UP), "f")


def round8(value: Decimal) -> Decimal:
    return value.quantize(EIGHT, rounding=ROUND_HALF_UP)


def fmt8(value: Decimal) -> str:
    return fmt(value, EIGHT)
