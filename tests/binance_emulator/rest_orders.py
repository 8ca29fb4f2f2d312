"""The signed order endpoints: place, modify, query, cancel, list, and the account's trades.

This is where a request becomes an order: the parameters are read and checked against the
symbol's filters in the order Binance checks them (so a bad request gets the code Binance would
give), then the matching engine takes over. Conditional order types are refused here with
-4120, as Binance refuses them since they moved to the Algo Service (:mod:`.rest_algo`).
"""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from typing import Final

from .algo import ALGO_ORDER_TYPES
from .clock import Clock
from .errors import MSG_POST_ONLY, MSG_UNKNOWN_ORDER, ApiError, mandatory
from .faults import Faults
from .filters import CLIENT_ORDER_ID_RE, GTD_MIN_AHEAD_MS, check_price, check_quantity
from .fmt import ZERO, JsonDict, fmt8
from .limits import RateLimiter
from .matching import MatchingEngine, NewOrder, Order
from .rest import Params, Route, bool_param, decimal_param, int_param, symbol_param
from .snapshots import OrderSnapshot
from .spec import SymbolSpec

MAX_BATCH_ORDERS: Final = 5
MSG_USE_ALGO: Final = (
    "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
)
TIME_IN_FORCES: Final = frozenset({"GTC", "IOC", "FOK", "GTX", "GTD"})


def order_json(spec: SymbolSpec, o: OrderSnapshot) -> JsonDict:
    return {
        "orderId": o.order_id,
        "symbol": spec.symbol,
        "status": o.status,
        "clientOrderId": o.client_order_id,
        "price": spec.px(o.price),
        "avgPrice": fmt8(o.avg_price),
        "origQty": spec.qty(o.quantity),
        "executedQty": spec.qty(o.executed_qty),
        "cumQty": spec.qty(o.executed_qty),
        "cumQuote": fmt8(o.cum_quote),
        "timeInForce": o.time_in_force,
        "type": o.type,
        "reduceOnly": o.reduce_only,
        "closePosition": False,
        "side": o.side,
        "positionSide": "BOTH",
        "stopPrice": "0",
        "workingType": "CONTRACT_PRICE",
        "priceProtect": False,
        "origType": o.type,
        "priceMatch": o.price_match,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": o.good_till_date,
        "time": o.time_ms,
        "updateTime": o.update_time_ms,
    }


