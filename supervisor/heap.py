"""The supervisor's start-up heap, out of the garbage collector's sight.

A full collection walks every object the process holds, with the GIL, so while it runs
no actor and no pipe thread moves: the supervisor's 88k objects after its start took
27-44 ms a collection on this machine, and a full collection comes every few tens of
thousands of objects that outlive two younger collections - the decoded snapshots of one
checkpoint a second do. A fill or a halt that met one waited for it (issue 29: our part
of a fill p99 up to 33 ms with 20 strategies, where the median was 0.2 ms). What the
process imported and built to start lives as long as it does: frozen, a full collection
walks only what came after (0.0 ms measured right after the freeze). The node child
does the same once its node is built (``node.host``).
"""

from __future__ import annotations

import gc

__all__ = ["freeze_heap"]


def freeze_heap() -> None:
    """Every object this process holds now, out of the collector's sight for good."""
    gc.freeze()
