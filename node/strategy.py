"""The example strategy: an EMA cross whose size comes from the user's sizing method.

On every cross it cancels what it still has working and turns the position to the new
side with one market order (the size of the new position plus whatever is still open
the other way), sized by
``node.sizing`` from the account's equity and capped by ``max_leverage``.
With ``ladder_orders`` > 0 it also rests that many limit orders to add to the new
position at ``ladder_step_pct`` steps away, cancelling the previous ladder first.
"""

from __future__ import annotations

import json
from decimal import Decimal

import msgspec
from nautilus_trader.common.config import msgspec_decoding_hook
from nautilus_trader.config import StrategyConfig
from nautilus_trader.indicators import AverageTrueRange, ExponentialMovingAverage
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.enums import OrderSide, OrderType
from nautilus_trader.model.events import (
    PositionChanged,
    PositionClosed,
    PositionEvent,
    PositionOpened,
)
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.orders import Order
from nautilus_trader.trading.strategy import Strategy
from pydantic import JsonValue, ValidationError

from node.sizing import position_size
from protocol import (
    Mode,
    NodeSettings,
    RiskLimits,
    SizingMethod,
    SizingSettings,
    StrategySettings,
)

SECTIONS: tuple[tuple[str, type[StrategySettings | SizingSettings | RiskLimits]], ...] = (
    ("strategy", StrategySettings),
    ("sizing", SizingSettings),
    ("risk", RiskLimits),
)


class EmaCrossConfig(StrategyConfig, frozen=True, kw_only=True):
    """The instrument and bar type, and the service's settings objects as they are."""

    instrument_id: str
    bar_type: str
    strategy: StrategySettings = StrategySettings()
    sizing: SizingSettings = SizingSettings()
    risk: RiskLimits = RiskLimits()

    @classmethod
    def parse(cls, raw: bytes | str) -> EmaCrossConfig:
        """From JSON, as NautilusTrader's ``StrategyFactory`` builds a strategy by import
        path: the EMA cross is one example of that mechanism (``[[strategies]]`` may name
        it, several times with their own tags). Its sections are the service's pydantic
        settings, which msgspec cannot build: pydantic validates them (an error names its
        field, as msgspec's do) and msgspec the rest."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise msgspec.ValidationError("Expected `object`, got another type")
        sections: dict[str, StrategySettings | SizingSettings | RiskLimits] = {}
        for name, model in SECTIONS:
            if name not in data:
                continue
            try:
                sections[name] = model.model_validate(data.pop(name))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join([name, *(str(part) for part in first["loc"])])
                raise msgspec.ValidationError(f"{first['msg']} - at `$.{where}`") from None
        base = msgspec.json.decode(json.dumps(data), type=cls, dec_hook=msgspec_decoding_hook)
        return msgspec.structs.replace(base, **sections)

    def as_entry_config(self) -> dict[str, JsonValue]:
        """This config as a ``[[strategies]]`` table's ``config`` (``parse`` reads it)."""
        return {
            "instrument_id": self.instrument_id,
            "bar_type": self.bar_type,
            "external_order_claims": [str(i) for i in self.external_order_claims]
            if self.external_order_claims
            else None,
            **{name: getattr(self, name).model_dump(mode="json") for name, _ in SECTIONS},
        }

    @classmethod
    def for_settings(cls, settings: NodeSettings, bar_type: BarType) -> EmaCrossConfig:
        """The one way the node and the parity backtest configure the strategy, so they
        cannot drift apart. On the testnet, orders reconciled from the venue after a
        restart are the strategy's own: it claims them so a halt cancels them too (the
        backtest has no such orders, so the claim changes nothing there)."""
        instrument_id = InstrumentId.from_str(settings.instrument_id)
        return cls(
            external_order_claims=[instrument_id]
            if settings.mode is Mode.BINANCE_TESTNET
            else None,
            instrument_id=settings.instrument_id,
            bar_type=str(bar_type),
            strategy=settings.strategy,
            sizing=settings.sizing,
            risk=settings.risk,
        )


