"""The parent's async work, written against anyio (the service runs it on trio).

While the actor tree trades, this loop waits for what ends a run - SIGINT/SIGTERM,
the end of ``--duration``, the tree stopping itself after an escalation, or an
operator's ``stop`` - and serves the operator control channel. Blocking calls (the
database, asks to actors) run in worker threads so the loop itself never blocks.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Protocol

import anyio
import anyio.to_thread

from actors.inbox import Inbox
from protocol import (
    ConfigReloaded,
    ErrorRaised,
    Halt,
    HaltMode,
    Liveness,
    NotConfirmed,
    OperationSucceeded,
    OrdersCanceled,
    ReplayFinished,
    Resume,
    SupervisorTerminated,
    TradingState,
    TradingStateChanged,
)
from storage import Command, CommandStatus, ControlChannel, ControlRequest, StorageError
from supervisor.sdnotify import Notifier

log = logging.getLogger(__name__)

TREE_POLL_S = 0.2
CONTROL_POLL_S = 0.25
CONFIRM_TIMEOUT_S = 20.0


@dataclass(frozen=True, slots=True)
class StopOutcome:
    reason: str
    graceful: bool


class ServiceHandle(Protocol):
    """What the runtime needs of ``supervisor.service.Service``."""

    @property
    def events(self) -> Inbox: ...

    @property
    def trader_id(self) -> str: ...

    def tell(self, role: str, message: object) -> bool: ...

    def open_control(self) -> ControlChannel: ...

    def unresponsive(self, timeout_s: float) -> list[str]: ...

    def state(self, timeout_s: float = 2.0) -> str: ...

    def beat(self) -> None: ...

    def reload(self) -> ConfigReloaded: ...


@dataclass
class Watchdog:
    """Pings every actor each interval; only when all answer in time does it pet
    systemd's watchdog and write the heartbeat. READY=1 once the node trades."""

    service: ServiceHandle
    notifier: Notifier
    interval_s: float
    deadline_s: float
    ready: bool = False
    last_status: str = ""
    healthy_rounds: int = 0

    async def run(self) -> None:
        while True:
            await self.check()
            await anyio.sleep(self.interval_s)

    async def check(self) -> bool:
        silent = await anyio.to_thread.run_sync(self.service.unresponsive, self.deadline_s)
        await anyio.to_thread.run_sync(
            self.service.tell, "metrics", Liveness(tuple(silent), time.time())
        )
        if silent:
            self._set_status(f"degraded: {', '.join(silent)} not answering")
            return False
        self.healthy_rounds += 1
        self.notifier.watchdog()
        await anyio.to_thread.run_sync(self.service.beat)
        state = await anyio.to_thread.run_sync(self.service.state)
        if not self.ready and state in ("running", "halted"):
            self.ready = True
            self.notifier.ready(state)
            log.info("ready: the node is trading (%s)", state)
        self._set_status(state)
        return True

    def _set_status(self, status: str) -> None:
        if status != self.last_status:
            self.last_status = status
            self.notifier.status(status)
            level = logging.ERROR if status.startswith("degraded") else logging.INFO
            log.log(level, "status: %s", status)


