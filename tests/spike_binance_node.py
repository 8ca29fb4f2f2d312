"""Spike: a real TradingNode with the real Binance adapter against the loopback emulator.

Not a pytest test: run it as a script, ``python tests/spike_binance_node.py``. It exits 0 when
every check passed, 1 when one failed, 2 on a timeout or crash, 3 if the watchdog fired.

It starts :class:`tests.binance_emulator.BinanceEmulator` on 127.0.0.1, builds a
``TradingNode`` in this process with ``BinanceDataClientConfig`` / ``BinanceExecClientConfig``
(USDT-M futures, TESTNET environment, every base URL pointed at the emulator, API key and
secret passed in the configs) and a tiny strategy that subscribes to 1-minute external bars,
trade ticks and quotes, buys 0.01 at market on the first bar, then places a far LIMIT SELL and
cancels it. It prints what happened and checks it against the emulator's own books.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from nautilus_trader.adapters.binance import (  # noqa: E402
    BinanceAccountType,
    BinanceDataClientConfig,
    BinanceExecClientConfig,
    BinanceLiveDataClientFactory,
    BinanceLiveExecClientFactory,
)
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment  # noqa: E402
from nautilus_trader.config import (  # noqa: E402
    InstrumentProviderConfig,
    LiveExecEngineConfig,
    LoggingConfig,
    StrategyConfig,
    TradingNodeConfig,
)
from nautilus_trader.live.node import TradingNode  # noqa: E402
from nautilus_trader.model.currencies import USDT  # noqa: E402
from nautilus_trader.model.data import Bar, BarType, QuoteTick, TradeTick  # noqa: E402
from nautilus_trader.model.enums import (  # noqa: E402
    OrderSide,
    OrderStatus,
    PositionSide,
    order_side_to_str,
)
from nautilus_trader.model.events import (  # noqa: E402
    OrderAccepted,
    OrderCanceled,
    OrderDenied,
    OrderFilled,
    OrderRejected,
)
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId, Venue  # noqa: E402
from nautilus_trader.model.objects import Quantity  # noqa: E402
from nautilus_trader.trading.strategy import Strategy  # noqa: E402

from tests.binance_emulator import BinanceEmulator  # noqa: E402

API_KEY = "spike-api-key-0123456789abcdef"
API_SECRET = "spike-api-secret-fedcba9876543210"
INSTRUMENT_ID = "BTCUSDT-PERP.BINANCE"
BAR_TYPE = f"{INSTRUMENT_ID}-1-MINUTE-LAST-EXTERNAL"
TRADE_SIZE = "0.010"
LIMIT_OFFSET = Decimal("1.10")  # the resting SELL sits 10 % above the market
MIN_BARS = 2
SCENARIO_TIMEOUT_S = 45.0
AGREEMENT_TIMEOUT_S = 5.0
WATCHDOG_S = 85.0
PRICE_TOLERANCE = Decimal("0.000001")  # Nautilus keeps avg_px_open as a float


class SpikeConfig(StrategyConfig, frozen=True):
    instrument_id: str
    bar_type: str
    trade_size: str


@dataclass
class Observed:
    """What the strategy saw, read by the driver after the node ran."""

    bars: int = 0
    trade_ticks: int = 0
    quote_ticks: int = 0
    last_bar: str = ""
    market_order_id: ClientOrderId | None = None
    limit_order_id: ClientOrderId | None = None
    fills: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


class SpikeStrategy(Strategy):
    """Market BUY on the first bar; then a far LIMIT SELL, cancelled once accepted."""

    def __init__(self, config: SpikeConfig, observed: Observed) -> None:
        super().__init__(config)
        self.instrument_id = InstrumentId.from_str(config.instrument_id)
        self.bar_type = BarType.from_str(config.bar_type)
        self.trade_size = Quantity.from_str(config.trade_size)
        self.observed = observed

    def on_start(self) -> None:
        if self.cache.instrument(self.instrument_id) is None:
            self.observed.problems.append(f"instrument {self.instrument_id} not in cache")
        self.subscribe_bars(self.bar_type)
        self.subscribe_trade_ticks(self.instrument_id)
        self.subscribe_quote_ticks(self.instrument_id)

    def on_bar(self, bar: Bar) -> None:
        self.observed.bars += 1
        self.observed.last_bar = str(bar)
        if self.observed.market_order_id is None:
            order = self.order_factory.market(self.instrument_id, OrderSide.BUY, self.trade_size)
            self.observed.market_order_id = order.client_order_id
            self.submit_order(order)

    def on_trade_tick(self, tick: TradeTick) -> None:
        self.observed.trade_ticks += 1

    def on_quote_tick(self, tick: QuoteTick) -> None:
        self.observed.quote_ticks += 1

    def on_order_filled(self, event: OrderFilled) -> None:
        self.observed.fills.append(
            f"{event.client_order_id} {order_side_to_str(event.order_side)} {event.last_qty} @ "
            f"{event.last_px} commission {event.commission} trade {event.trade_id}"
        )
        order = self.cache.order(event.client_order_id)
        if (
            event.client_order_id == self.observed.market_order_id
            and order is not None
            and order.is_closed
            and self.observed.limit_order_id is None
        ):
            instrument = self.cache.instrument(self.instrument_id)
            tick = instrument.price_increment.as_decimal()
            far = (event.last_px.as_decimal() * LIMIT_OFFSET / tick).to_integral_value() * tick
            limit = self.order_factory.limit(
                self.instrument_id, OrderSide.SELL, self.trade_size, instrument.make_price(far)
            )
            self.observed.limit_order_id = limit.client_order_id
            self.submit_order(limit)

    def on_order_accepted(self, event: OrderAccepted) -> None:
        if event.client_order_id == self.observed.limit_order_id:
            order = self.cache.order(event.client_order_id)
            if order is not None:
                self.cancel_order(order)

    def on_order_canceled(self, event: OrderCanceled) -> None:
        if event.client_order_id == self.observed.limit_order_id:
            self.observed.done.set()

    def on_order_rejected(self, event: OrderRejected) -> None:
        self.observed.problems.append(f"rejected {event.client_order_id}: {event.reason}")
        self.observed.done.set()

    def on_order_denied(self, event: OrderDenied) -> None:
        self.observed.problems.append(f"denied {event.client_order_id}: {event.reason}")
        self.observed.done.set()


def build_node(emulator: BinanceEmulator, loop: asyncio.AbstractEventLoop) -> TradingNode:
    instrument_provider = InstrumentProviderConfig(load_all=True)
    config = TradingNodeConfig(
        trader_id="SPIKE-001",
        logging=LoggingConfig(log_level=os.environ.get("SPIKE_LOG_LEVEL", "WARNING")),
        exec_engine=LiveExecEngineConfig(reconciliation=True),
        data_clients={
            "BINANCE": BinanceDataClientConfig(
                api_key=API_KEY,
                api_secret=API_SECRET,
                account_type=BinanceAccountType.USDT_FUTURES,
                environment=BinanceEnvironment.TESTNET,
                base_url_http=emulator.http_url,
                base_url_ws=emulator.ws_url,
                instrument_provider=instrument_provider,
            )
        },
        exec_clients={
            "BINANCE": BinanceExecClientConfig(
                api_key=API_KEY,
                api_secret=API_SECRET,
                account_type=BinanceAccountType.USDT_FUTURES,
                environment=BinanceEnvironment.TESTNET,
                base_url_http=emulator.http_url,
                base_url_ws=emulator.ws_url,
                base_url_ws_stream=emulator.ws_stream_url,
                instrument_provider=instrument_provider,
            )
        },
        timeout_connection=20.0,
        timeout_reconciliation=10.0,
        timeout_portfolio=5.0,
        timeout_disconnection=3.0,
        timeout_post_stop=0.1,
        timeout_shutdown=3.0,
    )
    node = TradingNode(config=config, loop=loop)
    node.add_data_client_factory("BINANCE", BinanceLiveDataClientFactory)
    node.add_exec_client_factory("BINANCE", BinanceLiveExecClientFactory)
    node.build()
    return node


@dataclass
class Outcome:
    observed: Observed
    market_status: str = "missing"
    limit_status: str = "missing"
    position: str = "none"
    position_side: PositionSide = PositionSide.FLAT
    position_qty: Decimal = Decimal(0)
    position_avg_px: Decimal = Decimal(0)
    balance_total: Decimal | None = None
    balance_free: Decimal | None = None
    subscriptions: list[str] = field(default_factory=list)
    timed_out: bool = False


async def drive(node: TradingNode, observed: Observed, emulator: BinanceEmulator) -> Outcome:
    """Run the node until the scenario is done, take a snapshot, stop it."""
    run_task = asyncio.get_running_loop().create_task(node.run_async())
    outcome = Outcome(observed)
    try:
        deadline = time.monotonic() + SCENARIO_TIMEOUT_S
        while not (observed.done.is_set() and observed.bars >= MIN_BARS):
            if run_task.done():
                run_task.result()
                raise RuntimeError("node stopped by itself")
            if time.monotonic() > deadline:
                outcome.timed_out = True
                break
            await asyncio.sleep(0.1)
        # The wallet reaches Nautilus through ACCOUNT_UPDATE: wait until both sides agree.
        account = node.portfolio.account(Venue("BINANCE"))
        deadline = time.monotonic() + AGREEMENT_TIMEOUT_S
        while account is not None and time.monotonic() < deadline:
            if account.balance_total(USDT).as_decimal() == emulator.balance().wallet_balance:
                break
            await asyncio.sleep(0.05)
        snapshot(node, outcome)
        outcome.subscriptions = sorted(emulator.subscriptions())
    finally:
        await node.stop_async()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(run_task, 5.0)
    return outcome


def snapshot(node: TradingNode, outcome: Outcome) -> None:
    cache = node.cache
    observed = outcome.observed
    if observed.market_order_id is not None:
        order = cache.order(observed.market_order_id)
        outcome.market_status = order.status_string() if order else "missing"
    if observed.limit_order_id is not None:
        order = cache.order(observed.limit_order_id)
        outcome.limit_status = order.status_string() if order else "missing"
    positions = cache.positions_open(instrument_id=InstrumentId.from_str(INSTRUMENT_ID))
    if positions:
        position = positions[0]
        outcome.position = repr(position)
        outcome.position_side = position.side
        outcome.position_qty = position.quantity.as_decimal()
        outcome.position_avg_px = Decimal(str(position.avg_px_open))
    account = node.portfolio.account(Venue("BINANCE"))
    if account is not None:
        outcome.balance_total = account.balance_total(USDT).as_decimal()
        outcome.balance_free = account.balance_free(USDT).as_decimal()


def check(outcome: Outcome, emulator: BinanceEmulator) -> list[str]:
    failures: list[str] = list(outcome.observed.problems)
    observed = outcome.observed
    if outcome.timed_out:
        failures.append(f"scenario did not finish within {SCENARIO_TIMEOUT_S} s")
    if observed.bars < MIN_BARS:
        failures.append(f"received {observed.bars} bars, wanted >= {MIN_BARS}")
    if observed.trade_ticks == 0:
        failures.append("received no trade ticks")
    if outcome.market_status != OrderStatus.FILLED.name:
        failures.append(f"market order is {outcome.market_status}, wanted FILLED")
    if outcome.limit_status != OrderStatus.CANCELED.name:
        failures.append(f"limit order is {outcome.limit_status}, wanted CANCELED")
    size = Decimal(TRADE_SIZE)
    if outcome.position_side != PositionSide.LONG or outcome.position_qty != size:
        failures.append(f"Nautilus position is {outcome.position}, wanted LONG {size}")
    emulated = emulator.positions()[0]
    if emulated.amount != outcome.position_qty:
        failures.append(f"emulator position {emulated.amount} != Nautilus {outcome.position_qty}")
    if abs(emulated.entry_price - outcome.position_avg_px) > PRICE_TOLERANCE:
        failures.append(
            f"emulator entry {emulated.entry_price} != Nautilus avg_px_open "
            f"{outcome.position_avg_px}"
        )
    wallet = emulator.balance().wallet_balance
    if outcome.balance_total != wallet:
        failures.append(f"emulator wallet {wallet} != Nautilus total {outcome.balance_total}")
    statuses = {o.client_order_id: o.status for o in emulator.orders()}
    if statuses.get(str(observed.market_order_id)) != "FILLED":
        failures.append(f"emulator order statuses {statuses}")
    if statuses.get(str(observed.limit_order_id)) != "CANCELED":
        failures.append(f"emulator order statuses {statuses}")
    if len(emulator.fills()) != 1:
        failures.append(f"emulator recorded {len(emulator.fills())} fills, wanted 1")
    if emulator.unknown_requests():
        failures.append(f"adapter called unknown endpoints: {emulator.unknown_requests()}")
    return failures


def report(outcome: Outcome, emulator: BinanceEmulator, elapsed_s: float) -> None:
    observed = outcome.observed
    print("== endpoints and streams used by the adapter, in order ==")
    lines: list[str] = []
    for record in emulator.requests():
        line = f"{record.method} {record.path} -> {record.status}"
        if record.code is not None:
            line += f" ({record.code})"
        lines.append(line)
    for number, line in enumerate(lines, 1):
        print(f"  {number:2d}. {line}")
    print(f"== market streams subscribed while running: {outcome.subscriptions}")
    print("== what Nautilus saw ==")
    print(f"  bars: {observed.bars} (last: {observed.last_bar})")
    print(f"  trade ticks: {observed.trade_ticks}, quote ticks: {observed.quote_ticks}")
    for fill in observed.fills:
        print(f"  fill: {fill}")
    print(f"  market order {observed.market_order_id}: {outcome.market_status}")
    print(f"  limit order {observed.limit_order_id}: {outcome.limit_status}")
    print(f"  position: {outcome.position} avg_px_open={outcome.position_avg_px}")
    print(f"  account USDT: total={outcome.balance_total} free={outcome.balance_free}")
    print("== what the emulator holds ==")
    for position in emulator.positions():
        print(f"  position: {position.amount} @ {position.entry_price} ({position.position_side})")
    balance = emulator.balance()
    print(
        f"  balance: wallet={balance.wallet_balance} available={balance.available_balance} "
        f"initial_margin={balance.initial_margin}"
    )
    for fill in emulator.fills():
        print(
            f"  fill: {fill.client_order_id} {fill.side} {fill.qty} @ {fill.price} "
            f"commission {fill.commission} {fill.commission_asset}"
        )
    events = [e.get("e") for e in emulator.user_events()]
    print(f"  user stream events: {events}")
    print(f"== elapsed {elapsed_s:.1f} s")


def main() -> int:
    started = time.monotonic()
    watchdog = threading.Timer(WATCHDOG_S, lambda: os._exit(3))
    watchdog.daemon = True
    watchdog.start()
    emulator = BinanceEmulator(API_KEY, API_SECRET, kline_interval_s=1.0)
    emulator.start()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    observed = Observed()
    node: TradingNode | None = None
    try:
        node = build_node(emulator, loop)
        strategy = SpikeStrategy(
            SpikeConfig(instrument_id=INSTRUMENT_ID, bar_type=BAR_TYPE, trade_size=TRADE_SIZE),
            observed,
        )
        node.trader.add_strategy(strategy)
        outcome = loop.run_until_complete(
            asyncio.wait_for(drive(node, observed, emulator), SCENARIO_TIMEOUT_S + 20)
        )
    except Exception as exc:
        print(f"SPIKE CRASHED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    finally:
        if node is not None:
            node.dispose()  # closes the (no longer running) loop
        emulator.stop()
        watchdog.cancel()
    report(outcome, emulator, time.monotonic() - started)
    failures = check(outcome, emulator)
    for failure in failures:
        print(f"FAIL: {failure}")
    print("SPIKE PASSED" if not failures else f"SPIKE FAILED ({len(failures)} checks)")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
