"""The example strategy: an EMA cross whose size comes from the user's sizing method.

On every cross it turns the position to the new side with one market order (the
size of the new position plus whatever is still open the other way), sized by
``actors.node.sizing`` from the account's equity and capped by ``max_leverage``.
"""

from __future__ import annotations

from decimal import Decimal

from nautilus_trader.config import StrategyConfig
from nautilus_trader.indicators import AverageTrueRange, ExponentialMovingAverage
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.trading.strategy import Strategy

from actors.node.sizing import position_size
from actors.settings import RiskLimits, SizingMethod, SizingSettings


class EmaCrossConfig(StrategyConfig, frozen=True, kw_only=True):
    instrument_id: str
    bar_type: str
    fast_period: int = 10
    slow_period: int = 30
    sizing_method: str = "fixed_fractional"
    stop_loss_pct: Decimal = Decimal("0.02")
    win_rate: Decimal = Decimal("0.55")
    payoff_ratio: Decimal = Decimal("1.5")
    kelly_fraction: Decimal = Decimal("0.5")
    atr_period: int = 14
    atr_multiplier: Decimal = Decimal("2")
    risk_per_trade: Decimal = Decimal("0.01")
    max_leverage: Decimal = Decimal("3")
    max_drawdown_pct: Decimal = Decimal("20")
    daily_loss_limit_pct: Decimal = Decimal("5")

    @classmethod
    def build(
        cls,
        instrument_id: str,
        bar_type: str,
        fast_period: int,
        slow_period: int,
        sizing: SizingSettings,
        risk: RiskLimits,
    ) -> EmaCrossConfig:
        return cls(
            instrument_id=instrument_id,
            bar_type=bar_type,
            fast_period=fast_period,
            slow_period=slow_period,
            sizing_method=sizing.method.value,
            stop_loss_pct=sizing.stop_loss_pct,
            win_rate=sizing.win_rate,
            payoff_ratio=sizing.payoff_ratio,
            kelly_fraction=sizing.kelly_fraction,
            atr_period=sizing.atr_period,
            atr_multiplier=sizing.atr_multiplier,
            risk_per_trade=risk.risk_per_trade,
            max_leverage=risk.max_leverage,
            max_drawdown_pct=risk.max_drawdown_pct,
            daily_loss_limit_pct=risk.daily_loss_limit_pct,
        )

    def sizing(self) -> SizingSettings:
        return SizingSettings(
            method=SizingMethod(self.sizing_method),
            stop_loss_pct=self.stop_loss_pct,
            win_rate=self.win_rate,
            payoff_ratio=self.payoff_ratio,
            kelly_fraction=self.kelly_fraction,
            atr_period=self.atr_period,
            atr_multiplier=self.atr_multiplier,
        )

    def risk(self) -> RiskLimits:
        return RiskLimits(
            risk_per_trade=self.risk_per_trade,
            max_leverage=self.max_leverage,
            max_drawdown_pct=self.max_drawdown_pct,
            daily_loss_limit_pct=self.daily_loss_limit_pct,
        )


class EmaCross(Strategy):
    def __init__(self, config: EmaCrossConfig) -> None:
        super().__init__(config)
        self._instrument_id = InstrumentId.from_str(config.instrument_id)
        self._bar_type = BarType.from_str(config.bar_type)
        self._fast = ExponentialMovingAverage(config.fast_period)
        self._slow = ExponentialMovingAverage(config.slow_period)
        self._atr = AverageTrueRange(config.atr_period)
        self._sizing = config.sizing()
        self._risk = config.risk()
        self._signal = 0
        self._instrument: Instrument | None = None
        self.bars_seen = 0

    def on_start(self) -> None:
        self._instrument = self.cache.instrument(self._instrument_id)
        if self._instrument is None:
            self.log.error(f"instrument {self._instrument_id} not in cache")
            self.stop()
            return
        for indicator in (self._fast, self._slow, self._atr):
            self.register_indicator_for_bars(self._bar_type, indicator)
        self.subscribe_bars(self._bar_type)

    def on_bar(self, bar: Bar) -> None:
        self.bars_seen += 1
        if not (self._slow.initialized and self._atr.initialized):
            return
        fast, slow = self._fast.value, self._slow.value
        signal = 1 if fast > slow else -1 if fast < slow else 0
        if signal in (0, self._signal):
            return
        self._signal = signal
        self._turn(OrderSide.BUY if signal > 0 else OrderSide.SELL, bar.close.as_decimal())

    def equity(self) -> Decimal:
        account = self.portfolio.account(self._instrument_id.venue)
        if account is None or self._instrument is None:
            return Decimal(0)
        currency = self._instrument.get_settlement_currency()
        balance = account.balance_total(currency)
        unrealized = self.portfolio.unrealized_pnl(self._instrument_id)
        total = balance.as_decimal() if balance is not None else Decimal(0)
        if unrealized is not None:
            total += unrealized.as_decimal()
        return total

    def _turn(self, side: OrderSide, price: Decimal) -> None:
        instrument = self._instrument
        if instrument is None:
            return
        net = self.portfolio.net_position(self._instrument_id)
        if (net > 0 and side == OrderSide.BUY) or (net < 0 and side == OrderSide.SELL):
            return
        atr = Decimal(repr(self._atr.value))
        target = position_size(self._sizing, self._risk, self.equity(), price, atr)
        qty = instrument.make_qty(target + abs(net))
        if qty.as_decimal() <= 0 or qty < instrument.min_quantity:
            self.log.warning(f"size {target} below the minimum; no order")
            return
        self.submit_order(self.order_factory.market(self._instrument_id, side, qty))
