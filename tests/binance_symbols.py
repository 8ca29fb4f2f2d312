"""The loopback Binance emulator serving more than one symbol on one account.

``tests.binance_emulator.BinanceEmulator`` is a venue of one symbol. Binance lists them
all, and a node whose strategies trade BTCUSDT and SOLUSDT needs both from one venue: one
exchange info, one account (one wallet, every symbol's positions), one user data stream.
``MultiSymbolEmulator`` is that emulator with further symbols beside its first: each
symbol has its own market, feed, matching engine and algo service, built from the
emulator's own parts; the engines share the first one's wallet; a request naming a
symbol goes to that symbol's handlers, and one naming none (exchange info, the account,
open orders, positions, tickers) gets every symbol's answer.

It relies on the emulator's internals (``_routes``, ``_engine``, ``_market_step``, ...),
which it extends rather than changes; the emulator stays the other tests' venue as it is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal

from tests.binance_emulator import BinanceEmulator
from tests.binance_emulator.algo import AlgoService
from tests.binance_emulator.clock import now_ms
from tests.binance_emulator.errors import ApiError
from tests.binance_emulator.feeds import MarketFeed, UserFeed
from tests.binance_emulator.market import Market
from tests.binance_emulator.matching import MatchingEngine
from tests.binance_emulator.rest import Params, Route
from tests.binance_emulator.rest_account import AccountApi
from tests.binance_emulator.rest_algo import AlgoOrdersApi
from tests.binance_emulator.rest_market import MarketDataApi
from tests.binance_emulator.rest_orders import OrdersApi
from tests.binance_emulator.snapshots import FillSnapshot, OrderSnapshot, PositionSnapshot
from tests.binance_emulator.spec import SymbolSpec, spec_for

# Requests that name no symbol and list every symbol's: their answers are joined.
LISTS = frozenset(
    {
        ("GET", "/fapi/v1/openOrders"),
        ("GET", "/fapi/v2/positionRisk"),
        ("GET", "/fapi/v3/positionRisk"),
        ("GET", "/fapi/v1/symbolConfig"),
        ("GET", "/fapi/v1/leverageBracket"),
        ("GET", "/fapi/v1/ticker/price"),
        ("GET", "/fapi/v2/ticker/price"),
        ("GET", "/fapi/v1/ticker/bookTicker"),
        ("GET", "/fapi/v1/ticker/24hr"),
        ("GET", "/fapi/v1/premiumIndex"),
        ("GET", "/fapi/v1/income"),
        ("GET", "/fapi/v1/openAlgoOrders"),
    }
)
NOT_FOUND = frozenset({-2011, -2013})  # an id another symbol's engine may know
ID_SPACING = 100_000_000  # each further symbol's order and algo ids start this far on


class SharedWalletEngine(MatchingEngine):
    """A further symbol's matching engine on the first symbol's wallet (one account)."""

    def __init__(self, first: MatchingEngine, *args: object, **kwargs: object) -> None:
        self._first = first
        self._built = False
        super().__init__(*args, **kwargs)
        self._built = True

    @property
    def wallet(self) -> Decimal:
        return self._first.wallet

    @wallet.setter
    def wallet(self, value: Decimal) -> None:
        if self._built:  # the constructor's starting balance is the first's already
            self._first.wallet = value


@dataclass(frozen=True)
class Leg:
    spec: SymbolSpec
    market: Market
    feed: MarketFeed
    engine: MatchingEngine
    algos: AlgoService
    routes: dict[tuple[str, str], Route]


class MultiSymbolEmulator(BinanceEmulator):
    """``BinanceEmulator`` for ``symbol`` and each of ``also``, on one account."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        symbol: str = "BTCUSDT",
        also: tuple[str, ...] = ("SOLUSDT",),
        seed: int = 7,
        *,
        kline_interval_s: float = 1.0,
        volatility: Decimal = Decimal("0.0002"),
        leverage: int = 20,
        taker_fee: Decimal = Decimal("0.0004"),
        maker_fee: Decimal = Decimal("0.00016"),
        fee_tier: int = 1,
    ) -> None:
        self._legs: dict[str, Leg] = {}
        super().__init__(
            api_key,
            api_secret,
            symbol,
            seed=seed,
            kline_interval_s=kline_interval_s,
            volatility=volatility,
            leverage=leverage,
            taker_fee=taker_fee,
            maker_fee=maker_fee,
            fee_tier=fee_tier,
        )
        for n, name in enumerate(also, start=1):
            spec = spec_for(name)
            market = Market(
                spec,
                spec.start_price,
                clock=now_ms,
                seed=seed + n,
                volatility=volatility,
                kline_interval_s=kline_interval_s,
            )
            feed = MarketFeed(spec, market, self._hub, now_ms)
            market.listener = feed
            user = UserFeed(spec, self._hub)
            engine = SharedWalletEngine(
                self._engine,
                spec,
                market,
                clock=now_ms,
                leverage=leverage,
                maker_fee=maker_fee,
                taker_fee=taker_fee,
                emit=user,
            )
            engine._order_seq += n * ID_SPACING
            algos = AlgoService(engine, clock=now_ms, seed=seed + n, emit=user)
            algos._seq += n * ID_SPACING
            feed.on_funding = engine.settle_funding
            apis = (
                MarketDataApi(spec, market, now_ms),
                AccountApi(spec, engine, self._hub, fee_tier=fee_tier),
                OrdersApi(spec, engine, self._limiter, self._faults, now_ms),
                AlgoOrdersApi(spec, algos, self._limiter, now_ms),
            )
            routes = {(r.method, r.path): r for api in apis for r in api.routes()}
            self._legs[spec.symbol] = Leg(spec, market, feed, engine, algos, routes)
        self._routes = {
            key: replace(route, handler=self._dispatch_to(key, route.handler))
            for key, route in self._routes.items()
        }

    # Routing

    def _dispatch_to(
        self, key: tuple[str, str], first: Callable[[Params], object]
    ) -> Callable[[Params], object]:
        def handle(params: Params) -> object:
            leg = self._legs.get(params.get("symbol", "").upper())
            if leg is not None:
                return leg.routes[key].handler(params)
            if params.get("symbol"):
                return first(params)  # the first symbol's, or an unknown one's -1121
            try:
                answer = first(params)
            except ApiError as exc:
                if exc.code not in NOT_FOUND:
                    raise
                return self._elsewhere(key, params, exc)
            return self._joined(key, params, answer)

        return handle

    def _elsewhere(self, key: tuple[str, str], params: Params, missing: ApiError) -> object:
        """An order id without a symbol: the symbol whose engine knows it."""
        for leg in self._legs.values():
            try:
                return leg.routes[key].handler(params)
            except ApiError as exc:
                if exc.code not in NOT_FOUND:
                    raise
        raise missing

    def _joined(self, key: tuple[str, str], params: Params, answer: object) -> object:
        legs = [leg.routes[key].handler(params) for leg in self._legs.values()]
        if key in LISTS and isinstance(answer, list):
            return answer + [item for more in legs if isinstance(more, list) for item in more]
        if key == ("GET", "/fapi/v1/exchangeInfo") and isinstance(answer, dict):
            assets = {a["asset"]: a for info in (answer, *legs) for a in info["assets"]}
            symbols = [s for info in (answer, *legs) for s in info["symbols"]]
            return answer | {"assets": list(assets.values()), "symbols": symbols}
        if key in (("GET", "/fapi/v2/account"), ("GET", "/fapi/v3/account")):
            assert isinstance(answer, dict)
            positions = [p for info in (answer, *legs) for p in info["positions"]]
            return answer | {"positions": positions}
        return answer

    # The market's clock: every symbol's

    def _market_step(self, *, move: bool) -> None:
        super()._market_step(move=move)
        now = now_ms()
        for leg in self._legs.values():
            leg.market.walk(move=move)
            leg.feed.tick(now)
            leg.engine.match_resting(now)
            leg.algos.check(now)

    async def _kline_loop(self) -> None:
        base = self._market.klines.duration_ms("1m")
        while True:
            now = now_ms()
            await asyncio.sleep((base - now % base) / 1000 + 0.002)
            with self._lock:
                if not self._faults.market_paused:
                    self._market.roll_klines(now_ms())
                    for leg in self._legs.values():
                        leg.market.roll_klines(now_ms())

    def _on_subscribe(self, stream: str) -> None:
        for leg in self._legs.values():
            if stream.startswith(leg.spec.symbol.lower() + "@"):
                leg.feed.subscribed(stream)
                return
        super()._on_subscribe(stream)

    # Accessors: every symbol's

    def symbol_fills(self, symbol: str) -> list[FillSnapshot]:
        return [f for f in self.fills() if f.symbol == symbol]

    def fills(self) -> list[FillSnapshot]:
        with self._lock:
            legs = [f for leg in self._legs.values() for f in leg.engine.fills]
            return list(self._engine.fills) + legs

    def positions(self) -> list[PositionSnapshot]:
        with self._lock:
            legs = [leg.engine.position_snapshot() for leg in self._legs.values()]
            return [self._engine.position_snapshot(), *legs]

    def open_orders(self) -> list[OrderSnapshot]:
        with self._lock:
            legs = [
                o.snapshot(leg.spec.symbol)
                for leg in self._legs.values()
                for o in leg.engine.open_orders()
            ]
            return [o.snapshot(self._spec.symbol) for o in self._engine.open_orders()] + legs
