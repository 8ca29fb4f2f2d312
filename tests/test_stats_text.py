"""The operator's text of a trade report: the hand-computed example of
``test_trade_stats`` as it reads, rounding for display only, and every section inside
one Telegram message however long the session."""

from __future__ import annotations

from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from actors.telegram_types import BadArgument, no_argument, row_count
from storage import (
    MAX_DAYS,
    MAX_TRADES,
    Fill,
    FundingPayment,
    balance_text,
    daily_text,
    performance_text,
    profit_text,
    round_trips,
    stats_text,
    trade_report,
    trades_text,
)
from storage.stats_text import duration, exact, money, ratio
from tests.test_trade_stats import FILLS, H, fill
from tests.test_trade_stats import report as hand_report

D = Decimal
TELEGRAM_LIMIT = 4096


def test_the_hand_computed_example_reads_as_worked_out():
    text = profit_text(hand_report())
    assert text.splitlines() == [
        "Profit - T-1 (USDT)",
        "Round trips: 3 (2 won, 1 lost)",
        "Win rate: 66.67%",
        "Net PnL: +9.70 (gross profit 19.90, gross loss -10.20)",
        "Fees: 0.80, funding: +0.50",
        "Profit factor: 1.95, expectancy: +3.23",  # 19.9 / 10.2; 9.7 / 3
        "Avg win: +9.95, avg loss: -10.20",
        "Best: +10.10, worst: -10.20",
        "Avg duration: 16h 40m",  # (2 h + 24 h + 24 h) / 3
        "Sharpe: 4.16, Sortino: 7.85 (daily returns)",
        "Max drawdown: -10.10 (-0.99%), 1d 0h",  # 1019.8 -> 1009.7, not recovered: 24 h
        "Exposure: 69.44%",  # 50 h of 72
        "Return: +0.97% of 1000.00",  # 9.70 of the starting balance
    ]


def test_days_trades_balance_and_performance_of_the_example():
    report = hand_report()
    assert daily_text(report, 2).splitlines() == [
        "Daily - T-1, last 2 of 4 days (USDT)",
        "2024-01-03: +9.70 (+0.96%), 1 round trip, 1 won, fees 0.40, funding +0.50, "
        "balance 1019.80",
        "2024-01-04: -10.10 (-0.99%), 1 round trip, 0 won, fees 0.20, funding 0.00, "
        "balance 1009.70",
    ]
    assert trades_text(report, 1).splitlines() == [
        "Round trips - T-1, last 1 of 3 (USDT)",
        "#3 LONG 1 BTCUSDT-PERP.BINANCE [S-001]: -10.20",
        "  105 -> 95, closed 2024-01-04 10:00:00, held 1d 0h, fees 0.20",
    ]
    assert "#2 SHORT 2 BTCUSDT-PERP.BINANCE [S-001]: +10.10\n  110 -> 105, closed " in (
        trades_text(report, 5)
    )
    assert balance_text(report).splitlines() == [
        "Balance - T-1 (USDT)",
        "Starting balance: 1000.00",
        "Balance: 1009.70 (+9.70, +0.97%; realized: fills, fees, funding)",
        "S-001: +9.70 over 3 round trips",
    ]
    assert performance_text(report).splitlines()[1] == (
        "S-001: +9.70 over 3 round trips, win rate 66.67%, profit factor 1.95, "
        "expectancy +3.23, max drawdown -10.10 (-0.99%), fees 0.80, funding +0.50, "
        "exposure 69.44%, return +0.97% of its capital 1000.00"
    )
    # With a capital of its own, its return and its drawdown % are of that (10.10 of
    # its peak 519.80).
    own = trade_report("T-1", "USDT", D(1000), round_trips(FILLS), {"S-001": D(500)})
    assert (
        performance_text(own)
        .splitlines()[1]
        .endswith(
            "max drawdown -10.10 (-1.94%), fees 0.80, funding +0.50, exposure 69.44%, "
            "return +1.94% of its capital 500.00"
        )
    )
    assert own["overall"]["return_pct"] == D("0.97"), "the account's: of its starting balance"
    sections = stats_text(report, 2).split("\n\n")
    assert sections == [
        profit_text(report),
        balance_text(report),
        performance_text(report),
        daily_text(report, 2),
    ]


def test_an_open_position_is_shown_and_what_it_cost_is_set_apart_in_the_balance():
    opened = [*FILLS, fill("BUY", "2", "100", "0.25", 4, 10)]
    report = trade_report("T-1", "USDT", D(1000), round_trips(opened))
    assert profit_text(report).endswith("\nOpen: 1 position (not counted)")
    assert trades_text(report).endswith(
        "\nOpen: LONG 2 BTCUSDT-PERP.BINANCE [S-001] @ 100 since 2024-01-05 10:00:00, fees 0.25"
    )
    balance = balance_text(report).splitlines()
    assert balance[2].startswith("Balance: 1009.45 (+9.45,")
    assert balance[3:] == [
        "S-001: +9.70 over 3 round trips",
        "Not in a closed round trip yet: -0.25",
    ]


