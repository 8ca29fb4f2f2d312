"""Which Nautilus data and execution clients a mode runs with.

- replay: the replay data client (built by the host) and the sandbox execution client
  (no network);
- binance-sandbox: Binance market data, fills from the sandbox execution client
  (``LiveSandbox``: Nautilus's sandbox with the session's latency; the venue's instruments
  at the trader's fee tier, ``Clients.register``);
- binance-testnet: Binance data and execution on the testnet (USDT-M futures), with
  Nautilus reconciliation bringing orders and positions back from the venue.
Base URLs may be overridden (a local emulator, a proxy); keys stay in the environment.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TypedDict

from nautilus_trader.adapters.binance import (
    BinanceAccountType,
    BinanceDataClientConfig,
    BinanceExecClientConfig,
    BinanceLiveDataClientFactory,
    BinanceLiveExecClientFactory,
)
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.adapters.sandbox.execution import SandboxExecutionClient
from nautilus_trader.backtest.engine import SimulatedExchange
from nautilus_trader.backtest.execution_client import BacktestExecClient
from nautilus_trader.backtest.models import FillModel, MakerTakerFeeModel
from nautilus_trader.backtest.modules import SimulationModule
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import LiveClock, MessageBus, TestClock
from nautilus_trader.common.providers import InstrumentProvider
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.core.data import Data
from nautilus_trader.live.execution_client import LiveExecutionClient
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.enums import (
    AccountType,
    BookType,
    OmsType,
    OrderType,
    account_type_from_str,
    book_type_from_str,
    oms_type_from_str,
)
from nautilus_trader.model.identifiers import AccountId, ClientId, InstrumentId, Venue
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Currency, Money
from nautilus_trader.model.orders import Order
from nautilus_trader.portfolio.base import PortfolioFacade

from node.instruments import with_fees
from protocol import Mode, NodeSettings, SimulationSettings

BINANCE = "BINANCE"


@dataclass(frozen=True)
class Clients:
    """The Binance clients Nautilus builds from factories, and the sandbox venue's config
    (the host builds the sandbox itself, to reach its simulated exchange)."""

    data: dict[str, object]
    exec: dict[str, object]
    reconciliation: bool
    sandbox: SandboxExecutionClientConfig | None = None
    # binance-sandbox: the trader's fee tier (maker, taker; None: the venue's own)
    fee_tier: tuple[Decimal | None, Decimal | None] = (None, None)

    def register(self, node: TradingNode, mode: Mode) -> None:
        """The factories Nautilus builds clients from (the replay client and the sandbox
        the host builds itself: ``node.host``), and in binance-sandbox the fee tier of the
        instruments the venue's data client brings."""
        if mode is not Mode.REPLAY:
            node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
        if mode is Mode.BINANCE_TESTNET:
            node.add_exec_client_factory(BINANCE, BinanceLiveExecClientFactory)
        if mode is Mode.BINANCE_SANDBOX and self.sandbox is not None:
            kernel = node.kernel
            at_fee_tier(
                kernel.msgbus, kernel.data_engine.process, self.sandbox.venue, *self.fee_tier
            )


DATA_ENDPOINT = "DataEngine.process"


def at_fee_tier(
    msgbus: MessageBus,
    process: Callable[[object], None],
    venue: str,
    maker_fee: Decimal | None,
    taker_fee: Decimal | None,
) -> None:
    """Every instrument of ``venue`` a data client hands the data engine (``process``,
    its endpoint's handler), at the trader's fee tier (``[simulation]``) instead of the
    venue's.

    The sandbox venue charges an instrument's own fees, and in binance-sandbox the
    instrument is the one Nautilus's Binance provider builds from exchange info (fee tier
    0 without keys). Replaced where it enters the node, one instrument reaches the cache
    (the portfolio reads it there), the strategies, the session's recording (so the parity
    backtest on it charges the same) and the sandbox venue, which takes it from the bus:
    all of them agree on the fees. A replay builds its instruments at the tier itself
    (``node.replay.feeds_for``)."""
    if maker_fee is None and taker_fee is None:
        return

    def tiered(data: object) -> None:
        if isinstance(data, Instrument) and data.id.venue.value == venue:
            data = with_fees(data, maker_fee, taker_fee)
        process(data)

    msgbus.deregister(DATA_ENDPOINT, process)
    msgbus.register(DATA_ENDPOINT, tiered)


