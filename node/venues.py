"""Which Nautilus data and execution clients a mode runs with.

- replay: the replay data client (built by the host) and the sandbox execution client
  (no network);
- binance-sandbox: Binance market data, fills from the sandbox execution client;
- binance-testnet: Binance data and execution on the testnet (USDT-M futures), with
  Nautilus reconciliation bringing orders and positions back from the venue.
Base URLs may be overridden (a local emulator, a proxy); keys stay in the environment.
"""

from __future__ import annotations

import random
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
from nautilus_trader.backtest.models import FillModel
from nautilus_trader.config import InstrumentProviderConfig
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
from nautilus_trader.model.identifiers import InstrumentId
from nautilus_trader.model.objects import Currency, Money
from nautilus_trader.model.orders import Order

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

    def register(self, node: TradingNode, mode: Mode) -> None:
        """The factories Nautilus builds clients from (the replay client and the sandbox
        the host builds itself: ``node.host``)."""
        if mode is not Mode.REPLAY:
            node.add_data_client_factory(BINANCE, BinanceLiveDataClientFactory)
        if mode is Mode.BINANCE_TESTNET:
            node.add_exec_client_factory(BINANCE, BinanceLiveExecClientFactory)


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
    provider = InstrumentProviderConfig(
        load_all=False, load_ids=frozenset({InstrumentId.from_str(settings.instrument_id)})
    )
    data_config = BinanceDataClientConfig(
        account_type=BinanceAccountType.USDT_FUTURES,
        environment=environment,
        base_url_http=binance.base_url_http,
        base_url_ws=binance.base_url_ws,
        instrument_provider=provider,
    )
    if settings.mode is Mode.BINANCE_SANDBOX:
        return Clients({BINANCE: data_config}, {}, reconciliation=False, sandbox=sandbox)
    exec_config = BinanceExecClientConfig(
        account_type=BinanceAccountType.USDT_FUTURES,
        environment=environment,
        base_url_http=binance.base_url_http,
        base_url_ws=binance.base_url_ws,
        base_url_ws_stream=binance.base_url_ws_stream,
        instrument_provider=provider,
    )
    return Clients({BINANCE: data_config}, {BINANCE: exec_config}, reconciliation=True)
