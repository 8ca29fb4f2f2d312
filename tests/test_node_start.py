"""A node never starts from scratch because nobody answered: it fails, loudly."""

from __future__ import annotations

import threading

from actors.inbox import Inbox
from actors.node_actor import TradingNodeActor
from protocol import Alert, ChildExited, Escalation, LastSnapshot, NodeSettings, ReplaySettings
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from tests.helpers import Recorded, Recorder, recorder

FAST = NodeSettings(trader_id="MUTE-001", replay=ReplaySettings(speed=0.0, bars=4000))


class Mute(Recorder):
    """A checkpointer stuck in a long write: it does not answer the restore lookup."""

    def __init__(self, ctx, inbox, release: threading.Event):
        super().__init__(ctx, inbox)
        self.release = release

    def receive(self, message):
        if isinstance(message, LastSnapshot):
            self.release.wait(30)
            return None
        return super().receive(message)


def test_no_answer_from_the_checkpointer_is_a_refused_start_and_an_alert():
    """Issue 13, defect 5: the node used to start fresh, at cursor 0, silently."""
    inbox, events, release = Inbox(), Inbox(), threading.Event()
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            ChildSpec("checkpointer", lambda ctx: Mute.start(ctx, inbox, release)),
            recorder("gate", inbox),
            ChildSpec(
                "node",
                lambda ctx: TradingNodeActor.start(ctx, FAST, start_ask_timeout_s=0.3),
                shutdown_timeout_s=20,
            ),
        ),
        max_restarts=0,
        escalation=Escalation.HALT_AND_CONTINUE,
    )
    sup = Supervisor.start(spec, parent=events)
    try:
        exited = events.expect(ChildExited, 20, lambda m: m.role == "node")
        assert exited.abnormal and "did not answer LastSnapshot" in exited.reason
        alert = inbox.expect(
            Recorded,
            5,
            lambda r: isinstance(r.message, Alert) and r.message.title == "Node not started",
        ).message
        assert "does not start from scratch" in alert.text
    finally:
        release.set()
        sup.stop(timeout=30)