def sandbox_config(settings: NodeSettings) -> SandboxExecutionClientConfig:
    """The simulated venue of the replay and sandbox modes, and of the parity backtest."""
    account = settings.account
    return SandboxExecutionClientConfig(
        venue=settings.instrument_id.rsplit(".", 1)[1],
        starting_balances=[f"{account.starting_balance} {account.currency}"],
        oms_type="NETTING",
        account_type="MARGIN",
        default_leverage=account.leverage,
    )


class VenueOptions(TypedDict):
    """The simulated exchange's settings, as both of its builders take them."""

    oms_type: OmsType
    account_type: AccountType
    starting_balances: list[Money]
    base_currency: Currency | None
    default_leverage: Decimal
    leverages: dict[InstrumentId, Decimal]
    book_type: BookType
    frozen_account: bool
    bar_execution: bool
    trade_execution: bool
    reject_stop_orders: bool
    support_gtd_orders: bool
    support_contingent_orders: bool
    use_position_ids: bool
    use_random_ids: bool
    use_reduce_only: bool


def venue_options(config: SandboxExecutionClientConfig) -> VenueOptions:
    """One reading of the sandbox config for the replay's exchange (``node.lockstep``) and
    the parity backtest's (``node.backtest``): were they read twice, a setting added to one
    and not the other would be a parity gap no test of fills would explain."""
    return VenueOptions(
        oms_type=oms_type_from_str(config.oms_type),
        account_type=account_type_from_str(config.account_type),
        starting_balances=[Money.from_str(b) for b in config.starting_balances],
        base_currency=Currency.from_str(config.base_currency) if config.base_currency else None,
        default_leverage=config.default_leverage,
        leverages={
            InstrumentId.from_str(k): Decimal(str(v)) for k, v in (config.leverages or {}).items()
        },
        book_type=book_type_from_str(config.book_type),
        frozen_account=config.frozen_account,
        bar_execution=config.bar_execution,
        trade_execution=config.trade_execution,
        reject_stop_orders=config.reject_stop_orders,
        support_gtd_orders=config.support_gtd_orders,
        support_contingent_orders=config.support_contingent_orders,
        use_position_ids=config.use_position_ids,
        use_random_ids=config.use_random_ids,
        use_reduce_only=config.use_reduce_only,
    )


# The orders that take the price the market gives: NautilusTrader's matching engine slips
# every L1 fill by a tick with ``prob_slippage``, limit fills included, so a resting limit
# order filled a tick through its own price - which no venue does.
SLIPPING = frozenset(
    {
        OrderType.MARKET,
        OrderType.STOP_MARKET,
        OrderType.MARKET_IF_TOUCHED,
        OrderType.TRAILING_STOP_MARKET,
        OrderType.MARKET_TO_LIMIT,  # its market part, before the first fill
    }
)


