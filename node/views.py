"""What the node shows of NautilusTrader's orders and positions: the protocol's views.

A checkpoint, a report and a restore speak of orders and positions as plain values
(``protocol.OrderView``, ``PositionView``), never as Nautilus objects, which cannot cross
the pipe and would tie the parent to Nautilus. These functions make them; they run on the
node's loop, called by the bridge and its collaborators.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.model.data import Bar
from nautilus_trader.model.enums import (
    order_side_to_str,
    order_status_to_str,
    order_type_to_str,
    position_side_to_str,
)
from nautilus_trader.model.objects import Price
from nautilus_trader.model.orders import Order
from nautilus_trader.model.position import Position

from protocol import OrderView, PositionFill, PositionView

AVG_PX_EXTRA_DIGITS = 4  # an average open price is finer than a tick, but not a float


def order_view(order: Order) -> OrderView:
    price = order.price.as_decimal() if order.has_price else None
    trigger = order.trigger_price.as_decimal() if order.has_trigger_price else None
    return OrderView(
        client_order_id=order.client_order_id.value,
        instrument_id=order.instrument_id.value,
        side=order_side_to_str(order.side),
        order_type=order_type_to_str(order.order_type),
        quantity=order.quantity.as_decimal(),
        filled_qty=order.filled_qty.as_decimal(),
        price=price,
        status=order_status_to_str(order.status),
        strategy_id=order.strategy_id.value,
        trigger_price=trigger,
        reduce_only=order.is_reduce_only,
    )


def position_view(
    position: Position, last: Price | None, realized_base: Decimal, price_precision: int | None
) -> PositionView:
    """``last``: the price it is marked at (its instrument's last close); ``realized_base``:
    what it had realized before this node's life (a restore replays its fills)."""
    unrealized = Decimal(0)
    if last is not None:
        unrealized = position.unrealized_pnl(last).as_decimal()
    realized = position.realized_pnl.as_decimal() if position.realized_pnl else Decimal(0)
    return PositionView(
        position_id=position.id.value,
        instrument_id=position.instrument_id.value,
        side=position_side_to_str(position.side),
        quantity=position.quantity.as_decimal(),
        avg_px_open=avg_price(position.avg_px_open, price_precision),
        realized_pnl=realized_base + realized,
        unrealized_pnl=unrealized,
        fills=tuple(
            PositionFill(
                order_side_to_str(fill.order_side),
                fill.last_qty.as_decimal(),
                fill.last_px.as_decimal(),
            )
            for fill in position.events
        ),
        strategy_id=position.strategy_id.value,
    )


def avg_price(value: float, price_precision: int | None) -> Decimal:
    """Nautilus keeps an average price as a float (65201.100000000006); the checkpoint
    keeps a Decimal rounded a few digits finer than the instrument's tick."""
    digits = (price_precision if price_precision is not None else 8) + AVG_PX_EXTRA_DIGITS
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits))


def restorable(view: OrderView) -> bool:
    """The resting orders a restore places again: limits, and stop-market orders."""
    if view.order_type == "LIMIT":
        return view.price is not None
    return view.order_type == "STOP_MARKET" and view.trigger_price is not None


def plain(bar: Bar) -> Bar:
    """A venue's own bar type (``BinanceBar``) as a plain ``Bar``: what a recording keeps."""
    return Bar(
        bar.bar_type, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ts_event, bar.ts_init
    )
