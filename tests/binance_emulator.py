"""A loopback emulator of the Binance USD-M futures REST and WebSocket API.

It is written from Binance's public API documentation and from the msgspec schemas of the
NautilusTrader Binance adapter (``nautilus_trader/adapters/binance``), so that the real
``BinanceLiveDataClientFactory`` / ``BinanceLiveExecClientFactory`` clients can run against it
with ``base_url_http``, ``base_url_ws`` and ``base_url_ws_stream`` pointed here.

What it does:

- an aiohttp server on its own asyncio loop in a background thread, bound to 127.0.0.1 (or
  another loopback address) on an ephemeral port;
- REST: exchange info, time, ping, depth, trades, aggTrades, klines, tickers; the signed
  account, position, symbol config, leverage, margin type and position mode endpoints;
  orders (MARKET and LIMIT GTC/IOC/FOK/GTX/GTD: new, query, modify, cancel, cancel all, batch
  cancel, open and all orders, user trades); the listenKey user-stream endpoints. API key
  (``X-MBX-APIKEY``), HMAC-SHA256 ``signature`` and ``timestamp``/``recvWindow`` are checked
  like Binance does. Unknown paths are logged loudly and answered with HTTP 404;
- market streams, both ``/stream?streams=a/b`` (combined, ``{"stream":..,"data":..}``) and
  ``/ws/a/b`` (raw), with runtime ``SUBSCRIBE``/``UNSUBSCRIBE``/``LIST_SUBSCRIPTIONS``:
  ``<symbol>@aggTrade``, ``@trade``, ``@bookTicker`` (and ``!bookTicker``), ``@kline_<i>``,
  ``@markPrice[@1s]``, fed by a seeded random walk;
- the user data stream on ``/ws?listenKey=<key>`` (also ``/ws/<key>``) carrying
  ``ORDER_TRADE_UPDATE``, ``TRADE_LITE``, ``ACCOUNT_UPDATE`` and ``ACCOUNT_CONFIG_UPDATE``;
- matching: MARKET orders fill at once at the best ask (buy) or bid (sell) as taker; LIMIT
  orders that cross fill at once as taker, others rest and fill at their price as maker when
  the market moves through them. One-way position mode (``BOTH``), cross margin; each fill
  moves the position, the realized PnL and the USDT wallet (fees charged on notional);
- fault injection: :meth:`BinanceEmulator.drop_websockets`, :meth:`~BinanceEmulator.rate_limit`,
  :meth:`~BinanceEmulator.invalid_key`, :meth:`~BinanceEmulator.timestamp_error`,
  :meth:`~BinanceEmulator.slow`, :meth:`~BinanceEmulator.reject_orders`,
  :meth:`~BinanceEmulator.expire_listen_key`.

Not emulated: hedge mode, algo (conditional) orders, the WebSocket API (``/ws-fapi/v1``, used
only with Ed25519 keys), funding, liquidation, isolated margin accounting, multi-asset mode.

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
    emulator.set_price(Decimal("59000"))  # move the market (fills resting orders it crosses)
    emulator.positions(), emulator.balance(), emulator.orders(), emulator.fills()
    emulator.stop()

``fill_chunk_qty`` splits fills into chunks (``PARTIALLY_FILLED`` then ``FILLED``); resting
orders take one chunk per market tick.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import re
import secrets
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final, Literal
from urllib.parse import parse_qsl, unquote_plus

from aiohttp import WSMsgType, web

__all__ = [
    "BalanceSnapshot",
    "BinanceEmulator",
    "FillSnapshot",
    "OrderSnapshot",
    "PositionSnapshot",
    "RequestRecord",
]

log = logging.getLogger(__name__)

type JsonDict = dict[str, object]
type Params = dict[str, str]
type Security = Literal["NONE", "USER_STREAM", "SIGNED"]
type Handler = Callable[[Params], object]

ZERO: Final = Decimal(0)
EIGHT: Final = Decimal("0.00000001")
QUOTE_ASSET: Final = "USDT"
LISTEN_KEY_TTL_MS: Final = 60 * 60 * 1000
MAX_RECV_WINDOW_MS: Final = 60_000
REQUEST_WEIGHT_LIMIT_1M: Final = 2400
MAINT_MARGIN_RATE: Final = Decimal("0.004")
FUNDING_RATE: Final = "0.00010000"
CLIENT_ORDER_ID_RE: Final = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
OPEN_STATUSES: Final = frozenset({"NEW", "PARTIALLY_FILLED"})
CONDITIONAL_TYPES: Final = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)
TIME_IN_FORCES: Final = frozenset({"GTC", "IOC", "FOK", "GTX", "GTD"})
KLINE_MINUTES: Final[dict[str, int]] = {
    "1m": 1,
    "3m": 3,
    "5m": 5,
    "15m": 15,
    "30m": 30,
    "1h": 60,
    "2h": 120,
    "4h": 240,
    "6h": 360,
    "8h": 480,
    "12h": 720,
    "1d": 1440,
    "3d": 4320,
    "1w": 10080,
}
# (max leverage, max notional) brackets, lowest leverage cap last (shape of BTCUSDT's table).
LEVERAGE_BRACKETS: Final = (
    (125, 300_000),
    (100, 800_000),
    (75, 3_000_000),
    (50, 12_000_000),
    (25, 70_000_000),
    (20, 100_000_000),
    (10, 230_000_000),
    (5, 480_000_000),
    (4, 600_000_000),
    (3, 800_000_000),
    (2, 1_200_000_000),
    (1, 1_800_000_000),
)
MSG_BAD_KEY: Final = "Invalid API-key, IP, or permissions for action."
MSG_BAD_TIMESTAMP: Final = "Timestamp for this request is outside of the recvWindow."
MSG_UNKNOWN_ORDER: Final = "Unknown order sent."
MSG_POST_ONLY: Final = (
    "Due to the order could not be executed as maker, the Post Only order will be rejected. "
    "The order will not be recorded in the order history"
)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _decimals(step: Decimal) -> int:
    """Decimal places as written (``Decimal("0.10")`` has 2), as the adapter derives them."""
    exponent = step.as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _fmt(value: Decimal, quantum: Decimal) -> str:
    """Fixed-point text, as Binance writes numbers (``"0.00000000"``, never ``"0E-8"``)."""
    return format(value.quantize(quantum, rounding=ROUND_HALF_UP), "f")


def _round8(value: Decimal) -> Decimal:
    return value.quantize(EIGHT, rounding=ROUND_HALF_UP)


def _fmt8(value: Decimal) -> str:
    return _fmt(value, EIGHT)


def _max_notional(leverage: int) -> int:
    cap = LEVERAGE_BRACKETS[0][1]
    for max_leverage, notional in LEVERAGE_BRACKETS:
        if max_leverage >= leverage:
            cap = notional
    return cap


class _ApiError(Exception):
    """A Binance error reply: HTTP status plus ``{"code": ..., "msg": ...}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def _mandatory(name: str) -> _ApiError:
    return _ApiError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


# -- Public snapshots (immutable copies handed to tests) ------------------------------------------


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    executed_qty: Decimal
    avg_price: Decimal
    status: str
    reduce_only: bool
    time_ms: int
    update_time_ms: int


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    symbol: str
    position_side: str
    amount: Decimal
    """Signed: positive long, negative short."""
    entry_price: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    mark_price: Decimal
    leverage: int
    margin_type: str


@dataclass(frozen=True, slots=True)
class BalanceSnapshot:
    asset: str
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    initial_margin: Decimal
    maint_margin: Decimal
    available_balance: Decimal


