"""Benchmarks: each figure beside its target and its floor or anchor, from one run.

    python -m scripts.bench [--quick] [--out PATH] [--soak-bars N]

One module a section: messaging (``bench_messaging``), a real node under the actor tree
(``bench_latency``), the checkpoint's loop stall (``bench_stall``), storage and memory
(``bench_storage``), the service as a process and the parity report (``bench_service``),
1, 5 and 20 strategies in one node (``bench_strategies``: the full run only; alone with
``python -m scripts.bench_strategies``), and the hot paths beside cbd79ba's, alternating
rounds of a worktree of it and of today's (``bench_beside``: the full run only; alone
with ``python -m scripts.bench_beside``).

Writes a JSON report (default test-artifacts/bench.json) and prints a table. These
machines are noisy, so ratios measured in the same run (the project's actor layer
against raw pykka, raw pykka against a plain queue round trip) count more than
absolute times. --quick uses fewer samples, for CI.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from scripts import (
    bench_beside,
    bench_latency,
    bench_messaging,
    bench_metrics,
    bench_service,
    bench_stall,
    bench_storage,
    bench_strategies,
)
from scripts.bench_common import ROOT, SCRATCH, Row, print_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], prog="scripts.bench")
    parser.add_argument("--quick", action="store_true", help="fewer samples (CI)")
    parser.add_argument("--out", type=Path, default=ROOT / "test-artifacts" / "bench.json")
    parser.add_argument("--soak-bars", type=int, help="bars in the soak (default 1,000,000; "
                        "--quick: 60,000)")  # fmt: skip
    args = parser.parse_args()
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    SCRATCH.mkdir(exist_ok=True)
    try:
        return _run(args)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)


def _run(args: argparse.Namespace) -> int:
    n, tells = (2000, 20000) if args.quick else (20000, 200000)
    rows: list[Row] = []
    rows += bench_messaging.messaging(n, tells)
    rows += bench_latency.node_figures(args.quick)
    rows += bench_stall.checkpoint_stall(args.quick)
    rows += bench_latency.replay_throughput(args.quick)
    rows += bench_storage.storage_figures(args.quick)
    rows += bench_storage.supervisor_rss()
    rows += bench_service.cold_restart(3 if args.quick else 10)
    rows += bench_service.parity_report(args.quick)
    soak_bars = args.soak_bars or (60_000 if args.quick else 1_000_000)
    rows += bench_service.soak(soak_bars, ROOT / "test-artifacts" / "soak.json")
    # metrics off beside on, alternating: a short round in --quick, three in the full run
    rows += bench_metrics.metrics_cost(
        bars=300 if args.quick else 1200, rounds=1 if args.quick else 3, judge=not args.quick
    )
    if not args.quick:  # about 4 minutes: `make bench-strategies` runs it alone
        rows += bench_strategies.strategy_scaling()
        # about 3 minutes a round of each side: `make bench-beside` runs it alone
        beside, _ = bench_beside.beside_base(rounds=3)
        rows += beside
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "quick": args.quick}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    print_rows(rows)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
