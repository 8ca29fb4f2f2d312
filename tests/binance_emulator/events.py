"""What happened to the account, as typed values, before anyone turns it into JSON.

The matching engine reports each change as one of these, in the order Binance pushes them on
the user data stream (for a fill: trade, account, order). Keeping them typed lets the engine be
tested without a socket and lets :mod:`.feeds` own the wire format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from .snapshots import AlgoSnapshot, FillSnapshot, OrderSnapshot, PositionSnapshot


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """An order changed (``ORDER_TRADE_UPDATE``); ``fill`` is set for ``exec_type`` TRADE."""

    order: OrderSnapshot
    exec_type: str
    time_ms: int
    bid_notional: Decimal
    ask_notional: Decimal
    fill: FillSnapshot | None = None


@dataclass(frozen=True, slots=True)
class TradeLite:
    """The short fill notice Binance pushes first (``TRADE_LITE``)."""

    order: OrderSnapshot
    fill: FillSnapshot


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """The wallet or the position changed (``ACCOUNT_UPDATE``), for ``reason``."""

    reason: str
    time_ms: int
    wallet: Decimal
    balance_change: Decimal
    position: PositionSnapshot


@dataclass(frozen=True, slots=True)
class LeverageUpdate:
    """The symbol's leverage changed (``ACCOUNT_CONFIG_UPDATE``)."""

    symbol: str
    leverage: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class AlgoUpdate:
    """A conditional (algo) order changed status (``ALGO_UPDATE``)."""

    algo: AlgoSnapshot
    time_ms: int


type UserEvent = OrderUpdate | TradeLite | AccountUpdate | LeverageUpdate | AlgoUpdate
type EmitUser = Callable[[UserEvent], None]
