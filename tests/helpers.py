"""Test actors: recording peers and a worker that crashes or quits on demand."""

from __future__ import annotations

import time
from dataclasses import dataclass

from actors.base import ChildContext, SupervisedActor
from actors.inbox import Inbox
from protocol import (
    CheckpointLookup,
    GateQuery,
    GateState,
    Halt,
    LastSnapshot,
    OrdersCanceled,
    Resume,
    Snapshot,
    SnapshotTaken,
    TakeSnapshot,
    TradingState,
    TradingStateChanged,
)
from supervisor.spec import ChildSpec, Restart


@dataclass(frozen=True)
class Recorded:
    role: str
    actor_urn: str
    message: object


@dataclass(frozen=True)
class Crash:
    pass


@dataclass(frozen=True)
class Quit:
    pass


@dataclass(frozen=True)
class Forward:
    role: str
    message: object


class Recorder(SupervisedActor):
    """Records every message it gets; answers TakeSnapshot with ``snapshot``, and the
    start-up questions of a node (as an empty checkpointer and an open gate would)."""

    def __init__(self, ctx: ChildContext, inbox: Inbox, snapshot: Snapshot | None = None):
        super().__init__(ctx)
        self.inbox = inbox
        self.snapshot = snapshot

    def receive(self, message: object) -> object:
        self.inbox.tell(Recorded(self.ctx.role, self.actor_urn, message))
        match message:
            case TakeSnapshot(reply_to=reply_to, request_id=request_id) if reply_to and (
                self.snapshot
            ):
                reply_to.tell(SnapshotTaken(request_id, self.snapshot))
            case LastSnapshot():
                return CheckpointLookup(None)
            case GateQuery():
                return GateState(TradingState.ACTIVE)
        return None


@dataclass(frozen=True)
class Silence:
    """Tell a ``ConfirmingNode`` to stop confirming, as a node that never answers."""


class ConfirmingNode(Recorder):
    """A fake node that confirms halts (one cancelled order) and resumes, like the real one."""

    silent = False

    def receive(self, message: object) -> object:
        super().receive(message)
        if isinstance(message, Silence):
            self.silent = True
        if self.silent:
            return None
        match message:
            case Halt(notify=notify, strategy_id=sid) if notify is not None:
                notify.tell(OrdersCanceled(("O-1",), sid))
            case Resume(notify=notify, reason=reason, strategy_id=sid) if notify is not None:
                notify.tell(TradingStateChanged(TradingState.ACTIVE, reason, sid))
        return None


@dataclass(frozen=True)
class Hang:
    """Block the actor's thread, as a deadlock or a stuck call would."""

    seconds: float


class Worker(Recorder):
    """A recorder that also crashes, quits, hangs, or forwards to a peer by role."""

    def receive(self, message: object) -> object:
        match message:
            case Hang(seconds=seconds):
                time.sleep(seconds)
                return None
            case Crash():
                raise RuntimeError("boom")
            case Quit():
                self.stop()
                return None
            case Forward(role=role, message=inner):
                return self.peers.tell(role, inner)
            case _:
                return super().receive(message)


def settled(directory: object, *roles: str) -> None:
    """Every message already sent to ``roles`` has been handled (and recorded): a ping
    queues behind them. A negative assert ("no halt was sent") needs this after asking
    the sender, because the recorder that would get the halt runs on its own thread."""
    import pykka

    from protocol import Ping, WhereIs

    assert isinstance(directory, pykka.ActorRef)
    for role in roles:
        ref = directory.ask(WhereIs(role), timeout=5)
        assert isinstance(ref, pykka.ActorRef), f"{role} is not running"
        ref.ask(Ping(), timeout=5)


def recorder(role: str, inbox: Inbox, restart: Restart = Restart.PERMANENT) -> ChildSpec:
    return ChildSpec(role, lambda ctx: Recorder.start(ctx, inbox), restart, 2.0)


def worker(role: str, inbox: Inbox, restart: Restart = Restart.PERMANENT) -> ChildSpec:
    return ChildSpec(role, lambda ctx: Worker.start(ctx, inbox), restart, 2.0)


def snapshot(**changes: object) -> Snapshot:
    from dataclasses import replace
    from decimal import Decimal

    base = Snapshot(
        taken_at_ns=1_700_000_000_000_000_000,
        trader_id="TEST-001",
        trading_state=TradingState.ACTIVE,
        currency="USDT",
        balance=Decimal("100000.12345678"),
        equity=Decimal("100100.5"),
        realized_pnl=Decimal("0.12345678"),
        unrealized_pnl=Decimal("100.37654322"),
        replay_cursor=42,
    )
    return replace(base, **changes)  # type: ignore[arg-type]
