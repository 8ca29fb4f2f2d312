"""``paper-node``: the command line's entry point.

It imports nothing heavy before it has kept pandas out of this process: the supervisor
never uses pandas, but sqlite-utils imports it when present (~100 MB of the
supervisor's memory). Only the node child (a spawn process that may import the module
that started it, and never calls ``main``), ``report parity``, which runs a backtest,
and ``report readiness``, which runs the same backtest for a live-feed session's market
criteria, need pandas for NautilusTrader (``report trades|stats`` read the database
only).
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    # These run a backtest: NautilusTrader needs pandas.
    if words[:2] not in (["report", "parity"], ["report", "readiness"]):
        sys.modules.setdefault("pandas", None)  # type: ignore[arg-type]
        # sqlite-utils imports numpy at its own import when it can (to store numpy
        # values, which we never pass): ~10 MB of the supervisor's memory. Held off for
        # that import only: a readiness report asked on Telegram still imports it.
        if "numpy" not in sys.modules:
            sys.modules["numpy"] = None  # type: ignore[assignment]
            try:
                import sqlite_utils  # noqa: F401
            finally:
                del sys.modules["numpy"]
    from cli.commands import main as run_command

    return run_command(argv)
