"""The spawn target of the node child, importable without importing Nautilus.

The parent only names this function; the child imports the node host (and with it
NautilusTrader, pyarrow and pandas) itself, so none of that lands in the
supervisor's memory.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

from actors.messages import NodeCommand, NodeEvent
from actors.settings import NodeSettings


def run(conn: Connection[NodeEvent, NodeCommand], settings: NodeSettings) -> None:
    from actors.node.host import run_node

    run_node(conn, settings)
