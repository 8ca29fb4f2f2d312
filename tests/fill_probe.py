"""A test strategy for the fill model: a market buy on its first bar, then a limit buy
resting at ``price`` whenever it has none working. Fed bars whose low is exactly
``price`` (the market touches the order, never trades through it), it shows how often a
touched limit order fills, and its first fill shows the market order's slippage.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.events import OrderFilled
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class TouchLimitConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    price: Decimal
    size: Decimal = Decimal("0.001")
    side: str = "BUY"  # the resting limit's side; the first market order takes the other


class TouchLimit(Strategy):
    def __init__(self, config: TouchLimitConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.bars = 0

    def on_start(self) -> None:
        self.subscribe_bars(self.cfg.bar_type)

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        instrument = self.cache.instrument(self.cfg.instrument_id)
        if instrument is None:
            return
        qty = instrument.make_qty(self.cfg.size)
        side = OrderSide.BUY if self.cfg.side == "BUY" else OrderSide.SELL
        if self.bars == 1:
            self.submit_order(self.order_factory.market(self.cfg.instrument_id, side, qty))
            return
        if not self.cache.orders_open(strategy_id=self.id):
            price = instrument.make_price(self.cfg.price)
            self.submit_order(self.order_factory.limit(self.cfg.instrument_id, side, qty, price))


# What ``EdgeLimits`` saw filled in this process: (side, limit price, fill price). A
# backtest runs in the test's own process, so the test reads it after the run.
EDGE_FILLS: list[tuple[str, Decimal, Decimal]] = []


class EdgeLimitsConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    size: Decimal = Decimal("0.001")


class EdgeLimits(Strategy):
    """On every bar: cancel what rests, then a BUY limit at the bar's low and a SELL limit
    at its high - prices the next bars touch often and trade through sometimes."""

    def __init__(self, config: EdgeLimitsConfig) -> None:
        super().__init__(config)
        self.cfg = config

    def on_start(self) -> None:
        self.subscribe_bars(self.cfg.bar_type)

    def on_bar(self, bar: Bar) -> None:
        instrument = self.cache.instrument(self.cfg.instrument_id)
        if instrument is None:
            return
        self.cancel_all_orders(self.cfg.instrument_id)
        qty = instrument.make_qty(self.cfg.size)
        for side, price in ((OrderSide.BUY, bar.low), (OrderSide.SELL, bar.high)):
            self.submit_order(self.order_factory.limit(self.cfg.instrument_id, side, qty, price))

    def on_order_filled(self, event: OrderFilled) -> None:
        order = self.cache.order(event.client_order_id)
        if order is not None and order.has_price:
            EDGE_FILLS.append(
                (
                    event.order_side.name,
                    order.price.as_decimal(),
                    event.last_px.as_decimal(),
                )
            )


class HoldConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    size: Decimal
    at_bar: int = 2


class Hold(Strategy):
    """Opens ``size`` (negative: short) at market on its ``at_bar``-th bar and holds it:
    what a funding settlement charges is then known in advance."""

    def __init__(self, config: HoldConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.bars = 0

    def on_start(self) -> None:
        self.subscribe_bars(self.cfg.bar_type)

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        instrument = self.cache.instrument(self.cfg.instrument_id)
        if instrument is None or self.cache.positions_open(strategy_id=self.id):
            return
        if self.bars == self.cfg.at_bar:
            side = OrderSide.BUY if self.cfg.size > 0 else OrderSide.SELL
            qty = instrument.make_qty(abs(self.cfg.size))
            self.submit_order(self.order_factory.market(self.cfg.instrument_id, side, qty))
