"""Bar series for replay: a seeded synthetic random walk, or a CSV/Parquet file.

A series is kept as five arrays of scaled integers (ticks of the instrument's price
precision, thousandths of volume): 40 bytes a bar, where a list of Decimal rows took
about 600 - a million-bar soak is 40 MB, not 600. A row comes back as an ``Ohlcv``
of Decimal when asked for.

Every bar has its market time (``time_ns``): a file's own timestamps (8 bytes a bar
more), or, for a synthetic walk and a file without them, one bar length apart from a
UTC midnight. The replay and the parity backtest stamp bars with it, so fills, funding
settlements, days and statistics are dated as the market was - a file of January 2022
trades in January 2022 - and a gap in the file (missing minutes are common in exchange
data) stays a gap in time. A cursor (an index into the series) is still all a
checkpoint needs to resume the replay where it was.
"""

from __future__ import annotations

import csv
import math
import random
import statistics
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from itertools import pairwise
from pathlib import Path

from protocol import ReplaySettings

COLUMNS = ("open", "high", "low", "close", "volume")
# A file's bar time: the first of these columns it has (a bar's open time).
TIME_COLUMNS = ("timestamp", "ts_event", "open_time", "time", "datetime", "date")
NS_PER_MINUTE = 60 * 10**9
EPOCH_UNITS = ((10**11, 10**9), (10**14, 10**6), (10**17, 10**3))  # below: x to ns
# Where a series without timestamps starts: a UTC midnight, so its days, funding
# settlements (00:00, 08:00, 16:00) and daily statistics fall where a venue's would.
SYNTHETIC_START_NS = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp()) * 10**9


