"""A trader's own strategy, defined only here (not in the product): a channel breakout.

Loaded by the service by import path (``tests.user_strategy:Breakout``), exactly as a
trader's research code would be. It knows nothing of the service: no risk limits, no
warm-up hook; it trades a fixed size and holds a target position of +size or -size.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from nautilus_trader.config import PositiveInt, StrategyConfig
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.trading.strategy import Strategy


class BreakoutConfig(StrategyConfig, frozen=True):
    instrument_id: InstrumentId
    bar_type: BarType
    lookback: PositiveInt = 20
    trade_size: Decimal = Decimal("0.010")


class Breakout(Strategy):
    """Long above the last ``lookback`` bars' high, short below their low."""

    def __init__(self, config: BreakoutConfig) -> None:
        super().__init__(config)
        self.instrument_id = config.instrument_id
        self.bar_type = config.bar_type
        self.size = config.trade_size
        self.highs: deque[Decimal] = deque(maxlen=config.lookback)
        self.lows: deque[Decimal] = deque(maxlen=config.lookback)

    def on_start(self) -> None:
        self.subscribe_bars(self.bar_type)

    def on_bar(self, bar: Bar) -> None:
        close = bar.close.as_decimal()
        target: Decimal | None = None
        if len(self.highs) == self.highs.maxlen:
            if close > max(self.highs):
                target = self.size
            elif close < min(self.lows):
                target = -self.size
        self.highs.append(bar.high.as_decimal())
        self.lows.append(bar.low.as_decimal())
        if target is None:
            return
        # Its own position: in a node shared with other strategies, the portfolio's net
        # position on the instrument is theirs too.
        net = sum(
            (
                p.quantity.as_decimal() * (1 if p.is_long else -1)
                for p in self.cache.positions_open(
                    instrument_id=self.instrument_id, strategy_id=self.id
                )
            ),
            Decimal(0),
        )
        delta = target - net
        if delta == 0:
            return
        instrument = self.cache.instrument(self.instrument_id)
        order = self.order_factory.market(
            self.instrument_id,
            OrderSide.BUY if delta > 0 else OrderSide.SELL,
            instrument.make_qty(abs(delta)),
        )
        self.submit_order(order)
