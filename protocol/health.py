"""What the metrics actor is told besides the node's events, and what it answers.

The metrics actor only listens: the checkpointer, the alerter, the supervisor and the
runtime's watchdog each tell it what they alone know, and it never asks them back, so
a scrape or a probe can never hold up the trading path.
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.state import Snapshot


@dataclass(frozen=True, slots=True)
class CheckpointWritten:
    """A checkpoint was written (``snapshot``) or the last one's cursor advanced (None),
    taking ``duration_s``; ``at`` is the wall-clock time (epoch seconds)."""

    at: float
    duration_s: float
    snapshot: Snapshot | None = None


@dataclass(frozen=True, slots=True)
class AlerterStats:
    """The outbox's pending alerts and the Telegram deliveries that failed since the
    alerter's last report (an increment: a restarted alerter loses nothing of the count)."""

    pending: int
    telegram_failures: int


@dataclass(frozen=True, slots=True)
class Liveness:
    """The watchdog's round: the roles that did not answer a ping (none: healthy), at
    ``at`` (epoch seconds); a healthy round is also the heartbeat."""

    silent: tuple[str, ...]
    at: float


@dataclass(frozen=True, slots=True)
class QueryHealth:
    """Asked by the probe server: the service's health and readiness now."""


@dataclass(frozen=True, slots=True)
class Health:
    """``healthy``: the process and its actors answer (a role being restarted is
    recovering, not unhealthy). ``ready``: the node trades, data is fresh, the last
    checkpoint is recent and trading is not halted. The reasons say why not."""

    healthy: bool
    ready: bool
    health_reasons: tuple[str, ...]
    ready_reasons: tuple[str, ...]
    recovering: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReadinessFigures:
    """The alerter's periodic readiness verdict, for ``paper_readiness{strategy,
    criterion}``: each (strategy, criterion, value), the criterion ``verdict`` 2 READY,
    1 NOT YET, 0 NO; the others 2 pass, 1 wait, 0 fail, -1 not applicable."""

    values: tuple[tuple[str, str, float], ...]
