"""The service's actors: one per file, each owning one resource, talking by messages.

- ``AlerterActor``: the alert outbox and Telegram;
- ``CheckpointerActor``: the database writer (checkpoints, events, heartbeat);
- ``ClassifierActor``: decisions on errors, retry budgets, circuit breakers;
- ``GateActor``: every halt and resume, on record;
- ``TradingNodeActor``: the node child process.

``SupervisedActor`` is what they share (context, peers by role, exit reports);
``Inbox`` and ``Interval`` are the mailbox and the timer actors and tests use.
"""

from __future__ import annotations

from actors.alerter import AlerterActor
from actors.base import ChildContext, Directory, PeerRef, Peers, SupervisedActor, halt
from actors.checkpointer import CheckpointerActor
from actors.classifier import ClassifierActor, classify
from actors.gate import GateActor
from actors.inbox import Inbox
from actors.node_actor import NodeCrashed, TradingNodeActor
from actors.timer import Interval

__all__ = [
    "AlerterActor",
    "CheckpointerActor",
    "ChildContext",
    "ClassifierActor",
    "Directory",
    "GateActor",
    "Inbox",
    "Interval",
    "NodeCrashed",
    "PeerRef",
    "Peers",
    "SupervisedActor",
    "TradingNodeActor",
    "classify",
    "halt",
]
