"""What the streams carry: Binance's JSON for market data and for user data events.

Clients decode these with strict schemas (Nautilus uses msgspec structs), so field names,
types and the fixed-point text of numbers follow Binance's documentation exactly. The market
feed listens to :class:`~.market.Market` (trade prints, closed klines) and is called by the
server for the book, open klines and the mark price on every tick; the user feed turns the
matching engine's typed events into user data stream events. Both hand JSON to the hub.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Final

from .clock import FUNDING_PERIOD_MS, Clock, next_funding_ms
from .events import (
    AccountUpdate,
    AlgoUpdate,
    LeverageUpdate,
    OrderUpdate,
    TradeLite,
    UserEvent,
)
from .fmt import ZERO, JsonDict, fmt8
from .klines import Kline
from .market import Market, Trade
from .spec import QUOTE_ASSET, SymbolSpec
from .streams import StreamHub

log = logging.getLogger(__name__)

FUNDING_RATE: Final = "0.00010000"
MARK_PUSH_MS: Final = 1000
"""``@markPrice`` pushes at most once a second (the 1s variant too, here)."""


def kline_json(spec: SymbolSpec, k: Kline, *, closed: bool, now: int) -> JsonDict:
    return {
        "e": "kline",
        "E": now,
        "s": spec.symbol,
        "k": {
            "t": k.open_time,
            "T": k.close_time,
            "s": spec.symbol,
            "i": k.interval,
            "f": k.first_id,
            "L": k.last_id,
            "o": spec.px(k.open),
            "c": spec.px(k.close),
            "h": spec.px(k.high),
            "l": spec.px(k.low),
            "v": spec.qty(k.volume),
            "n": k.trades,
            "x": closed,
            "q": fmt8(k.quote_volume),
            "V": spec.qty(k.taker_base),
            "Q": fmt8(k.taker_quote),
            "B": "0",
        },
    }


class MarketFeed:
    """Publishes the market streams: ``@aggTrade``, ``@trade``, ``@bookTicker`` (and
    ``!bookTicker``), ``@kline_<interval>``, ``@markPrice[@1s]``."""

    def __init__(
        self,
        spec: SymbolSpec,
        market: Market,
        hub: StreamHub,
        clock: Clock,
        funding_period_ms: int = FUNDING_PERIOD_MS,
        funding_rate: str = FUNDING_RATE,
        mark_push_ms: int = MARK_PUSH_MS,
    ) -> None:
        self._spec = spec
        self._market = market
        self._hub = hub
        self._clock = clock
        self._last_mark_push_ms = 0
        self._mark_push_ms = mark_push_ms
        self._funding_period_ms = funding_period_ms
        self._funding_rate = funding_rate
        self._next_funding_ms = 0  # the settlement the mark stream announces
        # Called at each settlement (rate, mark, time), under the server's lock.
        self.on_funding: Callable[[Decimal, Decimal, int], object] | None = None
        # Every settlement so far (time ms, rate, mark): ``/fapi/v1/fundingRate``'s rows.
        self.settlements: list[tuple[int, Decimal, Decimal]] = []

    def stream(self, suffix: str) -> str:
        return f"{self._spec.symbol.lower()}@{suffix}"

    def traded(self, trade: Trade) -> None:
        spec, now = self._spec, trade.time_ms
        agg: JsonDict = {
            "e": "aggTrade",
            "E": now,
            "a": trade.trade_id,
            "s": spec.symbol,
            "p": spec.px(trade.price),
            "q": spec.qty(trade.qty),
            "nq": spec.qty(trade.qty),
            "f": trade.trade_id,
            "l": trade.trade_id,
            "T": now,
            "m": trade.buyer_maker,
        }
        self._hub.publish((self.stream("aggTrade"),), agg)
        raw: JsonDict = {
            "e": "trade",
            "E": now,
            "T": now,
            "s": spec.symbol,
            "t": trade.trade_id,
            "p": spec.px(trade.price),
            "q": spec.qty(trade.qty),
            "X": "MARKET",
            "m": trade.buyer_maker,
        }
        self._hub.publish((self.stream("trade"),), raw)

    def kline_closed(self, kline: Kline, now: int) -> None:
        stream = self.stream(f"kline_{kline.interval}")
        self._hub.publish((stream,), kline_json(self._spec, kline, closed=True, now=now))

    def tick(self, now: int) -> None:
        """After the market moved: the book, every open kline, and the mark (throttled)."""
        self._book(now)
        for kline in self._market.klines.current.values():
            stream = self.stream(f"kline_{kline.interval}")
            self._hub.publish((stream,), kline_json(self._spec, kline, closed=False, now=now))
        self._mark(now)

    def subscribed(self, stream: str) -> None:
        """Someone subscribed to ``stream``: start its klines; warn if nothing feeds it."""
        prefix = self._spec.symbol.lower() + "@kline_"
        if stream.startswith(prefix):
            self._market.ensure_kline(stream.removeprefix(prefix), self._clock())
        known = (
            stream == "!bookTicker"
            or stream.startswith(prefix)
            or stream
            in {
                self.stream(s)
                for s in ("aggTrade", "trade", "bookTicker", "markPrice", "markPrice@1s")
            }
        )
        if not known:
            log.warning("BINANCE EMULATOR: stream %r accepted but never fed", stream)

    def _book(self, now: int) -> None:
        spec, m = self._spec, self._market
        data: JsonDict = {
            "e": "bookTicker",
            "u": m.book_update_id,
            "s": spec.symbol,
            "b": spec.px(m.bid),
            "B": spec.qty(m.bid_qty),
            "a": spec.px(m.ask),
            "A": spec.qty(m.ask_qty),
            "T": now,
            "E": now,
        }
        self._hub.publish((self.stream("bookTicker"), "!bookTicker"), data)

    def _mark(self, now: int) -> None:
        due = self._next_funding_ms
        if due and now >= due:
            rate, at_mark = Decimal(self._funding_rate), self._market.mark
            self.settlements.append((due, rate, at_mark))
            if self.on_funding is not None:
                self.on_funding(rate, at_mark, due)
        self._next_funding_ms = next_funding_ms(now, self._funding_period_ms)
        if now - self._last_mark_push_ms < self._mark_push_ms:
            return
        self._last_mark_push_ms = now
        mark = fmt8(self._market.mark)
        data: JsonDict = {
            "e": "markPriceUpdate",
            "E": now,
            "s": self._spec.symbol,
            "p": mark,
            "ap": mark,
            "P": mark,
            "i": mark,
            "r": self._funding_rate,
            "T": next_funding_ms(now, self._funding_period_ms),
        }
        self._hub.publish((self.stream("markPrice"), self.stream("markPrice@1s")), data)


class UserFeed:
    """Turns the matching engine's events into user data stream JSON, onto the hub."""

    def __init__(self, spec: SymbolSpec, hub: StreamHub) -> None:
        self._spec = spec
        self._hub = hub

    def __call__(self, event: UserEvent) -> None:
        self._hub.emit_user(self.json(event))

    def json(self, event: UserEvent) -> JsonDict:
        match event:
            case OrderUpdate():
                return self._order_update(event)
            case TradeLite():
                return self._trade_lite(event)
            case AccountUpdate():
                return self._account_update(event)
            case LeverageUpdate():
                now = event.time_ms
                return {
                    "e": "ACCOUNT_CONFIG_UPDATE",
                    "E": now,
                    "T": now,
                    "ac": {"s": event.symbol, "l": event.leverage},
                }
            case AlgoUpdate():
                return self._algo_update(event)

    def _algo_update(self, event: AlgoUpdate) -> JsonDict:
        """Binance's ``ALGO_UPDATE``: ``ai``/``ap``/``aq``/``act`` describe the order the
        trigger placed (``""``/``"0"`` before it); ``rm`` says why it was rejected."""
        spec, algo, now = self._spec, event.algo, event.time_ms
        triggered = algo.actual_order_id is not None
        data: JsonDict = {
            "caid": algo.client_algo_id,
            "aid": algo.algo_id,
            "at": "CONDITIONAL",
            "o": algo.type,
            "s": spec.symbol,
            "S": algo.side,
            "ps": "BOTH",
            "f": algo.time_in_force,
            "q": spec.qty(algo.quantity) if algo.quantity else "0",
            "X": algo.status,
            "ai": str(algo.actual_order_id) if triggered else "",
            "ap": spec.px(algo.avg_price) if algo.executed_qty else "0",
            "aq": spec.qty(algo.executed_qty) if algo.executed_qty else "0",
            "act": algo.actual_type if triggered else "0",
            "tp": spec.px(algo.trigger_price) if algo.trigger_price else "0",
            "p": spec.px(algo.price) if algo.price else "0",
            "V": "EXPIRE_MAKER",
            "wt": algo.working_type,
            "pm": "NONE",
            "cp": algo.close_position,
            "pP": algo.price_protect,
            "R": algo.reduce_only,
            "tt": algo.trigger_time_ms,
            "gtd": algo.good_till_date,
        }
        if algo.type == "TRAILING_STOP_MARKET":
            data["cr"] = format(algo.callback_rate, "f")
        if algo.reason:
            data["rm"] = algo.reason
        return {"e": "ALGO_UPDATE", "T": now, "E": now, "o": data}

    def _order_update(self, event: OrderUpdate) -> JsonDict:
        spec, order, fill, now = self._spec, event.order, event.fill, event.time_ms
        data: JsonDict = {
            "s": spec.symbol,
            "c": order.client_order_id,
            "S": order.side,
            "o": order.type,
            "f": order.time_in_force,
            "q": spec.qty(order.quantity),
            "p": spec.px(order.price),
            "ap": fmt8(order.avg_price),
            "sp": "0",
            "x": event.exec_type,
            "X": order.status,
            "i": order.order_id,
            "l": spec.qty(fill.qty if fill else ZERO),
            "z": spec.qty(order.executed_qty),
            "L": spec.px(fill.price if fill else ZERO),
            "T": now,
            "t": fill.trade_id if fill else 0,
            "b": fmt8(event.bid_notional),
            "a": fmt8(event.ask_notional),
            "m": fill.maker if fill else False,
            "R": order.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": order.type,
            "ps": "BOTH",
            "cp": False,
            "rp": fmt8(fill.realized_pnl if fill else ZERO),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": order.price_match,
            "gtd": order.good_till_date,
        }
        if fill is not None:  # Binance omits N/n when there is no commission
            data["N"] = fill.commission_asset
            data["n"] = fmt8(fill.commission)
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": data}

    def _trade_lite(self, event: TradeLite) -> JsonDict:
        spec, order, fill = self._spec, event.order, event.fill
        return {
            "e": "TRADE_LITE",
            "E": fill.time_ms,
            "T": fill.time_ms,
            "s": spec.symbol,
            "q": spec.qty(order.quantity),
            "p": spec.px(order.price),
            "m": fill.maker,
            "c": order.client_order_id,
            "S": order.side,
            "L": spec.px(fill.price),
            "l": spec.qty(fill.qty),
            "t": fill.trade_id,
            "i": order.order_id,
        }

    def _account_update(self, event: AccountUpdate) -> JsonDict:
        pos, now = event.position, event.time_ms
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": event.reason,
                "B": [
                    {
                        "a": QUOTE_ASSET,
                        "wb": fmt8(event.wallet),
                        "cw": fmt8(event.wallet),
                        "bc": fmt8(event.balance_change),
                    }
                ],
                "P": [
                    {
                        "s": pos.symbol,
                        "pa": self._spec.qty(pos.amount),
                        "ep": fmt8(pos.entry_price),
                        "bep": fmt8(pos.entry_price),
                        "cr": fmt8(pos.realized_pnl),
                        "up": fmt8(pos.unrealized_pnl),
                        "mt": "cross" if pos.margin_type == "CROSSED" else "isolated",
                        "iw": "0",
                        "ps": "BOTH",
                        "ma": QUOTE_ASSET,
                    }
                ],
            },
        }
