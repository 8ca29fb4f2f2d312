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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import Clock, MessageBus
from nautilus_trader.core.uuid import UUID4
from nautilus_trader.execution.messages import SubmitOrder, SubmitOrderList
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderDenied
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.orders import Order
from nautilus_trader.trading.strategy import Strategy

from node.replay import bar_type_for
from protocol import NodeSettings, RiskLimits

Handler = Callable[[object], None]
Wrap = Callable[[Handler], Handler]
ENDPOINT = "RiskEngine.execute"
HALTED_DENIAL = "STRATEGY_HALTED"  # the classifier's HALT_DENIAL matches it: not a fault
FLATTEN_TAG = "FLATTEN"  # a flattening halt's closing order: it passes a strategy's halt


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


def _closing(orders: list[Order]) -> bool:
    """A flattening halt's own closing orders (reduce-only, tagged)."""
    return all(o.is_reduce_only and FLATTEN_TAG in (o.tags or []) for o in orders)


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
            if not orders or orders[0].strategy_id.value not in self.halted or _closing(orders):
                downstream(command)
                return
            reason = f"{HALTED_DENIAL}: {self.halted[orders[0].strategy_id.value]}"
            for order in orders:
                deny(self._cache, self._msgbus, self._clock, order, reason)

        return execute


@dataclass(frozen=True, slots=True)
class Limit:
    """Limits on orders: the notional one order may open, and the open notional (at the
    mark) a fill may leave, as a multiple of the account's equity. None: no such limit."""

    max_notional: Decimal | None = None
    max_leverage: Decimal | None = None

    def __bool__(self) -> bool:
        return self.max_notional is not None or self.max_leverage is not None


