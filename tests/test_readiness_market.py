"""The readiness report's market criteria: QuantConnect's reconciliation scores of a
live-feed session against the backtest of its recording, and its fills matched."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from protocol import BarMark, Outcome, ReadinessSettings, Trade
from storage.readiness.evidence import SessionOps
from storage.readiness.market import (
    MarketParity,
    daily_returns,
    equity_curve,
    market_parity,
    match_fills,
)
from storage.readiness.stats import annualized_dtw, dtw_distance, returns_correlation
from storage.readiness.verdict import Status, _market

DAY = 86_400 * 1_000_000_000
D = Decimal


def test_dtw_is_a_hand_computation_and_annualized_as_quantconnect_does():
    """a = 0, .01, 0, .02 and b = 0, 0, .01, .02: the cheapest warping path pairs
    (a0,b0) (a0,b1) (a1,b2) (a2,b2) (a3,b3), costs 0 + 0 + 0 + .01^2 + 0, so DTW =
    sqrt(.0001) = .01; annualized |(1 + .01/4)^252 - 1| (QuantConnect's formula)."""
    a, b = [0.0, 0.01, 0.0, 0.02], [0.0, 0.0, 0.01, 0.02]
    assert dtw_distance(a, b) == pytest.approx(0.01, abs=1e-12)
    assert annualized_dtw(a, b) == pytest.approx((1 + 0.01 / 4) ** 252 - 1, abs=1e-12)
    assert annualized_dtw(a, a) == 0.0
    # The Sakoe-Chiba band of radius 3: a spike 3 days late is warped onto its twin, one
    # 4 days late is not (two unit costs: sqrt(2)).
    spike = [0.0] * 10
    late3, late4 = list(spike), list(spike)
    spike[2], late3[5], late4[6] = 1.0, 1.0, 1.0
    assert dtw_distance(spike, late3) == 0.0
    assert dtw_distance(spike, late4) == pytest.approx(math.sqrt(2))


def test_returns_correlation_is_pearsons_by_hand():
    """x = 1, 2, 3 and y = 2, 4, 7: deviations -1, 0, 1 and -7/3, -1/3, 8/3; r =
    5 / sqrt(2 * 114/9)."""
    assert returns_correlation([1, 2, 3], [2, 4, 7]) == pytest.approx(
        5 / math.sqrt(2 * 114 / 9), abs=1e-12
    )
    assert returns_correlation([1, 1, 1], [2, 4, 7]) is None


def marks(*closes: str, per_day: int = 2) -> tuple[BarMark, ...]:
    return tuple(
        BarMark(i // per_day * DAY + (i % per_day + 1) * 1_000_000_000, D(c))
        for i, c in enumerate(closes)
    )


def trade(bar: int, side: str, qty: str, price: str, fee: str = "0") -> Trade:
    return Trade(bar, side, D(qty), D(price), D(fee))


def test_both_curves_are_valued_at_the_backtests_bars_and_sampled_daily():
    bars = marks("100", "110", "120", "90", "100", "100")  # 3 days, 2 bars each
    # Bought 1 after bar 1 at 101 (fee 1): cash 898 plus the position at each close
    # (100, 110, 120); sold after bar 4 at 89: 898 + 89 = 987, flat.
    trades = [trade(1, "BUY", "1", "101", "1"), trade(4, "SELL", "1", "89")]
    curve = equity_curve(trades, bars, D(1000))
    assert [e for _, e in curve] == [D(998), D(1008), D(1018), D(987), D(987), D(987)]
    returns = daily_returns(curve, D(1000))
    assert returns == pytest.approx([8 / 1000, -21 / 1008, 0.0])


def test_fills_are_matched_in_order_by_side_within_a_bar_and_priced_in_bps():
    ours = [trade(3, "BUY", "1", "100.10"), trade(9, "SELL", "1", "99"), trade(20, "BUY", "1", "1")]
    theirs = [
        trade(2, "BUY", "1", "100"),
        trade(9, "BUY", "1", "99"),
        trade(10, "SELL", "1", "99.5"),
    ]
    pairs = match_fills(ours, theirs)
    assert [(a.bar, b.bar) for a, b in pairs] == [(3, 2), (9, 10)]
    bars = marks(*["100"] * 24)
    result = market_parity(
        Outcome(tuple(ours), D(0), D(0), D(0), "USDT", 24),
        Outcome(tuple(theirs), D(0), D(0), D(0), "USDT", 24, marks=bars),
        D(1000),
    )
    assert (result.matched, result.session_fills, result.backtest_fills) == (2, 3, 3)
    assert result.match_rate == pytest.approx(2 / 3)
    # +10 bps (bought dearer), +50.25 bps (sold cheaper): the median of the two.
    assert result.median_price_bps == pytest.approx((10 + 0.5 / 99.5 * 10_000) / 2)
    assert result.days == 12


SANDBOX = SessionOps("SB-1", "binance-sandbox", 0, 0, 0, 0)


def by_key(criteria):
    return {c.key: c for c in criteria}


def test_the_criteria_pass_fail_wait_and_say_where_to_see_them():
    settings = ReadinessSettings()
    good = MarketParity(20, 0.93, 0.05, 10, 10, 10, 0.4)
    got = by_key(_market(SANDBOX, good, settings))
    assert [got[k].status for k in ("correlation", "dtw", "trade_match", "fill_price")] == [
        Status.PASS
    ] * 4
    bad = by_key(_market(SANDBOX, MarketParity(20, 0.5, 0.35, 10, 12, 6, 8.0), settings))
    assert "below by 0.300" in bad["correlation"].detail
    assert "above by 15.00 points" in bad["dtw"].detail
    assert bad["trade_match"].figure == 0.5 and bad["trade_match"].status is Status.FAIL
    assert "above by 3.00 bps" in bad["fill_price"].detail
    short = by_key(_market(SANDBOX, MarketParity(2, 1.0, 0.0, 3, 3, 3, 0.0), settings))
    assert short["correlation"].status is Status.WAIT
    assert short["dtw"].detail == "needs 3 more days of returns beside the backtest"
    assert short["trade_match"].status is Status.PASS
    # Telegram and the alerter run no backtest: one n/a criterion pointing at the CLI.
    (pointer,) = _market(SANDBOX, None, settings)
    assert pointer.status is Status.NA and "paper-node report readiness" in pointer.detail
