"""Owner-only files: what a session launched from the dashboard creates (its directory,
config, log, the database, its WAL and SHM, the lock files) is readable by its user
alone, and the session and its node child start with only the secrets their mode needs.
(What a service run from the CLI creates is checked in ``tests/test_bad_input.py``'s
service run.)"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sessions.launcher import Launcher
from sessions.presets import default_preset
from storage import AppDatabase
from tests.service import ROOT, alive, node_pids, wait_for

pytestmark = pytest.mark.node

SECRETS = {
    "BINANCE_FUTURES_TESTNET_API_KEY": "modes-testnet-key-0001",
    "BINANCE_FUTURES_TESTNET_API_SECRET": "modes-testnet-secret-0001",
    "AWS_SECRET_ACCESS_KEY": "an-operator-credential-0002",
}


def loose(root: Path) -> list[str]:
    """Every file and directory under ``root`` (and ``root``) that its group or others
    may read, write or enter, with its mode."""
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if mode & 0o077 and not stat.S_ISLNK(mode):
            found.append(f"{path.relative_to(root.parent)} {stat.filemode(mode)}")
    return found


def environment_names(pid: int) -> set[str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return {entry.partition(b"=")[0].decode() for entry in raw.split(b"\0") if entry}


@pytest.fixture
def state_dir() -> Iterator[Path]:
    # Outside the test's tmp directory, under a parent the test leaves 0755: what is
    # checked is what the launch creates.
    path = ROOT / "test-artifacts" / f"modes-{uuid.uuid4().hex[:8]}" / "state"
    path.parent.mkdir(parents=True)
    yield path
    shutil.rmtree(path.parent, ignore_errors=True)


def test_a_launched_session_creates_only_owner_only_files_and_gets_no_stray_secret(
    state_dir: Path,
) -> None:
    old_umask = os.umask(0o022)  # an ordinary login's umask, whatever the runner's
    try:
        db = state_dir / "paper.db"
        appdb = AppDatabase(db)
    finally:
        os.umask(old_umask)
    preset = default_preset()
    preset["service"].update(checkpoint_interval_s=1.0, heartbeat_interval_s=0.5)
    preset["replay"]["speed"] = 300.0
    appdb.save_preset("modes", preset)
    launcher = Launcher(appdb, state_dir, env={**os.environ, **SECRETS})
    job = launcher.launch("modes")
    try:
        wait_for(
            "the session checkpointing",
            lambda: (s := appdb.status(job.trader_id, 5)) and s["checkpoints"] > 1,
            timeout=90,
        )
        node = node_pids(db)[-1]
        assert loose(state_dir) == []
        for pid in (job.pid, node):
            assert environment_names(pid).isdisjoint(SECRETS), pid
        names = {p.name for p in state_dir.rglob("*")}
        assert {"paper.db", "paper.db-wal", "paper.db-shm", "config.toml", "service.log"} <= names
        assert any(n.endswith(".lock") for n in names), names
    finally:
        if alive(job.pid):
            os.kill(job.pid, signal.SIGTERM)
        wait_for("the session stopped", lambda: not alive(job.pid), timeout=45)
        launcher.poll()
        appdb.close()
