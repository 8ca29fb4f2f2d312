"""A session's trades and result set beside a backtest's, and the first place they part.

Nautilus-free: the session's side comes from the database, the backtest's from
``node.backtest`` in the same process, and the comparison is plain Decimal equality -
no tolerance, since a lockstep replay is meant to be the backtest, not near it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypedDict

from protocol import Outcome, Trade


@dataclass(frozen=True, slots=True)
class Divergence:
    """The first trade that differs: its index among the compared trades, and each
    side's trade there (None: that side has no more trades)."""

    index: int
    session: Trade | None
    backtest: Trade | None


@dataclass(frozen=True, slots=True)
class Parity:
    session: Outcome
    backtest: Outcome
    from_bar: int  # trades before this bar are not compared (retention swept them)
    divergence: Divergence | None
    # The same backtest with ideal fills (every touch filled, no slippage): what the
    # session's fill model costs against the optimistic result. None: the model is ideal.
    ideal: Outcome | None = None

    @property
    def equal(self) -> bool:
        s, b = self.session, self.backtest
        return (
            self.divergence is None
            and s.realized_pnl == b.realized_pnl
            and s.balance == b.balance
            and (self.from_bar > 0 or s.fees == b.fees)
        )


def compare(session: Outcome, backtest: Outcome, from_bar: int = 0) -> Parity:
    ours = [t for t in session.trades if t.bar >= from_bar]
    theirs = [t for t in backtest.trades if t.bar >= from_bar]
    divergence = None
    for index in range(max(len(ours), len(theirs))):
        a = ours[index] if index < len(ours) else None
        b = theirs[index] if index < len(theirs) else None
        if a != b:
            divergence = Divergence(index, a, b)
            break
    return Parity(session, backtest, from_bar, divergence)


class TradeJson(TypedDict):
    bar: int
    side: str
    quantity: str
    price: str
    commission: str


class SideJson(TypedDict):
    fills: int
    realized_pnl: str
    fees: str
    balance: str
    currency: str
    bars: int


class DivergenceJson(TypedDict):
    index: int
    session: TradeJson | None
    backtest: TradeJson | None


class ParityJson(TypedDict):
    trader_id: str
    equal: bool
    from_bar: int
    session: SideJson
    backtest: SideJson
    first_divergence: DivergenceJson | None
    ideal_fills: SideJson | None  # the backtest with ideal fills, beside the model's
    backtest_s: float
    halts: list[str]
    notes: list[str]


def _trade_json(trade: Trade | None) -> TradeJson | None:
    if trade is None:
        return None
    return TradeJson(
        bar=trade.bar,
        side=trade.side,
        quantity=str(trade.quantity),
        price=str(trade.price),
        commission=str(trade.commission),
    )


def _side_json(outcome: Outcome) -> SideJson:
    return SideJson(
        fills=len(outcome.trades),
        realized_pnl=str(outcome.realized_pnl),
        fees=str(outcome.fees),
        balance=str(outcome.balance),
        currency=outcome.currency,
        bars=outcome.bars,
    )


def as_json(
    parity: Parity, trader_id: str, halts: tuple[str, ...] = (), notes: tuple[str, ...] = ()
) -> ParityJson:
    """Money as exact decimal strings."""
    d = parity.divergence
    return ParityJson(
        trader_id=trader_id,
        equal=parity.equal,
        from_bar=parity.from_bar,
        session=_side_json(parity.session),
        backtest=_side_json(parity.backtest),
        first_divergence=None
        if d is None
        else DivergenceJson(
            index=d.index, session=_trade_json(d.session), backtest=_trade_json(d.backtest)
        ),
        ideal_fills=None if parity.ideal is None else _side_json(parity.ideal),
        backtest_s=round(parity.backtest.elapsed_s, 3),
        halts=list(halts),
        notes=list(notes),
    )


def _describe(trade: Trade | None) -> str:
    if trade is None:
        return "no more fills"
    return f"{trade.side} {trade.quantity} @ {trade.price} (bar {trade.bar})"


def _difference(a: Decimal, b: Decimal) -> str:
    return "0" if a == b else f"{a - b:+}"


def render(
    parity: Parity, trader_id: str, halts: tuple[str, ...] = (), notes: tuple[str, ...] = ()
) -> str:
    """The side-by-side table an operator reads."""
    s, b = parity.session, parity.backtest
    rows = [
        ("fills", str(len(s.trades)), str(len(b.trades)), f"{len(s.trades) - len(b.trades):+}"),
        (
            "realized PnL",
            str(s.realized_pnl),
            str(b.realized_pnl),
            _difference(s.realized_pnl, b.realized_pnl),
        ),
        ("fees", str(s.fees), str(b.fees), _difference(s.fees, b.fees)),
        (
            f"balance ({s.currency})",
            str(s.balance),
            str(b.balance),
            _difference(s.balance, b.balance),
        ),
    ]
    header = ("", "session", "backtest", "difference")
    widths = [max(len(r[i]) for r in [*rows, header]) for i in range(4)]

    def line(cells: tuple[str, str, str, str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [
        f"parity of {trader_id}: bars 0 to {s.bars} ({s.bars} bars) - "
        + ("EQUAL" if parity.equal else "DIFFERENT"),
        "",
        line(header),
        *(line(r) for r in rows),
        "",
    ]
    d = parity.divergence
    compared = len([t for t in s.trades if t.bar >= parity.from_bar])
    if d is None:
        out.append(f"every fill equal: {compared} fill(s), side, quantity, price, commission")
    else:
        out.append(f"first diverging fill: #{d.index + 1}")
        out.append(f"  session   {_describe(d.session)}")
        out.append(f"  backtest  {_describe(d.backtest)}")
    if parity.from_bar:
        out.append(f"fills compared from bar {parity.from_bar}")
    if parity.ideal is not None:
        i = parity.ideal
        out.append(
            f"the fill model's effect (against the backtest with every touch filled and no "
            f"slippage): {len(b.trades)} vs {len(i.trades)} fill(s), balance {b.balance} vs "
            f"{i.balance} ({_difference(b.balance, i.balance)})"
        )
    for reason in halts:
        out.append(f"halted during the session ({reason}): a backtest does not halt")
    out.extend(f"note: {note}" for note in notes)
    out.append(f"backtest run time {b.elapsed_s:.2f} s")
    return "\n".join(out)
