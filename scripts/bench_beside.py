"""The hot paths beside a base commit's, measured in the same run on the same machine.

    python -m scripts.bench_beside [--base cbd79ba] [--rounds 3] [--quick] [--out PATH]

Absolute times on these machines drift from hour to hour, so a figure judged against a
number written down on another day says little. This runs the base commit's own
benchmark functions (from a git worktree of it, in a process of their own) and today's,
alternating, round after round, and reports the median of each side's rounds: the
only comparison that holds on a noisy VM. The default base is cbd79ba, the commit
before the round that made the hot paths slower (issue 29).

Each side runs in a fresh interpreter with its own tree first on ``sys.path``, so the
base's code is the base's, its node children included (spawned children inherit
``sys.path``). A checkout without git history, or without the base commit, gets rows
that say so instead of numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from scripts.bench_common import ROOT, Row, print_rows

BASE = "cbd79ba"

# The figures issue 29 holds against the base: (row name prefix, target kind, limit).
# "x": at most limit x the base's median; "abs": at most limit in the row's unit.
COMPARED: tuple[tuple[str, str, float], ...] = (
    ("fatal error -> cancels confirmed, p99", "x", 1.5),
    ("bridge -> parent actor, p99 (our part)", "abs", 1.5),
    ("node loop stall by a checkpoint, 10k", "abs", 5.0),
    ("checkpoint write, 100 orders", "x", 1.5),
    ("supervisor process RSS", "x", 1.1),
    ("node crash -> trading again, p95", "abs", 3.0),
)

# The benchmark functions of each side: today's live in modules of their own, the
# base's in one scripts/bench.py. Each is called with ``quick`` unless it takes nothing.
HEAD_SECTIONS = (
    "scripts.bench_latency:node_figures",
    "scripts.bench_stall:checkpoint_stall",
    "scripts.bench_storage:storage_figures",
    "scripts.bench_storage:supervisor_rss",
)
BASE_SECTIONS = (
    "scripts.bench:node_figures",
    "scripts.bench:checkpoint_stall",
    "scripts.bench:storage_figures",
    "scripts.bench:supervisor_rss",
)

# Run in the side's tree: makes the scratch directory its benchmarks expect (today's
# gate databases live there) unless it is there, calls each section, prints the rows
# on one marked line.
_DRIVER = """
import importlib, inspect, json, shutil, sys
from pathlib import Path
scratch = Path.cwd() / "test-artifacts" / "bench-scratch"
made = not scratch.exists()
scratch.mkdir(parents=True, exist_ok=True)
quick = sys.argv[1] == "quick"
rows = []
try:
    for spec in sys.argv[2:]:
        module, name = spec.split(":")
        fn = getattr(importlib.import_module(module), name)
        rows += fn(quick) if inspect.signature(fn).parameters else fn()
finally:
    if made:
        shutil.rmtree(scratch, ignore_errors=True)
print("BESIDE-ROWS " + json.dumps(rows), flush=True)
"""


@dataclass(frozen=True, slots=True)
class Side:
    """One tree to measure: its directory and the benchmark functions it has."""

    label: str
    tree: Path
    sections: tuple[str, ...]


class Unavailable(Exception):
    """The base cannot be measured here (no git, no such commit): said in the report."""


def base_worktree(rev: str) -> Path:
    """A detached worktree of ``rev`` beside the scratch directory (removed by the caller)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        raise Unavailable("this checkout has no git history to take the base from")
    path = ROOT / "test-artifacts" / f"bench-base-{rev}"
    _git("worktree", "remove", "--force", str(path), check=False)
    got = _git("worktree", "add", "--detach", str(path), rev, check=False)
    if got.returncode != 0:
        raise Unavailable(f"git cannot check out {rev}: {got.stderr.strip()}")
    return path


def remove_worktree(path: Path) -> None:
    _git("worktree", "remove", "--force", str(path), check=False)
    shutil.rmtree(path, ignore_errors=True)
    _git("worktree", "prune", check=False)


def _git(*args: str, check: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=check
    )


