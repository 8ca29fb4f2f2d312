"""The account's and each strategy's books: what they realized, paid and are worth.

NautilusTrader's cache forgets closed positions (the node purges them to bound its
memory) and knows nothing of a checkpoint's history, so the totals a snapshot, a report
and the breakers need are kept here, from the node's own events: each position's
realized PnL as it closes, every fill's commission, every funding payment - on top of
what a restored checkpoint had before this node's life.

A strategy's equity is its own: its capital (``[[strategies]] capital``, by default an
even share of the account's starting balance) plus its realized and unrealized PnL and
its funding; its drawdown and its daily loss are of that, so one of five strategies
does not have to lose a fifth of the whole account before its own 20 % breaker trips.

Runs on the node's loop (the bridge feeds it) and in the parity backtest (the breakers'
valuation), never across a thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from nautilus_trader.accounting.accounts.base import Account
from nautilus_trader.cache.cache import Cache
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.events import OrderFilled, PositionClosed
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.objects import FIXED_PRECISION, Currency, Money, Price
from nautilus_trader.model.position import Position
from nautilus_trader.portfolio.base import PortfolioFacade

from node.marks import EquityMarks
from protocol import FundingPaid, PositionView, Snapshot


@dataclass(slots=True)
class Book:
    """One strategy's running totals: before this node's life (``realized_base``, from
    the checkpoint) and in it."""

    capital: Decimal = Decimal(0)
    realized_base: Decimal = Decimal(0)
    closed_realized: Decimal = Decimal(0)
    fills: int = 0
    fees: Decimal = Decimal(0)
    marks: EquityMarks = field(default_factory=EquityMarks)
    funding: Decimal = Decimal(0)


class Books:
    """The account's totals and a ``Book`` for each strategy of the node."""

    def __init__(self, capitals: Mapping[str, Decimal]) -> None:
        """``capitals``: each strategy's capital, by id, in the node's order (the first
        is the one a single-strategy checkpoint belongs to)."""
        self.by_strategy = {sid: Book(capital=c) for sid, c in capitals.items()}
        self._first = next(iter(capitals))
        self.realized_base = Decimal(0)  # realized before this node's life (restored)
        # Realized by positions closed in this node's life, summed from their events:
        # the cache forgets closed positions (purged to bound memory), the sum stays.
        self.closed_realized = Decimal(0)
        self.position_realized_base: dict[str, Decimal] = {}  # restored positions' own
        self.funding = Decimal(0)  # the account's funding (in the balance already)

    def on_fill(self, event: OrderFilled) -> None:
        book = self.by_strategy.get(event.strategy_id.value)
        if book is not None:
            book.fills += 1
            book.fees += event.commission.as_decimal()

    def on_closed(self, event: PositionClosed) -> None:
        """Its realized PnL joins the total; a later position under the same id
        (netting) starts from zero."""
        if event.realized_pnl is not None:
            realized = event.realized_pnl.as_decimal()
            self.closed_realized += realized
            book = self.by_strategy.get(event.strategy_id.value)
            if book is not None:
                book.closed_realized += realized
        self.position_realized_base.pop(event.position_id.value, None)

    def on_funding(self, payment: FundingPaid) -> None:
        self.funding += payment.amount
        book = self.by_strategy.get(payment.strategy_id)
        if book is not None:
            book.funding += payment.amount

    def realized(self, open_positions: Iterable[Position]) -> Decimal:
        """The account's realized PnL: before this node, closed in it, and what the open
        positions realized (the portfolio keeps closed and flipped positions' too)."""
        return (
            self.realized_base
            + self.closed_realized
            + sum(
                (p.realized_pnl.as_decimal() for p in open_positions if p.realized_pnl), Decimal(0)
            )
        )

    def strategy_realized(self, strategy_id: str, held: Iterable[PositionView]) -> Decimal:
        """As the account's total: Nautilus's own figure for the open positions (a view's
        also carries its restored base, which the book's base holds already)."""
        book = self.by_strategy[strategy_id]
        return (
            book.realized_base
            + book.closed_realized
            + sum(
                (
                    p.realized_pnl - self.position_realized_base.get(p.position_id, Decimal(0))
                    for p in held
                ),
                Decimal(0),
            )
        )

    # ------------------------------------------------------------ restore

    def restore(self, snap: Snapshot) -> None:
        """The totals carry on from the checkpoint, the account's and each strategy's
        (also on a venue, where positions and orders come from the venue itself)."""
        self.realized_base = snap.realized_pnl
        self.funding = snap.funding
        if not snap.strategies:  # a single-strategy service's row: all of it was one's
            first = self.by_strategy[self._first]
            self.by_strategy[self._first] = Book(
                capital=first.capital, realized_base=snap.realized_pnl
            )
        for view in snap.strategies:
            book = self.by_strategy.get(view.strategy_id)
            if book is not None:
                self.by_strategy[view.strategy_id] = Book(
                    capital=book.capital,
                    realized_base=view.realized_pnl,
                    fills=view.fills,
                    fees=view.fees,
                    marks=EquityMarks(view.equity_peak, view.day, view.day_start_equity),
                    funding=view.funding,
                )

    def replayed(self, snap: Snapshot, open_positions: Iterable[Position]) -> None:
        """A restore replayed the positions' fills, realizing again what the checkpoint's
        totals hold already: taken back out of the bases, so no PnL counts twice."""
        again: dict[str, Decimal] = {}
        for position in open_positions:
            if position.realized_pnl is not None:
                realized = position.realized_pnl.as_decimal()
                again[position.id.value] = realized
                book = self.by_strategy.get(position.strategy_id.value)
                if book is not None:
                    book.realized_base -= realized
        for view in snap.positions:
            self.position_realized_base[view.position_id] = view.realized_pnl - again.get(
                view.position_id, Decimal(0)
            )
        self.realized_base = snap.realized_pnl - sum(again.values(), Decimal(0))


