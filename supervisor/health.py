"""Liveness of an actor tree: which actors fail to answer a ping in time."""

from __future__ import annotations

from collections.abc import Iterable

import pykka

from actors.base import AskablePeer, Directory
from protocol import Ping, QueryBusy, WhereIs


def unresponsive(supervisor: Directory | None, roles: Iterable[str], timeout_s: float) -> list[str]:
    """Roles (or the supervisor itself) that did not answer a ``Ping`` within ``timeout_s``.

    A hung actor thread never answers, so this is how a deadlock or a handler stuck
    in a blocking call becomes visible (and stops the systemd watchdog). An actor that
    announced a bounded blocking call (``BusyFor``) is not reported while its lease
    lasts, so a slow Telegram does not make the whole service look dead.
    """
    if supervisor is None:
        return ["supervisor"]
    try:
        supervisor.ask(Ping(), timeout=timeout_s)
    except (pykka.Timeout, pykka.ActorDeadError):
        return ["supervisor"]
    silent: list[str] = []
    for role in roles:
        try:
            ref = supervisor.ask(WhereIs(role), timeout=timeout_s)
            if not isinstance(ref, AskablePeer):
                silent.append(role)
                continue
            ref.ask(Ping(), timeout=timeout_s)
        except (pykka.Timeout, pykka.ActorDeadError):
            silent.append(role)
    if silent:
        # Blocked inside a bounded call it announced (a Telegram request): busy, not hung.
        try:
            busy = supervisor.ask(QueryBusy(), timeout=timeout_s)
        except (pykka.Timeout, pykka.ActorDeadError):
            return silent
        if isinstance(busy, frozenset):
            silent = [role for role in silent if role not in busy]
    return silent