class OrdersApi:
    def __init__(
        self,
        spec: SymbolSpec,
        engine: MatchingEngine,
        limiter: RateLimiter,
        faults: Faults,
        clock: Clock,
    ) -> None:
        self._spec = spec
        self._engine = engine
        self._market = engine.market
        self._limiter = limiter
        self._faults = faults
        self._clock = clock

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/fapi/v1/order", self.new_order, "SIGNED"),
            Route("PUT", "/fapi/v1/order", self.modify_order, "SIGNED"),
            Route("GET", "/fapi/v1/order", self.query_order, "SIGNED"),
            Route("DELETE", "/fapi/v1/order", self.cancel_order, "SIGNED"),
            Route("DELETE", "/fapi/v1/allOpenOrders", self.cancel_all, "SIGNED"),
            Route("DELETE", "/fapi/v1/batchOrders", self.cancel_batch, "SIGNED"),
            Route("GET", "/fapi/v1/openOrders", self.open_orders, "SIGNED", 1),
            Route("GET", "/fapi/v1/allOrders", self.all_orders, "SIGNED", 5),
            Route("GET", "/fapi/v1/userTrades", self.user_trades, "SIGNED", 5),
            Route("POST", "/fapi/v1/batchOrders", self.new_batch, "SIGNED", 5),
        ]

    def _symbol(self, params: Params, *, required: bool = True) -> str | None:
        return symbol_param(params, self._spec.symbol, required=required)

    def _json(self, order: Order) -> JsonDict:
        return order_json(self._spec, order.snapshot(self._spec.symbol))

    def _find(self, params: Params) -> Order | None:
        order_id = int_param(params, "orderId")
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise ApiError(400, -1102, "Either orderId or origClientOrderId must be sent.")
        return self._engine.find(order_id, client_id)

    def new_order(self, params: Params) -> JsonDict:
        self._symbol(params)
        spec, market = self._spec, self._market
        now = self._clock()
        self._limiter.record_order(now)
        reject = self._faults.take_reject()
        if reject is not None:
            raise reject
        side = params.get("side", "").upper()
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        order_type = params.get("type", "").upper()
        if not order_type:
            raise mandatory("type")
        if order_type in ALGO_ORDER_TYPES:
            raise ApiError(400, -4120, MSG_USE_ALGO)
        if order_type not in ("MARKET", "LIMIT"):
            raise ApiError(400, -1116, "Invalid orderType.")
        position_side = params.get("positionSide", "BOTH").upper()
        if position_side != "BOTH":
            raise ApiError(400, -4061, "Order's position side does not match user's setting.")
        if bool_param(params, "closePosition"):
            raise ApiError(400, -1106, "Parameter 'closePosition' sent when not required.")
        quantity = decimal_param(params, "quantity")
        check_quantity(spec, quantity, market=order_type == "MARKET")
        reduce_only = bool_param(params, "reduceOnly")
        client_id = params.get("newClientOrderId") or f"emu_{secrets.token_hex(8)}"
        if not CLIENT_ORDER_ID_RE.match(client_id):
            raise ApiError(400, -4015, "Client order id is not valid.")
        if any(o.client_order_id == client_id for o in self._engine.open_orders()):
            raise ApiError(400, -4116, "ClientOrderId is duplicated.")
        time_in_force = "GTC"
        price = ZERO
        price_match = "NONE"
        good_till_date = 0
        if order_type == "LIMIT":
            time_in_force = params.get("timeInForce", "").upper()
            if not time_in_force:
                raise mandatory("timeInForce")
            if time_in_force not in TIME_IN_FORCES:
                raise ApiError(400, -1115, "Invalid timeInForce.")
            price_match = params.get("priceMatch", "NONE").upper()
            if price_match != "NONE":
                if params.get("price"):
                    raise ApiError(400, -1106, "Parameter 'price' sent when not required.")
                opponent = price_match.startswith("OPPONENT")
                price = market.ask if (side == "BUY") == opponent else market.bid
            else:
                price = decimal_param(params, "price")
            self._check_limit_price(side, price)
            if time_in_force == "GTD":
                gtd = int_param(params, "goodTillDate")
                if gtd is None:
                    raise mandatory("goodTillDate")
                if gtd <= now + GTD_MIN_AHEAD_MS:
                    raise ApiError(
                        400,
                        -4129,
                        "goodTillDate must be greater than current time plus 600 seconds.",
                    )
                good_till_date = gtd - gtd % 1000
            if time_in_force == "GTX" and market.marketable(side, price):
                raise ApiError(400, -5022, MSG_POST_ONLY)
        ack = self._engine.place(
            NewOrder(
                side=side,
                type=order_type,
                quantity=quantity,
                price=price,
                time_in_force=time_in_force,
                reduce_only=reduce_only,
                client_order_id=client_id,
                price_match=price_match,
                good_till_date=good_till_date,
            )
        )
        if params.get("newOrderRespType", "ACK").upper() == "RESULT":
            return self._json(self._engine.orders[ack.order_id])
        return order_json(self._spec, ack)

    def _check_limit_price(self, side: str, price: Decimal) -> None:
        """PRICE_FILTER, then PERCENT_PRICE against the mark."""
        spec = self._spec
        check_price(spec, price)
        mark = self._market.mark
        if side == "BUY" and price > mark * spec.multiplier_up:
            cap = spec.px(mark * spec.multiplier_up)
            raise ApiError(400, -4016, f"Limit price can't be higher than {cap}.")
        if side == "SELL" and price < mark * spec.multiplier_down:
            floor = spec.px(mark * spec.multiplier_down)
            raise ApiError(400, -4024, f"Limit price can't be lower than {floor}.")

    def modify_order(self, params: Params) -> JsonDict:
        self._symbol(params)
        order = self._find(params)
        if order is None:
            raise ApiError(400, -2013, "Order does not exist.")
        if not order.is_open or order.type != "LIMIT":
            raise ApiError(400, -2011, MSG_UNKNOWN_ORDER)
        side = params.get("side", "").upper()
        if side != order.side:
            raise ApiError(400, -1117, "Invalid side.")
        quantity = decimal_param(params, "quantity")
        price = decimal_param(params, "price")
        self._engine.amend(order, quantity, price)
        return self._json(order)

    def query_order(self, params: Params) -> JsonDict:
        self._symbol(params)
        order = self._find(params)
        if order is None:
            raise ApiError(400, -2013, "Order does not exist.")
        return self._json(order)

    def cancel_order(self, params: Params) -> JsonDict:
        self._symbol(params)
        order = self._find(params)
        if order is None or not order.is_open:
            raise ApiError(400, -2011, MSG_UNKNOWN_ORDER)
        self._engine.cancel(order)
        return self._json(order)

    def new_batch(self, params: Params) -> list[JsonDict]:
        """``batchOrders``: up to five orders as a JSON list, each answered in its place
        with the order or its error (a conditional type: -4120, as on ``/order``)."""
        try:
            items = json.loads(params.get("batchOrders") or "null")
        except json.JSONDecodeError:
            raise mandatory("batchOrders") from None
        if not isinstance(items, list) or not items:
            raise mandatory("batchOrders")
        if len(items) > MAX_BATCH_ORDERS:
            raise ApiError(400, -1130, "Data sent for parameter 'batchOrders' is not valid.")
        results: list[JsonDict] = []
        for item in items:
            if not isinstance(item, dict):
                results.append({"code": -1130, "msg": "Invalid data sent for a parameter."})
                continue
            order_params = {
                str(k): str(v).lower() if isinstance(v, bool) else str(v) for k, v in item.items()
            }
            try:
                results.append(self.new_order(order_params))
            except ApiError as refused:
                results.append({"code": refused.code, "msg": refused.msg})
        return results

    def cancel_all(self, params: Params) -> JsonDict:
        """The regular orders only: conditional ones wait in the Algo Service, whose own
        cancel-all is ``DELETE /fapi/v1/algoOpenOrders``."""
        self._symbol(params)
        self._engine.cancel_all()
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def cancel_batch(self, params: Params) -> list[JsonDict]:
        self._symbol(params)
        ids: list[object]
        key = "orderIdList" if params.get("orderIdList") else "origClientOrderIdList"
        try:
            ids = json.loads(params.get(key) or "null")
        except json.JSONDecodeError:
            raise mandatory(key) from None
        if not isinstance(ids, list) or not ids:
            raise mandatory("orderIdList or origClientOrderIdList")
        if len(ids) > 10:
            raise ApiError(400, -4032, "Exceed maximum cancel order size.")
        results: list[JsonDict] = []
        for ident in ids:
            by = "orderId" if key == "orderIdList" else "origClientOrderId"
            try:
                order = self._find({by: str(ident)})
            except ApiError:
                order = None
            if order is None or not order.is_open:
                results.append({"code": -2011, "msg": MSG_UNKNOWN_ORDER})
                continue
            self._engine.cancel(order)
            results.append(self._json(order))
        return results

    def open_orders(self, params: Params) -> list[JsonDict]:
        self._symbol(params, required=False)
        return [self._json(o) for o in self._engine.open_orders()]

    def all_orders(self, params: Params) -> list[JsonDict]:
        self._symbol(params)
        order_id = int_param(params, "orderId")
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        limit = min(int_param(params, "limit", 500) or 500, 1000)
        orders = [
            o
            for o in self._engine.orders.values()
            if (order_id is None or o.order_id >= order_id)
            and (start is None or o.time_ms >= start)
            and (end is None or o.time_ms <= end)
        ]
        return [self._json(o) for o in orders[:limit]]

    def user_trades(self, params: Params) -> list[JsonDict]:
        self._symbol(params)
        spec = self._spec
        order_id = int_param(params, "orderId")
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        from_id = int_param(params, "fromId")
        limit = min(int_param(params, "limit", 500) or 500, 1000)
        fills = [
            f
            for f in self._engine.fills
            if (order_id is None or f.order_id == order_id)
            and (start is None or f.time_ms >= start)
            and (end is None or f.time_ms <= end)
            and (from_id is None or f.trade_id >= from_id)
        ]
        fills = fills[:limit] if from_id is not None else fills[-limit:]
        return [
            {
                "buyer": f.side == "BUY",
                "commission": fmt8(f.commission),
                "commissionAsset": f.commission_asset,
                "id": f.trade_id,
                "maker": f.maker,
                "orderId": f.order_id,
                "price": spec.px(f.price),
                "qty": spec.qty(f.qty),
                "quoteQty": fmt8(f.quote_qty),
                "realizedPnl": fmt8(f.realized_pnl),
                "side": f.side,
                "positionSide": "BOTH",
                "symbol": f.symbol,
                "time": f.time_ms,
            }
            for f in fills
        ]