def run_side(side: Side, quick: bool) -> list[Row]:
    """The side's sections in a fresh interpreter whose imports come from its tree."""
    env = dict(os.environ, PYTHONPATH=str(side.tree))
    argv = [sys.executable, "-c", _DRIVER, "quick" if quick else "full", *side.sections]
    proc = subprocess.run(argv, cwd=side.tree, env=env, capture_output=True, text=True, check=False)
    marked = [line for line in proc.stdout.splitlines() if line.startswith("BESIDE-ROWS ")]
    if proc.returncode != 0 or not marked:
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise RuntimeError(f"{side.label}'s benchmark failed (exit {proc.returncode}):\n{tail}")
    return cast(list[Row], json.loads(marked[-1].removeprefix("BESIDE-ROWS ")))


def value_of(rows: list[Row], prefix: str) -> tuple[float, str]:
    """The first row named ``prefix``...: its value and unit (NaN if the side lacks it)."""
    for row in rows:
        if row["name"].startswith(prefix):
            return row["value"], row["unit"]
    return math.nan, ""


def beside_rows(prefix: str, kind: str, limit: float, base: list[float], head: list[float],
                rev: str, unit: str) -> list[Row]:  # fmt: skip
    """The base's median and today's, today's judged against the target."""
    base_median, head_median = _median(base), _median(head)
    if kind == "x":
        bound, target = limit * base_median, f"<= {limit:g}x {rev}"
    else:
        bound, target = limit, f"<= {limit:g} {unit}"
    each = " / ".join(f"{v:.2f}" for v in head)
    return [
        Row(name=f"{prefix} [{rev}]", value=base_median, unit=unit,
            target="-", anchor="median of " + " / ".join(f"{v:.2f}" for v in base), ok=None),
        Row(name=f"{prefix} [today]", value=head_median, unit=unit, target=target,
            anchor=f"median of {each}; {head_median / base_median:.2f}x {rev}",
            ok=None if math.isnan(head_median) else head_median <= bound),
    ]  # fmt: skip


def _median(values: list[float]) -> float:
    real = [v for v in values if not math.isnan(v)]
    return statistics.median(real) if real else math.nan


Runs = dict[str, list[list[Row]]]


def beside_base(rev: str = BASE, rounds: int = 3, quick: bool = False) -> tuple[list[Row], Runs]:
    """Alternate base and today ``rounds`` times: each compared figure's medians, and
    every row of every round (each side's own anchors: the halts one by one)."""
    try:
        tree = base_worktree(rev)
    except Unavailable as why:
        return [Row(name=f"beside {rev}", value=math.nan, unit="", target="-",
                    anchor=str(why), ok=None)], {}  # fmt: skip
    sides = (Side(rev, tree, BASE_SECTIONS), Side("today", ROOT, HEAD_SECTIONS))
    got: Runs = {side.label: [] for side in sides}
    try:
        for n in range(rounds):
            for side in sides if n % 2 == 0 else reversed(sides):
                print(f"beside {rev}: round {n + 1}/{rounds}, {side.label}", flush=True)
                got[side.label].append(run_side(side, quick))
    finally:
        remove_worktree(tree)
    rows: list[Row] = []
    for prefix, kind, limit in COMPARED:
        base = [value_of(r, prefix) for r in got[rev]]
        head = [value_of(r, prefix) for r in got["today"]]
        unit = next((u for _, u in base + head if u), "")
        rows += beside_rows(
            prefix, kind, limit, [v for v, _ in base], [v for v, _ in head], rev, unit
        )
    return rows, got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     prog="scripts.bench_beside")  # fmt: skip
    parser.add_argument("--base", default=BASE, help=f"the commit to compare with ({BASE})")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each side (3)")
    parser.add_argument("--quick", action="store_true", help="each side's quick figures")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "beside.json")
    args = parser.parse_args()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    rows, runs = beside_base(args.base, args.rounds, args.quick)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"base": args.base, "rows": rows, "runs": runs}, indent=2))
    print_rows(rows)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