def test_an_empty_session_says_so():
    report = trade_report("T-1", "USDT", D(1000), round_trips([]))
    assert "Round trips: 0 (0 won, 0 lost)" in profit_text(report)
    assert "Win rate: n/a" in profit_text(report) and "Sharpe: n/a" in profit_text(report)
    assert trades_text(report).endswith("\nNo closed round trips yet.")
    assert daily_text(report).endswith("\nNo fills yet.")
    assert performance_text(report).endswith("\nNo fills yet.")
    assert balance_text(report).splitlines()[2].startswith("Balance: 1000.00 (0.00, 0.00%")


def test_rounding_is_for_display_only_half_to_even_and_never_minus_zero():
    assert money(D("1.005")) == "1.00" and money(D("1.015")) == "1.02"
    assert money(D("-0.004"), sign=True) == "0.00" and money(D("0.004")) == "0.00"
    assert money(D("12.3456"), sign=True) == "+12.35"
    assert exact(D("55251.70")) == "55251.7" and exact(D("1E+2")) == "100"
    assert exact(D("0.00001234")) == "0.00001234"
    assert exact(D(2) / 3) == "0.66666667"
    assert [duration(s) for s in (0.0251, 4.25, 200, 18_120, 183_600)] == [
        "25ms",
        "4.2s",
        "3m 20s",
        "5h 2m",
        "2d 3h",
    ]


def shib(sid: str, side: str, price: str, day: int, hour: int, fee: str = "1.23456789") -> Fill:
    return replace(
        fill(side, "123.456789", price, fee, day, hour),
        strategy_id=sid,
        instrument_id="1000SHIBUSDT-PERP.BINANCE",
    )


def test_every_section_fits_one_telegram_message_at_its_largest():
    """A long session of many strategies with long names, funding and open positions:
    the capped sections stay under Telegram's limit (the client cuts at 4000), so the
    chat shows what the CLI does."""
    records: list[Fill | FundingPayment] = []
    for strategy in range(40):
        sid = f"VeryLongStrategyName-1234567890-{strategy:02d}"
        for day in range(120):
            records.append(shib(sid, "BUY", "12345.678901", day, 1))
            at = shib(sid, "BUY", "1", day, 1).at_ns + H // 2
            records.append(FundingPayment(sid, "1000SHIBUSDT-PERP.BINANCE", D("-1234.5678"), at))
            records.append(shib(sid, "SELL", "12346.123456", day, 2))
        records.append(shib(sid, "BUY", "12345.678901", 130, 1, fee="1.2"))
    records.sort(key=lambda r: r.at_ns)
    report = trade_report("A-LONG-TRADER-ID-001", "USDT", D("1000000"), round_trips(records))
    assert len(report["round_trips"]) == 4800
    for text in (
        profit_text(report),
        balance_text(report),
        performance_text(report),
        daily_text(report, MAX_DAYS),
        trades_text(report, MAX_TRADES),
    ):
        assert len(text) < 4000 < TELEGRAM_LIMIT, (len(text), text[:200])
    assert "28 other strategies: " in balance_text(report)
    assert performance_text(report).endswith("\n... and 28 other strategies")
    assert trades_text(report, MAX_TRADES).endswith("\n... and 35 more open")


@pytest.mark.parametrize(
    ("args", "reply"),
    [
        ("abc", "/trades: 'abc' is not a whole number. Usage: /trades [n]"),
        ("0", "/trades: n must be at least 1, got 0."),
        ("-3", "/trades: n must be at least 1, got -3."),
        ("16", "/trades: at most 15 in one message, got 16"),
        ("2.5", "/trades: '2.5' is not a whole number."),
    ],
)
def test_a_row_count_that_is_not_a_whole_number_in_range_is_refused(args, reply):
    with pytest.raises(BadArgument) as refused:
        row_count("trades", args, 10, MAX_TRADES)
    assert str(refused.value).startswith(reply)


def test_a_row_count_defaults_and_commands_without_arguments_refuse_one():
    assert row_count("daily", "", 10, MAX_DAYS) == 10
    assert row_count("daily", "30", 10, MAX_DAYS) == 30
    no_argument("profit", "")
    with pytest.raises(BadArgument, match=r"/profit takes no argument \(got 'today'\)"):
        no_argument("profit", "today")


def test_rounding_does_not_follow_the_threads_decimal_context():
    """The clean-clone run found it: ccxt (the emulator's check, earlier in the same
    process) leaves the thread's decimal context rounding half up, and 1.005 showed as
    1.01 in one run and 1.00 in another."""
    with localcontext() as ctx:
        ctx.rounding = ROUND_HALF_UP
        assert money(D("1.005")) == "1.00" and ratio(D("0.125")) == "0.12"
        assert exact(D("0.123456785")) == "0.12345678"