class SeededFillModel(FillModel):
    """NautilusTrader's ``FillModel`` draws from the process's global ``random``: whatever
    else draws from it shifts the fills, and a restored node starts the sequence over
    while its backtest is far along it. This one draws from its own generator and counts
    its draws; the checkpoint keeps the count, and a restore skips that many, so the
    fills after a restart are the backtest's."""

    def __init__(self, prob_fill_on_limit: float, prob_slippage: float, seed: int) -> None:
        super().__init__(
            prob_fill_on_limit=prob_fill_on_limit, prob_slippage=prob_slippage, random_seed=seed
        )
        self._rng = random.Random(seed)
        self.draws = 0
        self._slips = True  # the order being filled slips (``get_orderbook_...``)

    def skip(self, draws: int) -> None:
        """Carry on from a checkpoint's count."""
        for _ in range(draws):
            self._rng.random()
        self.draws += draws

    def get_orderbook_for_fill_simulation(
        self, instrument: object, order: Order, best_bid: object, best_ask: object
    ) -> None:
        """Called by the matching engine for every order it is about to fill, just before
        the fills are applied (and ``is_slipped`` drawn): the one place the model learns
        which order it prices. None: the engine's own fill logic."""
        self._slips = order.order_type in SLIPPING and not (
            order.order_type == OrderType.MARKET_TO_LIMIT and order.filled_qty.as_decimal()
        )

    def is_limit_filled(self) -> bool:
        return self._event(self.prob_fill_on_limit)

    def is_slipped(self) -> bool:
        """A market or triggered stop order may pay a tick; a limit-priced order never
        fills worse than its limit, so it never slips (and draws nothing)."""
        if not self._slips:
            return False
        return self._event(self.prob_slippage)

    def _event(self, probability: float) -> bool:
        if probability in (0, 1):
            return probability == 1  # certain: no draw, as NautilusTrader's
        self.draws += 1
        return probability >= self._rng.random()


def fill_model(simulation: SimulationSettings, draws: int = 0) -> SeededFillModel:
    """The simulated venue's fill model: one builder for the replay, the sandbox and the
    parity backtest, so the three draw the same numbers from the same seed; ``draws``:
    a restore's count."""
    model = SeededFillModel(
        float(simulation.prob_fill_on_limit), float(simulation.prob_slippage), simulation.seed
    )
    model.skip(draws)
    return model


class LiveSandbox(SandboxExecutionClient):
    """binance-sandbox's venue: NautilusTrader's sandbox on the live feed, with the
    session's fill model and order latency.

    Nautilus's own builds its simulated exchange without a command queue
    (``use_message_queue=False``, read-only once built): the exchange processes a command
    the moment it is sent, whatever latency model is set on it (tried: with
    ``set_latency_model(LatencyModel(1 s))`` a market order still filled at the last
    quote before it was sent). This one builds the exchange with the queue when there is
    a latency, and holds each command itself until the market's time - the ``ts_init``
    of the market data the venue processes, the wall clock when it came live, the trade's
    own time in a restart's catch-up (``node.catchup``) - reaches the market time it was
    sent at + the latency: the command then reaches the venue after the first market
    data at or after that time, as in ``BacktestEngine`` with the same latency model on
    the recorded data (the parity backtest). Market time, not the node's clock: a
    catch-up plays the past, where the node's clock is ahead of every trade. Submit,
    modify and cancel wait alike; the order is SUBMITTED at once (the client reports it,
    the venue has not seen it). With no market data there is no market time: nothing
    arrives until data comes again. Without latency a command is processed at once, as
    Nautilus's sandbox does."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        portfolio: PortfolioFacade,
        msgbus: MessageBus,
        cache: Cache,
        clock: LiveClock,
        config: SandboxExecutionClientConfig,
        fill_model: FillModel | None = None,
        modules: list[SimulationModule] | None = None,
        latency_ns: int = 0,
        message_queue: bool | None = None,
    ) -> None:
        """``message_queue``: the exchange queues commands (default: with a latency); a
        replay's lockstep venue queues them always and drains them itself."""
        # Not the sandbox's own constructor: it builds (and opens the account of) an
        # exchange without a queue. The rest is its constructor's, from the same config.
        venue = Venue(config.venue)
        options = venue_options(config)
        self.test_clock = TestClock()
        LiveExecutionClient.__init__(
            self,
            loop=loop,
            client_id=ClientId(config.venue),
            venue=venue,
            oms_type=options["oms_type"],
            account_type=options["account_type"],
            base_currency=options["base_currency"],
            instrument_provider=InstrumentProvider(),
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            config=None,
        )
        self._set_account_id(AccountId(f"{config.venue}-001"))
        self._latency_ns = latency_ns
        self._market_ns = 0  # the last market data's time, as the venue took it
        self._market_at = 0  # when it came, on the node's clock
        self._held: list[tuple[int, Callable[[], None]]] = []  # (due market time, send)
        self.exchange = SimulatedExchange(
            venue=venue,
            modules=modules or [],
            portfolio=portfolio,
            msgbus=msgbus,
            cache=cache,
            clock=self.test_clock,
            fill_model=fill_model or FillModel(),
            fee_model=MakerTakerFeeModel(),
            latency_model=None,
            use_message_queue=latency_ns > 0 if message_queue is None else message_queue,
            **options,
        )
        self._client = BacktestExecClient(
            exchange=self.exchange, msgbus=msgbus, cache=cache, clock=self.test_clock
        )
        self.exchange.register_client(self._client)
        self.exchange.initialize_account()

    # ------------------------------------------------------------ commands in

    def submit_order(self, command: object) -> None:
        self._route(lambda: self._client.submit_order(command))

    def submit_order_list(self, command: object) -> None:
        self._route(lambda: self._client.submit_order_list(command))

    def modify_order(self, command: object) -> None:
        self._route(lambda: self._client.modify_order(command))

    def cancel_order(self, command: object) -> None:
        self._route(lambda: self._client.cancel_order(command))

    def cancel_all_orders(self, command: object) -> None:
        self._route(lambda: self._client.cancel_all_orders(command))

    def batch_cancel_orders(self, command: object) -> None:
        self._route(lambda: self._client.batch_cancel_orders(command))

    def _route(self, send: Callable[[], None]) -> None:
        """A command to the venue: at once, or after the latency in market time - the
        last market data's time plus what the node's clock ran since it came (live, the
        command's own time; in a catch-up, the trade's it answers)."""
        if self._latency_ns:
            since = max(0, self._clock.timestamp_ns() - self._market_at) if self._market_at else 0
            self._held.append((self._market_ns + since + self._latency_ns, send))
        else:
            send()

    def on_data(self, data: Data) -> None:
        """The venue takes the market data, then the commands due by its time arrive and
        are processed against it."""
        super().on_data(data)
        if not self._latency_ns:
            return
        ts = data.ts_init
        if ts >= self._market_ns:
            self._market_ns, self._market_at = ts, self._clock.timestamp_ns()
        if self._held and self._held[0][0] <= ts:
            due = [send for at, send in self._held if at <= ts]
            self._held = [(at, send) for at, send in self._held if at > ts]
            for send in due:
                send()
            self.exchange.process(ts)


