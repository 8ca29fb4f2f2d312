"""Immutable copies of the emulator's books, handed to tests and carried by user events.

The emulator's state changes on its own thread; tests and stream formatters get frozen values
taken under the lock, so an assertion or an event never sees a half-applied fill.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    executed_qty: Decimal
    avg_price: Decimal
    status: str
    reduce_only: bool
    time_ms: int
    update_time_ms: int
    cum_quote: Decimal
    price_match: str
    good_till_date: int


@dataclass(frozen=True, slots=True)
class AlgoSnapshot:
    """A conditional order of the Algo Service, with what its triggered order did so far."""

    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    type: str
    """STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT or TRAILING_STOP_MARKET."""
    time_in_force: str
    quantity: Decimal
    """Zero for a ``closePosition`` order (the position's size is taken when it triggers)."""
    price: Decimal
    """The triggered limit order's price (STOP, TAKE_PROFIT); zero otherwise."""
    trigger_price: Decimal
    """Zero for a trailing stop until it triggers."""
    working_type: str
    close_position: bool
    price_protect: bool
    reduce_only: bool
    good_till_date: int
    activate_price: Decimal
    callback_rate: Decimal
    status: str
    """NEW, TRIGGERING, TRIGGERED, FINISHED, CANCELED, REJECTED or EXPIRED."""
    create_time_ms: int
    update_time_ms: int
    trigger_time_ms: int
    actual_order_id: int | None
    """The order the trigger placed in the matching engine (TRIGGERED on)."""
    actual_type: str
    """That order's type (MARKET or LIMIT); empty before the trigger."""
    executed_qty: Decimal
    avg_price: Decimal
    reason: str
    """Why it was rejected, else empty."""


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    symbol: str
    position_side: str
    amount: Decimal
    """Signed: positive long, negative short."""
    entry_price: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    mark_price: Decimal
    leverage: int
    margin_type: str


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    asset: str
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    initial_margin: Decimal
    maint_margin: Decimal
    available_balance: Decimal


@dataclass(frozen=True, slots=True)
class FillSnapshot:
    trade_id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    maker: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One REST request or WebSocket connection, in arrival order."""

    method: str
    """HTTP method, or ``"WS"`` for a WebSocket connection."""
    path: str
    status: int
    code: int | None = None
    """Binance error code when the reply was an error."""
