"""The signed account endpoints and the listenKey endpoints of the user data stream.

A client reconciles against these after a (re)start: wallet and margin figures, the position,
the symbol's leverage and margin type, its fee rates. They all read the matching engine's books
so that they agree with the fills and the ``ACCOUNT_UPDATE`` events to the last digit.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from .errors import ApiError, mandatory
from .fmt import ZERO, JsonDict, fmt8
from .matching import Figures, MatchingEngine
from .rest import Params, Route, bool_param, int_param, symbol_param
from .spec import QUOTE_ASSET, SymbolSpec
from .streams import StreamHub

log = logging.getLogger(__name__)


class AccountApi:
    def __init__(
        self, spec: SymbolSpec, engine: MatchingEngine, hub: StreamHub, *, fee_tier: int
    ) -> None:
        self._spec = spec
        self._engine = engine
        self._hub = hub
        self._fee_tier = fee_tier

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/fapi/v1/listenKey", self.listen_key_new, "USER_STREAM"),
            Route("PUT", "/fapi/v1/listenKey", self.listen_key_keepalive, "USER_STREAM"),
            Route("DELETE", "/fapi/v1/listenKey", self.listen_key_close, "USER_STREAM"),
            Route("GET", "/fapi/v2/account", self.account, "SIGNED", 5),
            Route("GET", "/fapi/v3/account", self.account_v3, "SIGNED", 5),
            Route("GET", "/fapi/v2/balance", self.balance, "SIGNED", 5),
            Route("GET", "/fapi/v3/balance", self.balance, "SIGNED", 5),
            Route("GET", "/fapi/v2/positionRisk", self.position_risk_v2, "SIGNED", 5),
            Route("GET", "/fapi/v3/positionRisk", self.position_risk_v3, "SIGNED", 5),
            Route("GET", "/fapi/v1/symbolConfig", self.symbol_config, "SIGNED", 5),
            Route("GET", "/fapi/v1/commissionRate", self.commission_rate, "SIGNED", 20),
            Route("GET", "/fapi/v1/leverageBracket", self.leverage_bracket, "SIGNED"),
            Route("POST", "/fapi/v1/leverage", self.leverage, "SIGNED"),
            Route("POST", "/fapi/v1/marginType", self.margin_type, "SIGNED"),
            Route("GET", "/fapi/v1/positionSide/dual", self.dual_get, "SIGNED", 30),
            Route("POST", "/fapi/v1/positionSide/dual", self.dual_post, "SIGNED"),
            Route("GET", "/fapi/v1/income", self.income, "SIGNED", 30),
        ]

    def income(self, params: Params) -> list[JsonDict]:
        """The income history (funding fees only), oldest first, by type and time."""
        kind = params.get("incomeType")
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        limit = int(params.get("limit", 100))
        rows = [
            r
            for r in self._engine.incomes
            if (kind is None or r["incomeType"] == kind) and start <= int(str(r["time"])) <= end
        ]
        return rows[:limit]

    def _symbol(self, params: Params, *, required: bool = True) -> str | None:
        return symbol_param(params, self._spec.symbol, required=required)

    def listen_key_new(self, params: Params) -> JsonDict:
        return {"listenKey": self._hub.open_listen_key()}

    def listen_key_keepalive(self, params: Params) -> JsonDict:
        return {"listenKey": self._hub.keepalive_listen_key()}

    def listen_key_close(self, params: Params) -> JsonDict:
        self._hub.close_listen_key()
        return {}

    def _asset_json(self, f: Figures) -> JsonDict:
        wallet = self._engine.wallet
        return {
            "asset": QUOTE_ASSET,
            "walletBalance": fmt8(wallet),
            "unrealizedProfit": fmt8(f.upnl),
            "marginBalance": fmt8(f.margin_balance),
            "maintMargin": fmt8(f.maint_margin),
            "initialMargin": fmt8(f.initial_margin),
            "positionInitialMargin": fmt8(f.position_initial_margin),
            "openOrderInitialMargin": fmt8(f.open_order_initial_margin),
            "crossWalletBalance": fmt8(wallet),
            "crossUnPnl": fmt8(f.upnl),
            "availableBalance": fmt8(f.available),
            "maxWithdrawAmount": fmt8(min(f.available, wallet)),
            "marginAvailable": True,
            "updateTime": self._engine.account_update_ms,
        }

    def account(self, params: Params) -> JsonDict:
        engine, spec = self._engine, self._spec
        f = engine.figures()
        pos = engine.position
        wallet = engine.wallet
        return {
            "feeTier": self._fee_tier,
            "feeBurn": False,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            "totalInitialMargin": fmt8(f.initial_margin),
            "totalMaintMargin": fmt8(f.maint_margin),
            "totalWalletBalance": fmt8(wallet),
            "totalUnrealizedProfit": fmt8(f.upnl),
            "totalMarginBalance": fmt8(f.margin_balance),
            "totalPositionInitialMargin": fmt8(f.position_initial_margin),
            "totalOpenOrderInitialMargin": fmt8(f.open_order_initial_margin),
            "totalCrossWalletBalance": fmt8(wallet),
            "totalCrossUnPnl": fmt8(f.upnl),
            "availableBalance": fmt8(f.available),
            "maxWithdrawAmount": fmt8(min(f.available, wallet)),
            "assets": [self._asset_json(f)],
            "positions": [
                {
                    "symbol": spec.symbol,
                    "initialMargin": fmt8(f.initial_margin),
                    "maintMargin": fmt8(f.maint_margin),
                    "unrealizedProfit": fmt8(f.upnl),
                    "positionInitialMargin": fmt8(f.position_initial_margin),
                    "openOrderInitialMargin": fmt8(f.open_order_initial_margin),
                    "leverage": str(engine.leverage),
                    "isolated": engine.margin_type == "ISOLATED",
                    "entryPrice": fmt8(pos.entry_price),
                    "breakEvenPrice": fmt8(pos.entry_price),
                    "maxNotional": str(spec.max_notional(engine.leverage)),
                    "bidNotional": fmt8(f.bid_notional),
                    "askNotional": fmt8(f.ask_notional),
                    "positionSide": "BOTH",
                    "positionAmt": spec.qty(pos.amount),
                    "updateTime": pos.update_time_ms,
                }
            ],
        }

    def account_v3(self, params: Params) -> JsonDict:
        """v3 keeps v2's totals and assets but lists positions in a leaner shape, with the
        signed ``notional`` (clients read the side from it), and only for symbols with a
        position or open orders."""
        engine = self._engine
        f = engine.figures()
        pos = engine.position
        positions: list[JsonDict] = []
        if pos.amount or engine.open_orders():
            positions.append(
                {
                    "symbol": self._spec.symbol,
                    "positionSide": "BOTH",
                    "positionAmt": self._spec.qty(pos.amount),
                    "unrealizedProfit": fmt8(f.upnl),
                    "isolatedMargin": fmt8(ZERO),
                    "notional": fmt8(f.notional),
                    "isolatedWallet": "0",
                    "initialMargin": fmt8(f.initial_margin),
                    "maintMargin": fmt8(f.maint_margin),
                    "updateTime": pos.update_time_ms,
                }
            )
        return self.account(params) | {"positions": positions}

    def balance(self, params: Params) -> list[JsonDict]:
        engine = self._engine
        f = engine.figures()
        return [
            {
                "accountAlias": "SgsR",
                "asset": QUOTE_ASSET,
                "balance": fmt8(engine.wallet),
                "crossWalletBalance": fmt8(engine.wallet),
                "crossUnPnl": fmt8(f.upnl),
                "availableBalance": fmt8(f.available),
                "maxWithdrawAmount": fmt8(min(f.available, engine.wallet)),
                "marginAvailable": True,
                "updateTime": engine.account_update_ms,
            }
        ]

    def _position_risk_common(self, f: Figures) -> JsonDict:
        engine, spec = self._engine, self._spec
        pos = engine.position
        return {
            "symbol": spec.symbol,
            "positionSide": "BOTH",
            "positionAmt": spec.qty(pos.amount),
            "entryPrice": fmt8(pos.entry_price),
            "breakEvenPrice": fmt8(pos.entry_price),
            "markPrice": fmt8(engine.market.mark),
            "unRealizedProfit": fmt8(f.upnl),
            "liquidationPrice": "0",
            "isolatedMargin": "0",
            "notional": fmt8(f.notional),
            "isolatedWallet": "0",
            "updateTime": pos.update_time_ms,
        }

    def position_risk_v3(self, params: Params) -> list[JsonDict]:
        self._symbol(params, required=False)
        engine = self._engine
        f = engine.figures()
        if engine.position.amount == 0 and not engine.open_orders():
            return []  # v3 lists only symbols with a position or open orders
        return [
            self._position_risk_common(f)
            | {
                "marginAsset": QUOTE_ASSET,
                "initialMargin": fmt8(f.initial_margin),
                "maintMargin": fmt8(f.maint_margin),
                "positionInitialMargin": fmt8(f.position_initial_margin),
                "openOrderInitialMargin": fmt8(f.open_order_initial_margin),
                "adl": 1 if engine.position.amount else 0,
                "bidNotional": fmt8(f.bid_notional),
                "askNotional": fmt8(f.ask_notional),
            }
        ]

    def position_risk_v2(self, params: Params) -> list[JsonDict]:
        self._symbol(params, required=False)
        engine = self._engine
        return [
            self._position_risk_common(engine.figures())
            | {
                "leverage": str(engine.leverage),
                "maxNotionalValue": str(self._spec.max_notional(engine.leverage)),
                "marginType": "cross" if engine.margin_type == "CROSSED" else "isolated",
                "isAutoAddMargin": "false",
            }
        ]

    def symbol_config(self, params: Params) -> list[JsonDict]:
        self._symbol(params, required=False)
        engine = self._engine
        return [
            {
                "symbol": self._spec.symbol,
                "marginType": engine.margin_type,
                "isAutoAddMargin": False,
                "leverage": engine.leverage,
                "maxNotionalValue": str(self._spec.max_notional(engine.leverage)),
            }
        ]

    def commission_rate(self, params: Params) -> JsonDict:
        self._symbol(params)
        return {
            "symbol": self._spec.symbol,
            "makerCommissionRate": str(self._engine.maker_fee),
            "takerCommissionRate": str(self._engine.taker_fee),
        }

    def leverage_bracket(self, params: Params) -> object:
        """The symbol's bracket table; a list of one without ``symbol``, the entry itself with
        it. Binance writes these figures as JSON numbers, not strings."""
        symbol = self._symbol(params, required=False)
        rows: list[JsonDict] = []
        floor, previous_ratio, cum = 0, Decimal(0), Decimal(0)
        for number, bracket in enumerate(self._spec.brackets, start=1):
            cum += floor * (bracket.maint_margin_ratio - previous_ratio)
            rows.append(
                {
                    "bracket": number,
                    "initialLeverage": bracket.max_leverage,
                    "notionalCap": bracket.notional_cap,
                    "notionalFloor": floor,
                    "maintMarginRatio": float(bracket.maint_margin_ratio),
                    "cum": float(cum),
                }
            )
            floor, previous_ratio = bracket.notional_cap, bracket.maint_margin_ratio
        entry: JsonDict = {"symbol": self._spec.symbol, "brackets": rows}
        return entry if symbol else [entry]

    def leverage(self, params: Params) -> JsonDict:
        self._symbol(params)
        leverage = int_param(params, "leverage")
        if leverage is None:
            raise mandatory("leverage")
        self._engine.set_leverage(leverage)
        return {
            "leverage": leverage,
            "maxNotionalValue": str(self._spec.max_notional(leverage)),
            "symbol": self._spec.symbol,
        }

    def margin_type(self, params: Params) -> JsonDict:
        self._symbol(params)
        margin_type = params.get("marginType", "").upper()
        if margin_type == "CROSS":
            margin_type = "CROSSED"
        if margin_type not in ("ISOLATED", "CROSSED"):
            raise mandatory("marginType")
        self._engine.set_margin_type(margin_type)
        return {"code": 200, "msg": "success"}

    def dual_get(self, params: Params) -> JsonDict:
        return {"dualSidePosition": self._engine.dual_side}

    def dual_post(self, params: Params) -> JsonDict:
        dual = bool_param(params, "dualSidePosition")
        if dual == self._engine.dual_side:
            raise ApiError(400, -4059, "No need to change position side.")
        log.warning("BINANCE EMULATOR: hedge mode requested but only one-way mode is emulated")
        raise ApiError(400, -1000, "emulator: only one-way position mode is supported")
