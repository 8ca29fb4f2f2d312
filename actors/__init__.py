"""The service's actors and the messages they exchange.

Exports resolve lazily (PEP 562): ``import actors.messages`` - used by storage and
by the status CLI - must not drag in Nautilus or the storage layer, which itself
depends on the message types.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from actors.alerter import AlerterActor
    from actors.base import ChildContext, Directory, PeerRef, Peers, SupervisedActor
    from actors.checkpointer import CheckpointerActor
    from actors.classifier import ClassifierActor, classify
    from actors.inbox import Inbox
    from actors.node_actor import NodeCrashed, TradingNodeActor
    from actors.timer import Interval

_EXPORTS = {
    "AlerterActor": "actors.alerter",
    "CheckpointerActor": "actors.checkpointer",
    "ChildContext": "actors.base",
    "ClassifierActor": "actors.classifier",
    "Directory": "actors.base",
    "Inbox": "actors.inbox",
    "Interval": "actors.timer",
    "NodeCrashed": "actors.node_actor",
    "PeerRef": "actors.base",
    "Peers": "actors.base",
    "SupervisedActor": "actors.base",
    "TradingNodeActor": "actors.node_actor",
    "classify": "actors.classifier",
}

__all__ = [
    "AlerterActor",
    "CheckpointerActor",
    "ChildContext",
    "ClassifierActor",
    "Directory",
    "Inbox",
    "Interval",
    "NodeCrashed",
    "PeerRef",
    "Peers",
    "SupervisedActor",
    "TradingNodeActor",
    "classify",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'actors' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