class OrderLimits:
    """The account's limits (``[risk]``) and each strategy's (its ``[[strategies]]``
    entry), the tighter one winning."""

    def __init__(
        self,
        cache: Cache,
        msgbus: MessageBus,
        clock: Clock,
        bar_minutes: int,
        account: Limit,
        own: Sequence[Limit] = (),
    ) -> None:
        """``bar_minutes``: the bars a price falls back to when no quote or trade came.
        ``own``: each ``[[strategies]]`` entry's, in order (``assign`` names them)."""
        self._cache = cache
        self._msgbus = msgbus
        self._clock = clock
        self._bar_minutes = bar_minutes
        self._account = account
        self._own = tuple(own)
        self._strategies: dict[str, Limit] = {}

    def assign(self, strategies: Sequence[Strategy]) -> None:
        """The strategies built from the entries, in the entries' order: their ids are
        NautilusTrader's (class and order id tag), known once they exist."""
        self._strategies = {
            s.id.value: limit for s, limit in zip(strategies, self._own, strict=False) if limit
        }

    def update(self, risk: RiskLimits) -> None:
        """A reload's account limits, from the next order on."""
        self._account = Limit(risk.max_notional_per_order, risk.leverage_limit)

    def wrap(self, downstream: Handler) -> Handler:
        """``downstream`` (the RiskEngine's handler) behind the check."""

        def execute(command: object) -> None:
            orders = _submitted(command)
            if orders is None or not (self._account or self._strategies):
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
        """Why ``order`` is over a limit, or None."""
        opening = self._opening_quantity(order)
        if opening <= 0:
            return None
        instrument = self._cache.instrument(order.instrument_id)
        if instrument is None:
            return None  # the RiskEngine denies an order for an unknown instrument
        own = self._strategies.get(order.strategy_id.value, Limit())
        price = self._price(order)
        if price is None:
            return f"NOTIONAL_UNKNOWN: no price for {order.instrument_id} yet"
        multiplier = instrument.multiplier.as_decimal()
        notional = opening * price * multiplier
        for scope, limit in (("", self._account), (f" ({order.strategy_id})", own)):
            cap = limit.max_notional
            if cap is not None and notional > cap:
                return (
                    f"NOTIONAL_EXCEEDS_MAX_PER_ORDER{scope}: max_notional={cap}, "
                    f"notional={notional.normalize():f} ({opening.normalize():f} of "
                    f"{order.quantity} opens exposure)"
                )
        return self._leverage_breach(order, price, multiplier, own)

    def _leverage_breach(
        self, order: Order, price: Decimal, multiplier: Decimal, own: Limit
    ) -> str | None:
        """The open notional after a full fill, against the equity, for the account and
        for the order's strategy."""
        if self._account.max_leverage is None and own.max_leverage is None:
            return None
        held = self._held(order)
        signed = Decimal(order.quantity.as_decimal())
        signed = signed if order.side == OrderSide.BUY else -signed
        change = (abs(held + signed) - abs(held)) * price * multiplier
        equity = self._equity()
        if equity is None or equity <= 0:
            return "LEVERAGE_UNKNOWN: no equity to measure leverage against"
        account_after = self._exposure(None) + change
        strategy_after = self._exposure(order.strategy_id.value) + change
        for scope, limit, after in (
            ("", self._account, account_after),
            (f" ({order.strategy_id})", own, strategy_after),
        ):
            cap = limit.max_leverage
            if cap is not None and after > cap * equity:
                return (
                    f"LEVERAGE_EXCEEDS_MAX{scope}: max_leverage={cap}, open notional after the "
                    f"fill {after.normalize():f} = {(after / equity):.2f}x the equity "
                    f"{equity.normalize():f}"
                )
        return None

    def _held(self, order: Order) -> Decimal:
        held = Decimal(0)
        for position in self._cache.positions_open(
            instrument_id=order.instrument_id, strategy_id=order.strategy_id
        ):
            held += Decimal(position.signed_decimal_qty())
        return held

    def _exposure(self, strategy_id: str | None) -> Decimal:
        """Open notional at the mark: the account's, or one strategy's."""
        total = Decimal(0)
        for position in self._cache.positions_open():
            if strategy_id is not None and position.strategy_id.value != strategy_id:
                continue
            mark = self._mark(position.instrument_id)
            if mark is None:
                mark = Decimal(position.avg_px_open)
            instrument = self._cache.instrument(position.instrument_id)
            multiplier = instrument.multiplier.as_decimal() if instrument is not None else 1
            total += Decimal(position.quantity.as_decimal()) * mark * multiplier
        return total

    def _equity(self) -> Decimal | None:
        """The balance plus the open positions' PnL at the mark."""
        balance: Decimal | None = None
        for account in self._cache.accounts():
            for money in account.balances_total().values():
                balance = (balance or Decimal(0)) + Decimal(money.as_decimal())
        if balance is None:
            return None
        for position in self._cache.positions_open():
            mark = self._mark(position.instrument_id)
            if mark is not None:
                instrument = self._cache.instrument(position.instrument_id)
                if instrument is not None:
                    pnl = position.unrealized_pnl(instrument.make_price(mark))
                    balance += Decimal(pnl.as_decimal())
        return balance

    def _opening_quantity(self, order: Order) -> Decimal:
        quantity = Decimal(order.quantity.as_decimal())
        if order.is_reduce_only:
            return Decimal(0)
        held = self._held(order)
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
        return self._mark(order.instrument_id)

    def _mark(self, instrument_id: InstrumentId) -> Decimal | None:
        """The last price seen: a trade, else the last bar's close."""
        trade = self._cache.trade_tick(instrument_id)
        if trade is not None:
            return Decimal(trade.price.as_decimal())
        bar = self._cache.bar(bar_type_for(instrument_id.value, self._bar_minutes))
        return Decimal(bar.close.as_decimal()) if bar is not None else None


def limits_for(
    settings: NodeSettings, cache: Cache, msgbus: MessageBus, clock: Clock
) -> OrderLimits | None:
    """The node's limits from ``[risk]`` and the ``[[strategies]]`` entries (the node and
    the parity backtest both build them here); None when there are none."""
    risk = settings.risk
    account = Limit(risk.max_notional_per_order, risk.leverage_limit)
    own = [Limit(e.max_notional_per_order, e.max_leverage) for e in settings.strategies]
    if not account and not any(own):
        return None
    return OrderLimits(cache, msgbus, clock, settings.replay.bar_minutes, account, own=own)
