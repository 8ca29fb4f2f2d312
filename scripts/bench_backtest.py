"""The BacktestEngine anchor for the replay throughput benchmark (run in its own process)."""

from __future__ import annotations

import time
from decimal import Decimal

from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.config import LoggingConfig
from nautilus_trader.model.currencies import USDT
from nautilus_trader.model.data import Bar
from nautilus_trader.model.enums import AccountType, OmsType
from nautilus_trader.model.identifiers import Venue
from nautilus_trader.model.objects import Money

from node.bars import synthetic
from node.replay import bar_type_for, make_instrument
from node.strategy import EmaCross, EmaCrossConfig
from protocol import ReplaySettings, RiskLimits, SizingSettings, StrategySettings

INSTRUMENT = "BTCUSDT-PERP.BINANCE"


def run(bars: int) -> float:
    """Bars per second for the default EMA-cross strategy on the seeded synthetic series."""
    engine = BacktestEngine(
        BacktestEngineConfig(trader_id="BACKTEST-001", logging=LoggingConfig(log_level="ERROR"))
    )
    engine.add_venue(
        venue=Venue("BINANCE"),
        oms_type=OmsType.NETTING,
        account_type=AccountType.MARGIN,
        starting_balances=[Money(100_000, USDT)],
        default_leverage=Decimal(3),
    )
    instrument = make_instrument(INSTRUMENT)
    engine.add_instrument(instrument)
    bar_type = bar_type_for(INSTRUMENT, 1)
    series = synthetic(ReplaySettings(bars=bars), instrument.price_precision)
    start = 1_700_000_000 * 10**9
    data = [
        Bar(
            bar_type,
            instrument.make_price(row.open),
            instrument.make_price(row.high),
            instrument.make_price(row.low),
            instrument.make_price(row.close),
            instrument.make_qty(row.volume),
            start + i * 60 * 10**9,
            start + i * 60 * 10**9,
        )
        for i, row in enumerate(series)
    ]
    engine.add_data(data)
    engine.add_strategy(
        EmaCross(
            EmaCrossConfig.build(
                instrument_id=INSTRUMENT,
                bar_type=str(bar_type),
                strategy=StrategySettings(),
                sizing=SizingSettings(),
                risk=RiskLimits(),
            )
        )
    )
    t0 = time.perf_counter()
    engine.run()
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return len(data) / elapsed


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(int(sys.argv[1]))))
