"""A checkpoint brought back into a fresh node, before its first bar.

Positions come back as their own fills, replayed at their prices without commission and
generated through the execution client, so the cache, the portfolio and the account all
agree and each position's average price is the one it had (a checkpoint without fills:
one fill at the average). Replayed reductions realize PnL the checkpoint's balance
already holds: the simulated account is set back to that balance, and the books take the
replayed PnL back out (``Books.replayed``). Resting orders are placed again with their
own client order ids; the order id counters continue, so no id is issued twice. A node
that starts halted (the gate's record) places no order again - but a reducing halt's
reduce-only ones, its stops - and neither does a strategy halted on its own.

Runs on the node's loop (``Restorer.restore`` awaits the venue's answers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import Clock
from nautilus_trader.execution.engine import ExecutionEngine
from nautilus_trader.model.enums import LiquiditySide, OrderSide, OrderType
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId, TradeId, VenueOrderId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Currency, Money
from nautilus_trader.model.orders import Order
from nautilus_trader.trading.strategy import Strategy

from node.books import Books
from node.views import restorable
from protocol import HaltMode, OrderView, PositionFill, Snapshot

POLL_S = 0.005


class Restorer:
    """Rebuilds a checkpoint's positions and resting orders in this node."""

    def __init__(
        self,
        cache: Cache,
        exec_engine: ExecutionEngine,
        clock: Clock,
        strategies: Mapping[str, Strategy],
        books: Books,
        balance: Callable[[], Decimal],
        open_orders: Callable[[], list[Order]],
        currency: str,
    ) -> None:
        self._cache = cache
        self._exec_engine = exec_engine
        self._clock = clock
        self._strategies = strategies
        self._first = next(iter(strategies.values()))
        self._books = books
        self._balance = balance
        self._open_orders = open_orders
        self._currency = currency
        # The restore's own fills' orders: not trades, the bridge forwards none of them.
        self.restoring: set[str] = set()

    def _strategy_of(self, strategy_id: str) -> Strategy:
        """A checkpoint's strategy; a row of a single-strategy service names none."""
        return self._strategies.get(strategy_id, self._first)

    async def restore(
        self,
        snap: Snapshot,
        halted: HaltMode | None,
        timeout_s: float = 10.0,
        halted_strategies: frozenset[str] = frozenset(),
    ) -> str | None:
        """Rebuild ``snap``; None once the venue confirmed it all, else what is missing
        after ``timeout_s`` (trading on without the full state beats a crash loop)."""
        self.continue_counters(snap)
        venue: object = None
        for n, view in enumerate(snap.positions):
            fills = view.fills or (
                PositionFill(
                    "BUY" if view.side == "LONG" else "SELL", view.quantity, view.avg_px_open
                ),
            )
            owner = self._strategy_of(view.strategy_id)
            instrument = self._instrument(view.instrument_id)
            for k, fill in enumerate(fills):
                venue = self._fill(instrument, fill, f"{n}-{k}", owner)
        # A halted node has no working orders (the halt cancelled them, even if the
        # checkpoint was taken before the cancels were confirmed).
        resting = tuple(
            o
            for o in snap.open_orders
            if (not halted or (halted is HaltMode.REDUCE and o.reduce_only))
            and o.strategy_id not in halted_strategies
            and restorable(o)
        )
        for order in resting:
            self._place_again(order)
        settled = False
        working = 0
        deadline = self._clock.timestamp() + timeout_s
        while self._clock.timestamp() < deadline:
            cache = self._cache
            filled = all(cache.order(ClientOrderId(o)).is_closed for o in self.restoring)
            working = len(self._open_orders())
            if filled and not settled:
                self._settle(snap, venue)
                settled = True
            if settled and working >= len(resting) and self._balance() == snap.balance:
                return None
            await asyncio.sleep(POLL_S)
        positions = len(self._cache.positions_open())
        return (
            f"restore not confirmed within {timeout_s} s: {positions} of "
            f"{len(snap.positions)} position(s), {working} of {len(resting)} "
            f"order(s), balance {self._balance()} of {snap.balance}"
        )

    def continue_counters(self, snap: Snapshot) -> None:
        """Each strategy's order id counter carries on from the checkpoint's, so no id
        is issued twice (never back: on a venue, the orders reconciliation brought back
        under a strategy count already)."""
        counts = {s.strategy_id: s.orders_total for s in snap.strategies}
        if not counts:  # a single-strategy service's row counts the first's
            counts = {self._first.id.value: snap.orders_total}
        for strategy_id, count in counts.items():
            strategy = self._strategies.get(strategy_id)
            if strategy is None:
                continue
            factory = strategy.order_factory
            factory.set_client_order_id_count(max(count, factory.get_client_order_id_count()))

    def _place_again(self, resting: OrderView) -> None:
        """A checkpoint's resting order, under its own client order id."""
        strategy = self._strategy_of(resting.strategy_id)
        instrument = self._instrument(resting.instrument_id)
        side = OrderSide.BUY if resting.side == "BUY" else OrderSide.SELL
        quantity = instrument.make_qty(resting.quantity - resting.filled_qty)
        order_id = ClientOrderId(resting.client_order_id)
        stop = resting.order_type == "STOP_MARKET"
        make = strategy.order_factory.stop_market if stop else strategy.order_factory.limit
        price = resting.trigger_price if stop else resting.price
        assert price is not None  # restorable
        order: Order = make(
            instrument.id,
            side,
            quantity,
            instrument.make_price(price),
            reduce_only=resting.reduce_only,
            client_order_id=order_id,
        )
        strategy.submit_order(order)

    def _instrument(self, instrument_id: str) -> Instrument:
        instrument = self._cache.instrument(InstrumentId.from_str(instrument_id))
        if instrument is None:
            raise RuntimeError(
                f"restore: the checkpoint holds {instrument_id}, which this node does not "
                "trade (was it removed from the config?)"
            )
        return instrument

    def _fill(
        self, instrument: Instrument, fill: PositionFill, tag: str, strategy: Strategy
    ) -> object:
        """One fill of a restored position; the venue's client that generated it."""
        side = OrderSide.BUY if fill.side == "BUY" else OrderSide.SELL
        qty = instrument.make_qty(fill.quantity)
        instrument_id = instrument.id
        order = strategy.order_factory.market(instrument_id, side, qty, tags=["RESTORE"])
        self.restoring.add(order.client_order_id.value)
        self._cache.add_order(order, None, None)
        client = next(iter(self._exec_engine.get_clients_for_orders([order])))
        now = self._clock.timestamp_ns()
        venue_order_id = VenueOrderId(f"RESTORE-{tag}-{now}")
        client.generate_order_submitted(strategy.id, instrument_id, order.client_order_id, now)
        client.generate_order_accepted(
            strategy.id, instrument_id, order.client_order_id, venue_order_id, now
        )
        client.generate_order_filled(
            strategy.id,
            instrument_id,
            order.client_order_id,
            venue_order_id,
            None,
            TradeId(f"RESTORE-{tag}-{now}"),
            side,
            OrderType.MARKET,
            qty,
            instrument.make_price(fill.price),
            instrument.quote_currency,
            Money(0, instrument.get_settlement_currency()),
            LiquiditySide.TAKER,
            now,
        )
        return client

    def _settle(self, snap: Snapshot, venue: object) -> None:
        """What replayed reductions realized is in the checkpoint already: the books keep
        the realized totals as they were, and the simulated account is set back to its
        balance."""
        self._books.replayed(snap, self._cache.positions_open())
        exchange = getattr(venue, "exchange", None)  # a simulated venue's
        difference = snap.balance - self._balance()
        if exchange is not None and difference:
            exchange.adjust_account(Money(difference, Currency.from_str(self._currency)))
