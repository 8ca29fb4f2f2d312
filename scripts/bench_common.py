"""What every benchmark module shares: the report row, percentiles and the printed table."""

from __future__ import annotations

from pathlib import Path
from typing import NotRequired, TypedDict

ROOT = Path(__file__).resolve().parent.parent


class Stage(TypedDict):
    name: str
    p50: float
    p99: float
    unit: str


class Row(TypedDict):
    name: str
    value: float
    unit: str
    target: str
    anchor: str
    ok: bool | None
    stages: NotRequired[list[Stage]]


SCRATCH = ROOT / "test-artifacts" / "bench-scratch"  # removed by bench.main at the end


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_rows(rows: list[Row]) -> None:
    """The report as a table: each figure beside its target, stages indented below."""
    print(f"{'measure':<58} {'value':>12}  {'target':<22} anchor")
    for row in rows:
        mark = "" if row["ok"] is None else (" ok" if row["ok"] else " MISS")
        value = f"{row['value']:,.2f} {row['unit']}"
        print(f"{row['name']:<58} {value:>16}  {row['target']:<20}{mark:<5} {row['anchor']}")
        for stage in row.get("stages", []):
            print(f"    {stage['name']:<66} p50 {stage['p50']:.3f}  p99 {stage['p99']:.3f} "
                  f"{stage['unit']}")  # fmt: skip
