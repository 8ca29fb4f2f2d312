"""The emulator as a running server: its thread, event loop, HTTP routing and test controls.

Tests drive a client that runs on its own loop (often in another process), so the venue runs
on a private asyncio loop in a daemon thread, listening on a loopback port, and everything a
test calls on it (accessors, price moves, fault injectors) is thread-safe. This module wires
the parts together and owns the lock that serializes them; it holds no venue rules itself.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from decimal import Decimal
from typing import Literal

from aiohttp import web

from .algo import AlgoService
from .auth import Authenticator
from .clock import now_ms
from .errors import ApiError
from .faults import Faults
from .feeds import MarketFeed, UserFeed
from .fmt import JsonDict
from .journal import Journal
from .limits import RateLimiter
from .market import Market
from .matching import MatchingEngine
from .rest import Route, parse_params
from .rest_account import AccountApi
from .rest_algo import AlgoOrdersApi
from .rest_market import MarketDataApi
from .rest_orders import OrdersApi
from .snapshots import (
    AlgoSnapshot,
    BalanceSnapshot,
    FillSnapshot,
    OrderSnapshot,
    PositionSnapshot,
    RequestRecord,
)
from .spec import SymbolSpec, spec_for
from .streams import StreamHub

log = logging.getLogger(__name__)

ORDER_PATHS = frozenset({"/fapi/v1/order", "/fapi/v1/batchOrders", "/fapi/v1/algoOrder"})
"""Where a reply carries the order-count headers."""


class BinanceEmulator:
    """A Binance USD-M futures venue on loopback for one symbol and one USDT account.

    Use :meth:`start` / :meth:`stop` (or ``with BinanceEmulator(...) as emu:``), then point the
    adapter's ``base_url_http`` at :attr:`http_url`, ``base_url_ws`` at :attr:`ws_url` and
    ``base_url_ws_stream`` at :attr:`ws_stream_url`. The accessors (:meth:`orders`,
    :meth:`positions`, :meth:`balance`, :meth:`fills`, :meth:`requests`, ...) and the fault
    injectors may be called from any thread.

    ``symbol`` is a name from :data:`~.spec.SYMBOLS` or a :class:`~.spec.SymbolSpec`;
    ``start_price`` defaults to the symbol's.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        symbol: str | SymbolSpec = "BTCUSDT",
        start_price: Decimal | None = None,
        seed: int = 7,
        *,
        starting_balance: Decimal = Decimal("10000"),
        kline_interval_s: float = 1.0,
        tick_interval_s: float = 0.2,
        volatility: Decimal = Decimal("0.0002"),
        taker_fee: Decimal = Decimal("0.0004"),
        maker_fee: Decimal = Decimal("0.00016"),
        fee_tier: int = 1,
        leverage: int = 20,
        fill_chunk_qty: Decimal | None = None,
        funding_period_s: float = 8 * 3600,
        funding_rate: Decimal = Decimal("0.0001"),
        mark_push_s: float = 1.0,
        fill_before_finished: float = 0.5,
        tape: int = 5000,
        trades_per_tick: int = 1,
        min_size_steps: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        """``funding_period_s``, ``funding_rate``: what ``@markPrice`` announces (a test
        shortens the period to see a settlement); ``mark_push_s``: how often it pushes at
        most (Binance: 3 s, or 1 s on ``@markPrice@1s``). ``fill_before_finished``: the chance that
        a conditional order's triggered order reports its fill before the algo order's
        ``FINISHED`` (else after it), drawn from ``seed``. ``tape``: the trades the history
        endpoints keep; ``trades_per_tick``: the trades each market tick prints (a busy
        market's density, for a benchmark of a long gap); ``min_size_steps``: the least size
        of a trade and of the touch, in lot steps."""
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the emulator binds to loopback addresses only, not {host!r}")
        if kline_interval_s * 1000 < 50 or tick_interval_s <= 0:
            raise ValueError("kline_interval_s must be >= 0.05 and tick_interval_s > 0")
        self._spec = spec = spec_for(symbol)
        self._host = host
        self._port = port
        self._tick_interval_s = tick_interval_s
        self._lock = threading.RLock()
        self._faults = Faults()
        self._journal = Journal()
        self._limiter = RateLimiter(self._faults, now_ms)
        self._auth = Authenticator(api_key, api_secret, self._faults, now_ms)
        self._market = Market(
            spec,
            spec.start_price if start_price is None else start_price,
            clock=now_ms,
            seed=seed,
            volatility=volatility,
            kline_interval_s=kline_interval_s,
            tape=tape,
            min_size_steps=min_size_steps,
        )
        self._trades_per_tick = max(1, trades_per_tick)
        self._hub = StreamHub(self._lock, self._journal, now_ms, self._on_subscribe)
        self._feed = MarketFeed(
            spec,
            self._market,
            self._hub,
            now_ms,
            funding_period_ms=int(funding_period_s * 1000),
            funding_rate=f"{funding_rate:.8f}",
            mark_push_ms=int(mark_push_s * 1000),
        )
        self._market.listener = self._feed
        user_feed = UserFeed(spec, self._hub)
        self._engine = MatchingEngine(
            spec,
            self._market,
            clock=now_ms,
            wallet=starting_balance,
            leverage=leverage,
            maker_fee=maker_fee,
            taker_fee=taker_fee,
            fill_chunk_qty=fill_chunk_qty,
            emit=user_feed,
        )
        self._algos = AlgoService(
            self._engine,
            clock=now_ms,
            seed=seed,
            fill_before_finished=fill_before_finished,
            emit=user_feed,
        )
        self._feed.on_funding = self._engine.settle_funding  # the venue settles funding
        apis = (
            MarketDataApi(spec, self._market, now_ms, self._faults, lambda: self._feed.settlements),
            AccountApi(spec, self._engine, self._hub, fee_tier=fee_tier),
            OrdersApi(spec, self._engine, self._limiter, self._faults, now_ms),
            AlgoOrdersApi(spec, self._algos, self._limiter, now_ms),
        )
        self._routes: dict[tuple[str, str], Route] = {
            (route.method, route.path): route for api in apis for route in api.routes()
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # Lifecycle

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
        await self._hub.close_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # URLs

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
        return self._spec.symbol

    @property
    def spec(self) -> SymbolSpec:
        return self._spec

    # Accessors

    def orders(self) -> list[OrderSnapshot]:
        with self._lock:
            return [o.snapshot(self._spec.symbol) for o in self._engine.orders.values()]

    def open_orders(self) -> list[OrderSnapshot]:
        with self._lock:
            return [o.snapshot(self._spec.symbol) for o in self._engine.open_orders()]

    def algo_orders(self) -> list[AlgoSnapshot]:
        """Every conditional (algo) order, in the order they were placed."""
        with self._lock:
            return [self._algos.snapshot(a) for a in self._algos.orders.values()]

    def open_algo_orders(self) -> list[AlgoSnapshot]:
        """The conditional orders not done yet (NEW, TRIGGERING, TRIGGERED)."""
        with self._lock:
            return [self._algos.snapshot(a) for a in self._algos.open_orders()]

    def positions(self) -> list[PositionSnapshot]:
        """The symbol's position (one-way mode: one ``BOTH`` entry, amount 0 when flat)."""
        with self._lock:
            return [self._engine.position_snapshot()]

    def balance(self) -> BalanceSnapshot:
        with self._lock:
            return self._engine.balance_snapshot()

    def incomes(self) -> list[JsonDict]:
        """The funding fees the venue charged (``/fapi/v1/income`` rows)."""
        with self._lock:
            return list(self._engine.incomes)

    def fills(self) -> list[FillSnapshot]:
        with self._lock:
            return list(self._engine.fills)

    def requests(self) -> list[RequestRecord]:
        """Every REST request and WebSocket connection so far, in arrival order."""
        return self._journal.requests()

    def unknown_requests(self) -> list[str]:
        """``"METHOD /path?query"`` of requests to endpoints the emulator does not know."""
        return self._journal.unknown_requests()

    def user_events(self) -> list[JsonDict]:
        """Every user-data-stream event emitted so far (also those no client received)."""
        return self._hub.user_events()

    def ws_connections(self) -> dict[str, int]:
        """Open WebSocket connections by kind: ``market`` and ``user``."""
        return self._hub.connections()

    def subscriptions(self) -> set[str]:
        return self._hub.subscriptions()

    @property
    def listen_key(self) -> str | None:
        return self._hub.listen_key

    @property
    def price(self) -> Decimal:
        """The last trade price."""
        with self._lock:
            return self._market.last

    def book(self) -> tuple[Decimal, Decimal]:
        """The current best (bid, ask)."""
        with self._lock:
            return self._market.bid, self._market.ask

    # Test controls

    def set_price(self, price: Decimal) -> None:
        """Jump the market to ``price`` (bid; ask one tick above) now: prints a trade, pushes
        the book, fills resting orders it crosses and triggers conditional orders it
        reaches; the random walk continues from there."""

        def jump() -> None:
            with self._lock:
                self._market.jump(price)
                self._market_step(move=False)

        self._call_on_loop(jump)

    def deposit(self, amount: Decimal) -> None:
        """Change the wallet balance (``ACCOUNT_UPDATE`` with reason ``DEPOSIT``/``WITHDRAW``)."""

        def apply() -> None:
            with self._lock:
                self._engine.deposit(amount)

        self._call_on_loop(apply)

    # Fault injection

    def drop_websockets(self, kind: Literal["all", "market", "user"] = "all") -> int:
        """Abort WebSocket connections abruptly (TCP reset, no close frame); returns how many.
        The adapter's clients reconnect by themselves."""
        loop = self._require_loop()
        return asyncio.run_coroutine_threadsafe(self._hub.drop(kind), loop).result(10)

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

    def pause_market(self, paused: bool = True) -> None:
        """While paused the market is silent - no trade, book, kline or mark - with every
        connection left open: a stalled feed, which no reconnect notices. A test may still
        move the price (:meth:`set_price`: its trade prints, orders fill, conditional orders
        trigger), but no kline closes until the market resumes: a bar in the middle of a
        steered move would hand a strategy a cross of its own."""
        with self._lock:
            self._faults.market_paused = paused
            self._market.hold_klines = paused

    def history_down(self, down: bool = True, *, failures: int = 0) -> None:
        """The history endpoints (``aggTrades``, ``klines``, ``fundingRate``) answer HTTP 503
        -1001 while ``down``, or for the next ``failures`` requests: a venue that streams
        its present but cannot serve its past."""
        with self._lock:
            self._faults.history_down = down
            self._faults.history_failures = failures

    def set_trades_per_tick(self, n: int) -> None:
        """How many trades each market tick prints from now on (a benchmark's busy gap,
        then a live feed at its usual pace)."""
        with self._lock:
            self._trades_per_tick = max(1, n)

    def funding_history(self) -> list[tuple[int, Decimal, Decimal]]:
        """Every settlement so far: (time ms, rate, mark)."""
        with self._lock:
            return list(self._feed.settlements)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.reset()

    def expire_listen_key(self) -> None:
        """Expire the listenKey: push ``listenKeyExpired`` and close the user streams."""
        loop = self._require_loop()
        asyncio.run_coroutine_threadsafe(self._hub.expire_listen_key(), loop).result(10)

    # The market's clock

    def _market_step(self, *, move: bool) -> None:
        """One tick: move the book, print a trade, push book/kline/mark, match resting orders,
        trigger the conditional orders the price reached."""
        now = now_ms()
        for n in range(self._trades_per_tick):
            self._market.walk(move=move and n == 0)
        self._feed.tick(now)
        self._engine.match_resting(now)
        self._algos.check(now)

    async def _market_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at = max(next_at + self._tick_interval_s, loop.time())  # no burst after a stall
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            with self._lock:
                if not self._faults.market_paused:
                    self._market_step(move=True)

    async def _kline_loop(self) -> None:
        base = self._market.klines.duration_ms("1m")
        while True:
            now = now_ms()
            await asyncio.sleep((base - now % base) / 1000 + 0.002)
            with self._lock:
                if not self._faults.market_paused:
                    self._market.roll_klines(now_ms())

    def _on_subscribe(self, stream: str) -> None:
        self._feed.subscribed(stream)

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

    # HTTP

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._hub.handle(request)
        method, path = request.method, request.path
        raw_query = request.rel_url.raw_query_string
        body = await request.text() if request.can_read_body else ""
        route = self._routes.get((method, path))
        if route is None:
            target = f"{method} {path}" + (f"?{raw_query}" if raw_query else "")
            log.warning("BINANCE EMULATOR: UNKNOWN ENDPOINT %s", target)
            self._journal.unknown(target)
            return self._reply(
                method, path, ApiError(404, -1000, f"emulator: unknown endpoint {method} {path}")
            )
        with self._lock:
            delay = self._faults.slow_s
        if delay:
            await asyncio.sleep(delay)
        try:
            params = parse_params(raw_query, body, request.content_type)
            with self._lock:
                self._limiter.check(route.weight)
                key = request.headers.get("X-MBX-APIKEY", "")
                self._auth.check(key, route.security, params, raw_query, body)
                result = route.handler(params)
        except ApiError as exc:
            return self._reply(method, path, exc)
        except Exception:
            log.exception("BINANCE EMULATOR: handler failed for %s %s", method, path)
            return self._reply(
                method,
                path,
                ApiError(500, -1000, "An unknown error occurred while processing the request."),
            )
        return self._reply(method, path, result)

    def _reply(self, method: str, path: str, result: object) -> web.Response:
        now = now_ms()
        with self._lock:
            headers = {"X-MBX-USED-WEIGHT-1M": str(self._limiter.used_weight(now))}
            if method == "POST" and path in ORDER_PATHS:
                headers["X-MBX-ORDER-COUNT-10S"] = str(self._limiter.order_count(now, 10_000))
                headers["X-MBX-ORDER-COUNT-1M"] = str(self._limiter.order_count(now, 60_000))
        if isinstance(result, ApiError):
            status, code = result.status, result.code
            payload: object = {"code": result.code, "msg": result.msg}
            if status == 429:
                headers["Retry-After"] = "1"
        else:
            status, code, payload = 200, None, result
        self._journal.record(RequestRecord(method, path, status, code))
        if code is not None:
            log.info("BINANCE EMULATOR: %s %s -> %s %s", method, path, status, payload)
        text = json.dumps(payload, separators=(",", ":"))
        return web.Response(
            text=text, status=status, content_type="application/json", headers=headers
        )
