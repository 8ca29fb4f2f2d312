"""The node child: one NautilusTrader ``TradingNode`` in a process of its own.

``entry.run`` is the spawn target; the child imports ``host`` (and with it NautilusTrader)
itself, so the supervisor's process never does. This package therefore exports only
what imports no Nautilus: the spawn target, the log scanner the parent reads the child's
output with, the breakers' equity marks, the bar series, the sizing arithmetic and the
parity comparison. ``host``, ``bridge``, ``replay``, ``lockstep``, ``strategy`` and
``venues`` are the child's own; ``backtest`` runs the parity report's backtest (with
Nautilus, in the report's process).
"""

from __future__ import annotations

from node.bars import BarSeries, BarSourceError, Ohlcv
from node.entry import redirect_output, run
from node.logscan import ErrorFilter, LogRecord, LogScanner
from node.marks import EquityMarks
from node.parity import Divergence, Parity, ParityJson, as_json, compare, render
from node.reconcile import compare_with_checkpoint
from node.sizing import position_size

__all__ = [
    "BarSeries",
    "BarSourceError",
    "Divergence",
    "EquityMarks",
    "ErrorFilter",
    "LogRecord",
    "LogScanner",
    "Ohlcv",
    "Parity",
    "ParityJson",
    "as_json",
    "compare",
    "compare_with_checkpoint",
    "position_size",
    "redirect_output",
    "render",
    "run",
]