class EmaCross(Strategy):
    def __init__(self, config: EmaCrossConfig) -> None:
        super().__init__(config)
        self._instrument_id = InstrumentId.from_str(config.instrument_id)
        self._bar_type = BarType.from_str(config.bar_type)
        self._fast = ExponentialMovingAverage(config.strategy.fast_period)
        self._slow = ExponentialMovingAverage(config.strategy.slow_period)
        self._atr = AverageTrueRange(config.sizing.atr_period)
        self.cfg = config
        self._sizing = config.sizing
        self._risk = config.risk
        self._signal = 0
        self._instrument: Instrument | None = None
        self._stop_sent: Order | None = None  # the last stop submitted (maybe not open yet)
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

    def update_risk(self, risk: RiskLimits) -> None:
        """New limits from a reload; they apply from the next order on."""
        self._risk = risk
        self.log.warning(f"risk limits updated: {risk}")

    def warm_up(self, bars: list[Bar]) -> None:
        """Feed history to the indicators so a restored strategy does not re-trade a cross."""
        for bar in bars:
            for indicator in (self._fast, self._slow, self._atr):
                indicator.handle_bar(bar)
        self._signal = self._current_signal()

    def _current_signal(self) -> int:
        if not (self._slow.initialized and self._atr.initialized):
            return 0
        fast, slow = self._fast.value, self._slow.value
        return 1 if fast > slow else -1 if fast < slow else 0

    def on_bar(self, bar: Bar) -> None:
        self.bars_seen += 1
        signal = self._current_signal()
        if signal in (0, self._signal):
            return
        self._signal = signal
        side = OrderSide.BUY if signal > 0 else OrderSide.SELL
        # Whatever the last turn left working goes first: the previous ladder, and the
        # rest of a market order the market's liquidity only partly filled (left open,
        # such remainders piled up by the thousand in a long replay).
        self.cancel_all_orders(self._instrument_id)
        self._turn(side, bar.close.as_decimal())

    def on_position_opened(self, event: PositionOpened) -> None:
        self._position_moved(event)

    def on_position_changed(self, event: PositionChanged) -> None:
        self._position_moved(event)

    def on_position_closed(self, event: PositionClosed) -> None:
        self._position_moved(event)

    def _position_moved(self, event: PositionEvent) -> None:
        """The protective stop follows the position: after every change (a position
        event, not the fill: the fill reaches the strategy before the position is
        updated), the stop covers the whole position again, at the sizing's stop
        distance from the last fill's price. A restore's replayed fills place none: the
        checkpoint's stop is placed again as it was."""
        if not self.cfg.strategy.protective_stop or self._instrument is None:
            return
        position = self.cache.position(event.position_id)
        if position is None or position.last_trade_id.value.startswith("RESTORE"):
            return
        # A market order still filling (a partial fill of a turn, or of the stop itself
        # once triggered: the venue's liquidity taken a level at a time) moves the
        # position again in a moment: the stop waits for its last fill, or it could be
        # sized for a position that has turned or closed.
        for order in self.cache.orders_open(instrument_id=self._instrument_id, strategy_id=self.id):
            if order.order_type == OrderType.MARKET or (
                order.order_type == OrderType.STOP_MARKET and order.filled_qty.as_decimal() > 0
            ):
                return
        self._protect(event.last_px.as_decimal())

    def _protect(self, price: Decimal) -> None:
        """One stop for the whole position: the one already there (resting, or on its way)
        if it is the stop wanted, else a new one, every other stop cancelled.

        One fill can move the position twice - a turn closes it and opens it again, two
        events - and the stop the first event submitted is not open yet when the second
        comes (on a live venue it waits for the venue's answer; in a replay for the venue's
        next drain): replaced then, it was doubled, and each copy covered the whole
        position (the testnet showed two stops at the venue after every turn; a replay of
        20,000 bars sent 718 stops where 385 do, with the same fills)."""
        instrument = self._instrument
        assert instrument is not None
        wanted: tuple[OrderSide, object, object] | None = None
        net = self.net_position()
        distance = self._stop_distance(price) if net != 0 else Decimal(0)
        trigger = price - distance if net > 0 else price + distance
        if net != 0 and distance > 0 and trigger > 0:
            side = OrderSide.SELL if net > 0 else OrderSide.BUY
            wanted = (side, instrument.make_qty(abs(net)), instrument.make_price(trigger))
        kept = False
        for stop in self._stops():
            if stop.is_pending_cancel:
                continue
            if not kept and (stop.side, stop.quantity, stop.trigger_price) == wanted:
                kept = True
            else:
                self.cancel_order(stop)
        if wanted is None or kept:
            return
        side, quantity, trigger_price = wanted
        self._stop_sent = self.order_factory.stop_market(
            self._instrument_id, side, quantity, trigger_price, reduce_only=True, tags=["STOP"]
        )
        self.submit_order(self._stop_sent)

    def _stops(self) -> list[Order]:
        """This strategy's stops not done yet: resting, or submitted and not open yet."""
        where = {"instrument_id": self._instrument_id, "strategy_id": self.id}
        stops: dict[object, Order] = {}
        for order in [*self.cache.orders_open(**where), *self.cache.orders_inflight(**where)]:
            if order.order_type == OrderType.STOP_MARKET:
                stops[order.client_order_id] = order
        sent = self._stop_sent
        if sent is not None and not sent.is_closed:
            stops.setdefault(sent.client_order_id, sent)
        return list(stops.values())

    def _stop_distance(self, price: Decimal) -> Decimal:
        """The stop the sizing assumed: ATR x multiplier, else stop_loss_pct of price."""
        if self._sizing.method is SizingMethod.ATR and self._atr.initialized:
            return Decimal(repr(self._atr.value)) * self._sizing.atr_multiplier
        return price * self._sizing.stop_loss_pct

    def net_position(self) -> Decimal:
        """This strategy's own signed position (another strategy may trade the instrument)."""
        net = Decimal(0)
        for position in self.cache.positions_open(
            instrument_id=self._instrument_id, strategy_id=self.id
        ):
            net += Decimal(position.signed_decimal_qty())
        return net

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
        net = self.net_position()
        if (net > 0 and side == OrderSide.BUY) or (net < 0 and side == OrderSide.SELL):
            return
        atr = Decimal(repr(self._atr.value))
        target = position_size(self._sizing, self._risk, self.equity(), price, atr)
        # The venue's largest order bounds the position, and an order over it is denied
        # (a grown account once had every turn denied, and the rejects breaker halted
        # it): a turn bigger than that closes and opens with two orders.
        largest = instrument.max_quantity.as_decimal() if instrument.max_quantity else None
        if largest is not None:
            target = min(target, largest)
        close = Decimal(abs(net))
        sizes = (
            [close + target] if largest is None or close + target <= largest else [close, target]
        )
        orders = [instrument.make_qty(size) for size in sizes if size > 0]
        if not orders or any(qty < instrument.min_quantity for qty in orders):
            self.log.warning(f"size {target} below the minimum; no order")
            return
        for qty in orders:
            self.submit_order(self.order_factory.market(self._instrument_id, side, qty))
        self._ladder(side, price, target)

    def _ladder(self, side: OrderSide, price: Decimal, target: Decimal) -> None:
        instrument = self._instrument
        n = self.cfg.strategy.ladder_orders
        if instrument is None or n <= 0:
            return
        qty = instrument.make_qty(target / n)
        if qty < instrument.min_quantity:
            return
        sign = -1 if side == OrderSide.BUY else 1
        for k in range(1, n + 1):
            px = instrument.make_price(price * (1 + sign * k * self.cfg.strategy.ladder_step_pct))
            self.submit_order(self.order_factory.limit(self._instrument_id, side, qty, px))
