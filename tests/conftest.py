from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest

from storage.lock import LOCK_DIR_ENV


@pytest.fixture(autouse=True)
def own_account_locks(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each test's binance-testnet sessions take their account locks in a directory of
    the test's own (``storage.lock.account_lock_dir``), not in the user's state
    directory: tests on the emulator's keys run side by side."""
    monkeypatch.setenv(LOCK_DIR_ENV, str(tmp_path_factory.mktemp("account-locks")))


@pytest.fixture(autouse=True)
def no_actor_left_behind() -> Iterator[None]:
    """Every test stops what it started; anything left is a leak and fails the test."""
    yield
    left = pykka.ActorRegistry.get_all()
    pykka.ActorRegistry.stop_all(block=True, timeout=30)
    assert not left, f"actors still running after the test: {left}"
