"""The Trades page's chart built in a child process with a time limit and a memory bound.

Rebuilding a replay's bars runs a synthetic walk or reads a file, and reading a
recording loads NautilusTrader's catalog: seconds for a long session, and once (a preset
of ``bars = 10**9``, before settings had bounds) hours of CPU and tens of GB inside the
dashboard's own process, where a page render cannot be interrupted and every other
viewer waits. So the page hands the child what the session played (``Played``: its
settings, cursor and fills, as the page read them) on stdin and takes the drawn window
(``TradeChart``) back on stdout, both as JSON by pydantic. The child builds only the
bars the session played (``sessions.trades.played_steps``), gets no secret
(``protocol.child_environment``), limits its own address space (``CHART_MEMORY_BYTES``)
and is killed after ``CHART_TIMEOUT_S``; the page then draws the fills alone with one
line saying why. The child's answer is kept per what it was asked
(``functools.lru_cache``), so a page redrawing itself every few seconds starts a child
only when the session has played on.
"""

from __future__ import annotations

import functools
import os
import resource
import signal
import subprocess
import sys
from dataclasses import dataclass

from pydantic import TypeAdapter

from protocol import child_environment
from sessions.trades import CAP, TradeChart, trade_chart
from storage import Played

CHART_TIMEOUT_S = 60.0
# Address space, not resident memory: NautilusTrader's runtime reserves ~2 GiB of it on
# import (300 MB resident); the bars of a session at its bounds are a few hundred MB more.
CHART_MEMORY_BYTES = 8 * 2**30


@dataclass(frozen=True, slots=True)
class ChartRequest:
    played: Played
    instrument_id: str
    cap: int = CAP
    end: int | None = None


REQUEST = TypeAdapter(ChartRequest)
CHART = TypeAdapter(TradeChart)


def child_chart(
    played: Played,
    instrument_id: str,
    end: int | None = None,
    timeout_s: float | None = None,
) -> TradeChart:
    """``sessions.trades.trade_chart`` run in a child; the fills alone with a note when
    the child is out of time (``CHART_TIMEOUT_S`` unless given) or fails."""
    limit = CHART_TIMEOUT_S if timeout_s is None else timeout_s
    return _cached(ChartRequest(played, instrument_id, CAP, end), limit, sys.executable)


@functools.lru_cache(maxsize=8)
def _cached(request: ChartRequest, timeout_s: float, python: str) -> TradeChart:
    try:
        done = subprocess.run(
            [python, "-m", "sessions.chart"],
            input=REQUEST.dump_json(request),
            env=child_environment(os.environ),  # its settings name strategy modules: no secret
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return _without_bars(
            request, f"the bars were not drawn: building them took longer than {timeout_s:g} s"
        )
    if done.returncode < 0:  # an allocation past its bound aborts NautilusTrader's Rust
        name = signal.Signals(-done.returncode).name
        return _without_bars(
            request,
            f"the bars were not drawn: the child building them ended on {name} "
            f"(its memory is bounded to {CHART_MEMORY_BYTES / 2**30:g} GiB of address space)",
        )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit code {done.returncode}"
        return _without_bars(request, f"the bars were not drawn: {why}")
    return CHART.validate_json(done.stdout)


def _without_bars(request: ChartRequest, note: str) -> TradeChart:
    fills = tuple(f for f in request.played.fills if f.instrument_id == request.instrument_id)
    return TradeChart(request.instrument_id, (), fills, 0, 0, (note,))


def main() -> None:
    """The child: a ``ChartRequest`` on stdin, its ``TradeChart`` on stdout."""
    resource.setrlimit(resource.RLIMIT_AS, (CHART_MEMORY_BYTES, CHART_MEMORY_BYTES))
    request = REQUEST.validate_json(sys.stdin.buffer.read())
    chart = trade_chart(request.played, request.instrument_id, request.cap, request.end)
    sys.stdout.buffer.write(CHART.dump_json(chart))


if __name__ == "__main__":
    main()
