"""A test strategy that holds a book and must know it is its own after a restart.

At its second bar, if it holds nothing - no position of its own, no open order of its
own - it buys ``size`` at market and rests a limit buy ``rest_pct`` below the close (far
enough never to fill): a position and a resting order. It enters only from flat, once a
node's life: a strategy that, after a restart, is not given back what it held sees
itself flat and enters again (twice the exposure on a one-way account). It counts its
entries in ``path`` (one line each, with its client order id), so a test can tell.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from nautilus_trader.config import StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class BookProbeConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    size: Decimal = Decimal("0.010")
    rest_pct: Decimal = Decimal("0.3")
    path: str | None = None


class BookProbe(Strategy):
    def __init__(self, config: BookProbeConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.bars = 0
        self.entered = False

    def on_start(self) -> None:
        self.subscribe_bars(self.cfg.bar_type)

    def on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self.bars < 2 or self.entered:
            return
        self.entered = True  # looked once: from here on it only holds
        iid = self.cfg.instrument_id
        held = self.cache.positions_open(instrument_id=iid, strategy_id=self.id)
        working = self.cache.orders_open(instrument_id=iid, strategy_id=self.id)
        if held or working:
            return
        instrument = self.cache.instrument(iid)
        size = instrument.make_qty(self.cfg.size)
        entry = self.order_factory.market(iid, OrderSide.BUY, size)
        rest = bar.close.as_decimal() * (1 - self.cfg.rest_pct)
        resting = self.order_factory.limit(iid, OrderSide.BUY, size, instrument.make_price(rest))
        self.submit_order(entry)
        self.submit_order(resting)
        if self.cfg.path is not None:
            with Path(self.cfg.path).open("a") as out:
                out.write(f"{entry.client_order_id.value}\n")
