"""A test strategy that sets up what a halt must deal with and then keeps probing it.

Once its bars start it buys ``size`` at market, rests a reduce-only stop far below and a
limit entry far below (neither fills), so a halt meets an open position, a resting entry
and a protective stop. From then on, every ``probe_every`` bars it sends one small entry
(a market buy) and one small reducing order (a reduce-only market sell): while ACTIVE
both fill; while REDUCING only the reducing one may; while HALTED neither.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import PositiveInt, StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class HaltProbeConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    size: Decimal = Decimal("0.100")
    probe: Decimal = Decimal("0.001")
    probe_every: PositiveInt = 5


class HaltProbe(Strategy):
    def __init__(self, config: HaltProbeConfig) -> None:
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
        iid, close = self.cfg.instrument_id, bar.close.as_decimal()
        if self.bars == 2 and not self.cache.positions_open(strategy_id=self.id):
            self.submit_order(
                self.order_factory.market(iid, OrderSide.BUY, instrument.make_qty(self.cfg.size))
            )
            self.submit_order(
                self.order_factory.stop_market(
                    iid,
                    OrderSide.SELL,
                    instrument.make_qty(self.cfg.size),
                    instrument.make_price(close * Decimal("0.5")),
                    reduce_only=True,
                )
            )
            self.submit_order(
                self.order_factory.limit(
                    iid,
                    OrderSide.BUY,
                    instrument.make_qty(self.cfg.size),
                    instrument.make_price(close * Decimal("0.6")),
                )
            )
        elif self.bars > 2 and self.bars % self.cfg.probe_every == 0:
            probe = instrument.make_qty(self.cfg.probe)
            self.submit_order(self.order_factory.market(iid, OrderSide.BUY, probe))
            self.submit_order(
                self.order_factory.market(iid, OrderSide.SELL, probe, reduce_only=True)
            )
