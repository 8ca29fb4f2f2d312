"""A session's paper results beside the backtest metrics its strategy was registered with.

The promotion record holds what a research pipeline measured in its backtest; a session
launched from the entry paper-trades the same strategy. Here each registered metric is
set beside the session's own figure where the session's record can tell it: its fills
(the backtest counts round trips), its return and its largest drawdown from its
checkpoints' equity, the time its checkpoints span. Ratios a session cannot honestly
measure from checkpoints taken at irregular wall-clock moments (Sharpe, Sortino, the
overfitting statistics) keep the backtest's figure with the paper side empty, rather than
a number that looks comparable and is not. The session's realized PnL and fees, which a
registry entry does not hold, close the table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from protocol import BacktestMetrics
from sessions.launcher import SessionView
from storage import EquityPoint

NONE = "-"
# What the session counts for a metric, where it differs from what the name says.
PAPER_NOTES = {
    "max_drawdown_pct": "paper: the largest fall from its peak over the checkpoints' equity",
    "total_return_pct": "paper: equity at its last checkpoint against its first",
    "trade_count": "paper: fills",
    "period": "paper: its first to its last checkpoint",
}


@dataclass(frozen=True, slots=True)
class MetricRow:
    """One line of the comparison: the metric's declared name, both figures as text
    (the backtest's exactly as registered; ``-`` where a side has none) and what they
    count."""

    metric: str
    backtest: str
    paper: str
    note: str


@dataclass(frozen=True, slots=True)
class PaperResults:
    """What a session's record tells of its trading; None where it cannot tell yet."""

    fills: int
    currency: str | None
    realized_pnl: Decimal | None
    fees: Decimal | None
    total_return_pct: Decimal | None
    max_drawdown_pct: Decimal | None
    first_checkpoint_at: str | None
    last_checkpoint_at: str | None


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def paper_results(view: SessionView, curve: Sequence[EquityPoint]) -> PaperResults:
    """The session's figures from its view (the latest checkpoint, the fill total) and
    its equity curve (every kept checkpoint, oldest first)."""
    strategies = view["strategies"]
    fees = sum((Decimal(s["fees"]) for s in strategies), Decimal(0)) if strategies else None
    total_return = drawdown = None
    if curve:
        first, last = curve[0]["equity"], curve[-1]["equity"]
        if first > 0:
            total_return = (last - first) / first * 100
        drawdown = -min(p["drawdown_pct"] for p in curve)
    return PaperResults(
        fills=view["fills"],
        currency=view["currency"],
        realized_pnl=_decimal(view["realized_pnl"]),
        fees=fees,
        total_return_pct=total_return,
        max_drawdown_pct=drawdown,
        first_checkpoint_at=curve[0]["at"] if curve else None,
        last_checkpoint_at=curve[-1]["at"] if curve else None,
    )


def _text(value: object) -> str:
    return NONE if value is None else str(value)


def _pct(value: Decimal | None) -> str:
    return NONE if value is None else f"{value:.2f}"


def _paper(name: str, paper: PaperResults) -> str:
    match name:
        case "trade_count":
            return str(paper.fills)
        case "total_return_pct":
            return _pct(paper.total_return_pct)
        case "max_drawdown_pct":
            return _pct(paper.max_drawdown_pct)
        case "period" if paper.first_checkpoint_at is not None:
            return f"{paper.first_checkpoint_at} → {paper.last_checkpoint_at}"
        case _:
            return NONE


def compare(metrics: BacktestMetrics, paper: PaperResults) -> list[MetricRow]:
    """Every declared metric that either side has, in the declaration's order, then the
    session's realized PnL and fees."""
    rows: list[MetricRow] = []
    for name, field in BacktestMetrics.model_fields.items():
        backtest, ours = _text(getattr(metrics, name)), _paper(name, paper)
        if backtest == NONE and ours == NONE:
            continue
        note = "; ".join(n for n in (field.description, PAPER_NOTES.get(name)) if n)
        rows.append(MetricRow(name, backtest, ours, note))
    currency = f" ({paper.currency})" if paper.currency else ""
    rows.append(MetricRow(f"realized_pnl{currency}", NONE, _text(paper.realized_pnl), "after fees"))
    rows.append(MetricRow(f"fees{currency}", NONE, _text(paper.fees), "commissions paid"))
    return rows
