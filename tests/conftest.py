from __future__ import annotations

from collections.abc import Iterator

import pykka
import pytest


@pytest.fixture(autouse=True)
def no_actor_left_behind() -> Iterator[None]:
    """Every test stops what it started; anything left is a leak and fails the test."""
    yield
    left = pykka.ActorRegistry.get_all()
    pykka.ActorRegistry.stop_all(block=True, timeout=30)
    assert not left, f"actors still running after the test: {left}"
