"""Inside the node: reconciliation's orders made their owners' (``node.reconcile``)."""

from __future__ import annotations

from collections.abc import Callable

from nautilus_trader.execution.reports import OrderStatusReport
from nautilus_trader.live.execution_engine import LiveExecutionEngine
from nautilus_trader.model.events import OrderInitialized
from nautilus_trader.model.identifiers import StrategyId
from nautilus_trader.model.orders import Order
from nautilus_trader.model.orders.unpacker import OrderUnpacker

from node.reconcile import EXTERNAL, Owners


def claim_reconciled(engine: LiveExecutionEngine, owners: Owners) -> None:
    """Make every order reconciliation generates its owner's (``Owners``).

    NautilusTrader 1.231 builds each order it does not know in
    ``LiveExecutionEngine._generate_order`` (an order the venue reports - at start, or an
    unknown one later on the user stream - with ``is_external``; a position's synthetic
    fill without), with the claiming strategy or ``EXTERNAL``, and that method is the
    only reader of the claims. It is wrapped here on this node's engine: the order it
    built is built again from its own ``OrderInitialized``, under its owner. Nothing else
    of reconciliation changes. The restart test (``tests/test_binance_books.py``) fails
    if a NautilusTrader upgrade stops calling it."""
    generate: Callable[[OrderStatusReport, bool], Order | None] = engine._generate_order

    def owned(report: OrderStatusReport, is_external: bool = True) -> Order | None:
        order = generate(report, is_external)
        if order is None:
            return None
        found = (
            owners.order(report.client_order_id.value if report.client_order_id else None)
            if is_external
            else owners.position(report.instrument_id.value)
        )
        owner = StrategyId(found or EXTERNAL)
        if order.strategy_id == owner:
            return order
        tags = None if found else ["VENUE" if is_external else "RECONCILIATION"]
        return reowned(order, owner, tags)

    # Wrapped on the instance (mypy: a method assigned on purpose, see above).
    engine._generate_order = owned  # type: ignore[method-assign]


def reowned(order: Order, owner: StrategyId, tags: list[str] | None) -> Order:
    """``order`` as generated, under ``owner``. (``OrderInitialized.reconciliation``
    reads False whatever it was built with, so the dict's value is set again.)"""
    values = OrderInitialized.to_dict(order.init_event)
    values.update(strategy_id=owner.value, tags=tags, reconciliation=True)
    rebuilt: Order = OrderUnpacker.from_init(OrderInitialized.from_dict(values))
    return rebuilt
