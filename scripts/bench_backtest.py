"""The BacktestEngine anchor for the replay throughput benchmark (run in its own process:
NautilusTrader's logger is process-global).

The very backtest the parity report runs (``node.backtest``): the same venue config,
instrument, bars and strategy as the lockstep replay it is set beside - without the
market-time breakers the replay's node judges at every bar, which a trader's own backtest
does not run: the node's extra work counts against it.
"""

from __future__ import annotations

import json
import sys

from node.backtest import run_backtest
from protocol import NodeSettings, ReplaySettings


def run(bars: int) -> float:
    """Bars per second for the default strategy on the seeded synthetic series."""
    settings = NodeSettings(trader_id="BACKTEST-001", replay=ReplaySettings(bars=bars))
    # BacktestEngine and the strategy alone: the node's own breakers are its extra work.
    outcome = run_backtest(settings, breakers=False)
    return outcome.bars / outcome.elapsed_s


if __name__ == "__main__":
    print(json.dumps(run(int(sys.argv[1]))))
