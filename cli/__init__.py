"""The command line, ``paper-node``: above the service, beside the dashboard.

``main`` is light on purpose (see ``cli.entry``): the commands themselves
(``cli.commands``) are imported only once pandas is kept out of the process.
"""

from __future__ import annotations

from cli.entry import main

__all__ = ["main"]
