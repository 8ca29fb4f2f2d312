"""The public REST endpoints: exchange info, server time, book, trades, klines, tickers.

Clients load the instrument from ``exchangeInfo`` (filters, precision) and seed their state
from the book, trades and klines before the streams take over, so these replies describe the
same market the streams carry, in Binance's shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Final

from .algo import MAX_OPEN_ALGO_ORDERS
from .clock import Clock, next_funding_ms
from .errors import ApiError, mandatory
from .faults import Faults
from .feeds import FUNDING_RATE
from .fmt import ZERO, JsonDict, fmt8
from .klines import KLINE_MINUTES, Kline
from .limits import REQUEST_WEIGHT_LIMIT_1M
from .market import Market, Trade
from .rest import Params, Route, int_param, symbol_param
from .spec import QUOTE_ASSET, SymbolSpec

DEPTH_LIMITS: Final = (5, 10, 20, 50, 100, 500, 1000)


type Settlements = Callable[[], Sequence[tuple[int, Decimal, Decimal]]]


class MarketDataApi:
    def __init__(
        self,
        spec: SymbolSpec,
        market: Market,
        clock: Clock,
        faults: Faults | None = None,
        settlements: Settlements = lambda: (),
    ) -> None:
        """``settlements``: the funding settled so far (time ms, rate, mark), oldest first;
        ``faults``: where the history endpoints learn they should fail."""
        self._spec = spec
        self._market = market
        self._clock = clock
        self._faults = faults or Faults()
        self._settlements = settlements

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/fapi/v1/ping", lambda p: {}, "NONE"),
            Route("GET", "/fapi/v1/time", lambda p: {"serverTime": self._clock()}, "NONE"),
            Route("GET", "/fapi/v1/exchangeInfo", self.exchange_info, "NONE"),
            Route("GET", "/fapi/v1/depth", self.depth, "NONE", 5),
            Route("GET", "/fapi/v1/trades", self.trades, "NONE", 5),
            Route("GET", "/fapi/v1/historicalTrades", self.trades, "NONE", 20),
            Route("GET", "/fapi/v1/aggTrades", self._history(self.agg_trades), "NONE", 20),
            Route("GET", "/fapi/v1/klines", self._history(self.klines), "NONE", 2),
            Route("GET", "/fapi/v1/fundingRate", self._history(self.funding_rate), "NONE", 1),
            Route("GET", "/fapi/v1/ticker/price", self.ticker_price, "NONE"),
            Route("GET", "/fapi/v2/ticker/price", self.ticker_price, "NONE"),
            Route("GET", "/fapi/v1/ticker/bookTicker", self.book_ticker, "NONE", 2),
            Route("GET", "/fapi/v1/ticker/24hr", self.ticker_24hr, "NONE"),
            Route("GET", "/fapi/v1/premiumIndex", self.premium_index, "NONE"),
        ]

    def _history[T](self, handler: Callable[[Params], T]) -> Callable[[Params], T]:
        """A history endpoint, failing while the test says the venue cannot serve its past."""

        def answer(params: Params) -> T:
            failure = self._faults.take_history_failure()
            if failure is not None:
                raise failure
            return handler(params)

        return answer

    def funding_rate(self, params: Params) -> list[JsonDict]:
        """``/fapi/v1/fundingRate``: the settlements in [startTime, endTime], oldest first,
        ``limit`` (default 100, at most 1000) of them: from startTime on when it is given,
        else the latest."""
        self._symbol(params)
        limit = min(int_param(params, "limit", 100) or 100, 1000)
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        rows = [
            (at, rate, mark)
            for at, rate, mark in self._settlements()
            if (start is None or at >= start) and (end is None or at <= end)
        ]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return [
            {
                "symbol": self._spec.symbol,
                "fundingTime": at,
                "fundingRate": f"{rate:.8f}",
                "markPrice": fmt8(mark),
            }
            for at, rate, mark in rows
        ]

    def _symbol(self, params: Params, *, required: bool = True) -> str | None:
        return symbol_param(params, self._spec.symbol, required=required)

    def symbol_info(self) -> JsonDict:
        spec = self._spec
        return {
            "symbol": spec.symbol,
            "pair": spec.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": spec.onboard_ms,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": spec.base_asset,
            "quoteAsset": QUOTE_ASSET,
            "marginAsset": QUOTE_ASSET,
            "pricePrecision": spec.price_precision,
            "quantityPrecision": spec.quantity_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": ["PoW"],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": spec.px(spec.min_price),
                    "maxPrice": spec.px(spec.max_price),
                    "tickSize": str(spec.tick_size),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": spec.qty(spec.min_qty),
                    "maxQty": str(spec.max_qty),
                    "stepSize": str(spec.step_size),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": spec.qty(spec.min_qty),
                    "maxQty": str(spec.max_market_qty),
                    "stepSize": str(spec.step_size),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": MAX_OPEN_ALGO_ORDERS},
                {"filterType": "MIN_NOTIONAL", "notional": str(spec.min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": str(spec.multiplier_up),
                    "multiplierDown": str(spec.multiplier_down),
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSet": ["GRID", "COPY"],
        }

    def exchange_info(self, params: Params) -> JsonDict:
        return {
            "timezone": "UTC",
            "serverTime": self._clock(),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {
                    "rateLimitType": "REQUEST_WEIGHT",
                    "interval": "MINUTE",
                    "intervalNum": 1,
                    "limit": REQUEST_WEIGHT_LIMIT_1M,
                },
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [
                {"asset": QUOTE_ASSET, "marginAvailable": True, "autoAssetExchange": "-10000"},
                {"asset": self._spec.base_asset, "marginAvailable": True, "autoAssetExchange": "0"},
            ],
            "symbols": [self.symbol_info()],
        }

    def depth(self, params: Params) -> JsonDict:
        self._symbol(params)
        limit = int_param(params, "limit", 500) or 500
        if limit not in DEPTH_LIMITS:
            raise ApiError(400, -4021, "Invalid depth limit.")
        spec, m = self._spec, self._market
        tick, step = spec.tick_size, spec.step_size
        now = self._clock()

        def size(i: int, salt: int) -> str:
            return spec.qty(step * (1 + (i * 7919 + m.book_update_id * salt) % 997))

        bids = [
            [spec.px(m.bid - tick * i), spec.qty(m.bid_qty) if i == 0 else size(i, 3)]
            for i in range(limit)
            if m.bid - tick * i > 0
        ]
        asks = [
            [spec.px(m.ask + tick * i), spec.qty(m.ask_qty) if i == 0 else size(i, 5)]
            for i in range(limit)
        ]
        return {"lastUpdateId": m.book_update_id, "E": now, "T": now, "bids": bids, "asks": asks}

    def _filter_trades(self, params: Params) -> list[Trade]:
        limit = min(int_param(params, "limit", 500) or 500, 1000)
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        from_id = int_param(params, "fromId")
        trades = [
            t
            for t in self._market.trades
            if (start is None or t.time_ms >= start)
            and (end is None or t.time_ms <= end)
            and (from_id is None or t.trade_id >= from_id)
        ]
        return trades[:limit] if (start is not None or from_id is not None) else trades[-limit:]

    def trades(self, params: Params) -> list[JsonDict]:
        self._symbol(params)
        spec = self._spec
        return [
            {
                "id": t.trade_id,
                "price": spec.px(t.price),
                "qty": spec.qty(t.qty),
                "quoteQty": fmt8(t.price * t.qty),
                "time": t.time_ms,
                "isBuyerMaker": t.buyer_maker,
            }
            for t in self._filter_trades(params)
        ]

    def agg_trades(self, params: Params) -> list[JsonDict]:
        self._symbol(params)
        spec = self._spec
        return [
            {
                "a": t.trade_id,
                "p": spec.px(t.price),
                "q": spec.qty(t.qty),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": t.time_ms,
                "m": t.buyer_maker,
            }
            for t in self._filter_trades(params)
        ]

    def _kline_row(self, k: Kline) -> list[object]:
        spec = self._spec
        return [
            k.open_time,
            spec.px(k.open),
            spec.px(k.high),
            spec.px(k.low),
            spec.px(k.close),
            spec.qty(k.volume),
            k.close_time,
            fmt8(k.quote_volume),
            k.trades,
            spec.qty(k.taker_base),
            fmt8(k.taker_quote),
            "0",
        ]

    def klines(self, params: Params) -> list[list[object]]:
        self._symbol(params)
        interval = params.get("interval")
        if not interval:
            raise mandatory("interval")
        if interval not in KLINE_MINUTES:
            raise ApiError(400, -1120, "Invalid interval.")
        limit = min(int_param(params, "limit", 500) or 500, 1500)
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        self._market.ensure_kline(interval, self._clock())
        rows = [
            k
            for k in self._market.klines.rows(interval)
            if (start is None or k.open_time >= start) and (end is None or k.open_time <= end)
        ]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return [self._kline_row(k) for k in rows]

    def ticker_price(self, params: Params) -> object:
        symbol = self._symbol(params, required=False)
        spec = self._spec
        item = {"symbol": spec.symbol, "price": spec.px(self._market.last), "time": self._clock()}
        return item if symbol else [item]

    def book_ticker(self, params: Params) -> object:
        symbol = self._symbol(params, required=False)
        spec, m = self._spec, self._market
        item = {
            "symbol": spec.symbol,
            "bidPrice": spec.px(m.bid),
            "bidQty": spec.qty(m.bid_qty),
            "askPrice": spec.px(m.ask),
            "askQty": spec.qty(m.ask_qty),
            "time": self._clock(),
        }
        return item if symbol else [item]

    def ticker_24hr(self, params: Params) -> object:
        symbol = self._symbol(params, required=False)
        spec, last = self._spec, self._market.last
        now = self._clock()
        trades = [t for t in self._market.trades if t.time_ms >= now - 86_400_000]
        prices = [t.price for t in trades] or [last]
        volume = sum((t.qty for t in trades), ZERO)
        quote_volume = sum((t.qty * t.price for t in trades), ZERO)
        open_price = prices[0]
        item: JsonDict = {
            "symbol": spec.symbol,
            "priceChange": spec.px(last - open_price),
            "priceChangePercent": fmt8((last / open_price - 1) * 100),
            "weightedAvgPrice": spec.px(quote_volume / volume if volume else last),
            "lastPrice": spec.px(last),
            "lastQty": spec.qty(trades[-1].qty if trades else ZERO),
            "openPrice": spec.px(open_price),
            "highPrice": spec.px(max(prices)),
            "lowPrice": spec.px(min(prices)),
            "volume": spec.qty(volume),
            "quoteVolume": fmt8(quote_volume),
            "openTime": trades[0].time_ms if trades else now,
            "closeTime": now,
            "firstId": trades[0].trade_id if trades else -1,
            "lastId": trades[-1].trade_id if trades else -1,
            "count": len(trades),
        }
        return item if symbol else [item]

    def premium_index(self, params: Params) -> object:
        symbol = self._symbol(params, required=False)
        mark = fmt8(self._market.mark)
        now = self._clock()
        item = {
            "symbol": self._spec.symbol,
            "markPrice": mark,
            "indexPrice": mark,
            "estimatedSettlePrice": mark,
            "lastFundingRate": FUNDING_RATE,
            "interestRate": "0.00010000",
            "nextFundingTime": next_funding_ms(now),
            "time": now,
        }
        return item if symbol else [item]
