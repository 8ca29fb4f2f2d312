"""A trader's strategy for the readiness tests: long for ``hold`` bars of every ``cycle``.

It buys ``notional`` worth at market on the first bar of each cycle and sells it on the
``hold``-th, so on a series with an upward drift it earns the drift (less fees), and on
one without it pays fees for nothing: the edge is the drift, and removing the drift
removes it. Its size follows the price (a fixed notional), so its returns are on one
scale however far the price walks, as ``tests.test_readiness.simulate`` computes them.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import PositiveInt, StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class CycleConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    cycle: PositiveInt = 12
    hold: PositiveInt = 11
    notional: Decimal = Decimal(60000)


class Cycle(Strategy):
    def __init__(self, config: CycleConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.bar_type = config.bar_type
        self.cycle = config.cycle
        self.hold = config.hold
        self.notional = config.notional
        self.count = 0
        self.held = Decimal(0)

    def on_start(self) -> None:
        self.subscribe_bars(self.bar_type)

    def on_bar(self, bar: Bar) -> None:
        phase = self.count % self.cycle
        self.count += 1
        instrument = self.cache.instrument(self.instrument_id)
        if phase == 0 and self.held == 0:
            quantity = instrument.make_qty(self.notional / bar.close.as_decimal())
            self.held = quantity.as_decimal()
            self.submit_order(
                self.order_factory.market(self.instrument_id, OrderSide.BUY, quantity)
            )
        elif phase == self.hold and self.held > 0:
            quantity = instrument.make_qty(self.held)
            self.held = Decimal(0)
            self.submit_order(
                self.order_factory.market(self.instrument_id, OrderSide.SELL, quantity)
            )
