"""ccxt's ``binanceusdm`` against the Binance emulator: a check by a client nobody here wrote.

The emulator was written from Binance's documentation and Nautilus's adapter, so Nautilus
passing against it proves less than it seems: both could share a misreading. ccxt builds and
signs its requests its own way (a signed form body for POSTs, v3 account endpoints, leverage
brackets before positions) and parses the replies into its unified structures; each test here
checks those against the emulator's own books, as they would be against Binance.

Nothing may leave the machine: every URL ccxt knows is pointed at the emulator, ccxt refuses to
send a request to any host that is not loopback, and every request it sent must show up in the
emulator's request log, none of them at an endpoint the emulator does not know.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from urllib.parse import urlsplit

import ccxt
import pytest

from tests.binance_emulator import BinanceEmulator

KEY = "ccxt-key-4d1f0b8e6a2c"
SECRET = "ccxt-secret-7e3a9c5b1d8f"
SYMBOL = "BTC/USDT:USDT"
SIZE = 0.010  # BTC: 0.010 * 60000 = 600 USDT, above the 100 USDT notional floor


class LoopbackUsdm(ccxt.binanceusdm):
    """``binanceusdm`` with every API URL on the emulator, that refuses to send a request to
    anything but a loopback address and remembers what it sent."""

    def __init__(self, emulator_url: str) -> None:
        super().__init__(
            {
                "apiKey": KEY,
                "secret": SECRET,
                "enableRateLimit": False,
                "options": {
                    "fetchCurrencies": False,  # a sapi call: Binance's wallet, not futures
                    "defaultType": "swap",
                    "defaultSubType": "linear",
                    "fetchMarkets": {"types": ["linear"]},
                },
            }
        )
        self.emulator_url = emulator_url
        self.sent: list[tuple[str, str]] = []
        self.session.trust_env = False  # no proxy from the environment: straight to loopback
        api = self.urls["api"]
        for name, url in api.items():
            api[name] = emulator_url + urlsplit(url).path

    def fetch(self, url, method="GET", headers=None, body=None):
        host = urlsplit(url).hostname
        if host is None or not ipaddress.ip_address(host).is_loopback:
            raise AssertionError(f"ccxt tried to reach {url}")
        self.sent.append((method, url))
        return super().fetch(url, method, headers, body)

    def get_exceptions_by_url(self, url, exactOrBroad):
        # ccxt picks USDT-M error codes by Binance's hostname; here the emulator is fapi.
        if url is not None and url.startswith(self.emulator_url + "/fapi/"):
            return self.exceptions["linear"].get(exactOrBroad, {})
        return super().get_exceptions_by_url(url, exactOrBroad)


@pytest.fixture
def emulator() -> Iterator[BinanceEmulator]:
    # The market moves only when a test moves it (set_price), so figures can be compared
    # exactly; a "1m" kline lasts 50 ms, so a test sees several close.
    emu = BinanceEmulator(KEY, SECRET, kline_interval_s=0.05, tick_interval_s=3600)
    emu.start()
    yield emu
    emu.stop()
    assert not [t for t in threading.enumerate() if t.name == "binance-emulator"]


@pytest.fixture
def exchange(emulator: BinanceEmulator) -> Iterator[LoopbackUsdm]:
    ex = LoopbackUsdm(emulator.http_url)
    assert all(url.startswith(emulator.http_url + "/") for url in ex.urls["api"].values())
    ex.load_markets()
    yield ex
    ex.session.close()
    assert ex.sent, "ccxt sent nothing"
    assert all(urlsplit(url).hostname == "127.0.0.1" for _, url in ex.sent)
    assert emulator.unknown_requests() == []
    served = [(r.method, r.path) for r in emulator.requests() if r.method != "WS"]
    assert served == [(method, urlsplit(url).path) for method, url in ex.sent]


def dec(value: float | str | None) -> Decimal:
    """ccxt's float as the decimal it was parsed from (its shortest repr)."""
    assert value is not None
    return Decimal(str(value))


def test_markets_carry_the_symbols_filters(exchange, emulator):
    market = exchange.market(SYMBOL)

    assert (market["id"], market["type"], market["linear"], market["settle"]) == (
        "BTCUSDT",
        "swap",
        True,
        "USDT",
    )
    assert market["precision"]["amount"] == 0.001
    assert market["precision"]["price"] == 0.1
    limits = market["limits"]
    assert (limits["amount"]["min"], limits["amount"]["max"]) == (0.001, 1000)
    assert limits["market"]["max"] == 120
    assert limits["cost"]["min"] == 100
    assert (limits["price"]["min"], limits["price"]["max"]) == (0.1, 1200000)
    assert exchange.sent == [("GET", emulator.http_url + "/fapi/v1/exchangeInfo")]


