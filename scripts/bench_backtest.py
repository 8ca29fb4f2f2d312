"""The BacktestEngine anchor for the replay throughput benchmark (run in its own process:
NautilusTrader's logger is process-global).

The very backtest the parity report runs (``node.backtest``): the same venue config,
instrument, bars and strategy as the lockstep replay it is set beside.
"""

from __future__ import annotations

import json
import sys

from node.backtest import run_backtest
from protocol import NodeSettings, ReplaySettings


def run(bars: int) -> float:
    """Bars per second for the default strategy on the seeded synthetic series."""
    settings = NodeSettings(trader_id="BACKTEST-001", replay=ReplaySettings(bars=bars))
    outcome = run_backtest(settings)
    return outcome.bars / outcome.elapsed_s


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]))))
