"""A loopback emulator of the Binance USD-M futures REST and WebSocket API.

Why it exists: the service's ``binance-testnet`` and ``binance-sandbox`` modes run the real
NautilusTrader Binance clients, and tests must exercise them hermetically, with faults on cue.
It is written from Binance's public API documentation and from the msgspec schemas of the
NautilusTrader Binance adapter, so that ``BinanceLiveDataClientFactory`` /
``BinanceLiveExecClientFactory`` run against it with ``base_url_http``, ``base_url_ws`` and
``base_url_ws_stream`` pointed here; ccxt's ``binanceusdm`` runs against it too
(``tests/test_emulator_ccxt.py``), as a check by a client nobody here wrote.

The parts, one job each:

- :mod:`.server`: the :class:`BinanceEmulator` itself: an aiohttp server on its own asyncio
  loop in a background thread, bound to a loopback address on an ephemeral port; routing,
  thread-safe accessors and test controls;
- :mod:`.auth` and :mod:`.limits`: API key (``X-MBX-APIKEY``), HMAC-SHA256 ``signature``,
  ``timestamp``/``recvWindow``; request weight and order count windows;
- :mod:`.rest_market`, :mod:`.rest_account`, :mod:`.rest_orders`, :mod:`.rest_algo`: the REST
  endpoints (exchange info, book, trades, aggregate trades, klines and funding rate history with
  Binance's paging - the tape, klines and settlements the streams carried -, tickers; account,
  positions, leverage, margin type, position mode, listenKey; orders MARKET and LIMIT
  GTC/IOC/FOK/GTX/GTD: new, batch new, query, modify, cancel, cancel all, batch cancel, open and
  all orders, user trades - the conditional types refused there with -4120; the Algo Service's
  conditional orders: new, query, cancel, open, all, cancel all). Unknown paths are logged
  loudly and answered with HTTP 404;
- :mod:`.matching` (with :mod:`.market` and :mod:`.klines`) and :mod:`.algo`: the venue's rules
  as pure state changes: the seeded random-walk market, order matching, fills, the one-way
  position, fees, realized PnL, the wallet and the margin figures; conditional orders waiting
  in the Algo Service, triggered by the price into ordinary orders;
- :mod:`.streams` and :mod:`.feeds`: market streams (``/stream?streams=a/b`` combined and
  ``/ws/a/b`` raw, with runtime ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``;
  ``<symbol>@aggTrade``, ``@trade``, ``@bookTicker`` and ``!bookTicker``, ``@kline_<i>``,
  ``@markPrice[@1s]``) and the user data stream (``/ws?listenKey=<key>``, also ``/ws/<key>``:
  ``ORDER_TRADE_UPDATE``, ``TRADE_LITE``, ``ACCOUNT_UPDATE``, ``ACCOUNT_CONFIG_UPDATE``,
  ``ALGO_UPDATE``);
- :mod:`.faults`: :meth:`BinanceEmulator.drop_websockets`, :meth:`~BinanceEmulator.rate_limit`,
  :meth:`~BinanceEmulator.invalid_key`, :meth:`~BinanceEmulator.timestamp_error`,
  :meth:`~BinanceEmulator.slow`, :meth:`~BinanceEmulator.reject_orders`,
  :meth:`~BinanceEmulator.history_down` (the history endpoints fail),
  :meth:`~BinanceEmulator.expire_listen_key`;
- :mod:`.spec`: the symbol's filters and precision (BTCUSDT by default; SOLUSDT known too).

Not emulated: hedge mode, ``priceMatch`` on conditional orders, a mark price apart from the
last trade (so ``MARK_PRICE`` triggers as ``CONTRACT_PRICE`` and ``priceProtect`` never holds
a trigger back), the WebSocket API (``/ws-fapi/v1``, used only with Ed25519 keys),
liquidation, isolated margin accounting, multi-asset mode.

Usage::

    emulator = BinanceEmulator("key", "secret", kline_interval_s=1.0)  # a "1m" kline per second
    emulator.start()
    BinanceDataClientConfig(
        api_key="key", api_secret="secret",
        account_type=BinanceAccountType.USDT_FUTURES, environment=BinanceEnvironment.TESTNET,
        base_url_http=emulator.http_url, base_url_ws=emulator.ws_url,
    )
    BinanceExecClientConfig(..., base_url_ws_stream=emulator.ws_stream_url)  # same keys/URLs
    ...
    emulator.reject_orders(1)          # next order placement -> HTTP 400 -2019
    emulator.drop_websockets()         # abort every WebSocket; the adapter reconnects
    emulator.set_price(Decimal("59000"))  # move the market (fills resting orders it crosses,
                                          # triggers conditional orders it reaches)
    emulator.positions(), emulator.balance(), emulator.orders(), emulator.fills()
    emulator.algo_orders(), emulator.open_algo_orders()
    emulator.stop()

``fill_chunk_qty`` splits fills into chunks (``PARTIALLY_FILLED`` then ``FILLED``); resting
orders take one chunk per market tick.
"""

from __future__ import annotations

from .server import BinanceEmulator
from .snapshots import (
    AlgoSnapshot,
    BalanceSnapshot,
    FillSnapshot,
    OrderSnapshot,
    PositionSnapshot,
    RequestRecord,
)
from .spec import SYMBOLS, Bracket, SymbolSpec

__all__ = [
    "SYMBOLS",
    "AlgoSnapshot",
    "BalanceSnapshot",
    "BinanceEmulator",
    "Bracket",
    "FillSnapshot",
    "OrderSnapshot",
    "PositionSnapshot",
    "RequestRecord",
    "SymbolSpec",
]