def test_ticker_and_order_book_show_the_emulated_market(exchange, emulator):
    emulator.set_price(Decimal("61234.5"))
    bid, ask = emulator.book()

    ticker = exchange.fetch_ticker(SYMBOL)
    assert dec(ticker["last"]) == emulator.price
    assert ticker["symbol"] == SYMBOL

    book = exchange.fetch_order_book(SYMBOL, 5)
    assert (bid, ask) == (Decimal("61234.5"), Decimal("61234.6"))
    assert (dec(book["bids"][0][0]), dec(book["asks"][0][0])) == (bid, ask)
    assert [b[0] for b in book["bids"]] == sorted((b[0] for b in book["bids"]), reverse=True)
    assert [a[0] for a in book["asks"]] == sorted(a[0] for a in book["asks"])
    assert len(book["bids"]) == len(book["asks"]) == 5


def test_ohlcv_are_the_klines_of_the_emulators_trades(exchange, emulator):
    prices = [Decimal("60100.0"), Decimal("60300.0"), Decimal("59900.0")]
    for price in prices:
        emulator.set_price(price)
        time.sleep(0.06)  # the next print falls in the next kline

    candles = exchange.fetch_ohlcv(SYMBOL, "1m", limit=50)
    assert len(candles) >= 3
    assert [c[0] for c in candles] == sorted({c[0] for c in candles})
    for _, o, h, low, c, volume in candles:
        assert low <= min(o, c) <= max(o, c) <= h and volume >= 0
    assert dec(candles[-1][4]) == emulator.price
    # each jump prints one trade, at the new bid or one tick above at the ask
    assert dec(max(c[2] for c in candles)) >= max(prices)
    assert dec(min(c[3] for c in candles)) <= min(prices) + Decimal("0.1")


def test_a_paused_and_steered_market_keeps_every_trade_inside_its_klines_period(exchange, emulator):
    """A paused market holds its klines while a test steers the price (no bar closes in
    the middle of the move), but the tape stays Binance's: every trade lies in the period
    of the kline that holds it. A kline that held trades stamped after its close time made
    a restarted session's catch-up, which plays a bar at its close, show a strategy the
    close before the trades that made it."""
    emulator.pause_market(True)
    steered = [Decimal("60100.0"), Decimal("60700.0"), Decimal("60400.0")]
    try:
        for price in steered:
            emulator.set_price(price)
            time.sleep(0.08)  # past a kline's 50 ms: the held kline's period ends
    finally:
        emulator.pause_market(False)
    emulator.set_price(Decimal("60500.0"))  # the market goes on: the held kline closes
    time.sleep(0.12)

    candles = exchange.fetch_ohlcv(SYMBOL, "1m", limit=100)
    trades = exchange.fetch_trades(SYMBOL, limit=100)
    period = 50  # ms: the fixture's "1m"
    for opened, o, h, low, c, _ in candles[:-1]:  # the last is still open
        inside = [dec(t["price"]) for t in trades if opened <= t["timestamp"] < opened + period]
        if not inside:
            continue
        # (the emulator opens a kline at the last price, as a quiet period's would be)
        span = [dec(o), *inside]
        assert (dec(h), dec(low), dec(c)) == (max(span), min(span), inside[-1]), (
            opened,
            [(t["timestamp"], t["price"]) for t in trades],
        )
    held = [t for t in trades if dec(t["price"]) in {Decimal("60700.0"), Decimal("60700.1")}]
    assert held, "the steered trades are on the tape"


def test_balance_before_and_after_a_trade(exchange, emulator):
    usdt = exchange.fetch_balance()["USDT"]
    assert (dec(usdt["total"]), dec(usdt["free"]), dec(usdt["used"])) == (
        Decimal(10000),
        Decimal(10000),
        Decimal(0),
    )

    exchange.create_order(SYMBOL, "market", "buy", SIZE)
    emulator.set_price(Decimal("60500.0"))
    usdt = exchange.fetch_balance()["USDT"]
    venue = emulator.balance()
    assert dec(usdt["total"]) == venue.margin_balance  # wallet + unrealized PnL
    assert dec(usdt["free"]) == venue.available_balance
    assert dec(usdt["used"]) == venue.initial_margin
    assert venue.unrealized_pnl != 0


def test_leverage_is_set_on_the_venue(exchange, emulator):
    reply = exchange.set_leverage(10, SYMBOL)

    assert int(reply["leverage"]) == 10
    assert emulator.positions()[0].leverage == 10
    assert exchange.fetch_leverage(SYMBOL)["longLeverage"] == 10


