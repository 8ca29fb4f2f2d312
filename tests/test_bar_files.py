"""A bad replay file is one line naming the row and the column, and a file is streamed into
the series, not read whole first."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from node.bars import BarSourceError, from_file

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = "2022-01-01 00:0{m},100,101,99,100.5,3\n"


def csv_file(tmp_path: Path, *bad: str, name: str = "bars.csv") -> Path:
    path = tmp_path / name
    path.write_text(HEADER + GOOD.format(m=0) + GOOD.format(m=1) + "".join(bad))
    return path


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ("2022-01-01 00:02,100,nan,99,100.5,3\n", ":4: high: not a finite number: 'nan'"),
        ("2022-01-01 00:02,100,101,99,inf,3\n", ":4: close: not a finite number: 'inf'"),
        ("2022-01-01 00:02,100,101\n", ":4: 3 fields, but the header names 6"),
        ("2022-01-01 00:02,100,101,99,100.5,3,7\n", ":4: 7 fields, but the header names 6"),
        ("2022-01-01 00:02,1" + "0" * 5000 + ",101,99,100.5,3\n", ":4: open: a field of 5,001"),
        ("2022-01-01 00:02,1e30,1e31,99,100.5,3\n", ":4: open: 1e30 is out of range"),
        ("2022-01-01 00:02,100,101,99,100.5,-3\n", ":4: volume: -3 is out of range"),
        ("9" * 30 + ",100,101,99,100.5,3\n", ":4: timestamp: '999999999999999999999999999999'"),
        ('2022-01-01 00:02,"' + "x" * 200_000 + '",101,99,100.5,3\n', ":4: field larger than"),
    ],
    ids=["nan", "inf", "short", "long", "huge", "out-of-range", "negative", "time", "csv-limit"],
)
def test_a_bad_csv_row_is_one_line_naming_row_and_column(
    tmp_path: Path, row: str, said: str
) -> None:
    path = csv_file(tmp_path, row)
    with pytest.raises(BarSourceError) as refused:
        from_file(path, 1)
    message = str(refused.value)
    assert message.startswith(str(path)) and said in message and "\n" not in message, message


def test_a_file_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_bytes(HEADER.encode() + b"2022-01-01 00:00,\xff100,101,99,100.5,3\n")
    with pytest.raises(BarSourceError, match=r"bars.csv: not UTF-8 text \(byte 0xff\)"):
        from_file(path, 1)


def test_a_parquet_row_with_nan_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    table = pa.table(
        {
            "open": [100.0, 100.0],
            "high": [101.0, float("nan")],
            "low": [99.0, 99.0],
            "close": [100.5, 100.5],
            "volume": [3.0, 3.0],
        }
    )
    pq.write_table(table, path)
    with pytest.raises(BarSourceError, match=r"bars.parquet: row 2: high: not a finite number"):
        from_file(path, 1)


def test_a_file_is_streamed_into_the_series(tmp_path: Path) -> None:
    rows = 30_000
    path = tmp_path / "long.csv"
    with path.open("w") as f:
        f.write("open,high,low,close,volume\n")
        f.writelines("100,101,99,100.5,3\n" for _ in range(rows))
    tracemalloc.start()
    try:
        bars = from_file(path, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(bars) == rows
    # The series keeps 40 bytes a bar (1.2 MB here); every row as a dict first took ~20 MB.
    assert peak < 6_000_000, f"peak {peak:,} bytes for {rows:,} rows"
