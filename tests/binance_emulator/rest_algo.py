"""The Algo Service's signed endpoints: conditional orders placed, queried, listed, cancelled.

Binance answers these as its Algo Service does (``algoId``, ``clientAlgoId``, ``algoStatus``;
a cancel's ``code`` is the string ``"200"``), and checks a request's parameters in the order
its documentation lists them, so a bad one gets the code Binance would give. The states and
the triggering are :mod:`.algo`'s.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from .algo import ALGO_ORDER_TYPES, LIMIT_TYPES, AlgoService, NewAlgo
from .clock import Clock
from .errors import MSG_UNKNOWN_ORDER, ApiError, mandatory
from .filters import CLIENT_ORDER_ID_RE, GTD_MIN_AHEAD_MS, check_price, check_quantity
from .fmt import ZERO, JsonDict
from .limits import RateLimiter
from .rest import Params, Route, bool_param, decimal_param, int_param, symbol_param
from .snapshots import AlgoSnapshot
from .spec import SymbolSpec

ALGO_TIME_IN_FORCES: Final = frozenset({"GTC", "IOC", "FOK", "GTD", "GTE_GTC"})
WORKING_TYPES: Final = frozenset({"CONTRACT_PRICE", "MARK_PRICE"})
MIN_CALLBACK_RATE: Final = Decimal("0.1")
MAX_CALLBACK_RATE: Final = Decimal(10)


def invalid(name: str) -> ApiError:
    return ApiError(400, -1130, f"Data sent for parameter '{name}' is not valid.")


def not_required(name: str) -> ApiError:
    return ApiError(400, -1106, f"Parameter '{name}' sent when not required.")


def algo_json(spec: SymbolSpec, a: AlgoSnapshot, *, detail: bool = False) -> JsonDict:
    """An algo order as ``POST /fapi/v1/algoOrder`` answers it; with ``detail``, as the
    query and list endpoints do (with the triggered order's id and average price)."""
    data: JsonDict = {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.type,
        "symbol": spec.symbol,
        "side": a.side,
        "positionSide": "BOTH",
        "timeInForce": a.time_in_force,
        "quantity": spec.qty(a.quantity) if a.quantity else "0",
        "algoStatus": a.status,
        "triggerPrice": spec.px(a.trigger_price) if a.trigger_price else "0",
        "price": spec.px(a.price) if a.price else "0",
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": a.working_type,
        "priceMatch": "NONE",
        "closePosition": a.close_position,
        "priceProtect": a.price_protect,
        "reduceOnly": a.reduce_only,
        "createTime": a.create_time_ms,
        "updateTime": a.update_time_ms,
        "triggerTime": a.trigger_time_ms,
        "goodTillDate": a.good_till_date,
    }
    if a.type == "TRAILING_STOP_MARKET":  # only a trailing stop carries these
        data["activatePrice"] = spec.px(a.activate_price) if a.activate_price else ""
        data["callbackRate"] = format(a.callback_rate, "f")
    if detail:
        data["actualOrderId"] = str(a.actual_order_id) if a.actual_order_id is not None else ""
        data["actualPrice"] = spec.px(a.avg_price) if a.executed_qty else "0"
    return data


class AlgoOrdersApi:
    def __init__(
        self, spec: SymbolSpec, algos: AlgoService, limiter: RateLimiter, clock: Clock
    ) -> None:
        self._spec = spec
        self._algos = algos
        self._market = algos.market
        self._limiter = limiter
        self._clock = clock

    def routes(self) -> list[Route]:
        return [
            # Weight 0 on the IP's request weight, as Binance documents it; it counts as
            # an order in the order-count windows.
            Route("POST", "/fapi/v1/algoOrder", self.new_algo_order, "SIGNED", 0),
            Route("GET", "/fapi/v1/algoOrder", self.query_algo_order, "SIGNED"),
            Route("DELETE", "/fapi/v1/algoOrder", self.cancel_algo_order, "SIGNED"),
            Route("GET", "/fapi/v1/openAlgoOrders", self.open_algo_orders, "SIGNED"),
            Route("GET", "/fapi/v1/allAlgoOrders", self.all_algo_orders, "SIGNED", 5),
            Route("DELETE", "/fapi/v1/algoOpenOrders", self.cancel_all_algo, "SIGNED"),
        ]

    def _json(self, algo: AlgoSnapshot, *, detail: bool = False) -> JsonDict:
        return algo_json(self._spec, algo, detail=detail)

    def _find(self, params: Params) -> AlgoSnapshot | None:
        algo_id = int_param(params, "algoId")
        client_id = params.get("clientAlgoId")
        if algo_id is None and not client_id:
            raise ApiError(400, -1102, "Either algoId or clientAlgoId must be sent.")
        algo = self._algos.find(algo_id, client_id)
        return self._algos.snapshot(algo) if algo is not None else None

    def new_algo_order(self, params: Params) -> JsonDict:
        symbol_param(params, self._spec.symbol)
        now = self._clock()
        self._limiter.record_order(now)
        algo_type = params.get("algoType", "")
        if not algo_type:
            raise mandatory("algoType")
        if algo_type.upper() != "CONDITIONAL":
            raise invalid("algoType")
        side = params.get("side", "").upper()
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise ApiError(400, -1117, "Invalid side.")
        order_type = params.get("type", "").upper()
        if not order_type:
            raise mandatory("type")
        if order_type not in ALGO_ORDER_TYPES:
            raise ApiError(400, -1116, "Invalid orderType.")
        if params.get("positionSide", "BOTH").upper() != "BOTH":
            raise ApiError(400, -4061, "Order's position side does not match user's setting.")
        time_in_force = params.get("timeInForce", "GTC").upper()
        if time_in_force not in ALGO_TIME_IN_FORCES:
            raise ApiError(400, -1115, "Invalid timeInForce.")
        close_position = bool_param(params, "closePosition")
        reduce_only = bool_param(params, "reduceOnly")
        quantity = ZERO
        if close_position:
            if order_type not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
                raise ApiError(
                    400,
                    -4136,
                    f"Target strategy invalid for orderType {order_type},closePosition true",
                )
            if params.get("quantity"):
                raise not_required("quantity")
            if reduce_only:
                raise not_required("reduceOnly")
        else:
            quantity = self._quantity(params, order_type)
        price = ZERO
        if order_type in LIMIT_TYPES:
            if params.get("priceMatch", "NONE").upper() != "NONE":
                raise ApiError(400, -1000, "emulator: priceMatch on algo orders is not emulated")
            price = decimal_param(params, "price")
            self._check_price(price)
        elif params.get("price") and decimal_param(params, "price") != 0:
            raise not_required("price")
        trigger_price = ZERO
        activate_price = ZERO
        callback_rate = ZERO
        if order_type == "TRAILING_STOP_MARKET":
            if params.get("triggerPrice"):
                raise not_required("triggerPrice")
            callback_rate = decimal_param(params, "callbackRate")
            if not MIN_CALLBACK_RATE <= callback_rate <= MAX_CALLBACK_RATE:
                raise invalid("callbackRate")
            if params.get("activatePrice"):
                activate_price = decimal_param(params, "activatePrice")
                self._check_price(activate_price)
        else:
            trigger_price = decimal_param(params, "triggerPrice")
            self._check_price(trigger_price)
        working_type = params.get("workingType", "CONTRACT_PRICE").upper()
        if working_type not in WORKING_TYPES:
            raise invalid("workingType")
        client_id = params.get("clientAlgoId", "")
        if client_id and not CLIENT_ORDER_ID_RE.match(client_id):
            raise ApiError(400, -4015, "Client order id is not valid.")
        good_till_date = 0
        if time_in_force == "GTD":
            gtd = int_param(params, "goodTillDate")
            if gtd is None:
                raise mandatory("goodTillDate")
            if gtd <= now + GTD_MIN_AHEAD_MS:
                raise ApiError(
                    400, -4129, "goodTillDate must be greater than current time plus 600 seconds."
                )
            good_till_date = gtd - gtd % 1000
        accepted = self._algos.place(
            NewAlgo(
                side=side,
                type=order_type,
                quantity=quantity,
                trigger_price=trigger_price,
                price=price,
                time_in_force=time_in_force,
                working_type=working_type,
                close_position=close_position,
                price_protect=bool_param(params, "priceProtect"),
                reduce_only=reduce_only,
                client_algo_id=client_id,
                activate_price=activate_price,
                callback_rate=callback_rate,
                good_till_date=good_till_date,
            )
        )
        return self._json(accepted)

    def _quantity(self, params: Params, order_type: str) -> Decimal:
        """LOT_SIZE (MARKET_LOT_SIZE for what triggers a market order)."""
        quantity = decimal_param(params, "quantity")
        check_quantity(self._spec, quantity, market=order_type not in LIMIT_TYPES)
        return quantity

    def _check_price(self, price: Decimal) -> None:
        """PRICE_FILTER (the percent-price band applies to the order a trigger places)."""
        check_price(self._spec, price)

    def query_algo_order(self, params: Params) -> JsonDict:
        algo = self._find(params)
        if algo is None:
            raise ApiError(400, -2013, "Order does not exist.")
        return self._json(algo, detail=True)

    def cancel_algo_order(self, params: Params) -> JsonDict:
        found = self._find(params)
        algo = self._algos.orders.get(found.algo_id) if found is not None else None
        if algo is None or algo.status != "NEW":
            raise ApiError(400, -2011, MSG_UNKNOWN_ORDER)
        self._algos.cancel(algo)
        return {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_algo_id,
            "code": "200",
            "msg": "success",
        }

    def open_algo_orders(self, params: Params) -> list[JsonDict]:
        symbol_param(params, self._spec.symbol, required=False)
        algo_type = params.get("algoType")
        if algo_type and algo_type.upper() != "CONDITIONAL":
            raise invalid("algoType")
        algo_id = int_param(params, "algoId")
        return [
            self._json(self._algos.snapshot(a), detail=True)
            for a in self._algos.open_orders()
            if algo_id is None or a.algo_id == algo_id
        ]

    def all_algo_orders(self, params: Params) -> list[JsonDict]:
        symbol_param(params, self._spec.symbol)
        algo_id = int_param(params, "algoId")
        start = int_param(params, "startTime")
        end = int_param(params, "endTime")
        limit = min(int_param(params, "limit", 500) or 500, 1000)
        page = max(int_param(params, "page", 1) or 1, 1)
        algos = [
            a
            for a in self._algos.orders.values()
            if (algo_id is None or a.algo_id >= algo_id)
            and (start is None or a.create_time_ms >= start)
            and (end is None or a.create_time_ms <= end)
        ]
        chosen = algos[(page - 1) * limit : page * limit]
        return [self._json(self._algos.snapshot(a), detail=True) for a in chosen]

    def cancel_all_algo(self, params: Params) -> JsonDict:
        symbol_param(params, self._spec.symbol)
        self._algos.cancel_all()
        return {"code": 200, "msg": "The operation of cancel all open order is done."}
