"""Which CPUs the node child and the supervisor run on.

The supervisor's threads share one CPU (``place_supervisor``, at every start). On this VM
an idle vCPU halts, and a thread woken on another CPU than its waker starts 0.6-1.0 ms
later (cpuidle haltpoll, guest_halt_poll_ns=0): a fill's hop from the pipe thread to the
checkpointer's mailbox landed there for about one fill in three, and our part of a fill
(bridge to checkpointer, one strategy) read p99 1.6-1.7 ms; with the supervisor's threads
on one CPU that hop is a switch on the same core, p99 0.8-1.0 ms (issue 29). The
supervisor is one Python process whose threads take turns holding the GIL, so a second
CPU gave it little. Which CPU: one of those it may use, by its pid, so that services on
one host spread out. Processes it starts get every CPU it had (``started_wide``): the
node child runs anywhere, or on ``[service] node_cpus``.

``node_cpus`` measured with 20 strategies on a 2-core host: while the node child works
through a busy bar on one core, the scheduler wakes the supervisor's threads on that
same core - the pipe reader that takes a fill waits behind the node for its time slice
(our part of a fill, bridge to checkpointer: p99 median 7.75 ms, 1.66 ms on separate
cores, 5 runs each), and the node is pre-empted by the supervisor's threads in turn (a
fill's whole latency, bar to parent: p99 median 67.6 ms, 63.7 ms). Disjoint CPU sets
end both. Off by default: several services on one host each naming the same CPU would
pile every node onto it.

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
    "started_wide",
    "supervisor_cpus",
    "unplace_supervisor",
    "usable_cpus",
]


class _Placement:
    """The CPUs this process could use before ``place_supervisor`` took one (None: not
    placed): what the processes it starts get. Affinity is process state, so this is."""

    wide: frozenset[int] | None = None


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


def place_supervisor(node_cpus: tuple[int, ...] = (), pid: int | None = None) -> int:
    """Every thread of this process, and every thread they start, onto one CPU: one of
    those it may use (less ``node_cpus``), chosen by ``pid`` (this process's); that CPU.
    Again after ``unplace_supervisor`` or a second time, it chooses among the same CPUs."""
    choices = sorted(supervisor_cpus(node_cpus) if node_cpus else usable_cpus())
    _placed.wide = usable_cpus()
    home = choices[(os.getpid() if pid is None else pid) % len(choices)]
    pin_process(frozenset({home}))
    return home


def unplace_supervisor() -> None:
    """Every thread of this process back onto the CPUs it had before it was placed (a
    benchmark that measures the service's placement, then goes on)."""
    if _placed.wide is not None:
        pin_process(_placed.wide)
        _placed.wide = None


@contextmanager
def started_wide() -> Iterator[None]:
    """A process started inside this block gets every CPU the supervisor had before it
    took one (it inherits its starting thread's): this thread widens, then returns."""
    wide = _placed.wide
    if wide is None:
        yield
        return
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, wide)
    try:
        yield
    finally:
        os.sched_setaffinity(0, own)
