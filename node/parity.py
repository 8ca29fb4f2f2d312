"""A session's trades and result set beside a backtest's, and the first place they part.

Nautilus-free: the session's side comes from the database, the backtest's from
``node.backtest`` in the same process, and the comparison is plain Decimal equality -
no tolerance, since a lockstep replay is meant to be the backtest, not near it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import TypedDict

from protocol import HaltAt, Outcome, Trade


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
            and self.halts_equal
        )

    def breaker_halts(self, outcome: Outcome) -> list[tuple[int | None, str | None, str]]:
        """The halts of the market-time breakers (a backtest's are all of its halts),
        from ``from_bar`` on: step, whose, why."""
        return [
            (h.bar, h.strategy_id, h.reason)
            for h in outcome.halts
            if (h.reproducible or outcome is self.backtest)
            and (h.bar is None or h.bar >= self.from_bar)
        ]

    @property
    def halts_equal(self) -> bool:
        """The breakers halted on the same bars, for the same reasons, on both sides."""
        return self.breaker_halts(self.session) == self.breaker_halts(self.backtest)


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


class HaltJson(TypedDict):
    bar: int | None
    strategy_id: str | None
    reason: str
    source: str


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
    halts: list[HaltJson]  # the session's
    backtest_halts: list[HaltJson]
    halts_equal: bool
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


def _halt_json(halt: HaltAt) -> HaltJson:
    return HaltJson(
        bar=halt.bar, strategy_id=halt.strategy_id, reason=halt.reason, source=halt.source
    )


def as_json(parity: Parity, trader_id: str, notes: tuple[str, ...] = ()) -> ParityJson:
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
        halts=[_halt_json(h) for h in parity.session.halts],
        backtest_halts=[_halt_json(h) for h in parity.backtest.halts],
        halts_equal=parity.halts_equal,
        notes=list(notes),
    )


def _describe(trade: Trade | None) -> str:
    if trade is None:
        return "no more fills"
    return f"{trade.side} {trade.quantity} @ {trade.price} (bar {trade.bar})"


def _difference(a: Decimal, b: Decimal) -> str:
    return "0" if a == b else f"{a - b:+}"


def _whose(halt: HaltAt) -> str:
    return "the account" if halt.strategy_id is None else halt.strategy_id


def _halt_lines(parity: Parity) -> list[str]:
    """The breakers' halts side by side; the session's other halts (an operator's, an
    error's) said as what a backtest cannot do."""
    out: list[str] = []
    ours, theirs = parity.breaker_halts(parity.session), parity.breaker_halts(parity.backtest)
    if ours == theirs:
        out.extend(
            f"halted at bar {bar} ({'the account' if sid is None else sid}), session and "
            f"backtest alike: {reason}"
            for bar, sid, reason in ours
        )
    else:
        out.append("the breakers halted differently:")
        out.extend(f"  session   bar {bar} ({sid or 'the account'}): {r}" for bar, sid, r in ours)
        out.extend(f"  backtest  bar {bar} ({sid or 'the account'}): {r}" for bar, sid, r in theirs)
        if not ours:
            out.append("  session   no breaker halt")
        if not theirs:
            out.append("  backtest  no breaker halt")
    for halt in parity.session.halts:
        if not halt.reproducible:
            where = "" if halt.bar is None else f" at bar {halt.bar}"
            by = f" by {halt.source}" if halt.source else ""
            out.append(
                f"{_whose(halt)} halted{where}{by} during the session ({halt.reason}): a "
                "backtest does not halt for that"
            )
    return out


def render(parity: Parity, trader_id: str, notes: tuple[str, ...] = ()) -> str:
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
    out.extend(_halt_lines(parity))
    out.extend(f"note: {note}" for note in notes)
    out.append(f"backtest run time {b.elapsed_s:.2f} s")
    return "\n".join(out)