def clients_for(settings: NodeSettings) -> Clients:
    sandbox = sandbox_config(settings)
    if settings.mode is Mode.REPLAY:
        return Clients({}, {}, reconciliation=False, sandbox=sandbox)

    binance = settings.binance
    environment = (
        BinanceEnvironment.TESTNET
        if settings.mode is Mode.BINANCE_TESTNET
        else BinanceEnvironment.LIVE
    )
    # Every instrument the node trades, from the venue's exchange info (its tick, step,
    # filters and fees); not all of them: a node loads what it trades. The loader has
    # asked the venue that it lists each one (``supervisor.config.venue_problems``).
    provider = InstrumentProviderConfig(
        load_all=False,
        load_ids=frozenset(InstrumentId.from_str(i) for i in settings.instrument_ids),
    )
    data_config = BinanceDataClientConfig(
        account_type=BinanceAccountType.USDT_FUTURES,
        environment=environment,
        base_url_http=binance.base_url_http,
        base_url_ws=binance.base_url_ws,
        instrument_provider=provider,
    )
    if settings.mode is Mode.BINANCE_SANDBOX:
        simulation = settings.simulation
        return Clients(
            {BINANCE: data_config},
            {},
            reconciliation=False,
            sandbox=sandbox,
            fee_tier=(simulation.maker_fee, simulation.taker_fee),
        )
    exec_config = BinanceExecClientConfig(
        account_type=BinanceAccountType.USDT_FUTURES,
        environment=environment,
        base_url_http=binance.base_url_http,
        base_url_ws=binance.base_url_ws,
        base_url_ws_stream=binance.base_url_ws_stream,
        instrument_provider=provider,
    )
    return Clients({BINANCE: data_config}, {BINANCE: exec_config}, reconciliation=True)
