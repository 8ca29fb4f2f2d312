"""The go-live readiness report: statistics (``stats``), a session's evidence
(``evidence``), the criteria and verdict (``verdict``), its text and JSON (``report``)."""

from storage.readiness.evidence import PaperEvidence, SessionEvidence, SessionOps, read_evidence
from storage.readiness.market import MarketParity, market_parity
from storage.readiness.report import (
    ReadinessJson,
    SessionReadiness,
    judge_session,
    read_readiness,
    readiness_json,
    readiness_of,
    readiness_text,
    verdict_line,
)
from storage.readiness.stops import StopCoverage
from storage.readiness.verdict import (
    STATUS_VALUE,
    VERDICT_VALUE,
    ConeView,
    Criterion,
    Status,
    StrategyReadiness,
    Verdict,
    judge,
)

__all__ = [
    "STATUS_VALUE",
    "VERDICT_VALUE",
    "ConeView",
    "Criterion",
    "MarketParity",
    "PaperEvidence",
    "ReadinessJson",
    "SessionEvidence",
    "SessionOps",
    "SessionReadiness",
    "Status",
    "StopCoverage",
    "StrategyReadiness",
    "Verdict",
    "judge",
    "judge_session",
    "market_parity",
    "read_evidence",
    "read_readiness",
    "readiness_json",
    "readiness_of",
    "readiness_text",
    "verdict_line",
]
