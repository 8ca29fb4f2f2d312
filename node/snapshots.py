"""What the node shows of itself: the checkpoint's snapshot and the report's figures.

A checkpoint's snapshot is the node's whole state as the protocol's plain values - the
account, its positions with their fills, the open orders, each strategy's books and its
breakers' marks - built on the node's loop between two steps, so it never holds half a
bar. The open orders are the costly part (a 10k-order book took 91 ms to view and
230 ms to pickle), so each open order's view and its wire encoding are kept here as its
events come and rebuilt only when a snapshot needs them; the rest is read from the
books (``node.books``), the halts (``node.halting``) and NautilusTrader's cache.
Runs on the node's loop, asked by the bridge.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

import msgspec
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import Clock
from nautilus_trader.model.identifiers import ClientOrderId, InstrumentId
from nautilus_trader.model.position import Position
from nautilus_trader.portfolio.base import PortfolioFacade
from nautilus_trader.trading.strategy import Strategy

from node.books import Books, Valuation
from node.halting import Halting
from node.marks import EquityMarks
from node.views import order_view, position_view
from protocol import (
    DataMark,
    OrderView,
    PositionView,
    Snapshot,
    StrategyMark,
    StrategyView,
    TradingState,
    encode_order,
    encode_snapshot,
)


@dataclass(frozen=True, slots=True)
class Progress:
    """What only the bridge knows at a snapshot: where the session is and how often its
    state changed."""

    cursor: int
    replay_total: int
    state_version: int
    last_data_ns: int
    fill_draws: int
    data_marks: tuple[DataMark, ...] = ()


class Snapshots:
    """The node's snapshots and the account's and strategies' figures for its reports."""

    def __init__(
        self,
        cache: Cache,
        portfolio: PortfolioFacade,
        clock: Clock,
        currency: str,
        strategies: Mapping[str, Strategy],
        instrument_ids: Sequence[InstrumentId],
        books: Books,
        valuation: Valuation,
        halting: Halting,
        marks: EquityMarks,
    ) -> None:
        """``strategies``: by id, the first being the one a single-strategy checkpoint
        belongs to; ``marks``: the account's (the bridge's)."""
        self._cache = cache
        self._portfolio = portfolio
        self._clock = clock
        self._currency = currency
        self._strategies = strategies
        self._first = next(iter(strategies.values()))
        self._instrument_ids = tuple(instrument_ids)
        self._books = books
        self._valuation = valuation
        self._halting = halting
        self._marks = marks
        # Open orders as the snapshot shows them, each with its pipe encoding. An order's
        # place is kept at its event; its view (None until then) is built when a snapshot
        # needs it, from the orders an event changed since the last one.
        self._open_views: dict[str, tuple[OrderView, msgspec.Raw] | None] = {}
        self._stale_views: dict[str, ClientOrderId] = {}

    # ------------------------------------------------------------ open orders

    def track(self, client_order_id: ClientOrderId) -> None:
        """An order event: the order keeps (or takes) its place among the open ones, or
        leaves it."""
        order = self._cache.order(client_order_id)
        key = client_order_id.value
        if order is not None and order.is_open:
            # In its place (a restore places them again in this order); the view is built
            # by the next snapshot: one for an order's several events, none on a step.
            self._open_views[key] = None
            self._stale_views[key] = client_order_id
        else:
            self._open_views.pop(key, None)
            self._stale_views.pop(key, None)

    def open_orders(self) -> list[tuple[OrderView, msgspec.Raw]]:
        """The kept views, rebuilt only when the cache holds orders no event showed
        (those already open when the bridge subscribed, e.g. reconciled ones)."""
        views = self._open_views
        # The cache's own index set: its size costs nothing (orders_open_count()
        # would build the list of orders).
        if len(views) != len(self._cache.client_order_ids_open()):
            built = (order_view(o) for o in self._cache.orders_open())
            self._open_views = views = {v.client_order_id: (v, encode_order(v)) for v in built}
            self._stale_views.clear()
        for key, client_order_id in self._stale_views.items():
            order = self._cache.order(client_order_id)
            if order is None:  # gone from the cache with no event: not shown
                views.pop(key, None)
            else:
                view = order_view(order)
                views[key] = (view, encode_order(view))
        self._stale_views.clear()
        return [kept for kept in views.values() if kept is not None]

    # ------------------------------------------------------------ the account

    def balance(self) -> Decimal:
        return self._valuation.balance()

    def unrealized(self) -> Decimal:
        """NautilusTrader's portfolio's own figure (its marks: quotes, trades, bars)."""
        total = Decimal(0)
        for instrument_id in self._instrument_ids:
            money = self._portfolio.unrealized_pnl(instrument_id)
            if money is not None:
                total += money.as_decimal()
        return total

    def strategy_marks(self, now_ns: int, update: bool) -> tuple[StrategyMark, ...]:
        """Each strategy's equity on its own capital against its own peak, for the
        classifier's breakers (``update``: the wall clock moves the marks; a replay's
        node moves them at every bar itself)."""
        if len(self._strategies) < 2:
            return ()  # one strategy: the account's breakers are its own
        worth = self._valuation.strategies(self._cache.positions_open())
        marks = []
        for sid, book in self._books.by_strategy.items():
            equity = worth[sid]
            if update:
                book.marks.update(equity, now_ns)
            peak = book.marks.peak if book.marks.peak is not None else equity
            marks.append(StrategyMark(sid, equity, peak, book.marks.day_start, book.capital))
        return tuple(marks)

    # ------------------------------------------------------------ snapshots

    def snapshot(self, trader_id: str, progress: Progress) -> Snapshot:
        orders = self.open_orders()
        whole = self._without_orders(trader_id, progress)
        return replace(whole, open_orders=tuple(v for v, _ in orders))

    def encoded(self, trader_id: str, progress: Progress) -> bytes:
        """The snapshot as ``protocol.wire`` bytes: the open orders' encodings are reused."""
        raws = [raw for _, raw in self.open_orders()]
        return encode_snapshot(self._without_orders(trader_id, progress), raws)

    def _without_orders(self, trader_id: str, progress: Progress) -> Snapshot:
        balance = self.balance()
        open_positions = self._cache.positions_open()
        positions = self._position_views(open_positions)
        unrealized = self.unrealized()
        halting, marks = self._halting, self._marks
        return Snapshot(
            taken_at_ns=self._clock.timestamp_ns(),
            trader_id=trader_id,
            trading_state=halting.state,
            currency=self._currency,
            balance=balance,
            equity=balance + unrealized,
            realized_pnl=self._books.realized(open_positions),
            unrealized_pnl=unrealized,
            replay_cursor=progress.cursor,
            positions=positions,
            orders_total=self._first.order_factory.get_client_order_id_count(),
            replay_total=progress.replay_total,
            halt_reason=halting.reason if halting.state is not TradingState.ACTIVE else "",
            equity_peak=marks.peak,
            day=marks.day,
            day_start_equity=marks.day_start,
            state_version=progress.state_version,
            last_data_ns=progress.last_data_ns,
            strategies=self._strategy_views(positions),
            funding=self._books.funding,
            fill_draws=progress.fill_draws,
            data_marks=progress.data_marks,
        )

    def _position_views(self, open_positions: list[Position]) -> tuple[PositionView, ...]:
        bases = self._books.position_realized_base
        return tuple(
            position_view(
                p,
                self._valuation.last_close(p.instrument_id),
                bases.get(p.id.value, Decimal(0)),
                self._price_precision(p.instrument_id),
            )
            for p in open_positions
        )

    def _price_precision(self, instrument_id: InstrumentId) -> int | None:
        instrument = self._cache.instrument(instrument_id)
        return None if instrument is None else int(instrument.price_precision)

    def _strategy_views(self, positions: tuple[PositionView, ...]) -> tuple[StrategyView, ...]:
        views = []
        books = self._books
        halted = self._halting.halted_strategies
        worth = self._valuation.strategies(self._cache.positions_open())
        for sid, strategy in self._strategies.items():
            book = books.by_strategy[sid]
            held = [p for p in positions if p.strategy_id == sid]
            reason = halted.get(sid)
            views.append(
                StrategyView(
                    strategy_id=sid,
                    orders_total=strategy.order_factory.get_client_order_id_count(),
                    fills=book.fills,
                    realized_pnl=books.strategy_realized(sid, held),
                    unrealized_pnl=sum((p.unrealized_pnl for p in held), Decimal(0)),
                    fees=book.fees,
                    trading_state=TradingState.ACTIVE if reason is None else TradingState.HALTED,
                    halt_reason=reason or "",
                    equity_peak=book.marks.peak,
                    funding=book.funding,
                    capital=book.capital,
                    equity=worth[sid],
                    day=book.marks.day,
                    day_start_equity=book.marks.day_start,
                )
            )
        return tuple(views)
