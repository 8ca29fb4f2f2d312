"""A replay's bars: built from the series' integers (``BarMaker``), not through Decimal -
the very bars ``to_bar`` builds, or a replay would no longer be its backtest - and at
the market time the data says (a file's own timestamps and gaps, the venue's funding
hours)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from nautilus_trader.model.data import Bar

from node.bars import (
    SYNTHETIC_START_NS,
    TIME_COLUMNS,
    BarSeries,
    BarSourceError,
    from_file,
    load,
    parse_time,
    synthetic,
)
from node.funding import FundingFileError, FundingSchedule, read_rates
from node.instruments import make_instrument
from node.replay import BarMaker, Feed, ReplayData, bar_type_for, to_bar
from protocol import InstrumentSpec, ReplaySettings, SimulationSettings

ROOT = Path(__file__).resolve().parent.parent
REAL_BARS = ROOT / "tests" / "data" / "btc-perp-2022-01-1m.csv"


def _spec(instrument_id: str, tick: str, step: str) -> InstrumentSpec:
    return InstrumentSpec(
        id=instrument_id,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        margin_init=Decimal("0.05"),
        margin_maint=Decimal("0.025"),
        maker_fee=Decimal("0.0002"),
        taker_fee=Decimal("0.0004"),
    )


def _raw(build: Callable[[], Bar]) -> tuple[object, ...] | str:
    """The bar's every raw value and precision; or, refused, the error's type (a volume
    the instrument's step rounds to zero: either way alike)."""
    try:
        bar = build()
    except ValueError as exc:
        return type(exc).__name__
    fields = (bar.open, bar.high, bar.low, bar.close, bar.volume)
    return (str(bar.bar_type), bar.ts_event, bar.ts_init, *((f.raw, f.precision) for f in fields))


@pytest.mark.parametrize(
    ("instrument_id", "spec", "raw_path"),
    [
        ("BTCUSDT-PERP.BINANCE", None, True),
        ("ETHUSDT-PERP.BINANCE", None, True),
        ("HALFUSDT-PERP.BINANCE", ("0.5", "0.001"), True),  # a tick coarser than its digits
        ("COARSEUSDT-PERP.BINANCE", ("5", "0.1"), False),  # make_qty rounds the volume
    ],
)
def test_a_bar_from_the_series_integers_is_to_bars_bar(instrument_id, spec, raw_path):
    specs = (_spec(instrument_id, *spec),) if spec else ()
    instrument = make_instrument(instrument_id, specs)
    bar_type = bar_type_for(instrument_id, 1)
    precision = instrument.price_precision
    walk = ReplaySettings(bars=5_000, start_price=Decimal(3000))
    series: list[BarSeries] = [synthetic(walk, precision), from_file(REAL_BARS, precision)]
    for bars in series:
        make = BarMaker(instrument, bar_type, bars)
        assert make.exact is raw_path
        for i in range(len(bars)):
            ts = bars.time_ns(i)
            made = _raw(lambda: make(i, ts))
            assert made == _raw(lambda: to_bar(instrument, bar_type, bars[i], ts)), i


# ---------------------------------------------------------------- a series' own clock


def _file(path: Path, stamps: list[str], header: str = "timestamp") -> Path:
    rows = [f"{header},open,high,low,close,volume"]
    rows += [f"{t},100,101,99,100.5,1" for t in stamps]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_times_read_alike_in_every_form_a_file_holds_them():
    from datetime import UTC, datetime

    want = int(datetime(2022, 1, 2, 3, 4, tzinfo=UTC).timestamp()) * 10**9
    for form in (
        "2022-01-02 03:04:00",
        "2022-01-02T03:04:00Z",
        "2022-01-02T04:04:00+01:00",
        "2022-01-02 03:04:00.000000",
        str(want // 10**9),
        str(want // 10**6),
        str(want // 10**3),
        str(want),
    ):
        assert parse_time(form) == want, form
    with pytest.raises(ValueError, match="not a timestamp"):
        parse_time("yesterday")


@pytest.mark.parametrize("column", TIME_COLUMNS)
def test_a_file_keeps_its_times_and_its_gaps(tmp_path, column):
    stamps = ["2022-01-01 00:00", "2022-01-01 00:01", "2022-01-01 00:05", "2022-01-01 00:06"]
    bars = from_file(_file(tmp_path / "g.csv", stamps, column), 1)
    assert [bars.time_ns(i) for i in range(4)] == [parse_time(t) for t in stamps]
    assert [(g.missing, g.describe()) for g in bars.gaps()] == [
        (3, "no bars from 2022-01-01 00:01:00 UTC to 2022-01-01 00:05:00 UTC (3 bar(s) missing)")
    ]
    assert bars.rows_before(parse_time("2022-01-01 00:03")) == 2
    untimed = (tmp_path / "u.csv").write_text("open,high,low,close,volume\n1,2,1,1,1\n1,2,1,1,1\n")
    assert untimed
    plain = from_file(tmp_path / "u.csv", 1)
    assert (
        plain.time_ns(0) == SYNTHETIC_START_NS and plain.time_ns(1) - plain.time_ns(0) == 60 * 10**9
    )
    assert SYNTHETIC_START_NS % (86_400 * 10**9) == 0, "a UTC midnight"


@pytest.mark.parametrize(
    ("stamps", "minutes", "error"),
    [
        (["2022-01-01 00:01", "2022-01-01 00:00"], 1, "less than one bar"),
        (["2022-01-01 00:00", "2022-01-01 00:00"], 1, "less than one bar"),
        ([f"2022-01-01 00:{m:02d}" for m in range(0, 50, 5)], 1, "5 minutes apart, but"),
        (["2022-01-01 00:00", "tomorrow"], 1, "timestamp: not a timestamp"),
    ],
)
def test_a_file_whose_times_do_not_fit_is_refused_with_its_line(tmp_path, stamps, minutes, error):
    with pytest.raises(BarSourceError, match=error):
        from_file(_file(tmp_path / "bad.csv", stamps), 1, minutes)


def test_two_files_with_different_gaps_play_each_bar_at_its_own_time(tmp_path):
    btc = make_instrument("BTCUSDT-PERP.BINANCE", ())
    eth = make_instrument("ETHUSDT-PERP.BINANCE", ())
    a = from_file(_file(tmp_path / "a.csv", ["2022-01-01 00:00", "2022-01-01 00:02"]), 1)
    b = from_file(_file(tmp_path / "b.csv", ["2022-01-01 00:01", "2022-01-01 00:02"]), 2)
    data = ReplayData(
        [
            Feed(btc, bar_type_for(btc.id.value, 1), a),
            Feed(eth, bar_type_for(eth.id.value, 1), b),
        ]
    )
    played = [
        [(str(x.bar_type.instrument_id), x.ts_event) for x in data.bars_at(s)] for s in range(3)
    ]
    t0 = parse_time("2022-01-01 00:00")
    minute = 60 * 10**9
    assert played == [
        [("BTCUSDT-PERP.BINANCE", t0)],
        [("ETHUSDT-PERP.BINANCE", t0 + minute)],
        [("BTCUSDT-PERP.BINANCE", t0 + 2 * minute), ("ETHUSDT-PERP.BINANCE", t0 + 2 * minute)],
    ]
    assert data.timeline.step_at(t0 + minute) == 1
    assert data.played_until(2) == {"BTCUSDT-PERP.BINANCE": t0, "ETHUSDT-PERP.BINANCE": t0 + minute}


def test_funding_settles_at_the_venues_hours_and_at_a_history_files_own_times():
    hour = 3600 * 10**9
    day = parse_time("2022-01-02 00:00")
    near = day + 8 * hour + 3_000_000  # the venue's row for 08:00, 3 ms late
    off = day + 4 * hour  # a row between two settlements of the grid
    schedule = FundingSchedule(
        8 * hour, Decimal("0.0001"), (off, near), {near: Decimal("-0.01"), off: Decimal("0.02")}
    )
    assert schedule.due(day - 1, day + 20 * hour) == [
        (day, Decimal("0.0001")),
        (off, Decimal("0.02")),
        (near, Decimal("-0.01")),  # in place of 08:00's constant
        (day + 16 * hour, Decimal("0.0001")),
    ]
    assert schedule.due(day, day + 7 * hour) == [(off, Decimal("0.02"))], "after, not at, a bar"


def test_an_older_bar_rate_funding_file_settles_at_its_bars_times(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("bar,rate\n480,0.0001\n960,-0.0003\n")
    start = parse_time("2022-01-01 00:00")
    rates = read_rates(path, lambda bar: start + bar * 60 * 10**9)
    assert rates == {
        start + 480 * 60 * 10**9: Decimal("0.0001"),
        start + 960 * 60 * 10**9: Decimal("-0.0003"),
    }
    bad = tmp_path / "bad.csv"
    bad.write_text("time,rate\n1,0.1\n")
    with pytest.raises(FundingFileError, match="expected columns fundingTime,fundingRate"):
        read_rates(bad)


@pytest.mark.parametrize("hours", [5, 7, 9])
def test_a_funding_interval_that_does_not_divide_a_day_is_refused(hours):
    with pytest.raises(ValueError, match="does not divide a day"):
        SimulationSettings(funding_rate=Decimal("0.0001"), funding_interval_hours=hours)


def test_the_first_steps_of_a_replay_are_built_without_the_rest(tmp_path):
    """A session's chart builds only the steps it played (``limit``): the same rows as
    the whole series' first ones - a walk's, and two files' with different gaps on one
    timeline - and a file's rows past the limit are not read."""
    walk = ReplaySettings(bars=400, seed=3)
    whole, first = load(walk), load(walk, limit=40)
    assert [first.ticks(i) for i in range(len(first))] == [whole.ticks(i) for i in range(40)]

    btc = make_instrument("BTCUSDT-PERP.BINANCE", ())
    eth = make_instrument("ETHUSDT-PERP.BINANCE", ())
    a = _file(tmp_path / "a.csv", [f"2022-01-01 00:{m:02}" for m in range(40) if m != 4])
    b = _file(tmp_path / "b.csv", [f"2022-01-01 00:{m:02}" for m in (1, 2, 3, 4, 10, 11, 12)])
    with b.open("a") as tail:
        tail.write("2022-01-01 00:50,100,nan,99,100.5,1\n")  # unread within the limit

    def feeds(limit: int | None) -> ReplayData:
        return ReplayData(
            [
                Feed(btc, bar_type_for(btc.id.value, 1), from_file(a, 1, limit=limit)),
                Feed(eth, bar_type_for(eth.id.value, 1), from_file(b, 2, limit=limit)),
            ]
        )

    with pytest.raises(BarSourceError, match="not a finite number"):
        feeds(None)
    steps = 6
    part = feeds(steps)
    whole_a = from_file(a, 1)
    assert len(part.feeds[0].series) == steps < len(whole_a)
    full_times = sorted(
        {whole_a.time_ns(i) for i in range(len(whole_a))}
        | set(map(parse_time, [f"2022-01-01 00:{m:02}" for m in (1, 2, 3, 4, 10, 11, 12)]))
    )
    assert [part.timeline.time_ns(s) for s in range(steps)] == full_times[:steps]
    assert [len(part.bars_at(s)) for s in range(steps)] == [1, 2, 2, 2, 1, 1]