@dataclass(frozen=True, slots=True)
class Ohlcv:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class BarSourceError(ValueError):
    """The replay file is missing, unreadable or not OHLCV."""


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars missing from a series: none between ``after_ns`` and ``before_ns``."""

    after_ns: int
    before_ns: int
    missing: int  # bar lengths with no bar

    def describe(self) -> str:
        return (
            f"no bars from {iso(self.after_ns)} to {iso(self.before_ns)} "
            f"({self.missing} bar(s) missing)"
        )


def iso(ts_ns: int) -> str:
    """A market time for a person: UTC, to the second."""
    return datetime.fromtimestamp(ts_ns // 10**9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_time(value: object) -> int:
    """A timestamp as a file holds it - epoch seconds, milliseconds, microseconds or
    nanoseconds (told apart by size), an ISO 8601 text (naive means UTC) or a datetime -
    in nanoseconds since the epoch."""
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000
    text = str(value).strip()
    try:
        number = Decimal(text)
    except ArithmeticError:
        number = None
    if number is not None and number.is_finite():
        # Seconds until the year 5138, then milliseconds, microseconds, nanoseconds.
        scale = next((unit for limit, unit in EPOCH_UNITS if abs(number) < limit), 1)
        return int(number * scale)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a timestamp: {text!r}") from None
    return parse_time(moment)


VOLUME_DECIMALS = 3
REVERSION = 0.1  # of the volatility per bar, times the log distance from the start price


class BarSeries:
    """Bars as scaled integers, read back as ``Ohlcv`` rows (see the module docstring)."""

    def __init__(
        self, price_decimals: int, bar_ns: int = NS_PER_MINUTE, start_ns: int = SYNTHETIC_START_NS
    ) -> None:
        self.price_decimals = price_decimals
        self._price_quantum = Decimal(1).scaleb(-price_decimals)
        self._price_scale = 10**price_decimals
        self._volume_quantum = Decimal(1).scaleb(-VOLUME_DECIMALS)
        self._columns = tuple(array("q") for _ in COLUMNS)
        self.bar_ns = bar_ns
        self._start_ns = start_ns
        self._times: array[int] | None = None  # a file's own; None: one bar apart

    def append(self, bar: Ohlcv, ts_ns: int | None = None) -> None:
        """A row whose prices are on the instrument's tick (``from_file`` quantizes)."""
        scale = self._price_scale
        self.append_ticks(
            int(bar.open * scale),
            int(bar.high * scale),
            int(bar.low * scale),
            int(bar.close * scale),
            int(bar.volume * 10**VOLUME_DECIMALS),
            ts_ns,
        )

    def append_ticks(
        self, o: int, h: int, lo: int, c: int, v: int, ts_ns: int | None = None
    ) -> None:
        """A row; ``ts_ns`` its market time (given for every row of a series, or none)."""
        if ts_ns is not None:
            if self._times is None:
                if len(self):
                    raise ValueError("a series' rows have times for all of them or none")
                self._times = array("q")
            self._times.append(ts_ns)
        elif self._times is not None:
            raise ValueError("a series' rows have times for all of them or none")
        for column, value in zip(self._columns, (o, h, lo, c, v), strict=True):
            column.append(value)

    def __len__(self) -> int:
        return len(self._columns[0])

    def ticks(self, index: int) -> tuple[int, int, int, int, int]:
        """Row ``index`` as stored: prices in ticks of ``price_decimals``, volume in
        thousandths (``VOLUME_DECIMALS``)."""
        o, h, lo, c, v = self._columns
        return o[index], h[index], lo[index], c[index], v[index]

    def __getitem__(self, index: int) -> Ohlcv:
        o, h, lo, c, v = (column[index] for column in self._columns)
        price = self._price_quantum
        return Ohlcv(
            Decimal(o) * price,
            Decimal(h) * price,
            Decimal(lo) * price,
            Decimal(c) * price,
            Decimal(v) * self._volume_quantum,
        )

    def __iter__(self) -> Iterator[Ohlcv]:
        return (self[i] for i in range(len(self)))

    def time_ns(self, index: int) -> int:
        """Bar ``index``'s market time (when it opened)."""
        if self._times is not None:
            return self._times[index]
        return self._start_ns + index * self.bar_ns

    @property
    def uniform(self) -> bool:
        """One bar length apart from its start: no file times to look up."""
        return self._times is None

    @property
    def start_ns(self) -> int:
        return self.time_ns(0) if len(self) else self._start_ns

    def rows_before(self, ts_ns: int) -> int:
        """How many bars opened before ``ts_ns``."""
        if self._times is not None:
            return bisect_left(self._times, ts_ns)
        steps = -(-(ts_ns - self._start_ns) // self.bar_ns)
        return max(0, min(len(self), steps))

    def gaps(self) -> list[Gap]:
        """Where the file's bars are more than one bar length apart."""
        times = self._times
        if times is None:
            return []
        bar_ns = self.bar_ns
        return [Gap(a, b, (b - a) // bar_ns - 1) for a, b in pairwise(times) if b - a >= 2 * bar_ns]


def synthetic(settings: ReplaySettings, price_decimals: int = 1) -> BarSeries:
    """A reproducible random walk with regime drift, so EMA crosses happen often, and a
    gentle pull back towards the start price, so a long series stays a market (without
    it a million bars wandered down to a few dollars)."""
    rng = random.Random(settings.seed)
    start = float(settings.start_price)
    price = start
    vol = float(settings.volatility)
    drift = 0.0
    bars = BarSeries(price_decimals, settings.bar_minutes * NS_PER_MINUTE)
    scale = 10**price_decimals
    for i in range(settings.bars):
        if i % 25 == 0:
            drift = rng.uniform(-1.5, 1.5) * vol - REVERSION * vol * math.log(price / start)
        open_ = price
        close = max(open_ * (1.0 + drift + rng.gauss(0.0, vol)), 1.0)
        high = max(open_, close) * (1.0 + abs(rng.gauss(0.0, vol / 2)))
        low = min(open_, close) * (1.0 - abs(rng.gauss(0.0, vol / 2)))
        volume = abs(rng.gauss(50.0, 15.0)) + 1.0
        bars.append_ticks(
            round(open_ * scale),
            round(high * scale),
            round(low * scale),
            round(close * scale),
            round(volume * 10**VOLUME_DECIMALS),
        )
        price = close
    return bars


def from_file(
    path: Path, price_decimals: int = 1, bar_minutes: int = 1, limit: int | None = None
) -> BarSeries:
    """Read OHLCV columns and, when the file has one, its bar times (the first of
    ``TIME_COLUMNS``: each bar's open, strictly increasing, ``bar_minutes`` apart but for
    gaps). Without one, the bars are one bar length apart from a UTC midnight.

    The file is streamed (a CSV row at a time, a Parquet file a batch at a time) into the
    series' arrays; a bad row stops the load with one ``BarSourceError`` line naming the
    row and the column (a row too short or too long, a field that is not a finite
    number or is too long to be one, a price past ``MAX_VALUE``). ``limit``: the first
    rows only (what a session played, for its chart), the rest of the file unread."""
    if not path.is_file():
        raise BarSourceError(f"replay file not found: {path}")
    quantum = Decimal(1).scaleb(-price_decimals)
    volume_quantum = Decimal(1).scaleb(-VOLUME_DECIMALS)
    bar_ns = bar_minutes * NS_PER_MINUTE
    bars = BarSeries(price_decimals, bar_ns)
    last: int | None = None
    with _rows(path) as (names, rows):
        missing = [c for c in COLUMNS if c not in names]
        if missing:
            raise BarSourceError(f"{path}: missing columns {missing}")
        time_column = next((c for c in TIME_COLUMNS if c in names), None)
        for where, row in rows:
            if limit is not None and len(bars) >= limit:
                break
            o, h, lo, c = (_number(where, k, row[k], quantum) for k in COLUMNS[:4])
            v = _number(where, "volume", row["volume"], volume_quantum)
            if not lo <= min(o, c) <= max(o, c) <= h:
                raise BarSourceError(f"{where}: high/low do not contain open/close")
            ts: int | None = None
            if time_column is not None:
                ts = _time(where, time_column, row[time_column])
                if last is not None and ts - last < bar_ns:
                    raise BarSourceError(
                        f"{where}: {time_column} {iso(ts)} is less than one bar "
                        f"({bar_minutes} min) after the previous bar's {iso(last)}: bars "
                        "must be in time order, one bar length apart or more"
                    )
                last = ts
            if len(bars) >= MAX_FILE_BARS:
                raise BarSourceError(f"{where}: more than {MAX_FILE_BARS:,} bars")
            try:
                bars.append(Ohlcv(o, h, lo, c, v), ts)
            except OverflowError:
                raise BarSourceError(f"{where}: a price too large for its tick") from None
    if not len(bars):
        raise BarSourceError(f"{path}: no bars")
    _check_spacing(bars, path, bar_minutes)
    return bars


MAX_FIELD_CHARS = 40  # a price or a timestamp; a longer field is not one
MAX_VALUE = Decimal(10) ** 12
MAX_FILE_BARS = 10_000_000  # 400 MB of arrays: ~19 years of 1-minute bars
PARQUET_BATCH = 65_536

type Row = dict[str, object]


@contextmanager
def _rows(path: Path) -> Iterator[tuple[list[str], Iterator[tuple[str, Row]]]]:
    """The file's column names and its rows, each with where it is (``path:line`` for a
    CSV, ``path: row N`` for Parquet), read as they are used."""
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as exc:  # pyarrow's errors are its own classes
            raise BarSourceError(f"{path}: not a Parquet file: {exc}") from None
        names = list(parquet.schema_arrow.names)
        yield names, _parquet_rows(path, parquet, names)
        return
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        try:
            names = [n.strip() for n in next(reader, [])]
        except UnicodeDecodeError as exc:  # decoded a block at a time: no line to name
            raise BarSourceError(f"{path}: {_reason(exc)}") from None
        except csv.Error as exc:
            raise BarSourceError(f"{path}:1: {_reason(exc)}") from None
        yield names, _csv_rows(path, reader, names)


def _csv_rows(
    path: Path, reader: Iterator[list[str]], names: list[str]
) -> Iterator[tuple[str, Row]]:
    line = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except UnicodeDecodeError as exc:
            raise BarSourceError(f"{path}: {_reason(exc)}") from None
        except csv.Error as exc:
            raise BarSourceError(f"{path}:{line + 1}: {_reason(exc)}") from None
        line = reader.line_num  # type: ignore[attr-defined]
        if not record:
            continue
        if len(record) != len(names):
            raise BarSourceError(
                f"{path}:{line}: {len(record)} fields, but the header names {len(names)}"
            )
        yield f"{path}:{line}", dict(zip(names, record, strict=True))


def _parquet_rows(path: Path, parquet: object, names: list[str]) -> Iterator[tuple[str, Row]]:
    wanted = [c for c in (*COLUMNS, *TIME_COLUMNS) if c in names]
    number = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH, columns=wanted):  # type: ignore[attr-defined]
        columns = {c: batch.column(c).to_pylist() for c in wanted}
        for i in range(batch.num_rows):
            number += 1
            yield f"{path}: row {number}", {c: columns[c][i] for c in wanted}


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x})"
    return str(exc)  # csv's own: "field larger than field limit (131072)"


