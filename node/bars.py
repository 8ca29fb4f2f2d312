"""Bar series for replay: a seeded synthetic random walk, or a CSV/Parquet file.

A series is kept as five arrays of scaled integers (ticks of the instrument's price
precision, thousandths of volume): 40 bytes a bar, where a list of Decimal rows took
about 600 - a million-bar soak is 40 MB, not 600. A row comes back as an ``Ohlcv``
of Decimal when asked for; the replay data client turns it into a Nautilus ``Bar``
stamped with the live clock, so a cursor (an index into the series) is all a
checkpoint needs to resume the replay where it was.
"""

from __future__ import annotations

import csv
import math
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from protocol import ReplaySettings

COLUMNS = ("open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Ohlcv:
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class BarSourceError(ValueError):
    """The replay file is missing, unreadable or not OHLCV."""


VOLUME_DECIMALS = 3
REVERSION = 0.1  # of the volatility per bar, times the log distance from the start price


class BarSeries:
    """Bars as scaled integers, read back as ``Ohlcv`` rows (see the module docstring)."""

    def __init__(self, price_decimals: int) -> None:
        self._price_quantum = Decimal(1).scaleb(-price_decimals)
        self._price_scale = 10**price_decimals
        self._volume_quantum = Decimal(1).scaleb(-VOLUME_DECIMALS)
        self._columns = tuple(array("q") for _ in COLUMNS)

    def append(self, bar: Ohlcv) -> None:
        """A row whose prices are on the instrument's tick (``from_file`` quantizes)."""
        scale = self._price_scale
        self.append_ticks(
            int(bar.open * scale),
            int(bar.high * scale),
            int(bar.low * scale),
            int(bar.close * scale),
            int(bar.volume * 10**VOLUME_DECIMALS),
        )

    def append_ticks(self, o: int, h: int, lo: int, c: int, v: int) -> None:
        for column, value in zip(self._columns, (o, h, lo, c, v), strict=True):
            column.append(value)

    def __len__(self) -> int:
        return len(self._columns[0])

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


def synthetic(settings: ReplaySettings, price_decimals: int = 1) -> BarSeries:
    """A reproducible random walk with regime drift, so EMA crosses happen often, and a
    gentle pull back towards the start price, so a long series stays a market (without
    it a million bars wandered down to a few dollars)."""
    rng = random.Random(settings.seed)
    start = float(settings.start_price)
    price = start
    vol = float(settings.volatility)
    drift = 0.0
    bars = BarSeries(price_decimals)
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


def from_file(path: Path, price_decimals: int = 1) -> BarSeries:
    """Read OHLCV columns (any extra columns, such as a timestamp, are ignored)."""
    if not path.is_file():
        raise BarSourceError(f"replay file not found: {path}")
    quantum = Decimal(1).scaleb(-price_decimals)
    rows: list[dict[str, str]]
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        missing = [c for c in COLUMNS if c not in table.column_names]
        if missing:
            raise BarSourceError(f"{path}: missing columns {missing}")
        columns = {c: [str(v) for v in table.column(c).to_pylist()] for c in COLUMNS}
        rows = [{c: columns[c][i] for c in COLUMNS} for i in range(table.num_rows)]
    else:
        with path.open(newline="") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise BarSourceError(f"{path}: missing columns {missing}")
            rows = list(reader)
    bars = BarSeries(price_decimals)
    for line, row in enumerate(rows, start=2):
        try:
            o, h, lo, c = (Decimal(row[k]).quantize(quantum) for k in COLUMNS[:4])
            v = Decimal(row["volume"]).quantize(Decimal("0.001"))
        except ArithmeticError as exc:
            raise BarSourceError(f"{path}:{line}: not a number ({exc})") from None
        if not lo <= min(o, c) <= max(o, c) <= h:
            raise BarSourceError(f"{path}:{line}: high/low do not contain open/close")
        bars.append(Ohlcv(o, h, lo, c, v))
    if not len(bars):
        raise BarSourceError(f"{path}: no bars")
    return bars


def load(settings: ReplaySettings, price_decimals: int = 1) -> BarSeries:
    if settings.source == "synthetic":
        return synthetic(settings, price_decimals)
    if settings.path is None:
        raise BarSourceError("replay source 'file' needs replay.path")
    return from_file(settings.path, price_decimals)
