"""A symbol's filters as Binance checks an order against them, for every order endpoint.

The regular order endpoints (:mod:`.rest_orders`) and the Algo Service (:mod:`.rest_algo`)
check a quantity and a price the same way and answer the same codes; one copy keeps them
from drifting apart.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Final

from .errors import ApiError
from .spec import SymbolSpec

CLIENT_ORDER_ID_RE: Final = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
GTD_MIN_AHEAD_MS: Final = 600_000  # a GTD order's expiry must lie at least this far ahead


def check_quantity(spec: SymbolSpec, quantity: Decimal, market: bool) -> None:
    """LOT_SIZE, or MARKET_LOT_SIZE for an order that trades at market."""
    if quantity <= 0:
        raise ApiError(400, -4003, "Quantity less than or equal to zero.")
    if quantity % spec.step_size:
        raise ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
    if quantity < spec.min_qty:
        raise ApiError(400, -4004, "Quantity less than min quantity.")
    if quantity > (spec.max_market_qty if market else spec.max_qty):
        raise ApiError(400, -4005, "Quantity greater than max quantity.")


def check_price(spec: SymbolSpec, price: Decimal) -> None:
    """PRICE_FILTER."""
    if price <= 0:
        raise ApiError(400, -4001, "Price less than 0.")
    if price % spec.tick_size:
        raise ApiError(400, -4014, "Price not increased by tick size.")
    if price < spec.min_price:
        raise ApiError(400, -4013, "Price less than min price.")
    if price > spec.max_price:
        raise ApiError(400, -4002, "Price greater than max price.")