def _number(where: str, column: str, value: object, quantum: Decimal) -> Decimal:
    text = "" if value is None else str(value).strip()
    if len(text) > MAX_FIELD_CHARS:
        raise BarSourceError(f"{where}: {column}: a field of {len(text):,} characters")
    try:
        number = Decimal(text)
    except ArithmeticError:
        raise BarSourceError(f"{where}: {column}: not a number: {text!r}") from None
    if not number.is_finite():
        raise BarSourceError(f"{where}: {column}: not a finite number: {text!r}")
    if not 0 <= number < MAX_VALUE:
        raise BarSourceError(f"{where}: {column}: {text} is out of range [0, {MAX_VALUE:,})")
    return number.quantize(quantum)


def _time(where: str, column: str, value: object) -> int:
    text = "" if value is None else str(value)
    if len(text.strip()) > MAX_FIELD_CHARS:
        raise BarSourceError(f"{where}: {column}: a field of {len(text):,} characters")
    try:
        ts = parse_time(value)
    except (ValueError, ArithmeticError, OverflowError) as exc:
        raise BarSourceError(f"{where}: {column}: {exc}") from None
    if not 0 <= ts < 2**63:
        raise BarSourceError(f"{where}: {column}: {text!r} is not a time since 1970")
    return ts


def _check_spacing(bars: BarSeries, path: Path, bar_minutes: int) -> None:
    """Most bars of a file are one bar length apart: a file of 5-minute bars read as
    1-minute ones would be four missing bars after every bar."""
    if bars.uniform or len(bars) < 3:
        return
    sample = range(1, min(len(bars), 10_001))
    typical = statistics.median(bars.time_ns(i) - bars.time_ns(i - 1) for i in sample)
    if typical != bars.bar_ns:
        raise BarSourceError(
            f"{path}: its bars are {typical / NS_PER_MINUTE:g} minutes apart, but "
            f"replay.bar_minutes is {bar_minutes}"
        )


def load(settings: ReplaySettings, price_decimals: int = 1, limit: int | None = None) -> BarSeries:
    """The series ``settings`` describe; ``limit``: its first rows only (the same rows: a
    walk's next step does not depend on its length, a file is read in order)."""
    if settings.source == "synthetic":
        if limit is not None and limit < settings.bars:
            settings = settings.model_copy(update={"bars": limit})
        return synthetic(settings, price_decimals)
    if settings.path is None:
        raise BarSourceError("replay source 'file' needs replay.path")
    return from_file(settings.path, price_decimals, settings.bar_minutes, limit)
