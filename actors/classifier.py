"""ClassifierActor: decides what every error means, fatal patterns first.

The decision is a pure function (``classify``) so it can be tested exhaustively;
the actor applies it: fatal -> halt the node and a critical alert; unknown -> a
warning alert and a count; transient -> a count (the owner retries).
"""

from __future__ import annotations

import logging
import re
from collections import Counter

from actors.base import ChildContext, SupervisedActor
from actors.messages import (
    Alert,
    Decision,
    DecisionKind,
    ErrorRaised,
    Halt,
    OrderRejected,
    Severity,
)

log = logging.getLogger(__name__)

ROLE = "classifier"

FATAL_CODES: dict[int, str] = {
    -2014: "API key format invalid",
    -2015: "invalid API key, IP or permissions",
    -1022: "invalid signature",
    -1021: "timestamp outside recvWindow",
    -2019: "insufficient margin",
    -2018: "insufficient balance",
}
TRANSIENT_CODES: dict[int, str] = {
    -1000: "unknown venue error",
    -1001: "venue disconnected",
    -1003: "rate limit",
    -1007: "venue timeout",
    -1008: "venue overloaded",
    429: "HTTP 429 too many requests",
    418: "HTTP 418 IP banned for rate limit",
    502: "HTTP 502 bad gateway",
    503: "HTTP 503 unavailable",
    504: "HTTP 504 gateway timeout",
}
FATAL_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("authentication", r"authenticat|unauthori[sz]ed|api[- _]?key|signature|permission denied"),
        ("margin", r"insufficient (margin|balance|funds)"),
        ("storage full", r"database or disk is full|no space left|disk full"),
        ("storage read-only", r"readonly database|read-only file system"),
        ("storage corrupt", r"file is not a database|malformed"),
        ("storage i/o", r"disk i/o error"),
        ("clock", r"recvwindow|timestamp for this request"),
    )
)
FATAL_TYPES = frozenset({"PermissionError", "AuthenticationError", "SchemaError"})
TRANSIENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("timeout", r"timed? ?out|timeout"),
        ("connection", r"connection|disconnect|reset by peer|broken pipe|unreachable"),
        ("rate limit", r"rate limit|too many requests"),
        ("unavailable", r"temporar|unavailable|try again"),
        ("storage busy", r"database is locked|database is busy"),
    )
)
TRANSIENT_TYPES = frozenset(
    {"TimeoutError", "ConnectionError", "ConnectionResetError", "ConnectionRefusedError"}
)


def classify(error: ErrorRaised) -> Decision:
    """Fatal is checked first and wins whenever both a fatal and a transient rule match."""
    if error.code is not None and error.code in FATAL_CODES:
        return Decision(DecisionKind.FATAL, f"code {error.code}: {FATAL_CODES[error.code]}", error)
    if error.error_type in FATAL_TYPES:
        return Decision(DecisionKind.FATAL, f"{error.error_type}", error)
    for name, pattern in FATAL_PATTERNS:
        if pattern.search(error.message):
            return Decision(DecisionKind.FATAL, name, error)
    if error.code is not None and error.code in TRANSIENT_CODES:
        return Decision(
            DecisionKind.TRANSIENT, f"code {error.code}: {TRANSIENT_CODES[error.code]}", error
        )
    if error.error_type in TRANSIENT_TYPES:
        return Decision(DecisionKind.TRANSIENT, error.error_type, error)
    for name, pattern in TRANSIENT_PATTERNS:
        if pattern.search(error.message):
            return Decision(DecisionKind.TRANSIENT, name, error)
    return Decision(DecisionKind.UNKNOWN, "no rule matched", error)


class ClassifierActor(SupervisedActor):
    def __init__(self, ctx: ChildContext) -> None:
        super().__init__(ctx)
        self.counts: Counter[DecisionKind] = Counter()
        self.rejects = 0

    def receive(self, message: object) -> object:
        match message:
            case ErrorRaised():
                decision = classify(message)
                self.counts[decision.kind] += 1
                self._act(decision)
                return decision
            case OrderRejected():
                self.rejects += 1
                return None
            case _:
                return super().receive(message)

    def _act(self, decision: Decision) -> None:
        error = decision.error
        summary = f"{error.source}: {error.error_type}: {error.message}"
        match decision.kind:
            case DecisionKind.FATAL:
                log.critical("fatal error (%s) - halting: %s", decision.reason, summary)
                self.peers.tell("node", Halt(reason=f"fatal: {decision.reason}", source=ROLE))
                self.peers.tell(
                    "alerter",
                    Alert(
                        Severity.CRITICAL,
                        f"Fatal error: {decision.reason}",
                        f"{summary}. Trading halted; open orders cancelled.",
                        key=f"fatal:{error.source}:{decision.reason}",
                    ),
                )
            case DecisionKind.UNKNOWN:
                log.error("unclassified error: %s", summary)
                self.peers.tell(
                    "alerter",
                    Alert(
                        Severity.WARNING,
                        "Unclassified error",
                        f"{summary}. Trading continues; seen {self.counts[decision.kind]} time(s).",
                        key=f"unknown:{error.source}:{error.error_type}",
                    ),
                )
            case DecisionKind.TRANSIENT:
                log.warning("transient error (%s): %s", decision.reason, summary)
