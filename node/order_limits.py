"""The service's own pre-trade checks, in front of NautilusTrader's RiskEngine: the
notional limit, and the halts of single strategies.

A trader's strategy sizes its own orders; ``risk.max_notional_per_order`` is what the
service holds every strategy to, whatever its code does. NautilusTrader's RiskEngine has
a ``max_notional_per_order`` setting, but on a margin account (every perpetual) it
returns before any notional check ("TODO: Determine risk controls for margin", 1.231),
so the node checks here, on the ``RiskEngine.execute`` endpoint, before the engine sees
the command. A denied order gets NautilusTrader's own ``OrderDenied`` (the strategy's
``on_order_denied``, the bridge's reject event, the classifier's alert), as the
RiskEngine would send it.

Only the part of an order that opens or adds exposure counts: the part that reduces the
strategy's own position never does, so a limit can never trap a position (a reduce-only
order, a close, the closing half of a turn). The parity backtest installs the same check.

NautilusTrader's trading state (ACTIVE, HALTED, REDUCING) is the account's: one
strategy halted while the others trade is the service's, so ``HaltedStrategies`` denies
the orders of a halted strategy here, with a reason the classifier knows as a halt's.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import Clock, MessageBus
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import SubmitOrder, SubmitOrderList
from nautilus_trader.model.data import BarType
from nautilus_trader.model.enums import OrderSide, PositionSide
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.orders import Order

Handler = Callable[[object], None]
Wrap = Callable[[Handler], Handler]
ENDPOINT = "RiskEngine.execute"
HALTED_DENIAL = "STRATEGY_HALTED"  # the classifier's HALT_DENIAL matches it: not a fault


def install(msgbus: MessageBus, downstream: Handler, *wraps: Wrap) -> None:
    """``downstream`` (the RiskEngine's handler on the endpoint, a live engine's queueing
    one or a backtest's) behind ``wraps``, the first outermost."""
    handler = downstream
    for wrap in reversed(wraps):
        handler = wrap(handler)
    msgbus.deregister(ENDPOINT, downstream)
    msgbus.register(ENDPOINT, handler)


def chain(*wraps: Wrap) -> Wrap:
    def wrapped(downstream: Handler) -> Handler:
        for wrap in reversed(wraps):
            downstream = wrap(downstream)
        return downstream

    return wrapped


def _submitted(command: object) -> list[Order] | None:
    """The orders a command submits; None for any other command."""
    if isinstance(command, SubmitOrder):
        return [command.order]
    if isinstance(command, SubmitOrderList):
        return list(command.order_list.orders)
    return None


def deny(cache: Cache, msgbus: MessageBus, clock: Clock, order: Order, reason: str) -> None:
    """NautilusTrader's own ``OrderDenied`` for ``order``, as its RiskEngine sends it."""
    if not cache.order_exists(order.client_order_id):
        cache.add_order(order, None, None)
    msgbus.send(
        endpoint="ExecEngine.process",
        msg=OrderDenied(
            trader_id=order.trader_id,
            strategy_id=order.strategy_id,
            instrument_id=order.instrument_id,
            client_order_id=order.client_order_id,
            reason=reason,
            event_id=UUID4(),
            ts_init=clock.timestamp_ns(),
        ),
    )


class HaltedStrategies:
    """Denies every order a halted strategy submits; cancels still pass."""

    def __init__(self, cache: Cache, msgbus: MessageBus, clock: Clock) -> None:
        self._cache = cache
        self._msgbus = msgbus
        self._clock = clock
        self.halted: dict[str, str] = {}  # strategy id -> reason

    def wrap(self, downstream: Handler) -> Handler:
        def execute(command: object) -> None:
            orders = _submitted(command)
            if not orders or orders[0].strategy_id.value not in self.halted:
                downstream(command)
                return
            reason = f"{HALTED_DENIAL}: {self.halted[orders[0].strategy_id.value]}"
            for order in orders:
                deny(self._cache, self._msgbus, self._clock, order, reason)

        return execute


class OrderLimits:
    def __init__(
        self,
        cache: Cache,
        msgbus: MessageBus,
        clock: Clock,
        bar_minutes: int,
        max_notional: Decimal,
    ) -> None:
        """``bar_minutes``: the bars a price falls back to when no quote or trade came."""
        self._cache = cache
        self._msgbus = msgbus
        self._clock = clock
        self._bar_minutes = bar_minutes
        self._max_notional = max_notional

    def wrap(self, downstream: Handler) -> Handler:
        """``downstream`` (the RiskEngine's handler) behind the check."""

        def execute(command: object) -> None:
            orders = _submitted(command)
            if orders is None:
                downstream(command)
                return
            breach = next((r for o in orders if (r := self.breach(o)) is not None), None)
            if breach is None:
                downstream(command)
                return
            for order in orders:
                deny(self._cache, self._msgbus, self._clock, order, breach)

        return execute

    def breach(self, order: Order) -> str | None:
        """Why ``order`` is over the limit, or None."""
        opening = self._opening_quantity(order)
        if opening <= 0:
            return None
        instrument = self._cache.instrument(order.instrument_id)
        if instrument is None:
            return None  # the RiskEngine denies an order for an unknown instrument
        price = self._price(order)
        if price is None:
            return (
                f"NOTIONAL_UNKNOWN: no price for {order.instrument_id} yet, "
                f"max_notional={self._max_notional}"
            )
        notional = opening * price * instrument.multiplier.as_decimal()
        if notional <= self._max_notional:
            return None
        return (
            f"NOTIONAL_EXCEEDS_MAX_PER_ORDER: max_notional={self._max_notional}, "
            f"notional={notional.normalize():f} ({opening.normalize():f} of "
            f"{order.quantity} opens exposure)"
        )

    def _opening_quantity(self, order: Order) -> Decimal:
        quantity = Decimal(order.quantity.as_decimal())
        if order.is_reduce_only:
            return Decimal(0)
        held = Decimal(0)
        for position in self._cache.positions_open(
            instrument_id=order.instrument_id, strategy_id=order.strategy_id
        ):
            signed = Decimal(position.quantity.as_decimal())
            held += signed if position.side == PositionSide.LONG else -signed
        against = (order.side == OrderSide.SELL and held > 0) or (
            order.side == OrderSide.BUY and held < 0
        )
        return quantity - min(quantity, abs(held)) if against else quantity

    def _price(self, order: Order) -> Decimal | None:
        if order.has_price:
            return Decimal(order.price.as_decimal())
        if order.has_trigger_price:
            return Decimal(order.trigger_price.as_decimal())
        quote = self._cache.quote_tick(order.instrument_id)
        if quote is not None:
            side = quote.ask_price if order.side == OrderSide.BUY else quote.bid_price
            return Decimal(side.as_decimal())
        trade = self._cache.trade_tick(order.instrument_id)
        if trade is not None:
            return Decimal(trade.price.as_decimal())
        bar_type = BarType.from_str(
            f"{order.instrument_id}-{self._bar_minutes}-MINUTE-LAST-EXTERNAL"
        )
        bar = self._cache.bar(bar_type)
        return Decimal(bar.close.as_decimal()) if bar is not None else None