class Valuation:
    """Equity as the breakers judge it: the balance plus every open position marked at
    its instrument's last bar close - the account's, and each strategy's on its capital.
    The same reading in the node and in the parity backtest."""

    def __init__(
        self,
        cache: Cache,
        portfolio: PortfolioFacade,
        venue: Venue,
        currency: str,
        bar_types: Mapping[InstrumentId, BarType],
        books: Books,
    ) -> None:
        self._cache = cache
        self._portfolio = portfolio
        self._venue = venue
        self._currency = Currency.from_str(currency)
        self._quantum = Decimal(1).scaleb(-self._currency.precision)
        self._account: Account | None = None
        self._closes: dict[InstrumentId, Price] = {}
        self._bar_types = dict(bar_types)
        self._books = books

    def account_raw(self, open_positions: Sequence[Position]) -> int:
        """``account``'s reading in NautilusTrader's raw fixed-point integers: what the
        market-time breakers judge at every bar without a Decimal (``to_decimal`` makes
        one, exactly, when a mark moves)."""
        money = self._balance_money()
        raw: int = money.raw if money is not None else 0
        for position in open_positions:
            last = self.last_close(position.instrument_id)
            if last is not None:
                raw += position.unrealized_pnl(last).raw
        return raw

    def to_decimal(self, raw: int) -> Decimal:
        """A raw amount of the account's currency as the Decimal ``Money.as_decimal``
        gives (its precision's places)."""
        return Decimal(raw).scaleb(-FIXED_PRECISION).quantize(self._quantum)

    def to_raw(self, amount: Decimal) -> int:
        return int(amount.scaleb(FIXED_PRECISION))

    def _balance_money(self) -> Money | None:
        account = self._account
        if account is None:  # the venue's account, once it exists: the same object after
            account = self._account = self._portfolio.account(self._venue)
        return account.balance_total(self._currency) if account is not None else None

    def balance(self) -> Decimal:
        money = self._balance_money()
        return money.as_decimal() if money is not None else Decimal(0)

    def mark(self, bar: Bar) -> None:
        """Its instrument's last close, as the guard sees each bar (the cache's lookup by
        bar type took a microsecond a bar)."""
        self._closes[bar.bar_type.instrument_id] = bar.close

    def last_close(self, instrument_id: InstrumentId) -> Price | None:
        close = self._closes.get(instrument_id)
        if close is not None:
            return close
        bar_type = self._bar_types.get(instrument_id)
        bar = self._cache.bar(bar_type) if bar_type is not None else None
        return bar.close if bar is not None else None

    def unrealized(self, position: Position) -> Decimal:
        last = self.last_close(position.instrument_id)
        return position.unrealized_pnl(last).as_decimal() if last is not None else Decimal(0)

    def account(self, open_positions: Sequence[Position]) -> Decimal:
        return self.to_decimal(self.account_raw(open_positions))

    def strategies(self, open_positions: Sequence[Position]) -> dict[str, Decimal]:
        """Each strategy's equity on its own capital."""
        books = self._books
        worth = {
            sid: book.capital + book.realized_base + book.closed_realized + book.funding
            for sid, book in books.by_strategy.items()
        }
        for position in open_positions:
            sid = position.strategy_id.value
            if sid not in worth:
                continue
            realized = position.realized_pnl.as_decimal() if position.realized_pnl else Decimal(0)
            worth[sid] += realized + self.unrealized(position)
        return worth
