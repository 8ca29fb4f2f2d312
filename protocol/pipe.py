"""The node pipe: what the parent sends the node child, and what comes back.

Every message here is picklable with plain values; a snapshot comes back encoded by
``protocol.wire`` (its open orders encoded once, by the bridge).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.commands import Halt, Resume, UpdateRisk
from protocol.events import (
    BreakerTripped,
    CaughtUp,
    ErrorRaised,
    FundingPaid,
    NodeReport,
    NodeStarted,
    NodeStopped,
    OperationSucceeded,
    OrderFilled,
    OrderRejected,
    OrdersCanceled,
    ReconciliationDiff,
    TradingStateChanged,
)
from protocol.supervision import Ping, Pong, Stop


@dataclass(frozen=True, slots=True)
class SnapshotRequest:
    """Pipe form of ``TakeSnapshot``: the parent keeps ``reply_to`` by ``request_id``."""

    request_id: int


@dataclass(frozen=True, slots=True)
class EncodedSnapshotReply:
    """The node child's answer to ``SnapshotRequest``: the snapshot as ``protocol.wire`` bytes."""

    request_id: int
    data: bytes


NodeCommand = Halt | Resume | Stop | SnapshotRequest | Ping | UpdateRisk


NodeEvent = (
    NodeStarted
    | NodeStopped
    | OrderFilled
    | OrderRejected
    | OrdersCanceled
    | TradingStateChanged
    | ErrorRaised
    | OperationSucceeded
    | EncodedSnapshotReply
    | Pong
    | NodeReport
    | ReconciliationDiff
    | FundingPaid
    | BreakerTripped
    | CaughtUp
)
