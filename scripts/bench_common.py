"""What every benchmark module shares: the report row and percentiles."""

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
