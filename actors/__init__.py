"""The service's actors and the messages they exchange."""

from actors.alerter import AlerterActor
from actors.base import ChildContext, Directory, PeerRef, Peers, SupervisedActor
from actors.checkpointer import CheckpointerActor
from actors.classifier import ClassifierActor, classify
from actors.inbox import Inbox
from actors.node_actor import NodeCrashed, TradingNodeActor
from actors.timer import Interval

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
