"""The spawn target of the node child, importable without importing Nautilus.

The parent only names this function; the child imports the node host (and with it
NautilusTrader, pyarrow and pandas) itself, so none of that lands in the
supervisor's memory.
"""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection

from protocol import NodeCommand, NodeEvent, NodeSettings


def run(
    conn: Connection[NodeEvent, NodeCommand],
    settings: NodeSettings,
    log_conn: Connection[bytes, bytes] | None = None,
) -> None:
    started_at = time.monotonic()
    redirect_output(log_conn)
    from node.host import run_node

    run_node(conn, settings, started_at)


def redirect_output(log_conn: Connection[bytes, bytes] | None) -> None:
    """The node's fds 1 and 2 onto the parent's log pipe (see ``run``)."""
    if log_conn is not None:
        # Everything the node prints - NautilusTrader's log lines from its Rust loggers
        # (ERROR on fd 2, WARN and below on fd 1), Python tracebacks - goes to the
        # parent, which echoes and classifies it (``node.logscan``). Done before
        # Nautilus is imported: its loggers keep the descriptors they find.
        os.dup2(log_conn.fileno(), 1)
        os.dup2(log_conn.fileno(), 2)
        log_conn.close()
