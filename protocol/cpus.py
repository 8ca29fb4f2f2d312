"""Which CPUs the node child and the supervisor run on.

The supervisor's threads share one CPU and the node child runs on the others
(``place_supervisor``, at every start; one of the CPUs the service may use, chosen by
its pid, so the services of a host spread out). Two things on this 2-vCPU VM (issue 29):

- An idle vCPU halts (cpuidle haltpoll, guest_halt_poll_ns=0), and a thread woken on
  another CPU than its waker starts 0.6-1.0 ms later: a fill's hop from the pipe thread
  to the checkpointer's mailbox landed there for about one fill in three, our part of a
  fill (bridge to checkpointer, one strategy) p99 1.6-1.7 ms. On one CPU that hop is a
  switch on the same core: p99 0.6-1.5 ms over 10 runs of 30 s.
- While a busy node child (20 strategies) works through a bar on the supervisor's core,
  the pipe reader that takes a fill waits behind it for its time slice: our part p99
  4.6-10.7 ms with the child anywhere, 1.8-4.7 ms on the other core (4 runs each).

The supervisor is one Python process whose threads take turns holding the GIL, and the
node child one whose strategies do: a CPU each is what each can use. ``[service]
node_cpus`` names the child's CPUs instead (the supervisor then on one of the rest).
On a single CPU both share it.

Linux sets affinity per thread and a new thread (or process) inherits its creator's, so
a process is pinned by pinning each of its threads that exist now.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "pin_process",
    "place_supervisor",
    "starting_node_child",
    "supervisor_cpus",
    "unplace_supervisor",
    "usable_cpus",
]


class _Placement:
    """The CPUs this process could use before ``place_supervisor`` took one (None: not
    placed), and the one it took. Affinity is process state, so this is."""

    wide: frozenset[int] | None = None
    home: int | None = None


_placed = _Placement()


def usable_cpus() -> frozenset[int]:
    """The CPUs this process may run on (a systemd ``CPUAffinity=`` narrows them), the
    supervisor's own one CPU aside: what it had before it was placed."""
    wide = _placed.wide
    return wide if wide is not None else frozenset(os.sched_getaffinity(0))


def supervisor_cpus(node_cpus: tuple[int, ...]) -> frozenset[int]:
    """The CPUs left for the supervisor once the node child has ``node_cpus``; a
    ``ValueError`` names what cannot be: a CPU this process may not use, or none left."""
    usable = usable_cpus()
    foreign = sorted(set(node_cpus) - usable)
    if foreign:
        raise ValueError(
            f"CPU {', '.join(map(str, foreign))} is not one this service may run on "
            f"(usable: {', '.join(map(str, sorted(usable)))})"
        )
    left = usable - set(node_cpus)
    if not left:
        raise ValueError(
            f"node_cpus takes every CPU this service may run on "
            f"({', '.join(map(str, sorted(usable)))}): leave at least one for the supervisor"
        )
    return left


def pin_process(cpus: frozenset[int] | tuple[int, ...]) -> None:
    """Every thread of this process, and every thread they start, onto ``cpus``."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue


def place_supervisor(node_cpus: tuple[int, ...] = ()) -> int:
    """Every thread of this process, and every thread they start, onto one CPU: one of
    those it may use (less ``node_cpus``), chosen by its pid; that CPU.
    Again after ``unplace_supervisor`` or a second time, it chooses among the same CPUs."""
    choices = sorted(supervisor_cpus(node_cpus) if node_cpus else usable_cpus())
    _placed.wide = usable_cpus()
    home = choices[os.getpid() % len(choices)]
    _placed.home = home
    pin_process(frozenset({home}))
    return home


def unplace_supervisor() -> None:
    """Every thread of this process back onto the CPUs it had before it was placed (a
    benchmark that measures the service's placement, then goes on)."""
    if _placed.wide is not None:
        pin_process(_placed.wide)
    _placed.wide = _placed.home = None


def _node_child_cpus() -> frozenset[int]:
    """Where a node child without ``node_cpus`` runs: every CPU the service may use but
    the supervisor's (all of them on a single CPU, or when this process is not placed)."""
    usable = usable_cpus()
    home = _placed.home
    return usable - {home} if home is not None and len(usable) > 1 else usable


@contextmanager
def starting_node_child() -> Iterator[None]:
    """A process started inside this block runs on ``_node_child_cpus()`` (it inherits
    its starting thread's CPUs): this thread moves there, then back."""
    if _placed.home is None:
        yield
        return
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, _node_child_cpus())
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)