@dataclass(frozen=True, slots=True)
class FillSnapshot:
    trade_id: int
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    realized_pnl: Decimal
    maker: bool
    time_ms: int


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One REST request or WebSocket connection, in arrival order."""

    method: str
    """HTTP method, or ``"WS"`` for a WebSocket connection."""
    path: str
    status: int
    code: int | None = None
    """Binance error code when the reply was an error."""


# -- Internal state -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Order:
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    reduce_only: bool
    price_match: str
    good_till_date: int
    time_ms: int
    update_time_ms: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.executed_qty

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES


@dataclass(slots=True)
class _Position:
    amount: Decimal = ZERO
    entry_price: Decimal = ZERO
    realized: Decimal = ZERO
    update_time_ms: int = 0


@dataclass(slots=True)
class _Kline:
    interval: str
    open_time: int
    duration_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote_volume: Decimal = ZERO
    taker_base: Decimal = ZERO
    taker_quote: Decimal = ZERO
    trades: int = 0
    first_id: int = -1
    last_id: int = -1

    @property
    def close_time(self) -> int:
        return self.open_time + self.duration_ms - 1

    def add(self, trade: _Trade) -> None:
        if self.trades == 0:
            self.first_id = trade.trade_id
        self.last_id = trade.trade_id
        self.trades += 1
        self.high = max(self.high, trade.price)
        self.low = min(self.low, trade.price)
        self.close = trade.price
        self.volume += trade.qty
        self.quote_volume += trade.qty * trade.price
        if not trade.buyer_maker:
            self.taker_base += trade.qty
            self.taker_quote += trade.qty * trade.price


@dataclass(frozen=True, slots=True)
class _Trade:
    trade_id: int
    price: Decimal
    qty: Decimal
    time_ms: int
    buyer_maker: bool


@dataclass(eq=False, slots=True)
class _WsConn:
    request: web.Request
    ws: web.WebSocketResponse
    path: str
    combined: bool
    listen_key: str | None
    streams: set[str] = field(default_factory=set)
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)


@dataclass(slots=True)
class _Faults:
    rate_limited: int = 0
    invalid_key: bool = False
    timestamp_errors: int = 0
    slow_s: float = 0.0
    rejects: int = 0
    reject_code: int = -2019
    reject_msg: str = "Margin is insufficient."


@dataclass(frozen=True, slots=True)
class _Figures:
    upnl: Decimal
    margin_balance: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal
    initial_margin: Decimal
    maint_margin: Decimal
    available: Decimal
    notional: Decimal
    bid_notional: Decimal
    ask_notional: Decimal


@dataclass(frozen=True, slots=True)
class _Route:
    handler: Handler
    security: Security
    weight: int = 1


# -- The emulator ---------------------------------------------------------------------------------


class BinanceEmulator:
    """A Binance USD-M futures venue on loopback for one symbol and one USDT account.

    Use :meth:`start` / :meth:`stop` (or ``with BinanceEmulator(...) as emu:``), then point the
    adapter's ``base_url_http`` at :attr:`http_url`, ``base_url_ws`` at :attr:`ws_url` and
    ``base_url_ws_stream`` at :attr:`ws_stream_url`. The accessors (:meth:`orders`,
    :meth:`positions`, :meth:`balance`, :meth:`fills`, :meth:`requests`, ...) and the fault
    injectors may be called from any thread.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        symbol: str = "BTCUSDT",
        start_price: Decimal = Decimal("60000"),
        seed: int = 7,
        *,
        starting_balance: Decimal = Decimal("10000"),
        kline_interval_s: float = 1.0,
        tick_interval_s: float = 0.2,
        volatility: Decimal = Decimal("0.0002"),
        tick_size: Decimal = Decimal("0.10"),
        step_size: Decimal = Decimal("0.001"),
        min_notional: Decimal = Decimal("100"),
        taker_fee: Decimal = Decimal("0.0004"),
        maker_fee: Decimal = Decimal("0.00016"),
        fee_tier: int = 1,
        leverage: int = 20,
        fill_chunk_qty: Decimal | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the emulator binds to loopback addresses only, not {host!r}")
        if kline_interval_s * 1000 < 50 or tick_interval_s <= 0:
            raise ValueError("kline_interval_s must be >= 0.05 and tick_interval_s > 0")
        self._api_key = api_key
        self._api_secret = api_secret
        self._symbol = symbol.upper()
        self._base_asset = self._symbol.removesuffix(QUOTE_ASSET) or self._symbol
        self._host = host
        self._port = port
        self._kline_interval_s = kline_interval_s
        self._tick_interval_s = tick_interval_s
        self._volatility = volatility
        self._tick = tick_size
        self._step = step_size
        self._px_places = _decimals(tick_size)
        self._qty_places = _decimals(step_size)
        self._px_quantum = Decimal(1).scaleb(-self._px_places)
        self._qty_quantum = Decimal(1).scaleb(-self._qty_places)
        self._min_price = tick_size
        self._max_price = (start_price * 20).quantize(tick_size, rounding=ROUND_DOWN)
        self._min_qty = step_size
        self._max_qty = Decimal(1000)
        self._max_market_qty = Decimal(120)
        self._min_notional = min_notional
        self._taker_fee = taker_fee
        self._maker_fee = maker_fee
        self._fee_tier = fee_tier
        self._fill_chunk_qty = fill_chunk_qty
        self._onboard_ms = 1569398400000

        self._lock = threading.RLock()
        self._rng = random.Random(seed)
        # Market
        self._bid = start_price.quantize(tick_size, rounding=ROUND_DOWN)
        self._ask = self._bid + tick_size
        self._last = self._bid
        self._bid_qty = step_size * 1000
        self._ask_qty = step_size * 1000
        self._book_update_id = 1_000_000
        self._trade_seq = 5_000_000
        self._trades: deque[_Trade] = deque(maxlen=5000)
        self._klines: dict[str, _Kline] = {}
        self._kline_history: dict[str, deque[_Kline]] = {}
        self._last_mark_push_ms = 0
        # Account
        self._wallet = starting_balance
        self._position = _Position()
        self._leverage = leverage
        self._margin_type = "CROSSED"
        self._dual_side = False
        self._orders: dict[int, _Order] = {}
        self._order_seq = 4_000_000_000
        self._fills: list[FillSnapshot] = []
        self._account_update_ms = _now_ms()
        self._listen_key: str | None = None
        self._listen_key_expiry_ms = 0
        self._user_events: list[JsonDict] = []
        # Server
        self._faults = _Faults()
        self._requests: list[RequestRecord] = []
        self._unknown: list[str] = []
        self._weights: deque[tuple[int, int]] = deque()
        self._order_times: deque[int] = deque()
        self._conns: set[_WsConn] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._routes = self._build_routes()
        self._ensure_kline("1m", _now_ms())

    # -- Lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> BinanceEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self, timeout_s: float = 10.0) -> None:
        """Start the server thread; returns once it is listening."""
        if self._thread is not None:
            raise RuntimeError("emulator already started")
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._thread_main, args=(ready, errors), name="binance-emulator", daemon=True
        )
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"emulator did not start within {timeout_s} s")
        if errors:
            self._thread.join(timeout_s)
            self._thread = None
            raise RuntimeError("emulator failed to start") from errors[0]
        log.info("Binance emulator listening on %s", self.http_url)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close every connection, stop the server and its thread. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(concurrent.futures.TimeoutError):
                future.result(timeout_s)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._thread = None
        self._loop = None

    def _thread_main(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:
            errors.append(exc)
            ready.set()
            loop.close()
            return
        self._loop = loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    async def _startup(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET6 if ":" in self._host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        self._tasks = [
            asyncio.create_task(self._market_loop(), name="emulator-market"),
            asyncio.create_task(self._kline_loop(), name="emulator-klines"),
        ]

    async def _shutdown(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_conns(list(self._conns), abrupt=False)
        if self._runner is not None:
            await self._runner.cleanup()

    # -- URLs -------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def _authority(self) -> str:
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{host}:{self._port}"

    @property
    def http_url(self) -> str:
        """For ``base_url_http``."""
        return f"http://{self._authority}"

    @property
    def ws_url(self) -> str:
        """For the data client's ``base_url_ws`` (market streams; the adapter appends
        ``/stream?streams=...``)."""
        return f"ws://{self._authority}"

    @property
    def ws_stream_url(self) -> str:
        """For the exec client's ``base_url_ws_stream`` (the adapter appends
        ``/ws?listenKey=...``)."""
        return f"ws://{self._authority}"

    @property
    def symbol(self) -> str:
        return self._symbol

    # -- Accessors --------------------------------------------------------------------------------

    def orders(self) -> list[OrderSnapshot]:
        with self._lock:
            return [self._order_snapshot(o) for o in self._orders.values()]

    def open_orders(self) -> list[OrderSnapshot]:
        with self._lock:
            return [self._order_snapshot(o) for o in self._orders.values() if o.is_open]

    def positions(self) -> list[PositionSnapshot]:
        """The symbol's position (one-way mode: one ``BOTH`` entry, amount 0 when flat)."""
        with self._lock:
            pos = self._position
            mark = self._mark()
            return [
                PositionSnapshot(
                    symbol=self._symbol,
                    position_side="BOTH",
                    amount=pos.amount,
                    entry_price=pos.entry_price,
                    realized_pnl=pos.realized,
                    unrealized_pnl=_round8(self._upnl(mark)),
                    mark_price=mark,
                    leverage=self._leverage,
                    margin_type=self._margin_type,
                )
            ]

    def balance(self) -> BalanceSnapshot:
        with self._lock:
            f = self._figures()
            return BalanceSnapshot(
                asset=QUOTE_ASSET,
                wallet_balance=self._wallet,
                unrealized_pnl=_round8(f.upnl),
                margin_balance=_round8(f.margin_balance),
                initial_margin=_round8(f.initial_margin),
                maint_margin=_round8(f.maint_margin),
                available_balance=_round8(f.available),
            )

    def fills(self) -> list[FillSnapshot]:
        with self._lock:
            return list(self._fills)

    def requests(self) -> list[RequestRecord]:
        """Every REST request and WebSocket connection so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    def unknown_requests(self) -> list[str]:
        """``"METHOD /path?query"`` of requests to endpoints the emulator does not know."""
        with self._lock:
            return list(self._unknown)

    def user_events(self) -> list[JsonDict]:
        """Every user-data-stream event emitted so far (also those no client received)."""
        with self._lock:
            return [dict(e) for e in self._user_events]

    def ws_connections(self) -> dict[str, int]:
        """Open WebSocket connections by kind: ``market`` and ``user``."""
        with self._lock:
            user = sum(1 for c in self._conns if c.listen_key is not None)
            return {"market": len(self._conns) - user, "user": user}

    def subscriptions(self) -> set[str]:
        with self._lock:
            return {s for c in self._conns for s in c.streams}

    @property
    def listen_key(self) -> str | None:
        with self._lock:
            return self._listen_key if self._listen_key_valid() else None

    @property
    def price(self) -> Decimal:
        """The last trade price."""
        with self._lock:
            return self._last

    def book(self) -> tuple[Decimal, Decimal]:
        """The current best (bid, ask)."""
        with self._lock:
            return self._bid, self._ask

    # -- Test controls ----------------------------------------------------------------------------

    def set_price(self, price: Decimal) -> None:
        """Jump the market to ``price`` (bid; ask one tick above) now: prints a trade, pushes
        the book, fills resting orders it crosses; the random walk continues from there."""

        def jump() -> None:
            with self._lock:
                self._bid = max(self._min_price, price.quantize(self._tick, rounding=ROUND_DOWN))
                self._ask = self._bid + self._tick
                self._market_step(move=False)

        self._call_on_loop(jump)

    def deposit(self, amount: Decimal) -> None:
        """Change the wallet balance (``ACCOUNT_UPDATE`` with reason ``DEPOSIT``/``WITHDRAW``)."""

        def apply() -> None:
            with self._lock:
                self._wallet += amount
                reason = "DEPOSIT" if amount >= 0 else "WITHDRAW"
                self._emit_user(self._account_update_event(reason, balance_change=amount))

        self._call_on_loop(apply)

    # -- Fault injection --------------------------------------------------------------------------

    def drop_websockets(self, kind: Literal["all", "market", "user"] = "all") -> int:
        """Abort WebSocket connections abruptly (TCP reset, no close frame); returns how many.
        The adapter's clients reconnect by themselves."""
        loop = self._require_loop()

        async def drop() -> int:
            with self._lock:
                conns = [
                    c
                    for c in self._conns
                    if kind == "all" or (kind == "user") == (c.listen_key is not None)
                ]
            await self._close_conns(conns, abrupt=True)
            return len(conns)

        return asyncio.run_coroutine_threadsafe(drop(), loop).result(10)

    def rate_limit(self, n: int) -> None:
        """Answer the next ``n`` REST requests with HTTP 429 ``-1003``."""
        with self._lock:
            self._faults.rate_limited = n

    def invalid_key(self, enabled: bool = True) -> None:
        """While enabled, every keyed request (signed and listenKey) gets HTTP 401 ``-2015``."""
        with self._lock:
            self._faults.invalid_key = enabled

    def timestamp_error(self, n: int) -> None:
        """Answer the next ``n`` signed requests with ``-1021`` (outside recvWindow)."""
        with self._lock:
            self._faults.timestamp_errors = n

    def slow(self, seconds: float) -> None:
        """Delay every REST reply by ``seconds`` (0 turns it off)."""
        with self._lock:
            self._faults.slow_s = max(0.0, seconds)

    def reject_orders(
        self, n: int, code: int = -2019, msg: str = "Margin is insufficient."
    ) -> None:
        """Reject the next ``n`` order placements (``POST /fapi/v1/order``) with HTTP 400."""
        with self._lock:
            self._faults.rejects = n
            self._faults.reject_code = code
            self._faults.reject_msg = msg

    def clear_faults(self) -> None:
        with self._lock:
            self._faults = _Faults()

    def expire_listen_key(self) -> None:
        """Expire the listenKey: push ``listenKeyExpired`` and close the user streams."""
        loop = self._require_loop()

        async def expire() -> None:
            with self._lock:
                key = self._listen_key
                conns = [c for c in self._conns if c.listen_key is not None]
                if key is not None:
                    event: JsonDict = {"e": "listenKeyExpired", "E": _now_ms(), "listenKey": key}
                    self._emit_user(event)
                self._listen_key = None
            await asyncio.sleep(0.05)  # let the writers flush the event
            await self._close_conns(conns, abrupt=False)

        asyncio.run_coroutine_threadsafe(expire(), loop).result(10)

    # -- Loop helpers -----------------------------------------------------------------------------

    def _require_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("emulator not started")
        return self._loop

    def _call_on_loop(self, fn: Callable[[], None]) -> None:
        loop = self._require_loop()
        if threading.current_thread() is self._thread:
            fn()
            return
        future: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                fn()
            except BaseException as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)

        loop.call_soon_threadsafe(run)
        future.result(10)

    # -- HTTP dispatch ----------------------------------------------------------------------------

    def _build_routes(self) -> dict[tuple[str, str], _Route]:
        r: dict[tuple[str, str], _Route] = {}

        def add(method: str, path: str, handler: Handler, security: Security, w: int = 1) -> None:
            r[(method, path)] = _Route(handler, security, w)

        # Market data (public)
        add("GET", "/fapi/v1/ping", lambda p: {}, "NONE")
        add("GET", "/fapi/v1/time", lambda p: {"serverTime": _now_ms()}, "NONE")
        add("GET", "/fapi/v1/exchangeInfo", self._h_exchange_info, "NONE")
        add("GET", "/fapi/v1/depth", self._h_depth, "NONE", 5)
        add("GET", "/fapi/v1/trades", self._h_trades, "NONE", 5)
        add("GET", "/fapi/v1/historicalTrades", self._h_trades, "NONE", 20)
        add("GET", "/fapi/v1/aggTrades", self._h_agg_trades, "NONE", 20)
        add("GET", "/fapi/v1/klines", self._h_klines, "NONE", 2)
        add("GET", "/fapi/v1/ticker/price", self._h_ticker_price, "NONE")
        add("GET", "/fapi/v2/ticker/price", self._h_ticker_price, "NONE")
        add("GET", "/fapi/v1/ticker/bookTicker", self._h_book_ticker, "NONE", 2)
        add("GET", "/fapi/v1/ticker/24hr", self._h_ticker_24hr, "NONE")
        add("GET", "/fapi/v1/premiumIndex", self._h_premium_index, "NONE")
        # User data stream
        add("POST", "/fapi/v1/listenKey", self._h_listen_key_new, "USER_STREAM")
        add("PUT", "/fapi/v1/listenKey", self._h_listen_key_keepalive, "USER_STREAM")
        add("DELETE", "/fapi/v1/listenKey", self._h_listen_key_close, "USER_STREAM")
        # Account (signed)
        add("GET", "/fapi/v2/account", self._h_account, "SIGNED", 5)
        add("GET", "/fapi/v3/account", self._h_account, "SIGNED", 5)
        add("GET", "/fapi/v2/balance", self._h_balance, "SIGNED", 5)
        add("GET", "/fapi/v3/balance", self._h_balance, "SIGNED", 5)
        add("GET", "/fapi/v2/positionRisk", self._h_position_risk_v2, "SIGNED", 5)
        add("GET", "/fapi/v3/positionRisk", self._h_position_risk_v3, "SIGNED", 5)
        add("GET", "/fapi/v1/symbolConfig", self._h_symbol_config, "SIGNED", 5)
        add("GET", "/fapi/v1/commissionRate", self._h_commission_rate, "SIGNED", 20)
        add("POST", "/fapi/v1/leverage", self._h_leverage, "SIGNED")
        add("POST", "/fapi/v1/marginType", self._h_margin_type, "SIGNED")
        add("GET", "/fapi/v1/positionSide/dual", self._h_dual_get, "SIGNED", 30)
        add("POST", "/fapi/v1/positionSide/dual", self._h_dual_post, "SIGNED")
        # Trading (signed)
        add("POST", "/fapi/v1/order", self._h_new_order, "SIGNED")
        add("PUT", "/fapi/v1/order", self._h_modify_order, "SIGNED")
        add("GET", "/fapi/v1/order", self._h_query_order, "SIGNED")
        add("DELETE", "/fapi/v1/order", self._h_cancel_order, "SIGNED")
        add("DELETE", "/fapi/v1/allOpenOrders", self._h_cancel_all, "SIGNED")
        add("DELETE", "/fapi/v1/batchOrders", self._h_cancel_batch, "SIGNED")
        add("GET", "/fapi/v1/openOrders", self._h_open_orders, "SIGNED", 1)
        add("GET", "/fapi/v1/allOrders", self._h_all_orders, "SIGNED", 5)
        add("GET", "/fapi/v1/userTrades", self._h_user_trades, "SIGNED", 5)
        # Algo (conditional) orders: none can exist here
        add("GET", "/fapi/v1/openAlgoOrders", lambda p: [], "SIGNED")
        add("GET", "/fapi/v1/allAlgoOrders", lambda p: [], "SIGNED", 5)
        add("POST", "/fapi/v1/algoOrder", self._h_algo_unsupported, "SIGNED")
        add("GET", "/fapi/v1/algoOrder", self._h_algo_missing, "SIGNED")
        add("DELETE", "/fapi/v1/algoOrder", self._h_algo_missing, "SIGNED")
        add("DELETE", "/fapi/v1/algoOpenOrders", self._h_cancel_all_algo, "SIGNED")
        return r

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._ws_dispatch(request)
        method, path = request.method, request.path
        raw_query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        route = self._routes.get((method, path))
        if route is None:
            target = f"{method} {path}" + (f"?{raw_query}" if raw_query else "")
            log.warning("BINANCE EMULATOR: UNKNOWN ENDPOINT %s", target)
            with self._lock:
                self._unknown.append(target)
            return self._reply(
                method, path, _ApiError(404, -1000, f"emulator: unknown endpoint {method} {path}")
            )
        with self._lock:
            delay = self._faults.slow_s
        if delay:
            await asyncio.sleep(delay)
        try:
            params = self._parse_params(raw_query, body, request.content_type)
            with self._lock:
                self._check_rate_limit(route.weight)
                self._authenticate(request, route.security, params, raw_query, body)
                result = route.handler(params)
        except _ApiError as exc:
            return self._reply(method, path, exc)
        except Exception:
            log.exception("BINANCE EMULATOR: handler failed for %s %s", method, path)
            return self._reply(
                method,
                path,
                _ApiError(500, -1000, "An unknown error occurred while processing the request."),
            )
        return self._reply(method, path, result)

    def _reply(self, method: str, path: str, result: object) -> web.Response:
        now = _now_ms()
        with self._lock:
            headers = {"X-MBX-USED-WEIGHT-1M": str(self._used_weight(now))}
            if (method, path) == ("POST", "/fapi/v1/order"):
                headers["X-MBX-ORDER-COUNT-10S"] = str(self._order_count(now, 10_000))
                headers["X-MBX-ORDER-COUNT-1M"] = str(self._order_count(now, 60_000))
            if isinstance(result, _ApiError):
                status, code = result.status, result.code
                payload: object = {"code": result.code, "msg": result.msg}
                if status == 429:
                    headers["Retry-After"] = "1"
            else:
                status, code, payload = 200, None, result
            self._requests.append(RequestRecord(method, path, status, code))
        if code is not None:
            log.info("BINANCE EMULATOR: %s %s -> %s %s", method, path, status, payload)
        text = json.dumps(payload, separators=(",", ":"))
        return web.Response(
            text=text, status=status, content_type="application/json", headers=headers
        )

    @staticmethod
    def _parse_params(raw_query: str, body: str, content_type: str) -> Params:
        params: Params = {}
        pairs = parse_qsl(raw_query, keep_blank_values=True)
        if body and content_type == "application/x-www-form-urlencoded":
            pairs += parse_qsl(body, keep_blank_values=True)
        for key, value in pairs:
            if key in params:
                raise _ApiError(400, -1101, "Duplicate values for a parameter detected.")
            params[key] = value
        return params

    def _used_weight(self, now: int) -> int:
        while self._weights and self._weights[0][0] <= now - 60_000:
            self._weights.popleft()
        return sum(w for _, w in self._weights)

    def _order_count(self, now: int, window_ms: int) -> int:
        while self._order_times and self._order_times[0] <= now - 60_000:
            self._order_times.popleft()
        return sum(1 for t in self._order_times if t > now - window_ms)

    def _check_rate_limit(self, weight: int) -> None:
        now = _now_ms()
        limit_msg = (
            f"Too many requests; current limit of IP(127.0.0.1) is {REQUEST_WEIGHT_LIMIT_1M} "
            "requests per minute. Please use the websocket for live updates to avoid polling "
            "the API."
        )
        if self._faults.rate_limited > 0:
            self._faults.rate_limited -= 1
            raise _ApiError(429, -1003, limit_msg)
        if self._used_weight(now) + weight > REQUEST_WEIGHT_LIMIT_1M:
            raise _ApiError(429, -1003, limit_msg)
        self._weights.append((now, weight))

    def _authenticate(
        self, request: web.Request, security: Security, params: Params, raw_query: str, body: str
    ) -> None:
        if security == "NONE":
            return
        key = request.headers.get("X-MBX-APIKEY", "")
        if not key:
            raise _ApiError(401, -2014, "API-key format invalid.")
        if self._faults.invalid_key or not hmac.compare_digest(key, self._api_key):
            raise _ApiError(401, -2015, MSG_BAD_KEY)
        if security == "USER_STREAM":
            return
        if "timestamp" not in params:
            raise _mandatory("timestamp")
        if not params.get("signature"):
            raise _mandatory("signature")
        # Binance signs totalParams = query string (without the signature) + request body.
        kept = [part for part in raw_query.split("&") if not part.startswith("signature=")]
        signed = "&".join(kept) + body
        expected = hmac.new(self._api_secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        supplied = unquote_plus(params["signature"]).lower()
        if not hmac.compare_digest(expected, supplied):
            raise _ApiError(400, -1022, "Signature for this request is not valid.")
        try:
            timestamp = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise _ApiError(
                400, -1100, "Illegal characters found in parameter 'timestamp'."
            ) from None
        if recv_window > MAX_RECV_WINDOW_MS or recv_window <= 0:
            raise _ApiError(400, -1130, "Data sent for parameter 'recvWindow' is not valid.")
        if self._faults.timestamp_errors > 0:
            self._faults.timestamp_errors -= 1
            raise _ApiError(400, -1021, MSG_BAD_TIMESTAMP)
        now = _now_ms()
        if timestamp > now + 1000:
            raise _ApiError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - timestamp > recv_window:
            raise _ApiError(400, -1021, MSG_BAD_TIMESTAMP)

    # -- Parameter helpers ------------------------------------------------------------------------

    def _symbol_param(self, params: Params, required: bool = True) -> str | None:
        symbol = params.get("symbol")
        if not symbol:
            if required:
                raise _mandatory("symbol")
            return None
        if symbol.upper() != self._symbol:
            raise _ApiError(400, -1121, "Invalid symbol.")
        return self._symbol

    @staticmethod
    def _decimal_param(params: Params, name: str) -> Decimal:
        raw = params.get(name)
        if not raw:
            raise _mandatory(name)
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise _ApiError(
                400,
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is "
                "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
            ) from None
        if not value.is_finite():
            raise _mandatory(name)
        return value

    @staticmethod
    def _int_param(params: Params, name: str, default: int | None = None) -> int | None:
        raw = params.get(name)
        if raw is None or raw == "":
            return default
        try:
            return int(raw)
        except ValueError:
            raise _ApiError(
                400, -1100, f"Illegal characters found in parameter '{name}'."
            ) from None

    @staticmethod
    def _bool_param(params: Params, name: str) -> bool:
        return params.get(name, "false").strip().lower() == "true"

    def _find_order(self, params: Params) -> _Order | None:
        order_id = self._int_param(params, "orderId")
        client_id = params.get("origClientOrderId")
        if order_id is None and not client_id:
            raise _ApiError(400, -1102, "Either orderId or origClientOrderId must be sent.")
        if order_id is not None:
            order = self._orders.get(order_id)
            if order is not None and client_id and order.client_order_id != client_id:
                return None
            return order
        matches = [o for o in self._orders.values() if o.client_order_id == client_id]
        return matches[-1] if matches else None

    # -- Formatting -------------------------------------------------------------------------------

    def _px(self, value: Decimal) -> str:
        return _fmt(value, self._px_quantum)

    def _qty(self, value: Decimal) -> str:
        return _fmt(value, self._qty_quantum)

    def _order_json(self, o: _Order) -> JsonDict:
        return {
            "orderId": o.order_id,
            "symbol": self._symbol,
            "status": o.status,
            "clientOrderId": o.client_order_id,
            "price": self._px(o.price),
            "avgPrice": _fmt8(o.avg_price),
            "origQty": self._qty(o.quantity),
            "executedQty": self._qty(o.executed_qty),
            "cumQty": self._qty(o.executed_qty),
            "cumQuote": _fmt8(o.cum_quote),
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

    def _order_snapshot(self, o: _Order) -> OrderSnapshot:
        return OrderSnapshot(
            order_id=o.order_id,
            client_order_id=o.client_order_id,
            symbol=self._symbol,
            side=o.side,
            type=o.type,
            time_in_force=o.time_in_force,
            quantity=o.quantity,
            price=o.price,
            executed_qty=o.executed_qty,
            avg_price=o.avg_price,
            status=o.status,
            reduce_only=o.reduce_only,
            time_ms=o.time_ms,
            update_time_ms=o.update_time_ms,
        )

    # -- Account figures --------------------------------------------------------------------------

    def _mark(self) -> Decimal:
        return self._last

    def _upnl(self, mark: Decimal) -> Decimal:
        pos = self._position
        return pos.amount * (mark - pos.entry_price) if pos.amount else ZERO

    def _open_notional(self, side: str) -> Decimal:
        return sum(
            (o.remaining * o.price for o in self._orders.values() if o.is_open and o.side == side),
            ZERO,
        )

    def _figures(self) -> _Figures:
        mark = self._mark()
        upnl = self._upnl(mark)
        notional = self._position.amount * mark
        leverage = Decimal(self._leverage)
        bid_notional = self._open_notional("BUY")
        ask_notional = self._open_notional("SELL")
        position_im = abs(notional) / leverage
        open_order_im = max(bid_notional, ask_notional) / leverage
        maint = abs(notional) * MAINT_MARGIN_RATE
        margin_balance = self._wallet + upnl
        available = max(ZERO, margin_balance - position_im - open_order_im)
        return _Figures(
            upnl=upnl,
            margin_balance=margin_balance,
            position_initial_margin=position_im,
            open_order_initial_margin=open_order_im,
            initial_margin=position_im + open_order_im,
            maint_margin=maint,
            available=available,
            notional=notional,
            bid_notional=bid_notional,
            ask_notional=ask_notional,
        )

    # -- REST handlers: market data ---------------------------------------------------------------

    def _symbol_info(self) -> JsonDict:
        return {
            "symbol": self._symbol,
            "pair": self._symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": self._onboard_ms,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self._base_asset,
            "quoteAsset": QUOTE_ASSET,
            "marginAsset": QUOTE_ASSET,
            "pricePrecision": self._px_places,
            "quantityPrecision": self._qty_places,
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
                    "minPrice": self._px(self._min_price),
                    "maxPrice": self._px(self._max_price),
                    "tickSize": str(self._tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": self._qty(self._min_qty),
                    "maxQty": str(self._max_qty),
                    "stepSize": str(self._step),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": self._qty(self._min_qty),
                    "maxQty": str(self._max_market_qty),
                    "stepSize": str(self._step),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": str(self._min_notional)},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
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

    def _h_exchange_info(self, params: Params) -> JsonDict:
        return {
            "timezone": "UTC",
            "serverTime": _now_ms(),
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
                {"asset": self._base_asset, "marginAvailable": True, "autoAssetExchange": "0"},
            ],
            "symbols": [self._symbol_info()],
        }

    def _h_depth(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        limit = self._int_param(params, "limit", 500) or 500
        if limit not in (5, 10, 20, 50, 100, 500, 1000):
            raise _ApiError(400, -4021, "Invalid depth limit.")
        now = _now_ms()

        def size(i: int, salt: int) -> str:
            return self._qty(self._step * (1 + (i * 7919 + self._book_update_id * salt) % 997))

        bids = [
            [
                self._px(self._bid - self._tick * i),
                self._qty(self._bid_qty) if i == 0 else size(i, 3),
            ]
            for i in range(limit)
            if self._bid - self._tick * i > 0
        ]
        asks = [
            [
                self._px(self._ask + self._tick * i),
                self._qty(self._ask_qty) if i == 0 else size(i, 5),
            ]
            for i in range(limit)
        ]
        return {
            "lastUpdateId": self._book_update_id,
            "E": now,
            "T": now,
            "bids": bids,
            "asks": asks,
        }

    def _filter_trades(self, params: Params) -> list[_Trade]:
        limit = min(self._int_param(params, "limit", 500) or 500, 1000)
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        from_id = self._int_param(params, "fromId")
        trades = [
            t
            for t in self._trades
            if (start is None or t.time_ms >= start)
            and (end is None or t.time_ms <= end)
            and (from_id is None or t.trade_id >= from_id)
        ]
        return trades[:limit] if (start is not None or from_id is not None) else trades[-limit:]

    def _h_trades(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params)
        return [
            {
                "id": t.trade_id,
                "price": self._px(t.price),
                "qty": self._qty(t.qty),
                "quoteQty": _fmt8(t.price * t.qty),
                "time": t.time_ms,
                "isBuyerMaker": t.buyer_maker,
            }
            for t in self._filter_trades(params)
        ]

    def _h_agg_trades(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params)
        return [
            {
                "a": t.trade_id,
                "p": self._px(t.price),
                "q": self._qty(t.qty),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": t.time_ms,
                "m": t.buyer_maker,
            }
            for t in self._filter_trades(params)
        ]

    def _kline_row(self, k: _Kline) -> list[object]:
        return [
            k.open_time,
            self._px(k.open),
            self._px(k.high),
            self._px(k.low),
            self._px(k.close),
            self._qty(k.volume),
            k.close_time,
            _fmt8(k.quote_volume),
            k.trades,
            self._qty(k.taker_base),
            _fmt8(k.taker_quote),
            "0",
        ]

    def _h_klines(self, params: Params) -> list[list[object]]:
        self._symbol_param(params)
        interval = params.get("interval")
        if not interval:
            raise _mandatory("interval")
        if interval not in KLINE_MINUTES:
            raise _ApiError(400, -1120, "Invalid interval.")
        limit = min(self._int_param(params, "limit", 500) or 500, 1500)
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        self._ensure_kline(interval, _now_ms())
        rows = [*self._kline_history[interval], self._klines[interval]]
        rows = [
            k
            for k in rows
            if (start is None or k.open_time >= start) and (end is None or k.open_time <= end)
        ]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return [self._kline_row(k) for k in rows]

    def _h_ticker_price(self, params: Params) -> object:
        symbol = self._symbol_param(params, required=False)
        item = {"symbol": self._symbol, "price": self._px(self._last), "time": _now_ms()}
        return item if symbol else [item]

    def _h_book_ticker(self, params: Params) -> object:
        symbol = self._symbol_param(params, required=False)
        item = {
            "symbol": self._symbol,
            "bidPrice": self._px(self._bid),
            "bidQty": self._qty(self._bid_qty),
            "askPrice": self._px(self._ask),
            "askQty": self._qty(self._ask_qty),
            "time": _now_ms(),
        }
        return item if symbol else [item]

    def _h_ticker_24hr(self, params: Params) -> object:
        symbol = self._symbol_param(params, required=False)
        now = _now_ms()
        trades = [t for t in self._trades if t.time_ms >= now - 86_400_000]
        prices = [t.price for t in trades] or [self._last]
        volume = sum((t.qty for t in trades), ZERO)
        open_price = prices[0]
        item: JsonDict = {
            "symbol": self._symbol,
            "priceChange": self._px(self._last - open_price),
            "priceChangePercent": _fmt8((self._last / open_price - 1) * 100),
            "weightedAvgPrice": self._px(
                sum((t.qty * t.price for t in trades), ZERO) / volume if volume else self._last
            ),
            "lastPrice": self._px(self._last),
            "lastQty": self._qty(trades[-1].qty if trades else ZERO),
            "openPrice": self._px(open_price),
            "highPrice": self._px(max(prices)),
            "lowPrice": self._px(min(prices)),
            "volume": self._qty(volume),
            "quoteVolume": _fmt8(sum((t.qty * t.price for t in trades), ZERO)),
            "openTime": trades[0].time_ms if trades else now,
            "closeTime": now,
            "firstId": trades[0].trade_id if trades else -1,
            "lastId": trades[-1].trade_id if trades else -1,
            "count": len(trades),
        }
        return item if symbol else [item]

    def _next_funding_ms(self) -> int:
        now = _now_ms()
        period = 8 * 3600 * 1000
        return now - now % period + period

    def _h_premium_index(self, params: Params) -> object:
        symbol = self._symbol_param(params, required=False)
        item = {
            "symbol": self._symbol,
            "markPrice": _fmt8(self._mark()),
            "indexPrice": _fmt8(self._mark()),
            "estimatedSettlePrice": _fmt8(self._mark()),
            "lastFundingRate": FUNDING_RATE,
            "interestRate": "0.00010000",
            "nextFundingTime": self._next_funding_ms(),
            "time": _now_ms(),
        }
        return item if symbol else [item]

    # -- REST handlers: user data stream ----------------------------------------------------------

    def _listen_key_valid(self) -> bool:
        return self._listen_key is not None and _now_ms() < self._listen_key_expiry_ms

    def _h_listen_key_new(self, params: Params) -> JsonDict:
        # Futures: an account has one listenKey; creating it again returns it, extended.
        if not self._listen_key_valid():
            self._listen_key = secrets.token_hex(32)
        self._listen_key_expiry_ms = _now_ms() + LISTEN_KEY_TTL_MS
        return {"listenKey": self._listen_key}

    def _h_listen_key_keepalive(self, params: Params) -> JsonDict:
        if not self._listen_key_valid():
            raise _ApiError(400, -1125, "This listenKey does not exist.")
        self._listen_key_expiry_ms = _now_ms() + LISTEN_KEY_TTL_MS
        return {"listenKey": self._listen_key}

    def _h_listen_key_close(self, params: Params) -> JsonDict:
        key = self._listen_key
        self._listen_key = None
        conns = [c for c in self._conns if c.listen_key is not None and c.listen_key == key]
        if conns:
            asyncio.get_running_loop().create_task(self._close_conns(conns, abrupt=False))
        return {}

    # -- REST handlers: account -------------------------------------------------------------------

    def _asset_json(self, f: _Figures) -> JsonDict:
        return {
            "asset": QUOTE_ASSET,
            "walletBalance": _fmt8(self._wallet),
            "unrealizedProfit": _fmt8(f.upnl),
            "marginBalance": _fmt8(f.margin_balance),
            "maintMargin": _fmt8(f.maint_margin),
            "initialMargin": _fmt8(f.initial_margin),
            "positionInitialMargin": _fmt8(f.position_initial_margin),
            "openOrderInitialMargin": _fmt8(f.open_order_initial_margin),
            "crossWalletBalance": _fmt8(self._wallet),
            "crossUnPnl": _fmt8(f.upnl),
            "availableBalance": _fmt8(f.available),
            "maxWithdrawAmount": _fmt8(min(f.available, self._wallet)),
            "marginAvailable": True,
            "updateTime": self._account_update_ms,
        }

    def _h_account(self, params: Params) -> JsonDict:
        f = self._figures()
        pos = self._position
        return {
            "feeTier": self._fee_tier,
            "feeBurn": False,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "tradeGroupId": -1,
            "totalInitialMargin": _fmt8(f.initial_margin),
            "totalMaintMargin": _fmt8(f.maint_margin),
            "totalWalletBalance": _fmt8(self._wallet),
            "totalUnrealizedProfit": _fmt8(f.upnl),
            "totalMarginBalance": _fmt8(f.margin_balance),
            "totalPositionInitialMargin": _fmt8(f.position_initial_margin),
            "totalOpenOrderInitialMargin": _fmt8(f.open_order_initial_margin),
            "totalCrossWalletBalance": _fmt8(self._wallet),
            "totalCrossUnPnl": _fmt8(f.upnl),
            "availableBalance": _fmt8(f.available),
            "maxWithdrawAmount": _fmt8(min(f.available, self._wallet)),
            "assets": [self._asset_json(f)],
            "positions": [
                {
                    "symbol": self._symbol,
                    "initialMargin": _fmt8(f.initial_margin),
                    "maintMargin": _fmt8(f.maint_margin),
                    "unrealizedProfit": _fmt8(f.upnl),
                    "positionInitialMargin": _fmt8(f.position_initial_margin),
                    "openOrderInitialMargin": _fmt8(f.open_order_initial_margin),
                    "leverage": str(self._leverage),
                    "isolated": self._margin_type == "ISOLATED",
                    "entryPrice": _fmt8(pos.entry_price),
                    "breakEvenPrice": _fmt8(pos.entry_price),
                    "maxNotional": str(_max_notional(self._leverage)),
                    "bidNotional": _fmt8(f.bid_notional),
                    "askNotional": _fmt8(f.ask_notional),
                    "positionSide": "BOTH",
                    "positionAmt": self._qty(pos.amount),
                    "updateTime": pos.update_time_ms,
                }
            ],
        }

    def _h_balance(self, params: Params) -> list[JsonDict]:
        f = self._figures()
        return [
            {
                "accountAlias": "SgsR",
                "asset": QUOTE_ASSET,
                "balance": _fmt8(self._wallet),
                "crossWalletBalance": _fmt8(self._wallet),
                "crossUnPnl": _fmt8(f.upnl),
                "availableBalance": _fmt8(f.available),
                "maxWithdrawAmount": _fmt8(min(f.available, self._wallet)),
                "marginAvailable": True,
                "updateTime": self._account_update_ms,
            }
        ]

    def _position_risk_common(self, f: _Figures) -> JsonDict:
        pos = self._position
        return {
            "symbol": self._symbol,
            "positionSide": "BOTH",
            "positionAmt": self._qty(pos.amount),
            "entryPrice": _fmt8(pos.entry_price),
            "breakEvenPrice": _fmt8(pos.entry_price),
            "markPrice": _fmt8(self._mark()),
            "unRealizedProfit": _fmt8(f.upnl),
            "liquidationPrice": "0",
            "isolatedMargin": "0",
            "notional": _fmt8(f.notional),
            "isolatedWallet": "0",
            "updateTime": pos.update_time_ms,
        }

    def _h_position_risk_v3(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params, required=False)
        f = self._figures()
        has_orders = any(o.is_open for o in self._orders.values())
        if self._position.amount == 0 and not has_orders:
            return []  # v3 lists only symbols with a position or open orders
        return [
            self._position_risk_common(f)
            | {
                "marginAsset": QUOTE_ASSET,
                "initialMargin": _fmt8(f.initial_margin),
                "maintMargin": _fmt8(f.maint_margin),
                "positionInitialMargin": _fmt8(f.position_initial_margin),
                "openOrderInitialMargin": _fmt8(f.open_order_initial_margin),
                "adl": 1 if self._position.amount else 0,
                "bidNotional": _fmt8(f.bid_notional),
                "askNotional": _fmt8(f.ask_notional),
            }
        ]

    def _h_position_risk_v2(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params, required=False)
        return [
            self._position_risk_common(self._figures())
            | {
                "leverage": str(self._leverage),
                "maxNotionalValue": str(_max_notional(self._leverage)),
                "marginType": "cross" if self._margin_type == "CROSSED" else "isolated",
                "isAutoAddMargin": "false",
            }
        ]

    def _h_symbol_config(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params, required=False)
        return [
            {
                "symbol": self._symbol,
                "marginType": self._margin_type,
                "isAutoAddMargin": False,
                "leverage": self._leverage,
                "maxNotionalValue": str(_max_notional(self._leverage)),
            }
        ]

    def _h_commission_rate(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        return {
            "symbol": self._symbol,
            "makerCommissionRate": str(self._maker_fee),
            "takerCommissionRate": str(self._taker_fee),
        }

    def _h_leverage(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        leverage = self._int_param(params, "leverage")
        if leverage is None:
            raise _mandatory("leverage")
        if not 1 <= leverage <= 125:
            raise _ApiError(400, -4028, f"Leverage {leverage} is not valid")
        self._leverage = leverage
        now = _now_ms()
        event: JsonDict = {
            "e": "ACCOUNT_CONFIG_UPDATE",
            "E": now,
            "T": now,
            "ac": {"s": self._symbol, "l": leverage},
        }
        self._emit_user(event)
        return {
            "leverage": leverage,
            "maxNotionalValue": str(_max_notional(leverage)),
            "symbol": self._symbol,
        }

    def _h_margin_type(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        margin_type = params.get("marginType", "").upper()
        if margin_type == "CROSS":
            margin_type = "CROSSED"
        if margin_type not in ("ISOLATED", "CROSSED"):
            raise _mandatory("marginType")
        if margin_type == self._margin_type:
            raise _ApiError(400, -4046, "No need to change margin type.")
        if any(o.is_open for o in self._orders.values()):
            raise _ApiError(
                400, -4047, "Margin type cannot be changed if there exists open orders."
            )
        if self._position.amount:
            raise _ApiError(400, -4048, "Margin type cannot be changed if there exists position.")
        self._margin_type = margin_type
        return {"code": 200, "msg": "success"}

    def _h_dual_get(self, params: Params) -> JsonDict:
        return {"dualSidePosition": self._dual_side}

    def _h_dual_post(self, params: Params) -> JsonDict:
        dual = self._bool_param(params, "dualSidePosition")
        if dual == self._dual_side:
            raise _ApiError(400, -4059, "No need to change position side.")
        log.warning("BINANCE EMULATOR: hedge mode requested but only one-way mode is emulated")
        raise _ApiError(400, -1000, "emulator: only one-way position mode is supported")

    def _h_algo_unsupported(self, params: Params) -> JsonDict:
        log.warning("BINANCE EMULATOR: algo (conditional) order requested but not emulated")
        raise _ApiError(400, -1000, "emulator: algo (conditional) orders are not supported")

    def _h_algo_missing(self, params: Params) -> JsonDict:
        raise _ApiError(400, -2013, "Order does not exist.")

    def _h_cancel_all_algo(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    # -- REST handlers: orders --------------------------------------------------------------------

    def _h_new_order(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        now = _now_ms()
        self._order_times.append(now)
        if self._faults.rejects > 0:
            self._faults.rejects -= 1
            raise _ApiError(400, self._faults.reject_code, self._faults.reject_msg)
        side = params.get("side", "").upper()
        if not side:
            raise _mandatory("side")
        if side not in ("BUY", "SELL"):
            raise _ApiError(400, -1117, "Invalid side.")
        order_type = params.get("type", "").upper()
        if not order_type:
            raise _mandatory("type")
        if order_type in CONDITIONAL_TYPES:
            raise _ApiError(
                400,
                -4120,
                "Order type not supported for this endpoint. "
                "Please use the Algo Order API endpoints instead.",
            )
        if order_type not in ("MARKET", "LIMIT"):
            raise _ApiError(400, -1116, "Invalid orderType.")
        position_side = params.get("positionSide", "BOTH").upper()
        if position_side != "BOTH":
            raise _ApiError(400, -4061, "Order's position side does not match user's setting.")
        if self._bool_param(params, "closePosition"):
            raise _ApiError(400, -1106, "Parameter 'closePosition' sent when not required.")
        quantity = self._decimal_param(params, "quantity")
        if quantity <= 0:
            raise _ApiError(400, -4003, "Quantity less than or equal to zero.")
        if quantity % self._step:
            raise _ApiError(400, -1111, "Precision is over the maximum defined for this asset.")
        if quantity < self._min_qty:
            raise _ApiError(400, -4004, "Quantity less than min quantity.")
        max_qty = self._max_market_qty if order_type == "MARKET" else self._max_qty
        if quantity > max_qty:
            raise _ApiError(400, -4005, "Quantity greater than max quantity.")
        reduce_only = self._bool_param(params, "reduceOnly")
        client_id = params.get("newClientOrderId") or f"emu_{secrets.token_hex(8)}"
        if not CLIENT_ORDER_ID_RE.match(client_id):
            raise _ApiError(400, -4015, "Client order id is not valid.")
        if any(o.client_order_id == client_id and o.is_open for o in self._orders.values()):
            raise _ApiError(400, -4116, "ClientOrderId is duplicated.")
        time_in_force = "GTC"
        price = ZERO
        price_match = "NONE"
        good_till_date = 0
        if order_type == "LIMIT":
            time_in_force = params.get("timeInForce", "").upper()
            if not time_in_force:
                raise _mandatory("timeInForce")
            if time_in_force not in TIME_IN_FORCES:
                raise _ApiError(400, -1115, "Invalid timeInForce.")
            price_match = params.get("priceMatch", "NONE").upper()
            if price_match != "NONE":
                if params.get("price"):
                    raise _ApiError(400, -1106, "Parameter 'price' sent when not required.")
                opponent = price_match.startswith("OPPONENT")
                price = self._ask if (side == "BUY") == opponent else self._bid
            else:
                price = self._decimal_param(params, "price")
            if price <= 0:
                raise _ApiError(400, -4001, "Price less than 0.")
            if price % self._tick:
                raise _ApiError(400, -4014, "Price not increased by tick size.")
            if price < self._min_price:
                raise _ApiError(400, -4013, "Price less than min price.")
            if price > self._max_price:
                raise _ApiError(400, -4002, "Price greater than max price.")
            mark = self._mark()
            if side == "BUY" and price > mark * Decimal("1.05"):
                cap = self._px(mark * Decimal("1.05"))
                raise _ApiError(400, -4016, f"Limit price can't be higher than {cap}.")
            if side == "SELL" and price < mark * Decimal("0.95"):
                floor = self._px(mark * Decimal("0.95"))
                raise _ApiError(400, -4024, f"Limit price can't be lower than {floor}.")
            if time_in_force == "GTD":
                gtd = self._int_param(params, "goodTillDate")
                if gtd is None:
                    raise _mandatory("goodTillDate")
                if gtd <= now + 600_000:
                    raise _ApiError(
                        400,
                        -4129,
                        "goodTillDate must be greater than current time plus 600 seconds.",
                    )
                good_till_date = gtd - gtd % 1000
            if time_in_force == "GTX" and self._marketable(side, price):
                raise _ApiError(400, -5022, MSG_POST_ONLY)
        reference = price if order_type == "LIMIT" else (self._ask if side == "BUY" else self._bid)
        pos = self._position.amount
        reduces = (side == "BUY" and pos < 0) or (side == "SELL" and pos > 0)
        if reduce_only and not reduces:
            raise _ApiError(400, -2022, "ReduceOnly Order is rejected.")
        if not reduce_only and quantity * reference < self._min_notional:
            raise _ApiError(
                400,
                -4164,
                f"Order's notional must be no smaller than {self._min_notional} "
                "(unless you choose reduce only).",
            )
        opening = quantity - min(quantity, abs(pos)) if reduces else quantity
        if not reduce_only and opening:
            required = opening * reference / Decimal(self._leverage)
            required += opening * reference * self._taker_fee
            if required > self._figures().available:
                raise _ApiError(400, -2019, "Margin is insufficient.")

        self._order_seq += 1
        order = _Order(
            order_id=self._order_seq,
            client_order_id=client_id,
            side=side,
            type=order_type,
            time_in_force=time_in_force,
            quantity=quantity,
            price=price,
            reduce_only=reduce_only,
            price_match=price_match,
            good_till_date=good_till_date,
            time_ms=now,
            update_time_ms=now,
        )
        self._orders[order.order_id] = order
        self._emit_user(self._order_event(order, "NEW", now=now))
        ack = self._order_json(order)
        self._match_new(order)
        if params.get("newOrderRespType", "ACK").upper() == "RESULT":
            return self._order_json(order)
        return ack

    def _h_modify_order(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        order = self._find_order(params)
        if order is None:
            raise _ApiError(400, -2013, "Order does not exist.")
        if not order.is_open or order.type != "LIMIT":
            raise _ApiError(400, -2011, MSG_UNKNOWN_ORDER)
        side = params.get("side", "").upper()
        if side != order.side:
            raise _ApiError(400, -1117, "Invalid side.")
        quantity = self._decimal_param(params, "quantity")
        price = self._decimal_param(params, "price")
        if quantity % self._step or quantity < order.executed_qty or quantity <= 0:
            raise _ApiError(400, -4003, "Quantity less than or equal to zero.")
        if price % self._tick or price <= 0:
            raise _ApiError(400, -4014, "Price not increased by tick size.")
        if quantity == order.quantity and price == order.price:
            raise _ApiError(400, -5027, "No need to modify the order.")
        if order.time_in_force == "GTX" and self._marketable(order.side, price):
            raise _ApiError(400, -5022, MSG_POST_ONLY)
        now = _now_ms()
        order.quantity = quantity
        order.price = price
        order.update_time_ms = now
        if order.executed_qty >= order.quantity:
            order.status = "FILLED"
        self._emit_user(self._order_event(order, "AMENDMENT", now=now))
        if order.is_open and self._marketable(order.side, order.price):
            self._fill_taker(order)
        return self._order_json(order)

    def _h_query_order(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        order = self._find_order(params)
        if order is None:
            raise _ApiError(400, -2013, "Order does not exist.")
        return self._order_json(order)

    def _cancel(self, order: _Order) -> None:
        now = _now_ms()
        order.status = "CANCELED"
        order.update_time_ms = now
        self._emit_user(self._order_event(order, "CANCELED", now=now))

    def _h_cancel_order(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        order = self._find_order(params)
        if order is None or not order.is_open:
            raise _ApiError(400, -2011, MSG_UNKNOWN_ORDER)
        self._cancel(order)
        return self._order_json(order)

    def _h_cancel_all(self, params: Params) -> JsonDict:
        self._symbol_param(params)
        for order in [o for o in self._orders.values() if o.is_open]:
            self._cancel(order)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def _h_cancel_batch(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params)
        ids: list[object]
        key = "orderIdList" if params.get("orderIdList") else "origClientOrderIdList"
        try:
            ids = json.loads(params.get(key) or "null")
        except json.JSONDecodeError:
            raise _mandatory(key) from None
        if not isinstance(ids, list) or not ids:
            raise _mandatory("orderIdList or origClientOrderIdList")
        if len(ids) > 10:
            raise _ApiError(400, -4032, "Exceed maximum cancel order size.")
        results: list[JsonDict] = []
        for ident in ids:
            by = "orderId" if key == "orderIdList" else "origClientOrderId"
            try:
                order = self._find_order({by: str(ident)})
            except _ApiError:
                order = None
            if order is None or not order.is_open:
                results.append({"code": -2011, "msg": MSG_UNKNOWN_ORDER})
                continue
            self._cancel(order)
            results.append(self._order_json(order))
        return results

    def _h_open_orders(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params, required=False)
        return [self._order_json(o) for o in self._orders.values() if o.is_open]

    def _h_all_orders(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params)
        order_id = self._int_param(params, "orderId")
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        limit = min(self._int_param(params, "limit", 500) or 500, 1000)
        orders = [
            o
            for o in self._orders.values()
            if (order_id is None or o.order_id >= order_id)
            and (start is None or o.time_ms >= start)
            and (end is None or o.time_ms <= end)
        ]
        return [self._order_json(o) for o in orders[:limit]]

    def _h_user_trades(self, params: Params) -> list[JsonDict]:
        self._symbol_param(params)
        order_id = self._int_param(params, "orderId")
        start = self._int_param(params, "startTime")
        end = self._int_param(params, "endTime")
        from_id = self._int_param(params, "fromId")
        limit = min(self._int_param(params, "limit", 500) or 500, 1000)
        fills = [
            f
            for f in self._fills
            if (order_id is None or f.order_id == order_id)
            and (start is None or f.time_ms >= start)
            and (end is None or f.time_ms <= end)
            and (from_id is None or f.trade_id >= from_id)
        ]
        fills = fills[:limit] if from_id is not None else fills[-limit:]
        return [
            {
                "buyer": f.side == "BUY",
                "commission": _fmt8(f.commission),
                "commissionAsset": f.commission_asset,
                "id": f.trade_id,
                "maker": f.maker,
                "orderId": f.order_id,
                "price": self._px(f.price),
                "qty": self._qty(f.qty),
                "quoteQty": _fmt8(f.quote_qty),
                "realizedPnl": _fmt8(f.realized_pnl),
                "side": f.side,
                "positionSide": "BOTH",
                "symbol": f.symbol,
                "time": f.time_ms,
            }
            for f in fills
        ]

    # -- Matching ---------------------------------------------------------------------------------

    def _marketable(self, side: str, price: Decimal) -> bool:
        return price >= self._ask if side == "BUY" else price <= self._bid

    def _match_new(self, order: _Order) -> None:
        if order.type == "MARKET" or self._marketable(order.side, order.price):
            self._fill_taker(order)
        elif order.time_in_force in ("IOC", "FOK"):
            self._expire(order)

    def _reducible(self, order: _Order) -> Decimal:
        """How much of ``order`` may still fill (reduce-only orders stop at flat)."""
        if not order.reduce_only:
            return order.remaining
        pos = self._position.amount
        reduces = (order.side == "BUY" and pos < 0) or (order.side == "SELL" and pos > 0)
        return min(order.remaining, abs(pos)) if reduces else ZERO

    def _fill_taker(self, order: _Order) -> None:
        """Fill against the touch at once (the book is infinitely deep)."""
        while order.is_open:
            qty = self._reducible(order)
            if qty <= 0:
                self._expire(order)
                return
            if self._fill_chunk_qty is not None:
                qty = min(qty, self._fill_chunk_qty)
            price = self._ask if order.side == "BUY" else self._bid
            self._fill(order, qty, price, maker=False)
            self._print_trade(price, qty, buyer_maker=order.side == "SELL")

    def _expire(self, order: _Order) -> None:
        now = _now_ms()
        order.status = "EXPIRED"
        order.update_time_ms = now
        self._emit_user(self._order_event(order, "EXPIRED", now=now))

    def _match_resting(self, now: int) -> None:
        for order in [o for o in self._orders.values() if o.is_open and o.type == "LIMIT"]:
            if (
                order.time_in_force == "GTD"
                and order.good_till_date
                and now >= order.good_till_date
            ):
                self._expire(order)
                continue
            crossed = self._ask <= order.price if order.side == "BUY" else self._bid >= order.price
            if not crossed:
                continue
            qty = self._reducible(order)
            if qty <= 0:
                self._expire(order)
                continue
            if self._fill_chunk_qty is not None:
                qty = min(qty, self._fill_chunk_qty)
            self._fill(order, qty, order.price, maker=True)

    def _apply_position(self, signed_qty: Decimal, price: Decimal, now: int) -> Decimal:
        """Move the one-way position; returns the realized PnL of the fill."""
        pos = self._position
        amount, entry = pos.amount, pos.entry_price
        realized = ZERO
        if amount == 0 or (amount > 0) == (signed_qty > 0):
            new_amount = amount + signed_qty
            entry = (abs(amount) * entry + abs(signed_qty) * price) / abs(new_amount)
        else:
            closing = min(abs(signed_qty), abs(amount))
            realized = _round8(closing * (price - entry) * (1 if amount > 0 else -1))
            new_amount = amount + signed_qty
            if new_amount == 0:
                entry = ZERO
            elif (new_amount > 0) != (amount > 0):
                entry = price
        pos.amount = new_amount
        pos.entry_price = entry.quantize(EIGHT, rounding=ROUND_HALF_UP)
        pos.realized += realized
        pos.update_time_ms = now
        return realized

    def _fill(self, order: _Order, qty: Decimal, price: Decimal, *, maker: bool) -> None:
        now = _now_ms()
        self._trade_seq += 1
        trade_id = self._trade_seq
        signed = qty if order.side == "BUY" else -qty
        realized = self._apply_position(signed, price, now)
        rate = self._maker_fee if maker else self._taker_fee
        commission = (qty * price * rate).quantize(EIGHT, rounding=ROUND_HALF_UP)
        self._wallet += realized - commission
        self._account_update_ms = now
        order.executed_qty += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed_qty >= order.quantity else "PARTIALLY_FILLED"
        order.update_time_ms = now
        self._fills.append(
            FillSnapshot(
                trade_id=trade_id,
                order_id=order.order_id,
                client_order_id=order.client_order_id,
                symbol=self._symbol,
                side=order.side,
                price=price,
                qty=qty,
                quote_qty=qty * price,
                commission=commission,
                commission_asset=QUOTE_ASSET,
                realized_pnl=realized,
                maker=maker,
                time_ms=now,
            )
        )
        # Binance's order on the stream: TRADE_LITE, ACCOUNT_UPDATE, then ORDER_TRADE_UPDATE.
        trade_lite: JsonDict = {
            "e": "TRADE_LITE",
            "E": now,
            "T": now,
            "s": self._symbol,
            "q": self._qty(order.quantity),
            "p": self._px(order.price),
            "m": maker,
            "c": order.client_order_id,
            "S": order.side,
            "L": self._px(price),
            "l": self._qty(qty),
            "t": trade_id,
            "i": order.order_id,
        }
        self._emit_user(trade_lite)
        self._emit_user(self._account_update_event("ORDER"))
        self._emit_user(
            self._order_event(
                order,
                "TRADE",
                now=now,
                last_qty=qty,
                last_price=price,
                trade_id=trade_id,
                maker=maker,
                commission=commission,
                realized=realized,
            )
        )

    # -- User data stream events ------------------------------------------------------------------

    def _order_event(
        self,
        order: _Order,
        exec_type: str,
        *,
        now: int,
        last_qty: Decimal = ZERO,
        last_price: Decimal = ZERO,
        trade_id: int = 0,
        maker: bool = False,
        commission: Decimal | None = None,
        realized: Decimal = ZERO,
    ) -> JsonDict:
        f = self._figures()
        data: JsonDict = {
            "s": self._symbol,
            "c": order.client_order_id,
            "S": order.side,
            "o": order.type,
            "f": order.time_in_force,
            "q": self._qty(order.quantity),
            "p": self._px(order.price),
            "ap": _fmt8(order.avg_price),
            "sp": "0",
            "x": exec_type,
            "X": order.status,
            "i": order.order_id,
            "l": self._qty(last_qty),
            "z": self._qty(order.executed_qty),
            "L": self._px(last_price),
            "T": now,
            "t": trade_id,
            "b": _fmt8(f.bid_notional),
            "a": _fmt8(f.ask_notional),
            "m": maker,
            "R": order.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": order.type,
            "ps": "BOTH",
            "cp": False,
            "rp": _fmt8(realized),
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": order.price_match,
            "gtd": order.good_till_date,
        }
        if commission is not None:  # Binance omits N/n when there is no commission
            data["N"] = QUOTE_ASSET
            data["n"] = _fmt8(commission)
        return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": data}

    def _account_update_event(self, reason: str, balance_change: Decimal = ZERO) -> JsonDict:
        now = _now_ms()
        pos = self._position
        return {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": reason,
                "B": [
                    {
                        "a": QUOTE_ASSET,
                        "wb": _fmt8(self._wallet),
                        "cw": _fmt8(self._wallet),
                        "bc": _fmt8(balance_change),
                    }
                ],
                "P": [
                    {
                        "s": self._symbol,
                        "pa": self._qty(pos.amount),
                        "ep": _fmt8(pos.entry_price),
                        "bep": _fmt8(pos.entry_price),
                        "cr": _fmt8(pos.realized),
                        "up": _fmt8(self._upnl(self._mark())),
                        "mt": "cross" if self._margin_type == "CROSSED" else "isolated",
                        "iw": "0",
                        "ps": "BOTH",
                        "ma": QUOTE_ASSET,
                    }
                ],
            },
        }

    def _emit_user(self, event: JsonDict) -> None:
        self._user_events.append(event)
        if not self._listen_key_valid():
            return
        text = json.dumps(event, separators=(",", ":"))
        for conn in self._conns:
            if conn.listen_key == self._listen_key:
                conn.queue.put_nowait(text)

    # -- Market streams ---------------------------------------------------------------------------

    def _publish(self, streams: tuple[str, ...], data: JsonDict) -> None:
        raw: str | None = None
        for conn in self._conns:
            for stream in streams:
                if stream not in conn.streams:
                    continue
                if conn.combined:
                    payload = {"stream": stream, "data": data}
                    conn.queue.put_nowait(json.dumps(payload, separators=(",", ":")))
                else:
                    raw = raw or json.dumps(data, separators=(",", ":"))
                    conn.queue.put_nowait(raw)

    def _stream(self, suffix: str) -> str:
        return f"{self._symbol.lower()}@{suffix}"

    def _print_trade(self, price: Decimal, qty: Decimal, *, buyer_maker: bool) -> None:
        now = _now_ms()
        self._roll_klines(now)
        self._trade_seq += 1
        trade = _Trade(self._trade_seq, price, qty, now, buyer_maker)
        self._trades.append(trade)
        self._last = price
        for kline in self._klines.values():
            kline.add(trade)
        agg: JsonDict = {
            "e": "aggTrade",
            "E": now,
            "a": trade.trade_id,
            "s": self._symbol,
            "p": self._px(price),
            "q": self._qty(qty),
            "nq": self._qty(qty),
            "f": trade.trade_id,
            "l": trade.trade_id,
            "T": now,
            "m": buyer_maker,
        }
        self._publish((self._stream("aggTrade"),), agg)
        raw: JsonDict = {
            "e": "trade",
            "E": now,
            "T": now,
            "s": self._symbol,
            "t": trade.trade_id,
            "p": self._px(price),
            "q": self._qty(qty),
            "X": "MARKET",
            "m": buyer_maker,
        }
        self._publish((self._stream("trade"),), raw)

    def _publish_book(self, now: int) -> None:
        self._book_update_id += 1
        data: JsonDict = {
            "e": "bookTicker",
            "u": self._book_update_id,
            "s": self._symbol,
            "b": self._px(self._bid),
            "B": self._qty(self._bid_qty),
            "a": self._px(self._ask),
            "A": self._qty(self._ask_qty),
            "T": now,
            "E": now,
        }
        self._publish((self._stream("bookTicker"), "!bookTicker"), data)

    def _publish_mark(self, now: int) -> None:
        if now - self._last_mark_push_ms < 1000:
            return
        self._last_mark_push_ms = now
        mark = _fmt8(self._mark())
        data: JsonDict = {
            "e": "markPriceUpdate",
            "E": now,
            "s": self._symbol,
            "p": mark,
            "ap": mark,
            "P": mark,
            "i": mark,
            "r": FUNDING_RATE,
            "T": self._next_funding_ms(),
        }
        self._publish((self._stream("markPrice"), self._stream("markPrice@1s")), data)

    def _kline_duration_ms(self, interval: str) -> int:
        return round(KLINE_MINUTES[interval] * self._kline_interval_s * 1000)

    def _ensure_kline(self, interval: str, now: int) -> None:
        if interval in self._klines or interval not in KLINE_MINUTES:
            return
        duration = self._kline_duration_ms(interval)
        self._klines[interval] = self._new_kline(interval, now - now % duration, duration)
        self._kline_history[interval] = deque(maxlen=1500)

    def _new_kline(self, interval: str, open_time: int, duration: int) -> _Kline:
        last = self._last
        return _Kline(interval, open_time, duration, last, last, last, last)

    def _kline_json(self, k: _Kline, *, closed: bool, now: int) -> JsonDict:
        return {
            "e": "kline",
            "E": now,
            "s": self._symbol,
            "k": {
                "t": k.open_time,
                "T": k.close_time,
                "s": self._symbol,
                "i": k.interval,
                "f": k.first_id,
                "L": k.last_id,
                "o": self._px(k.open),
                "c": self._px(k.close),
                "h": self._px(k.high),
                "l": self._px(k.low),
                "v": self._qty(k.volume),
                "n": k.trades,
                "x": closed,
                "q": _fmt8(k.quote_volume),
                "V": self._qty(k.taker_base),
                "Q": _fmt8(k.taker_quote),
                "B": "0",
            },
        }

    def _roll_klines(self, now: int) -> None:
        """Close every kline whose period ended (pushing ``x: true``) and open the next."""
        for interval, kline in list(self._klines.items()):
            if now <= kline.close_time:
                continue
            self._kline_history[interval].append(kline)
            self._publish(
                (self._stream(f"kline_{interval}"),), self._kline_json(kline, closed=True, now=now)
            )
            start = now - now % kline.duration_ms
            self._klines[interval] = self._new_kline(interval, start, kline.duration_ms)

    def _market_step(self, *, move: bool) -> None:
        """One tick: move the book, print a trade, push book/kline/mark, match resting orders."""
        now = _now_ms()
        if move:
            sigma = float(self._bid * self._volatility / self._tick)
            ticks = round(self._rng.gauss(0.0, sigma)) if sigma > 0 else 0
            self._bid = max(self._min_price, self._bid + self._tick * ticks)
            self._ask = self._bid + self._tick
        self._bid_qty = self._step * self._rng.randint(1, 5000)
        self._ask_qty = self._step * self._rng.randint(1, 5000)
        buyer_is_taker = self._rng.random() < 0.5
        qty = self._step * self._rng.randint(1, 500)
        price = self._ask if buyer_is_taker else self._bid
        self._print_trade(price, qty, buyer_maker=not buyer_is_taker)
        self._publish_book(now)
        for kline in self._klines.values():
            self._publish(
                (self._stream(f"kline_{kline.interval}"),),
                self._kline_json(kline, closed=False, now=now),
            )
        self._publish_mark(now)
        self._match_resting(now)

    async def _market_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at = max(next_at + self._tick_interval_s, loop.time())  # no burst after a stall
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            with self._lock:
                self._market_step(move=True)

    async def _kline_loop(self) -> None:
        base = self._kline_duration_ms("1m")
        while True:
            now = _now_ms()
            await asyncio.sleep((base - now % base) / 1000 + 0.002)
            with self._lock:
                self._roll_klines(_now_ms())

    # -- WebSockets -------------------------------------------------------------------------------

    async def _ws_dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        for prefix in ("/market", "/public", "/private"):
            if path.startswith(prefix + "/"):
                path = path.removeprefix(prefix)
        target = request.path_qs
        listen_key: str | None = None
        combined = False
        streams: list[str] = []
        if path == "/stream":
            combined = True
            streams = [s for s in request.query.get("streams", "").split("/") if s]
        elif path == "/ws" and "listenKey" in request.query:
            listen_key = request.query["listenKey"]
        elif path.startswith("/ws/"):
            tail = path.removeprefix("/ws/")
            with self._lock:
                is_key = tail == self._listen_key
            if is_key or "@" not in tail:
                listen_key = tail
            else:
                streams = [s for s in tail.split("/") if s]
        elif path != "/ws":
            log.warning("BINANCE EMULATOR: UNKNOWN WEBSOCKET ENDPOINT %s", target)
            with self._lock:
                self._unknown.append(f"WS {target}")
                self._requests.append(RequestRecord("WS", path, 404))
            return web.json_response({"code": -1000, "msg": "unknown endpoint"}, status=404)
        if listen_key is not None:
            target = target.replace(listen_key, listen_key[:6] + "...")
            with self._lock:
                valid = listen_key == self._listen_key and self._listen_key_valid()
            if not valid:
                with self._lock:
                    self._requests.append(RequestRecord("WS", target, 400, -1125))
                return web.json_response(
                    {"code": -1125, "msg": "This listenKey does not exist."}, status=400
                )
        ws = web.WebSocketResponse(autoping=True, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = _WsConn(request, ws, path, combined, listen_key, set(streams))
        with self._lock:
            self._conns.add(conn)
            self._requests.append(RequestRecord("WS", target, 101))
            for stream in streams:
                self._on_stream_subscribed(stream)
        writer = asyncio.create_task(self._ws_writer(conn))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and listen_key is None:
                    with self._lock:
                        reply = self._on_ws_request(conn, msg.data)
                    conn.queue.put_nowait(reply)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            with self._lock:
                self._conns.discard(conn)
            conn.queue.put_nowait(None)
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(writer, 1.0)
        return ws

    async def _ws_writer(self, conn: _WsConn) -> None:
        while True:
            text = await conn.queue.get()
            if text is None or conn.ws.closed:
                return
            try:
                await conn.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    async def _close_conns(self, conns: list[_WsConn], *, abrupt: bool) -> None:
        for conn in conns:
            transport = conn.request.transport
            if abrupt and transport is not None:
                transport.abort()
            else:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(code=1001, message=b"going away"), 1.0)

    def _on_stream_subscribed(self, stream: str) -> None:
        prefix = self._symbol.lower() + "@kline_"
        if stream.startswith(prefix):
            self._ensure_kline(stream.removeprefix(prefix), _now_ms())
        known = (
            stream == "!bookTicker"
            or stream.startswith(prefix)
            or stream
            in {
                self._stream(s)
                for s in ("aggTrade", "trade", "bookTicker", "markPrice", "markPrice@1s")
            }
        )
        if not known:
            log.warning("BINANCE EMULATOR: stream %r accepted but never fed", stream)

    def _on_ws_request(self, conn: _WsConn, text: str) -> str:
        def reply(payload: JsonDict) -> str:
            return json.dumps(payload, separators=(",", ":"))

        try:
            msg = json.loads(text)
        except json.JSONDecodeError as exc:
            return reply({"code": 3, "msg": f"Invalid JSON: {exc}"})
        if not isinstance(msg, dict):
            return reply({"code": 3, "msg": "Invalid JSON: expected an object"})
        msg_id = msg.get("id")
        method = msg.get("method")
        params = msg.get("params")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
                return reply({"error": {"code": 2, "msg": "Invalid request: params"}, "id": msg_id})
            for stream in params:
                if method == "SUBSCRIBE":
                    conn.streams.add(stream)
                    self._on_stream_subscribed(stream)
                else:
                    conn.streams.discard(stream)
            return reply({"result": None, "id": msg_id})
        if method == "LIST_SUBSCRIPTIONS":
            return reply({"result": sorted(conn.streams), "id": msg_id})
        if method == "SET_PROPERTY":
            if isinstance(params, list) and params[:1] == ["combined"] and len(params) == 2:
                conn.combined = bool(params[1])
            return reply({"result": None, "id": msg_id})
        if method == "GET_PROPERTY":
            return reply({"result": conn.combined, "id": msg_id})
        return reply(
            {"error": {"code": 2, "msg": f"Invalid request: method {method!r}"}, "id": msg_id}
        )
