"""Typed settings the actors and the node child are built from.

The config loader (``supervisor.config``) validates a TOML file into these; the
node child receives ``NodeSettings`` pickled through the spawn context, so every
field is a plain value. Secrets are never part of settings: they stay in the
environment and are read where they are used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # messages import settings: only the annotation needs Snapshot
    from actors.messages import Snapshot

SUPPORTED_INSTRUMENTS = ("BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE")


class Mode(StrEnum):
    REPLAY = "replay"
    BINANCE_SANDBOX = "binance-sandbox"
    BINANCE_TESTNET = "binance-testnet"


class SizingMethod(StrEnum):
    FIXED_FRACTIONAL = "fixed_fractional"
    KELLY = "kelly"
    ATR = "atr"


@dataclass(frozen=True, slots=True)
class SizingSettings:
    method: SizingMethod = SizingMethod.FIXED_FRACTIONAL
    # fixed_fractional: the stop distance as a fraction of price
    stop_loss_pct: Decimal = Decimal("0.02")
    # kelly
    win_rate: Decimal = Decimal("0.55")
    payoff_ratio: Decimal = Decimal("1.5")
    kelly_fraction: Decimal = Decimal("0.5")
    # atr: stop distance = atr_multiplier * ATR(atr_period)
    atr_period: int = 14
    atr_multiplier: Decimal = Decimal("2")


@dataclass(frozen=True, slots=True)
class RiskLimits:
    risk_per_trade: Decimal = Decimal("0.01")
    max_leverage: Decimal = Decimal("3")
    max_drawdown_pct: Decimal = Decimal("20")
    daily_loss_limit_pct: Decimal = Decimal("5")


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """Where bars come from and how fast they are played.

    ``speed`` multiplies the bar interval: 1 is real time, 240 plays a one-minute
    bar every 0.25 s, 0 plays as fast as the node takes them.
    """

    source: str = "synthetic"
    path: Path | None = None
    seed: int = 7
    bars: int = 50_000
    bar_minutes: int = 1
    speed: float = 240.0
    start_price: Decimal = Decimal("60000")
    volatility: Decimal = Decimal("0.002")


@dataclass(frozen=True, slots=True)
class StrategySettings:
    name: str = "ema_cross"
    fast_period: int = 10
    slow_period: int = 30
    ladder_orders: int = 0
    ladder_step_pct: Decimal = Decimal("0.01")


@dataclass(frozen=True, slots=True)
class BinanceSettings:
    """Binance endpoints; ``None`` uses the adapter's URL for the environment.

    Keys are never here: the Nautilus Binance factories read them from the
    environment (``BINANCE_FUTURES_TESTNET_API_KEY`` / ``_SECRET`` for the testnet).
    """

    account_type: str = "usdt_futures"
    base_url_http: str | None = None
    base_url_ws: str | None = None
    base_url_ws_stream: str | None = None


@dataclass(frozen=True, slots=True)
class NodeSettings:
    trader_id: str = "PAPER-001"
    mode: Mode = Mode.REPLAY
    instrument_id: str = "BTCUSDT-PERP.BINANCE"
    starting_balance: Decimal = Decimal("100000")
    currency: str = "USDT"
    leverage: Decimal = Decimal("3")
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    sizing: SizingSettings = field(default_factory=SizingSettings)
    risk: RiskLimits = field(default_factory=RiskLimits)
    binance: BinanceSettings = field(default_factory=BinanceSettings)
    start_cursor: int = 0
    restore: Snapshot | None = None  # state to rebuild before the first bar
    start_halted: str | None = None  # the gate's halt reason: applied before the first bar
    lock_path: Path | None = None  # held by the child while it trades (one node per trader)
    purge_interval_mins: int = 10  # closed orders/positions and old account events leave
    purge_buffer_mins: int = 60  # the node's cache once this old (bounded memory)
    log_level: str = "WARNING"


@dataclass(frozen=True, slots=True)
class TelegramSettings:
    """Where alerts go. The token and the chat ids are read from the environment
    (``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_CHAT_IDS``); without a token Telegram is off
    and alerts stay in the outbox and the log."""

    api_base: str = "https://api.telegram.org"
    chat_ids: tuple[int, ...] = ()
    commands: bool = True
    pump_interval_s: float = 1.0
    poll_timeout_s: int = 20
    request_timeout_s: float = 10.0
    backoff_max_s: float = 60.0


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Circuit breakers: any one trips a halt and a critical alert."""

    max_drawdown_pct: Decimal = Decimal("20")
    daily_loss_limit_pct: Decimal = Decimal("5")
    max_consecutive_rejects: int = 5
    max_errors: int = 20
    error_window_s: float = 60.0
    # After a trip, alert again each time the loss deepens by this many percent points.
    realert_step_pct: Decimal = Decimal("5")
    # No bar for this many bar intervals (wall clock): alert; for the second: halt.
    data_stale_alert_bars: int = 3
    data_stale_halt_bars: int = 10
