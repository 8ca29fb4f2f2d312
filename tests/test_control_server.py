"""The operator control loop on both anyio backends: failures budgeted and cleared,
and nothing on the loop that blocks it."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from actors.inbox import Inbox
from protocol import ConfigReloaded, ErrorRaised, Halt, OperationSucceeded
from storage import (
    PENDING_TTL_S,
    Command,
    CommandStatus,
    ControlChannel,
    ControlRequest,
    StorageError,
)
from supervisor.runtime import ControlServer, StopOutcome

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


class FlakyChannel:
    """A control channel whose reads fail on the listed polls."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.polls = 0

    def pending(self, trader_id: str) -> list[ControlRequest]:
        self.polls += 1
        if self.polls in self.failing:
            raise StorageError("reading control requests failed: database is locked")
        return []

    def expire(self, trader_id: str) -> list[ControlRequest]:
        return []

    def close(self) -> None:
        pass


class Handle:
    """What the control loop needs of the service; ``tell`` blocks as a lookup may."""

    def __init__(self, channel: FlakyChannel, block_until: threading.Event | None = None) -> None:
        self.channel = channel
        self.events = Inbox()
        self.trader_id = "CTL-001"
        self.told: list[tuple[str, object]] = []
        self.block_until = block_until
        self.released_in_time: list[bool] = []

    def tell(self, role: str, message: object) -> bool:
        if self.block_until is not None:  # a WhereIs that waits for a busy supervisor
            self.released_in_time.append(self.block_until.wait(5.0))
        self.told.append((role, message))
        return True

    def open_control(self) -> ControlChannel:
        return self.channel  # type: ignore[return-value]

    def unresponsive(self, timeout_s: float) -> list[str]:
        return []

    def state(self, timeout_s: float = 2.0) -> str:
        return "running"

    def beat(self) -> None:
        pass

    def reload(self) -> ConfigReloaded:
        return ConfigReloaded(True, "")


async def run_polls(handle: Handle, polls: int) -> None:
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ControlServer(handle, lambda outcome: None).run)
            while handle.channel.polls < polls:
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()


async def test_control_errors_are_budgeted_per_operation_and_cleared_by_a_success():
    """Issue 13, defect 3: the 6th transient control error over days used to be fatal."""
    handle = Handle(FlakyChannel({1, 3, 5, 7, 9, 11, 13}))
    await run_polls(handle, 15)
    errors = [m for _, m in handle.told if isinstance(m, ErrorRaised)]
    cleared = [m for _, m in handle.told if isinstance(m, OperationSucceeded)]
    assert len(errors) == 7 and all(e.operation == "control" for e in errors)
    assert len(cleared) == 7 and all(c.operation == "control" for c in cleared)
    kinds = [type(m).__name__ for _, m in handle.told]
    assert kinds == ["ErrorRaised", "OperationSucceeded"] * 7, "each failure, then its success"


async def test_reporting_an_error_does_not_block_the_loop():
    """Issue 13, defect 10: a blocking lookup on the event loop stalled everything on it."""
    release = threading.Event()
    handle = Handle(FlakyChannel({1}), block_until=release)

    async def ticker() -> None:
        while not release.is_set():
            await anyio.sleep(0.01)
            if handle.channel.polls >= 1:
                release.set()  # only possible while the blocked call is off the loop

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ControlServer(handle, lambda outcome: StopOutcome("", True)).run)
            tg.start_soon(ticker)
            while not handle.released_in_time:
                await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
    assert handle.released_in_time == [True], "the loop ran while the report was pending"


async def test_a_command_the_service_never_picked_up_expires_instead_of_running_now(tmp_path):
    """A ``stop`` queued while no service ran (a day ago, or a minute) used to stop the
    next start; it fails as expired, and a command queued now is carried out."""
    channel = ControlChannel(tmp_path / "ctl.db")
    stale = channel.submit("CTL-001", Command.STOP, "queued while the service was down")
    old = (datetime.now(UTC) - timedelta(seconds=PENDING_TTL_S + 1)).isoformat()
    channel.db.execute("UPDATE control SET requested_at = ? WHERE id = ?", [old, stale])
    channel.db.conn.commit()
    fresh = channel.submit("CTL-001", Command.HALT, "now")
    stops: list[StopOutcome] = []
    handle = Handle(channel)  # type: ignore[arg-type]
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ControlServer(handle, stops.append).run)
            while not handle.told:
                await anyio.sleep(0.05)
            tg.cancel_scope.cancel()
    channel = ControlChannel(tmp_path / "ctl.db")  # the server closed its own
    expired = channel.get(stale)
    assert expired.status is CommandStatus.FAILED and expired.result is not None
    assert expired.result.startswith(f"expired: not picked up within {PENDING_TTL_S:g} s")
    assert not stops
    [(role, message)] = handle.told
    assert role == "gate" and isinstance(message, Halt) and message.reason == "now"
    assert channel.get(fresh).status is CommandStatus.ACCEPTED
