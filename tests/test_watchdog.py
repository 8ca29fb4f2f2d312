"""The runtime's watchdog, on both anyio backends: it pets systemd only while every
actor answers, writes the heartbeat then, and says READY once the node trades."""

from __future__ import annotations

from pathlib import Path

import pytest

from actors.inbox import Inbox
from protocol import BusyFor, ConfigReloaded, SupervisorTerminated, WhereIs
from storage import Command, CommandStatus, ControlChannel
from supervisor import Supervisor, SupervisorSpec
from supervisor.health import unresponsive
from supervisor.runtime import StopOutcome, Watchdog, serve
from supervisor.sdnotify import Notifier
from tests.helpers import Hang, worker
from tests.notify_socket import NotifySocket

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param


class TreeHandle:
    """A ServiceHandle over any tree, for driving the runtime without a node."""

    def __init__(self, spec: SupervisorSpec, db: Path | None = None) -> None:
        self.db = db
        self.events = Inbox()
        self.trader_id = "WD-001"
        self.spec = spec
        self.supervisor = Supervisor.start(spec, parent=self.events)
        self.beats = 0
        self.current_state = "starting"

    def tell(self, role: str, message: object) -> bool:
        ref = self.supervisor.ask(WhereIs(role), timeout=5)
        if ref is None:  # as the service's: a role the tree does not have is told nothing
            return False
        ref.tell(message)
        return True

    def open_control(self) -> ControlChannel:
        assert self.db is not None
        return ControlChannel(self.db)

    def unresponsive(self, timeout_s: float) -> list[str]:
        return unresponsive(self.supervisor, [c.role for c in self.spec.children], timeout_s)

    def state(self, timeout_s: float = 2.0) -> str:
        return self.current_state

    def beat(self) -> None:
        self.beats += 1

    def reload(self) -> ConfigReloaded:
        return ConfigReloaded(True, "nothing")


@pytest.fixture
def tree(tmp_path):
    inbox = Inbox()
    spec = SupervisorSpec(children=(worker("a", inbox), worker("b", inbox)))
    handle = TreeHandle(spec, tmp_path / "control.db")
    yield handle
    handle.supervisor.stop(timeout=15)


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


async def test_watchdog_pets_only_while_every_actor_answers(tree, notify):
    watchdog = Watchdog(tree, Notifier(str(notify.path)), interval_s=0.1, deadline_s=0.3)

    assert await watchdog.check()
    notify.wait_for("WATCHDOG=1", 1, timeout=5)
    assert notify.count("READY=1") == 0, "not ready before the node trades"
    tree.current_state = "running"
    assert await watchdog.check()
    notify.wait_for("READY=1", 1, timeout=5)
    assert tree.beats == 2

    tree.tell("b", Hang(1.5))
    pets = notify.count("WATCHDOG=1")
    assert not await watchdog.check()
    assert not await watchdog.check()
    notify.wait_for("STATUS=degraded: b not answering", 1, timeout=5)
    assert notify.count("WATCHDOG=1") == pets, "no pet while an actor hangs"
    assert tree.beats == 2, "no heartbeat either: status will show it stale"

    for _ in range(50):  # the hang ends after 1.5 s
        if await watchdog.check():
            break
    notify.wait_for("WATCHDOG=1", pets + 1, timeout=5)
    assert notify.count("READY=1") == 1


async def test_an_actor_blocked_inside_its_announced_lease_is_busy_not_hung(tree, notify):
    """The alerter leases its Telegram requests: a slow Telegram must not stop the
    heartbeat (the CLI refuses halt for a service whose heartbeat is stale)."""
    watchdog = Watchdog(tree, Notifier(str(notify.path)), interval_s=0.1, deadline_s=0.3)
    assert await watchdog.check()
    tree.supervisor.tell(BusyFor("b", 1.0))
    tree.tell("b", Hang(3.0))
    beats = tree.beats
    assert await watchdog.check(), "inside the lease b is busy"
    assert tree.beats == beats + 1
    for _ in range(50):  # the lease ends after 1 s; b still blocks: now it is hung
        if not await watchdog.check():
            break
    else:
        pytest.fail("a blocked actor past its lease was never reported")
    notify.wait_for("STATUS=degraded: b not answering", 1, timeout=5)
    tree.supervisor.tell(BusyFor("b", 0))
    for _ in range(50):
        if await watchdog.check():
            break
    else:
        pytest.fail("b never answered again after its hang")


async def test_without_notify_socket_nothing_is_sent(tree, monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = Notifier()
    assert not notifier.enabled
    assert await Watchdog(tree, notifier, 0.1, 0.3).check()
    assert notifier.watchdog() is False


async def test_serve_ends_at_the_duration_or_when_the_tree_stops_itself(tree):
    outcome = await serve(tree, duration_s=0.3)
    assert outcome == StopOutcome("duration of 0.3 s reached", True)

    tree.events.tell(SupervisorTerminated("b failed 4 times in 5 s"))
    outcome = await serve(tree, duration_s=30)
    assert not outcome.graceful and "b failed 4 times" in outcome.reason


async def test_serve_carries_out_an_operator_stop(tree):
    channel = ControlChannel(tree.db)
    request = channel.submit("WD-001", Command.STOP, "maintenance")
    outcome = await serve(tree, duration_s=30)
    assert outcome == StopOutcome("operator stop: maintenance", True)
    assert channel.get(request).status is CommandStatus.DONE
    channel.close()
