"""Trade statistics on a fixed list of fills whose round trips, PnL and ratios are worked
out by hand below, and held against NautilusTrader's own statistics on the same numbers.

The fills (one strategy, one instrument, a 1000 USDT account):
  day 0 10:00 BUY 1 @ 100 fee 0.1; 12:00 SELL 1 @ 110 fee 0.1   -> trip 1 long:  10 - 0.2 = 9.8
  day 1 10:00 SELL 2 @ 110 fee 0.2; 16:00 funding +0.5 (received)
  day 2 10:00 BUY 3 @ 105 fee 0.3 (2 close the short, 1 opens a long; fee 0.2 / 0.1)
                                                      -> trip 2 short: 10 - 0.4 + 0.5 = 10.1
  day 3 10:00 SELL 1 @ 95 fee 0.1                     -> trip 3 long: -10 - 0.2 = -10.2
Balance at each day's end: 1009.8, 1010.1, 1019.8, 1009.7.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from fractions import Fraction
from itertools import pairwise
from math import sqrt

import pytest
from nautilus_trader.analysis import Expectancy, ProfitFactor, SharpeRatio, SortinoRatio, WinRate

from storage import Fill, FundingPayment, round_trips, trade_report

D = Decimal
H = 3600 * 10**9
DAY0 = 1_704_067_200 * 10**9  # 2024-01-01 00:00 UTC


def fill(side: str, qty: str, price: str, fee: str, day: int, hour: int) -> Fill:
    return Fill(
        "S-001",
        "BTCUSDT-PERP.BINANCE",
        side,
        D(qty),
        D(price),
        D(fee),
        DAY0 + day * 24 * H + hour * H,
    )


FILLS = [
    fill("BUY", "1", "100", "0.1", 0, 10),
    fill("SELL", "1", "110", "0.1", 0, 12),
    fill("SELL", "2", "110", "0.2", 1, 10),
    FundingPayment("S-001", "BTCUSDT-PERP.BINANCE", D("0.5"), DAY0 + 24 * H + 16 * H),
    fill("BUY", "3", "105", "0.3", 2, 10),
    fill("SELL", "1", "95", "0.1", 3, 10),
]


def report():
    return trade_report("T-1", "USDT", D(1000), round_trips(FILLS))


def test_round_trips_by_hand():
    trips = round_trips(FILLS).closed
    assert [t.direction for t in trips] == ["LONG", "SHORT", "LONG"]
    assert [t.gross_pnl for t in trips] == [D(10), D(10), D(-10)]
    assert [t.fees for t in trips] == [D("0.2"), D("0.4"), D("0.2")]
    assert [t.funding for t in trips] == [0, D("0.5"), 0]
    assert [t.pnl for t in trips] == [D("9.8"), D("10.1"), D("-10.2")]
    assert [t.entry_price for t in trips] == [100, 110, 105]
    assert [t.exit_price for t in trips] == [110, 105, 95]
    assert [t.quantity for t in trips] == [1, 2, 1]
    assert [t.duration_s for t in trips] == [7200.0, 86400.0, 86400.0]
    assert not round_trips(FILLS).still_open


def test_statistics_by_hand():
    stats = report()["overall"]
    assert (stats["trades"], stats["wins"], stats["losses"]) == (3, 2, 1)
    assert stats["win_rate"] == D(2) / 3
    assert stats["net_pnl"] == D("9.7")
    assert stats["fees"] == D("0.8") and stats["funding"] == D("0.5")
    assert stats["profit_factor"] == D("19.9") / D("10.2")
    assert stats["expectancy"] == pytest.approx(D("9.7") / 3, abs=D("1e-20"))
    # Daily returns over the balances 1000 -> 1009.8 -> 1010.1 -> 1019.8 -> 1009.7.
    balances = [
        Fraction(1000),
        Fraction("1009.8"),
        Fraction("1010.1"),
        Fraction("1019.8"),
        Fraction("1009.7"),
    ]
    returns = [float(b / a - 1) for a, b in pairwise(balances)]
    mean = sum(returns) / 4
    sd = sqrt(sum((r - mean) ** 2 for r in returns) / 3)
    assert float(stats["sharpe"]) == pytest.approx(mean / sd * sqrt(252), rel=1e-12)
    downside = sqrt(sum(r * r for r in returns if r < 0) / 4)
    assert float(stats["sortino"]) == pytest.approx(mean * 252 / (downside * sqrt(252)), rel=1e-12)
    # The deepest fall: from 1019.8 (day 2 10:00) to 1009.7 (day 3 10:00), not recovered:
    # 24 h so far. (A longer, shallower one - 1009.8 on day 0 12:00 to 1010.1 on day 1
    # 16:00, 28 h - is not the max drawdown's duration.)
    assert stats["max_drawdown"] == D("-10.1")
    assert stats["max_drawdown_pct"] == D("-10.1") / D("1019.8") * 100
    assert stats["max_drawdown_s"] == 24 * 3600.0
    # In a position 2 h + 24 h + 24 h of the 72 h from the first fill to the last.
    assert stats["exposure_pct"] == D(50) * 100 / 72


def test_days_by_hand():
    days = report()["days"]
    assert [d["day"] for d in days] == ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
    assert [d["balance"] for d in days] == [D("1009.8"), D("1010.1"), D("1019.8"), D("1009.7")]
    assert [d["pnl"] for d in days] == [D("9.8"), D("0.3"), D("9.7"), D("-10.1")]
    assert [d["trades"] for d in days] == [1, 0, 1, 1]


def test_same_as_nautilus_statistics_on_the_same_numbers():
    """NautilusTrader's statistics (its Rust implementations) on the same round-trip PnLs
    and the same daily returns give the same numbers."""
    rep = report()
    stats = rep["overall"]
    pnls = [float(t["pnl"]) for t in rep["round_trips"]]
    assert WinRate().calculate_from_realized_pnls(pnls) == pytest.approx(float(stats["win_rate"]))
    assert Expectancy().calculate_from_realized_pnls(pnls) == pytest.approx(
        float(stats["expectancy"])
    )
    by_index = dict(enumerate(pnls))
    assert ProfitFactor().calculate_from_returns(by_index) == pytest.approx(
        float(stats["profit_factor"])
    )
    returns = {DAY0 + i * 24 * H: float(d["return_pct"]) / 100 for i, d in enumerate(rep["days"])}
    assert SharpeRatio(252).calculate_from_returns(returns) == pytest.approx(
        float(stats["sharpe"]), rel=1e-9
    )
    assert SortinoRatio(252).calculate_from_returns(returns) == pytest.approx(
        float(stats["sortino"]), rel=1e-9
    )


def test_partial_close_keeps_the_average_entry_and_an_open_position_is_not_counted():
    fills = [
        fill("BUY", "1", "100", "0", 0, 1),
        fill("BUY", "1", "110", "0", 0, 2),  # avg 105
        fill("SELL", "1", "120", "0", 0, 3),  # realizes 15, 1 left at 105
        fill("BUY", "1", "135", "0", 0, 4),  # avg (105 + 135) / 2 = 120
    ]
    book = round_trips(fills)
    assert not book.closed
    (still,) = book.still_open
    assert still.entry_price == 120 and still.gross_pnl == 15 and still.quantity == 2
    stats = trade_report("T-1", "USDT", D(1000), book)["overall"]
    assert stats["trades"] == 0 and stats["win_rate"] is None and stats["profit_factor"] is None


@pytest.mark.node
def test_a_replayed_sessions_round_trips_are_nautilus_positions_in_its_backtest(tmp_path):
    """A real replay (hourly bars over 80 days, the bundled strategy with its protective
    stop: longs, shorts, turns and stops): the round trips rebuilt from the stored fills
    are, one for one, the positions NautilusTrader's portfolio closed in the backtest of
    the same bars - same realized PnL - and its statistics on them give our numbers."""
    from cli.report import session_settings
    from node.backtest import run_backtest
    from storage import read_session, read_trade_report
    from tests.service import ServiceProcess, write_config

    config, db = write_config(
        tmp_path,
        trader="STATS-001",
        speed=0,
        replay="bars = 2000\nbar_minutes = 60\nstop_when_done = true",
    )
    service = ServiceProcess(config, db, tmp_path)
    try:
        assert service.wait(timeout=180) == 0
    finally:
        service.ensure_dead()
    record = read_session(db)
    report = read_trade_report(db)
    backtest = run_backtest(session_settings(record).settings, bars=record.outcome.bars)

    ours = sorted(t["pnl"] for t in report["round_trips"])
    theirs = sorted(backtest.closed_pnls)
    assert len(ours) == len(theirs) >= 10
    for a, b in zip(ours, theirs, strict=True):
        assert a == pytest.approx(b, abs=D("1e-6"))
    # The fills rebuild the balance the session checkpointed.
    assert report["balance"] == pytest.approx(record.outcome.balance, abs=D("1e-6"))
    stats = report["overall"]
    pnls = [float(p) for p in backtest.closed_pnls]
    assert float(stats["win_rate"]) == pytest.approx(WinRate().calculate_from_realized_pnls(pnls))
    assert float(stats["expectancy"]) == pytest.approx(
        Expectancy().calculate_from_realized_pnls(pnls)
    )
    assert float(stats["profit_factor"]) == pytest.approx(
        ProfitFactor().calculate_from_returns(dict(enumerate(pnls)))
    )
    # Dated by the series' time: 2000 hourly bars are more than 80 days.
    assert len(report["days"]) > 80 and stats["sharpe"] is not None


def test_a_turning_fill_splits_its_commission_by_quantity_and_strategies_keep_their_own():
    """A fill of 3 that closes 1 and opens 2 pays a third of its commission to the trip
    it closes; two strategies on one instrument overlap without netting each other."""
    a = [
        fill("BUY", "1", "100", "0.3", 0, 1),
        fill("SELL", "3", "103", "0.1", 0, 2),  # closes 1 (fee 0.0333...) opens 2 short
        fill("BUY", "2", "101", "0", 0, 5),
    ]
    b = [
        replace(f, strategy_id="S-002")
        for f in (fill("SELL", "1", "102", "0", 0, 3), fill("BUY", "1", "99", "0", 0, 4))
    ]
    # In the order they happened: S-002's trip sits inside S-001's second.
    book = round_trips(sorted([*a, *b], key=lambda f: f.at_ns))
    first, other, second = book.closed
    assert (first.strategy_id, other.strategy_id, second.strategy_id) == ("S-001", "S-002", "S-001")
    assert first.fees == D("0.3") + D("0.03333333")
    assert second.fees == D("0.1") - D("0.03333333")
    assert first.fees + second.fees == D("0.4")  # nothing lost to the split
    assert (first.gross_pnl, other.gross_pnl, second.gross_pnl) == (D(3), D(3), D(4))
    report = trade_report("T-1", "USDT", D(1000), book)
    assert report["strategies"]["S-002"]["net_pnl"] == D(3)
    assert report["strategies"]["S-001"]["net_pnl"] == D(7) - D("0.4")
    assert report["overall"]["net_pnl"] == D(10) - D("0.4")
    # Exposure: the account held a position from 01:00 to 05:00 of 01:00-05:00.
    assert report["overall"]["exposure_pct"] == 100
