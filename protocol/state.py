"""The node's state as a checkpoint keeps it: the snapshot and its parts.

Plain values only (str, int, Decimal, tuples): a snapshot crosses the node pipe and is
stored as JSON, and a restart rebuilds the node from it. Money is ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    HALTED = "HALTED"
    REDUCING = "REDUCING"


class HaltMode(StrEnum):
    """What a halt leaves behind. ``cancel``: no open order, new ones denied (positions
    stay, unprotected). ``reduce``: entries cancelled, reduce-only orders (the protective
    stops) kept, only reducing orders pass (NautilusTrader's REDUCING). ``flatten``:
    every order cancelled and every position closed by market orders, then as cancel."""

    CANCEL = "cancel"
    REDUCE = "reduce"
    FLATTEN = "flatten"

    @property
    def trading_state(self) -> TradingState:
        return TradingState.REDUCING if self is HaltMode.REDUCE else TradingState.HALTED


@dataclass(frozen=True, slots=True)
class OrderView:
    client_order_id: str
    instrument_id: str
    side: str
    order_type: str
    quantity: Decimal
    filled_qty: Decimal
    price: Decimal | None
    status: str
    strategy_id: str = ""  # "": a checkpoint of a single-strategy service
    trigger_price: Decimal | None = None  # a stop's
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class PositionFill:
    """One fill of an open position, as the venue gave it (a tick price)."""

    side: str
    quantity: Decimal
    price: Decimal


@dataclass(frozen=True, slots=True)
class PositionView:
    """``avg_px_open`` is for reading (rounded); ``fills`` rebuild the position on a
    restore: replayed in order they give Nautilus's float average price back bit for
    bit, where one fill at the rounded average left every later PnL a few cents off
    the backtest's. A checkpoint of an older service has no fills (``()``)."""

    position_id: str
    instrument_id: str
    side: str
    quantity: Decimal
    avg_px_open: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fills: tuple[PositionFill, ...] = ()
    strategy_id: str = ""


@dataclass(frozen=True, slots=True)
class DataMark:
    """Where a live feed stood for one instrument: its last trade (the venue's aggregate
    trade id and its market time), its last bar's close and its last funding settlement
    charged. A restarted binance-sandbox
    node replays the venue's history from here (``node.catchup``), so no trade is played
    twice and none is missed."""

    instrument_id: str
    trade_id: int = 0
    trade_ns: int = 0
    bar_ns: int = 0
    # binance-sandbox: the last funding settlement charged. The bar of the period a
    # settlement ends charges it (``node.funding``) before any trade past it comes, so
    # the marks above can lie before a settlement already paid: the catch-up after a
    # kill then would charge it again.
    settled_ns: int = 0


@dataclass(frozen=True, slots=True)
class StrategyView:
    """One strategy's share of the account, so several in one node can be told apart and
    each restored as it was: its order id counter, fills, realized PnL (after fees, as
    Nautilus counts it), unrealized PnL and fees. The strategies' realized PnL and fills
    add up to the account's."""

    strategy_id: str
    orders_total: int = 0
    fills: int = 0
    realized_pnl: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    # Its own halt (``Halt(strategy_id=...)``), beside the account's trading state.
    trading_state: TradingState = TradingState.ACTIVE
    halt_reason: str = ""
    # Its own breakers' marks: the highest its equity (its capital plus its PnL and
    # funding) reached, and the UTC day's start, kept across restarts like the account's.
    equity_peak: Decimal | None = None
    funding: Decimal = Decimal(0)  # funding its positions paid (< 0) or received
    capital: Decimal | None = None  # its own capital (None: a checkpoint from before)
    equity: Decimal | None = None  # capital + realized + unrealized + funding
    day: str = ""
    day_start_equity: Decimal | None = None

    @property
    def return_on_capital(self) -> Decimal | None:
        """Its equity's gain on its own capital, a fraction."""
        if self.capital is None or self.equity is None or self.capital <= 0:
            return None
        return (self.equity - self.capital) / self.capital


@dataclass(frozen=True, slots=True)
class Snapshot:
    taken_at_ns: int
    trader_id: str
    trading_state: TradingState
    currency: str
    balance: Decimal
    equity: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    replay_cursor: int
    open_orders: tuple[OrderView, ...] = ()
    positions: tuple[PositionView, ...] = ()
    orders_total: int = 0
    halt_reason: str = ""
    replay_total: int = 0
    # Breaker marks and the change counter (see ``NodeReport``); defaults read old rows.
    equity_peak: Decimal | None = None
    day: str = ""
    day_start_equity: Decimal | None = None
    state_version: int = 0
    last_data_ns: int = 0
    strategies: tuple[StrategyView, ...] = ()  # () in a single-strategy service's rows
    funding: Decimal = Decimal(0)  # the account's funding so far (in the balance already)
    fill_draws: int = 0  # the simulated venue's fill model: its draws so far (a restore skips them)
    data_marks: tuple[DataMark, ...] = ()  # a live feed's position, per instrument
