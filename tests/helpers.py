"""Test actors: recording peers and a worker that crashes or quits on demand."""

from __future__ import annotations

import time
from dataclasses import dataclass

from actors.base import ChildContext, SupervisedActor
from actors.inbox import Inbox
from actors.messages import (
    Halt,
    OrdersCanceled,
    Resume,
    Snapshot,
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
    """Records every message it gets; answers TakeSnapshot with ``snapshot``."""

    def __init__(self, ctx: ChildContext, inbox: Inbox, snapshot: Snapshot | None = None):
        super().__init__(ctx)
        self.inbox = inbox
        self.snapshot = snapshot

    def receive(self, message: object) -> object:
        self.inbox.tell(Recorded(self.ctx.role, self.actor_urn, message))
        if isinstance(message, TakeSnapshot) and message.reply_to and self.snapshot:
            message.reply_to.tell(self.snapshot)
        return None


class ConfirmingNode(Recorder):
    """A fake node that confirms halts (one cancelled order) and resumes, like the real one."""

    def receive(self, message: object) -> object:
        super().receive(message)
        match message:
            case Halt(notify=notify) if notify is not None:
                notify.tell(OrdersCanceled(("O-1",)))
            case Resume(notify=notify, reason=reason) if notify is not None:
                notify.tell(TradingStateChanged(TradingState.ACTIVE, reason))
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
