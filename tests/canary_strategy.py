"""A strategy that looks for secrets: what third-party strategy code could read.

Loaded by import path like any trader's strategy (``tests.canary_strategy:Canary``). On
import (the config check's child imports it, and so does the node child) and on start
(in the node) it appends one JSON line to the file ``PAPER_CANARY_FILE`` names: its
pid, where it ran, and the names of every secret-looking variable it finds in
``os.environ`` and in ``/proc/self/environ`` (what the process was started with). It
then trades as the breakout it extends.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from tests.user_strategy import Breakout, BreakoutConfig

LOOKS_SECRET = re.compile(r"TOKEN|SECRET|PASSW|API_?KEY", re.IGNORECASE)


def report(where: str) -> None:
    target = os.environ.get("PAPER_CANARY_FILE")
    if not target:
        return
    started = Path("/proc/self/environ").read_bytes().split(b"\0")
    line = {
        "where": where,
        "pid": os.getpid(),
        "environ": sorted(n for n in os.environ if LOOKS_SECRET.search(n)),
        "proc": sorted(
            n
            for n in (e.partition(b"=")[0].decode(errors="replace") for e in started if e)
            if LOOKS_SECRET.search(n)
        ),
    }
    with open(target, "a") as f:
        f.write(json.dumps(line) + "\n")


report("import")


class CanaryConfig(BreakoutConfig, frozen=True):
    pass


class Canary(Breakout):
    def __init__(self, config: CanaryConfig) -> None:
        super().__init__(config)

    def on_start(self) -> None:
        report("start")
        super().on_start()
