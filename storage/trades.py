"""Round trips: a session's stored fills and funding folded into the trades a trader
judges a strategy by.

A round trip is one strategy's position on one instrument from flat back to flat:
NautilusTrader's netting position cycle (a fill that turns the position over closes one
trip and opens the next, its quantity and commission split between them, as the
execution engine splits such a fill). Its PnL is what the balance gained by it: the
price difference over the closed quantity, less every commission, plus the funding paid
or received while it was open - funding is attributed in the order the events happened,
so no clock has to agree with another.

Fills are dated by their bar's market time when they carry it (a replay's series time:
a backtest of the same bars dates them the same), else by the venue's event time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_EVEN, Decimal

from storage.session import Ledger

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Fill:
    strategy_id: str
    instrument_id: str
    side: str  # BUY | SELL
    quantity: Decimal
    price: Decimal
    commission: Decimal
    at_ns: int
    bar: int | None = None

    @property
    def signed(self) -> Decimal:
        return self.quantity if self.side == "BUY" else -self.quantity


@dataclass(frozen=True, slots=True)
class FundingPayment:
    strategy_id: str
    instrument_id: str
    amount: Decimal  # what the balance moved: < 0 paid
    at_ns: int
    bar: int | None = None


@dataclass(frozen=True, slots=True)
class RoundTrip:
    strategy_id: str
    instrument_id: str
    direction: str  # LONG | SHORT
    quantity: Decimal  # the largest size held
    entry_price: Decimal  # average entry of the position (as NautilusTrader's avg_px_open)
    exit_price: Decimal  # average of the quantity closed
    opened_ns: int
    closed_ns: int
    gross_pnl: Decimal  # price difference x quantity closed
    fees: Decimal  # commissions of its fills (> 0: paid)
    funding: Decimal  # < 0: paid
    fills: int

    @property
    def pnl(self) -> Decimal:
        """What the balance gained by the trip."""
        return self.gross_pnl - self.fees + self.funding

    @property
    def duration_s(self) -> float:
        return (self.closed_ns - self.opened_ns) / 1e9


@dataclass(frozen=True, slots=True)
class BalanceStep:
    """A change of the balance: a fill's realized PnL less its commission, or funding."""

    at_ns: int
    delta: Decimal
    strategy_id: str = ""


@dataclass
class _Open:
    """A position being built: its signed size, average entry and what it has cost."""

    strategy_id: str
    instrument_id: str
    opened_ns: int
    size: Decimal = ZERO
    entry: Decimal = ZERO  # average entry of the size held (NautilusTrader's avg_px_open)
    closed_qty: Decimal = ZERO
    exit_value: Decimal = ZERO
    peak: Decimal = ZERO
    gross: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    fills: int = 0
    direction: str = field(default="LONG")


@dataclass(frozen=True, slots=True)
class TradeBook:
    """The session's trades: closed round trips, the positions still open (as trips
    closed at their last fill, not counted in the statistics), and the balance steps."""

    closed: tuple[RoundTrip, ...]
    still_open: tuple[RoundTrip, ...]
    steps: tuple[BalanceStep, ...]
    unattributed_funding: Decimal  # paid while its strategy held no position (venue reports)


def fills_and_funding(ledger: Ledger) -> list[Fill | FundingPayment]:
    """The ledger's rows (``storage.session`` walk) as typed records, in order."""
    out: list[Fill | FundingPayment] = []
    last_ns = 0
    for kind, p in ledger:
        if kind == "fill":
            market = int(str(p.get("market_ns") or 0))
            at = market or int(str(p["ts_event"]))
            out.append(
                Fill(
                    strategy_id=str(p.get("strategy_id") or ""),
                    instrument_id=str(p["instrument_id"]),
                    side=str(p["side"]),
                    quantity=Decimal(str(p["quantity"])),
                    price=Decimal(str(p["price"])),
                    commission=Decimal(str(p["commission"])),
                    at_ns=at,
                    bar=None if p.get("bar") is None else int(str(p["bar"])),
                )
            )
        else:
            at = int(str(p.get("settled_at_ns") or 0)) or last_ns
            out.append(
                FundingPayment(
                    strategy_id=str(p["strategy_id"]),
                    instrument_id=str(p["instrument_id"]),
                    amount=Decimal(str(p["amount"])),
                    at_ns=at,
                    bar=None if p.get("bar") is None else int(str(p["bar"])),
                )
            )
        last_ns = max(last_ns, at)
    # A payment before any dated event (a venue report at start): the next event's time.
    later = next((r.at_ns for r in out if r.at_ns), 0)
    return [replace(r, at_ns=later) if r.at_ns == 0 else r for r in out]


def _split(commission: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """The share of a commission for ``part`` of a fill, at the commission's precision."""
    exponent = commission.as_tuple().exponent
    places = min(exponent if isinstance(exponent, int) else 0, -8)
    return (commission * part / whole).quantize(Decimal(1).scaleb(places), ROUND_HALF_EVEN)


def round_trips(records: Iterable[Fill | FundingPayment]) -> TradeBook:
    """Fold fills and funding, in the order they happened, into round trips."""
    books: dict[tuple[str, str], _Open] = {}
    closed: list[RoundTrip] = []
    steps: list[BalanceStep] = []
    unattributed = ZERO
    for record in records:
        key = (record.strategy_id, record.instrument_id)
        if isinstance(record, FundingPayment):
            steps.append(BalanceStep(record.at_ns, record.amount, record.strategy_id))
            book = books.get(key)
            if book is None:
                unattributed += record.amount
            else:
                book.funding += record.amount
            continue
        remaining, commission = record.quantity, record.commission
        realized = ZERO
        while remaining > 0:
            book = books.get(key)
            if book is None:
                book = books[key] = _Open(
                    record.strategy_id,
                    record.instrument_id,
                    record.at_ns,
                    direction="LONG" if record.side == "BUY" else "SHORT",
                )
            sign = Decimal(1) if record.side == "BUY" else Decimal(-1)
            if book.size == 0 or (book.size > 0) == (sign > 0):  # opens or adds
                held = abs(book.size)
                book.entry = (book.entry * held + record.price * remaining) / (held + remaining)
                book.size += sign * remaining
                book.peak = max(book.peak, abs(book.size))
                book.fees += commission
                book.fills += 1
                break
            closing = min(remaining, abs(book.size))
            share = commission if closing == remaining else _split(commission, closing, remaining)
            gross = (record.price - book.entry) * closing * (1 if book.size > 0 else -1)
            book.gross += gross
            realized += gross
            book.fees += share
            book.fills += 1
            book.closed_qty += closing
            book.exit_value += record.price * closing
            book.size += sign * closing
            remaining -= closing
            commission -= share
            if book.size == 0:
                closed.append(_trip(book, record.at_ns))
                del books[key]
        steps.append(BalanceStep(record.at_ns, realized - record.commission, record.strategy_id))
    last = max((s.at_ns for s in steps), default=0)
    still_open = tuple(_trip(b, last) for b in books.values())
    return TradeBook(tuple(closed), still_open, tuple(steps), unattributed)


def _trip(book: _Open, closed_ns: int) -> RoundTrip:
    return RoundTrip(
        strategy_id=book.strategy_id,
        instrument_id=book.instrument_id,
        direction=book.direction,
        quantity=book.peak,
        entry_price=book.entry,
        exit_price=book.exit_value / book.closed_qty if book.closed_qty else ZERO,
        opened_ns=book.opened_ns,
        closed_ns=closed_ns,
        gross_pnl=book.gross,
        fees=book.fees,
        funding=book.funding,
        fills=book.fills,
    )
