"""Which CPUs the node child and the supervisor run on (``[service] node_cpus``).

Measured with 20 strategies on a 2-core host (issue 29): while the node child works
through a busy bar on one core, the scheduler wakes the supervisor's threads on that
same core - the pipe reader that takes a fill waits behind the node for its time slice
(our part of a fill, bridge to checkpointer: p99 median 7.75 ms, 1.66 ms on separate
cores, 5 runs each), and the node is pre-empted by the supervisor's threads in turn (a
fill's whole latency, bar to parent: p99 median 67.6 ms, 63.7 ms). Disjoint CPU sets
end both. Off by default: several services on one host each naming the same CPU would
pile every node onto it.

Linux sets affinity per thread and a new thread inherits its creator's, so a process is
pinned by pinning each of its threads that exist now.
"""

from __future__ import annotations

import os

__all__ = ["pin_process", "supervisor_cpus", "usable_cpus"]


def usable_cpus() -> frozenset[int]:
    """The CPUs this process may run on (a systemd ``CPUAffinity=`` narrows them)."""
    return frozenset(os.sched_getaffinity(0))


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
