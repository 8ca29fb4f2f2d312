"""Bar series for replay: a seeded synthetic random walk, or a CSV/Parquet file.

Bars are kept as plain OHLCV tuples of Decimal; the replay data client turns them
into Nautilus ``Bar`` objects stamped with the live clock, so a cursor (an index
into the series) is all a checkpoint needs to resume the replay where it was.
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from actors.settings import ReplaySettings

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


def synthetic(settings: ReplaySettings, price_decimals: int = 1) -> list[Ohlcv]:
    """A reproducible random walk with regime drift, so EMA crosses happen often."""
    rng = random.Random(settings.seed)
    quantum = Decimal(1).scaleb(-price_decimals)
    price = float(settings.start_price)
    vol = float(settings.volatility)
    drift = 0.0
    bars: list[Ohlcv] = []
    for i in range(settings.bars):
        if i % 25 == 0:
            drift = rng.uniform(-1.5, 1.5) * vol
        open_ = price
        close = max(open_ * (1.0 + drift + rng.gauss(0.0, vol)), 1.0)
        high = max(open_, close) * (1.0 + abs(rng.gauss(0.0, vol / 2)))
        low = min(open_, close) * (1.0 - abs(rng.gauss(0.0, vol / 2)))
        volume = abs(rng.gauss(50.0, 15.0)) + 1.0
        bars.append(
            Ohlcv(
                open=Decimal(repr(open_)).quantize(quantum),
                high=Decimal(repr(high)).quantize(quantum),
                low=Decimal(repr(low)).quantize(quantum),
                close=Decimal(repr(close)).quantize(quantum),
                volume=Decimal(repr(volume)).quantize(Decimal("0.001")),
            )
        )
        price = close
    return bars


def from_file(path: Path, price_decimals: int = 1) -> list[Ohlcv]:
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
    bars: list[Ohlcv] = []
    for line, row in enumerate(rows, start=2):
        try:
            o, h, lo, c = (Decimal(row[k]).quantize(quantum) for k in COLUMNS[:4])
            v = Decimal(row["volume"]).quantize(Decimal("0.001"))
        except ArithmeticError as exc:
            raise BarSourceError(f"{path}:{line}: not a number ({exc})") from None
        if not lo <= min(o, c) <= max(o, c) <= h:
            raise BarSourceError(f"{path}:{line}: high/low do not contain open/close")
        bars.append(Ohlcv(o, h, lo, c, v))
    if not bars:
        raise BarSourceError(f"{path}: no bars")
    return bars


def load(settings: ReplaySettings, price_decimals: int = 1) -> list[Ohlcv]:
    if settings.source == "synthetic":
        return synthetic(settings, price_decimals)
    if settings.path is None:
        raise BarSourceError("replay source 'file' needs replay.path")
    return from_file(settings.path, price_decimals)
