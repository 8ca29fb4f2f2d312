"""Which Nautilus data and execution clients a mode runs with.

- replay: the replay data client (built by the host) and the sandbox execution client
  (no network);
- binance-sandbox: Binance market data, fills from the sandbox execution client;
- binance-testnet: Binance data and execution on the testnet (USDT-M futures), with
  Nautilus reconciliation bringing orders and positions back from the venue.
Base URLs may be overridden (a local emulator, a proxy); keys stay in the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from nautilus_trader.adapters.binance import (
    BinanceAccountType,
    BinanceDataClientConfig,
    BinanceExecClientConfig,
    BinanceLiveDataClientFactory,
    BinanceLiveExecClientFactory,
)
from nautilus_trader.adapters.binance.common.enums import BinanceEnvironment
from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.config import InstrumentProviderConfig
from nautilus_trader.live.node import TradingNode
from nautilus_trader.model.identifiers import InstrumentId

from protocol import Mode, NodeSettings

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