def test_a_market_order_fills_and_shows_in_trades_and_positions(exchange, emulator):
    order = exchange.create_order(SYMBOL, "market", "buy", SIZE)

    (fill,) = emulator.fills()
    assert (order["status"], order["filled"], order["remaining"]) == ("closed", SIZE, 0)
    assert dec(order["average"]) == fill.price
    assert order["id"] == str(fill.order_id)

    (trade,) = exchange.fetch_my_trades(SYMBOL)
    assert (trade["id"], trade["order"], trade["side"]) == (str(fill.trade_id), order["id"], "buy")
    assert (dec(trade["price"]), dec(trade["amount"])) == (fill.price, fill.qty)
    assert trade["takerOrMaker"] == "taker"
    assert trade["fee"]["currency"] == "USDT"
    assert dec(trade["fee"]["cost"]) == fill.commission == Decimal("0.24000040")

    (position,) = exchange.fetch_positions([SYMBOL])
    venue = emulator.positions()[0]
    assert (position["side"], dec(position["contracts"])) == ("long", venue.amount)
    assert dec(position["entryPrice"]) == venue.entry_price
    assert dec(position["unrealizedPnl"]) == venue.unrealized_pnl
    assert position["marginMode"] == "cross"
    assert dec(position["maintenanceMarginPercentage"]) == Decimal("0.004")


def test_a_short_reads_as_short_in_positions_and_account_positions(exchange, emulator):
    exchange.create_order(SYMBOL, "market", "sell", 0.02)
    emulator.set_price(Decimal("59000.0"))

    (position,) = exchange.fetch_positions([SYMBOL])
    (account,) = exchange.fetch_account_positions([SYMBOL])
    venue = emulator.positions()[0]
    assert venue.amount == Decimal("-0.020")
    for p in (position, account):
        assert (p["side"], dec(p["contracts"])) == ("short", Decimal("0.02"))
        assert dec(p["unrealizedPnl"]) == venue.unrealized_pnl > 0
        assert dec(p["maintenanceMarginPercentage"]) == Decimal("0.004")


def test_a_limit_order_rests_is_listed_and_cancels(exchange, emulator):
    bid, _ = emulator.book()
    price = float(bid - 500)

    order = exchange.create_order(SYMBOL, "limit", "buy", SIZE, price)
    assert (order["status"], order["filled"], order["price"]) == ("open", 0, price)

    (listed,) = exchange.fetch_open_orders(SYMBOL)
    assert (listed["id"], listed["amount"], listed["price"], listed["side"]) == (
        order["id"],
        SIZE,
        price,
        "buy",
    )
    assert [o.client_order_id for o in emulator.open_orders()] == [order["clientOrderId"]]

    canceled = exchange.cancel_order(order["id"], SYMBOL)
    assert canceled["status"] == "canceled"
    assert emulator.open_orders() == []
    assert exchange.fetch_open_orders(SYMBOL) == []


def test_a_resting_order_fills_as_maker_when_the_market_reaches_it(exchange, emulator):
    order = exchange.create_order(SYMBOL, "limit", "sell", SIZE, 60600.0)
    emulator.set_price(Decimal("60600.0"))

    assert exchange.fetch_order(order["id"], SYMBOL)["status"] == "closed"
    (trade,) = exchange.fetch_my_trades(SYMBOL)
    assert (trade["takerOrMaker"], trade["price"]) == ("maker", 60600.0)
    # 0.010 * 60600.0 * 0.00016
    assert dec(trade["fee"]["cost"]) == Decimal("0.096960")


def test_leverage_brackets_come_from_the_symbol(exchange):
    tiers = exchange.fetch_leverage_tiers([SYMBOL])[SYMBOL]

    assert (tiers[0]["maxLeverage"], tiers[0]["maxNotional"]) == (125, 300000)
    assert dec(tiers[0]["maintenanceMarginRate"]) == Decimal("0.004")
    assert [t["minNotional"] for t in tiers[1:]] == [t["maxNotional"] for t in tiers[:-1]]


def test_venue_errors_map_to_the_exceptions_binance_raises(exchange, emulator):
    with pytest.raises(ccxt.InsufficientFunds):  # -2019
        exchange.create_order(SYMBOL, "market", "buy", 100)
    with pytest.raises(ccxt.InvalidOrder):  # -4164, notional below 100
        exchange.create_order(SYMBOL, "market", "buy", 0.001)
    with pytest.raises(ccxt.InvalidOrder):  # -2022, reduce-only with nothing to reduce
        exchange.create_order(SYMBOL, "market", "sell", SIZE, params={"reduceOnly": True})
    _, ask = emulator.book()
    with pytest.raises(ccxt.OrderNotFillable):  # -5022, post-only that would take
        exchange.create_order(SYMBOL, "limit", "buy", SIZE, float(ask), params={"postOnly": True})
    with pytest.raises(ccxt.OrderNotFound):  # -2011
        exchange.cancel_order("123", SYMBOL)
    codes = [r.code for r in emulator.requests() if r.status != 200]
    assert codes == [-2019, -4164, -2022, -5022, -2011]