class EarlySignals:
    """Records SIGINT/SIGTERM that arrive before the async loop listens for them
    (and ignores an early SIGHUP: there is nothing to reload yet)."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._record)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)


@dataclass
class _InFlight:
    request: ControlRequest
    inbox: Inbox
    deadline: float


@dataclass
class ControlServer:
    """Carries out queued operator commands and acknowledges them once confirmed."""

    service: ServiceHandle
    stop: Callable[[StopOutcome], None]
    inflight: list[_InFlight] = field(default_factory=list)

    async def run(self) -> None:
        channel = await anyio.to_thread.run_sync(self.service.open_control)
        failing = False
        try:
            while True:
                try:
                    await self._step(channel)
                except StorageError as exc:
                    log.error("control channel: %s", exc)
                    failing = True
                    error = ErrorRaised(
                        "control", type(exc).__name__, str(exc), operation="control"
                    )
                    await anyio.to_thread.run_sync(self.service.tell, "classifier", error)
                else:
                    if failing:  # the retry budget of control errors starts over
                        failing = False
                        await anyio.to_thread.run_sync(
                            self.service.tell, "classifier", OperationSucceeded("control")
                        )
                await anyio.sleep(CONTROL_POLL_S)
        finally:
            channel.close()

    async def _step(self, channel: ControlChannel) -> None:
        expired = await anyio.to_thread.run_sync(channel.expire, self.service.trader_id)
        for request in expired:
            log.warning(
                "operator %s #%d of %s expired unseen (%s): not carried out",
                request.command,
                request.id,
                request.requested_at,
                request.reason,
            )
        pending = await anyio.to_thread.run_sync(channel.pending, self.service.trader_id)
        for request in pending:
            await self._start(channel, request)
        for item in list(self.inflight):
            outcome = self._outcome(item)
            if outcome is not None:
                self.inflight.remove(item)
                status, result = outcome
                await anyio.to_thread.run_sync(channel.ack, item.request.id, status, result)
                log.info("operator %s: %s", item.request.command, result)

    async def _start(self, channel: ControlChannel, request: ControlRequest) -> None:
        log.info("operator %s requested: %s", request.command, request.reason)
        if request.command is Command.STOP:
            await anyio.to_thread.run_sync(
                channel.ack, request.id, CommandStatus.DONE, "stopping: final checkpoint, then exit"
            )
            self.stop(StopOutcome(f"operator stop: {request.reason}", True))
            return
        inbox = Inbox()
        sid = request.strategy_id
        message: Halt | Resume = (
            Halt(
                request.reason,
                "operator",
                notify=inbox,
                strategy_id=sid,
                mode=HaltMode(request.mode or HaltMode.CANCEL),
            )
            if request.command is Command.HALT
            else Resume(request.reason, "operator", notify=inbox, strategy_id=sid)
        )
        # Accepted first: if this write fails the command stays pending and nothing
        # was done, so carrying it out on the next poll cannot do it twice.
        await anyio.to_thread.run_sync(
            channel.ack, request.id, CommandStatus.ACCEPTED, f"{request.command} sent"
        )
        # Through the gate: a halt is on record before it is confirmed, and holds while
        # the node restarts; the gate answers once the node confirms.
        delivered = await anyio.to_thread.run_sync(self.service.tell, "gate", message)
        if not delivered and isinstance(message, Halt) and sid is None:
            delivered = await anyio.to_thread.run_sync(self.service.tell, "node", message)
        if not delivered:
            await anyio.to_thread.run_sync(
                channel.ack, request.id, CommandStatus.FAILED, "the gate is not running"
            )
            return
        self.inflight.append(_InFlight(request, inbox, time.monotonic() + CONFIRM_TIMEOUT_S))

    @staticmethod
    def _outcome(item: _InFlight) -> tuple[CommandStatus, str] | None:
        for message in item.inbox.poll():
            match message:
                case OrdersCanceled(strategy_id=None, mode=mode):
                    denied = (
                        "orders that add exposure are denied"
                        if mode is HaltMode.REDUCE
                        else "new orders are denied"
                    )
                    done = (
                        f"halted: {message.summary().replace(' (confirmed)', ' and confirmed')}"
                        f"; {denied} (mode {mode})"
                    )
                    return CommandStatus.DONE, done
                case OrdersCanceled(client_order_ids=ids, strategy_id=str(sid)):
                    return (
                        CommandStatus.DONE,
                        f"{sid} halted: {len(ids)} of its open order(s) cancelled and "
                        "confirmed; its new orders are denied; the others trade on",
                    )
                case TradingStateChanged(state=TradingState.ACTIVE, strategy_id=None):
                    return CommandStatus.DONE, "resumed: trading state ACTIVE"
                case TradingStateChanged(state=TradingState.ACTIVE, strategy_id=str(sid)):
                    return CommandStatus.DONE, f"{sid} resumed: its orders pass again"
                case NotConfirmed(reason=reason):
                    return CommandStatus.FAILED, reason
        if time.monotonic() > item.deadline:
            return CommandStatus.FAILED, f"not confirmed within {CONFIRM_TIMEOUT_S:g} s"
        return None


async def serve(
    service: ServiceHandle,
    duration_s: float | None,
    early: EarlySignals | None = None,
    watchdog: Watchdog | None = None,
    watchers: Sequence[Callable[[], Coroutine[None, None, None]]] = (),
) -> StopOutcome:
    """Run until a signal, the end of ``duration_s``, an escalation or an operator stop;
    ``watchers`` run beside it until then (the progress lines in a terminal)."""
    outcome: list[StopOutcome] = []
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
        if early is not None and early.received:
            return StopOutcome(f"signal {signal.Signals(early.received[0]).name}", True)
        async with anyio.create_task_group() as tg:

            def stop(result: StopOutcome) -> None:
                outcome.append(result)
                tg.cancel_scope.cancel()

            async def on_signal() -> None:
                async for signum in signals:
                    if signum == signal.SIGHUP:
                        await anyio.to_thread.run_sync(service.reload)
                        continue
                    stop(StopOutcome(f"signal {signal.Signals(signum).name}", True))
                    return

            async def on_tree() -> None:
                while True:
                    for message in service.events.poll():
                        if isinstance(message, SupervisorTerminated):
                            stop(StopOutcome(f"escalation: {message.reason}", False))
                            return
                        if isinstance(message, ReplayFinished):
                            stop(StopOutcome(f"replay finished after {message.bars} bars", True))
                            return
                    await anyio.sleep(TREE_POLL_S)

            async def on_duration(seconds: float) -> None:
                await anyio.sleep(seconds)
                stop(StopOutcome(f"duration of {seconds:g} s reached", True))

            tg.start_soon(on_signal)
            tg.start_soon(on_tree)
            tg.start_soon(ControlServer(service, stop).run)
            if watchdog is not None:
                tg.start_soon(watchdog.run)
            if duration_s is not None:
                tg.start_soon(on_duration, duration_s)
            for watcher in watchers:
                tg.start_soon(watcher)
    return outcome[0] if outcome else StopOutcome("stopped", True)
