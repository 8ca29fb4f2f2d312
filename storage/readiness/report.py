"""The readiness report of a session: every strategy's verdict, as text and as JSON.

The same text is the CLI's (``paper-node report readiness``), Telegram's ``/readiness``
reply and the alert sent when a verdict changes; the JSON (documented field by field in
docs/readiness.md) is what the dashboard draws its cone from.

Which backtest a strategy is judged against: the registry entry named on the command
line (``--strategy NAME``), else the entry the dashboard launched the session from. The
entry applies to the session's strategies of its class (``strategy_path``'s class name
is the strategy id's prefix, NautilusTrader's ``Class-TAG``), or to the one strategy a
session runs.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

from protocol import ReadinessSettings, RegisteredStrategy
from storage.errors import StorageError
from storage.readiness.evidence import PaperEvidence, SessionEvidence, read_evidence
from storage.readiness.market import MarketParity
from storage.readiness.verdict import StrategyReadiness, judge
from storage.status import open_readonly

type SlippageOf = Callable[[PaperEvidence], Sequence[float] | None]


@dataclass(frozen=True, slots=True)
class SessionReadiness:
    trader_id: str
    mode: str
    strategies: tuple[StrategyReadiness, ...]


def entry_applies(entry: RegisteredStrategy, strategy_id: str, alone: bool) -> bool:
    """Whether ``entry`` is the backtest of ``strategy_id`` (``alone``: the session runs
    only that strategy)."""
    cls = entry.entry.strategy_path.rsplit(":", 1)[-1]
    return alone or strategy_id.startswith(f"{cls}-")


def judge_session(
    evidence: SessionEvidence,
    settings: ReadinessSettings,
    entry: RegisteredStrategy | None = None,
    slippage_of: SlippageOf | None = None,
    market: MarketParity | str | None = None,
) -> SessionReadiness:
    """``market``: the session beside the backtest of its recording (or why not run)."""
    chosen = entry or evidence.registered
    alone = len(evidence.strategies) == 1
    judged: list[StrategyReadiness] = []
    for paper in evidence.strategies:
        mine = (
            chosen
            if chosen is not None and entry_applies(chosen, paper.strategy_id, alone)
            else None
        )
        judged.append(
            judge(
                paper,
                evidence.ops,
                None if mine is None else mine.evidence,
                None if mine is None else mine.name,
                settings,
                None if slippage_of is None else slippage_of(paper),
                market,
            )
        )
    return SessionReadiness(evidence.ops.trader_id, evidence.ops.mode, tuple(judged))


def readiness_of(
    conn: sqlite3.Connection,
    trader_id: str | None,
    settings: ReadinessSettings,
    entry: RegisteredStrategy | None = None,
    slippage_of: SlippageOf | None = None,
    market: MarketParity | str | None = None,
) -> SessionReadiness:
    """The report on a connection the caller holds (the dashboard's)."""
    return judge_session(read_evidence(conn, trader_id), settings, entry, slippage_of, market)


def read_readiness(
    path: Path,
    trader_id: str | None,
    settings: ReadinessSettings,
    entry: RegisteredStrategy | None = None,
    slippage_of: SlippageOf | None = None,
    market: MarketParity | str | None = None,
) -> SessionReadiness:
    """The report of ``trader_id``'s session (the latest run's when None). Raises
    ``NoRun`` without a run, ``StorageError`` when the database cannot be read."""
    conn = open_readonly(path)
    try:
        return readiness_of(conn, trader_id, settings, entry, slippage_of, market)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the readiness evidence from {path}: {exc}") from exc
    finally:
        conn.close()


# ---------------------------------------------------------------- text


def _figure(value: float | None) -> str:
    if value is None:
        return "-"
    if value == int(value) and abs(value) < 1e9:
        return str(int(value))
    return f"{value:.4g}"


def readiness_text(report: SessionReadiness) -> str:
    """Each strategy's verdict, its reasons, and every criterion on one line."""
    lines = [f"readiness of {report.trader_id} ({report.mode})"]
    if not report.strategies:
        lines.append("no strategy has traded yet: NOT YET")
    for s in report.strategies:
        against = f"registry entry {s.registered}" if s.registered else "no registry entry"
        lines.append("")
        lines.append(f"{s.strategy_id}: {s.verdict.value}  (against {against})")
        lines.extend(f"  - {reason}" for reason in s.reasons)
        for c in s.criteria:
            lines.append(
                f"  [{c.status.value:>4}] {c.group:<11} {c.title}: {_figure(c.figure)} "
                f"(threshold {c.threshold}; {c.detail}; source: {c.source})"
            )
    return "\n".join(lines)


def verdict_line(s: StrategyReadiness) -> str:
    """One line a verdict change alert names."""
    reasons = f": {'; '.join(s.reasons)}" if s.reasons else ""
    return f"{s.strategy_id}: {s.verdict.value}{reasons}"


# ---------------------------------------------------------------- JSON


class CriterionJson(TypedDict):
    key: str
    group: str
    title: str
    figure: float | None
    threshold: str
    source: str
    status: str
    detail: str


class ConeJson(TypedDict):
    days: list[str]
    mean: list[float]
    lower: list[float]
    upper: list[float]
    paper: list[float]


class StrategyJson(TypedDict):
    strategy_id: str
    registered: str | None
    verdict: str
    reasons: list[str]
    criteria: list[CriterionJson]
    cone: ConeJson | None


class ReadinessJson(TypedDict):
    trader_id: str
    mode: str
    strategies: list[StrategyJson]


def readiness_json(report: SessionReadiness) -> ReadinessJson:
    out: list[StrategyJson] = []
    for s in report.strategies:
        cone = s.cone
        out.append(
            StrategyJson(
                strategy_id=s.strategy_id,
                registered=s.registered,
                verdict=s.verdict.value,
                reasons=list(s.reasons),
                criteria=[
                    CriterionJson(
                        key=c.key,
                        group=c.group,
                        title=c.title,
                        figure=c.figure,
                        threshold=c.threshold,
                        source=c.source,
                        status=c.status.value,
                        detail=c.detail,
                    )
                    for c in s.criteria
                ],
                cone=None
                if cone is None
                else ConeJson(
                    days=list(cone.days),
                    mean=list(cone.mean),
                    lower=list(cone.lower),
                    upper=list(cone.upper),
                    paper=list(cone.paper),
                ),
            )
        )
    return ReadinessJson(trader_id=report.trader_id, mode=report.mode, strategies=out)