def test_a_wrong_secret_is_an_authentication_error(emulator):
    ex = LoopbackUsdm(emulator.http_url)
    ex.secret = "not-the-secret"
    try:
        with pytest.raises(ccxt.AuthenticationError):
            ex.fetch_balance()
    finally:
        ex.session.close()
    assert [r.code for r in emulator.requests()] == [None, -1022]


def test_a_conditional_order_waits_in_the_algo_service_is_listed_triggers_and_cancels(
    exchange, emulator
):
    """ccxt (>= 4.5.27) sends conditional linear-swap orders to ``/fapi/v1/algoOrder`` and
    lists, fetches and cancels them there with ``trigger``: the emulator answers as the
    Algo Service, and a trigger places the ordinary order that closes the position."""
    exchange.create_order(SYMBOL, "market", "buy", SIZE)
    stop = exchange.create_order(
        SYMBOL, "market", "sell", SIZE, params={"stopLossPrice": 59000.0, "reduceOnly": True}
    )
    (algo,) = emulator.open_algo_orders()
    assert (stop["id"], stop["clientOrderId"]) == (str(algo.algo_id), algo.client_algo_id)
    assert (algo.type, algo.trigger_price, algo.reduce_only, algo.status) == (
        "STOP_MARKET",
        Decimal("59000.0"),
        True,
        "NEW",
    )
    assert (stop["status"], stop["triggerPrice"], stop["reduceOnly"]) == ("open", 59000.0, True)
    (listed,) = exchange.fetch_open_orders(SYMBOL, params={"trigger": True})
    assert (listed["id"], listed["amount"], listed["side"]) == (stop["id"], SIZE, "sell")
    assert exchange.fetch_open_orders(SYMBOL) == [], "it waits outside the order book"

    take = exchange.create_order(
        SYMBOL, "market", "sell", SIZE, params={"takeProfitPrice": 61000.0, "reduceOnly": True}
    )
    assert emulator.open_algo_orders()[-1].type == "TAKE_PROFIT_MARKET"
    exchange.cancel_order(take["id"], SYMBOL, params={"trigger": True})
    assert exchange.fetch_order(take["id"], SYMBOL, params={"trigger": True})["status"] == (
        "canceled"
    )

    emulator.set_price(Decimal("58999.9"))  # through the stop: a market sell closes the long
    done = exchange.fetch_order(stop["id"], SYMBOL, params={"trigger": True})
    assert done["status"] == "closed"
    (fill,) = [f for f in emulator.fills() if f.side == "SELL"]
    assert done["info"]["actualOrderId"] == str(fill.order_id)
    assert fill.client_order_id == stop["clientOrderId"]
    assert emulator.positions()[0].amount == 0
    (trade,) = [t for t in exchange.fetch_my_trades(SYMBOL) if t["side"] == "sell"]
    assert (trade["order"], dec(trade["price"])) == (str(fill.order_id), Decimal("58999.9"))
    history = exchange.fetch_orders(SYMBOL, params={"trigger": True})
    assert {o["id"]: o["status"] for o in history} == {stop["id"]: "closed", take["id"]: "canceled"}


def test_regular_and_conditional_orders_cancel_apart_and_algo_errors_map(exchange, emulator):
    bid, _ = emulator.book()
    limit = exchange.create_order(SYMBOL, "limit", "buy", SIZE, float(bid - 500))
    exchange.create_order(SYMBOL, "market", "buy", SIZE, params={"triggerPrice": 61000.0})

    exchange.cancel_all_orders(SYMBOL)  # DELETE /fapi/v1/allOpenOrders: the book only
    assert exchange.fetch_order(limit["id"], SYMBOL)["status"] == "canceled"
    assert [a.status for a in emulator.algo_orders()] == ["NEW"]
    exchange.cancel_all_orders(SYMBOL, params={"trigger": True})  # DELETE algoOpenOrders
    assert [a.status for a in emulator.algo_orders()] == ["CANCELED"]

    with pytest.raises(ccxt.InvalidOrder):  # -4120: conditional types left /fapi/v1/order
        exchange.fapiPrivatePostOrder(
            {
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "STOP_MARKET",
                "quantity": "0.010",
                "stopPrice": "59000",
            }
        )
    with pytest.raises(ccxt.OrderImmediatelyFillable):  # -2021: already past the trigger
        exchange.create_order(SYMBOL, "market", "buy", SIZE, params={"triggerPrice": 59000.0})
    with pytest.raises(ccxt.OrderNotFound):  # -2011
        exchange.cancel_order("123", SYMBOL, params={"trigger": True})
    with pytest.raises(ccxt.OrderNotFound):  # -2013
        exchange.fetch_order("123", SYMBOL, params={"trigger": True})
    codes = [r.code for r in emulator.requests() if r.status != 200]
    assert codes == [-4120, -2021, -2011, -2013]
