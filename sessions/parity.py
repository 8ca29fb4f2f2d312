"""The parity report for the dashboard: ``paper-node report parity --json`` as a child.

A child process, not a call: the report imports NautilusTrader and runs a backtest
(seconds to minutes), which the dashboard's process should neither load nor wait on
inside a page render it cannot interrupt; a child is bounded by a timeout and killed
on it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from node import ParityJson
from protocol import child_environment
from sessions.launcher import RUN_SCRIPT

REPORT_TIMEOUT_S = 600.0


@dataclass(frozen=True, slots=True)
class ParityOutcome:
    """The report, or why there is none (the command's own words)."""

    report: ParityJson | None
    error: str | None = None


def run_parity(
    db: Path, trader_id: str, python: str = sys.executable, timeout_s: float = REPORT_TIMEOUT_S
) -> ParityOutcome:
    command = [python, str(RUN_SCRIPT), "report", "parity", "--db", str(db), "--json"]
    try:
        done = subprocess.run(
            [*command, "--trader", trader_id],
            env=child_environment(os.environ),  # the backtest runs strategy code: no secret
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ParityOutcome(None, f"the report took longer than {timeout_s:.0f} s")
    if done.returncode not in (0, 6):  # 6: a report that found differences
        lines = (done.stderr or done.stdout).strip().splitlines()
        return ParityOutcome(None, lines[-1] if lines else f"exit code {done.returncode}")
    report: ParityJson = json.loads(done.stdout)
    return ParityOutcome(report)
