"""``paper-node``: the command line's entry point.

It imports nothing heavy before it has kept pandas out of this process: the supervisor
never uses pandas, but sqlite-utils imports it when present (~100 MB of the
supervisor's memory). Only the node child (a spawn process that may import the module
that started it, and never calls ``main``) and ``report parity``, which runs a backtest,
need pandas for NautilusTrader (``report trades|stats`` read the database only).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if words[:2] != ["report", "parity"]:  # it runs a backtest: NautilusTrader needs pandas
        sys.modules.setdefault("pandas", None)  # type: ignore[arg-type]
    from cli.commands import main as run_command

    return run_command(argv)
