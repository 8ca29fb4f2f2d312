"""A test strategy for order latency on a live feed: a market order every ``every`` bars,
``orders`` of them, alternating sides; each order's client id and the node's clock when
the strategy sent it go to ``path`` (a JSON line each), so a test can set the fill's time
beside it. The strategy runs in the node child: the file is how the test hears it."""

from __future__ import annotations

import json
from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class MarketProbeConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    path: str
    size: Decimal = Decimal("0.001")
    every: int = 3
    orders: int = 3


class MarketProbe(Strategy):
    def __init__(self, config: MarketProbeConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.bars = 0
        self.sent = 0

    def on_start(self) -> None:
        self.subscribe_bars(self.cfg.bar_type)

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        instrument = self.cache.instrument(self.cfg.instrument_id)
        if instrument is None or self.sent >= self.cfg.orders or self.bars % self.cfg.every:
            return
        side = OrderSide.BUY if self.sent % 2 == 0 else OrderSide.SELL
        order = self.order_factory.market(
            self.cfg.instrument_id, side, instrument.make_qty(self.cfg.size)
        )
        sent_ns = self.clock.timestamp_ns()  # the command's own time is no earlier
        with open(self.cfg.path, "a") as out:
            out.write(json.dumps({"id": order.client_order_id.value, "sent_ns": sent_ns}) + "\n")
        self.submit_order(order)
        self.sent += 1
