"""Benchmark: one node running 1, 5 and 20 strategies (issue 16).

    python -m scripts.bench_strategies [--counts 1,5,20] [--bars N] [--speed X]
                                       [--stall-seconds S] [--split K] [--no-pin]
                                       [--out PATH]

Each count is the bundled EMA cross named by import path ``count`` times in
``[[strategies]]`` (``node.strategy:EmaCross``, its own ``order_id_tag``, slightly
different periods, a 3-order ladder, ``max_leverage`` 1/count so together they risk what
one does), all on the default instrument, synthetic bars played at 50 bars/s (speed
3000). Per count:

- under the service's actor tree (``bench_latency.node_tree``, its traced child and
  stamping pipe reader) with the real checkpointer writing to SQLite: fill -> parent
  latency, the time of every checkpoint write, and the node child's RSS once ``bars``
  bars are played;
- in a probed child of its own (``bench_stall``), played to the same bar and trading
  on: how long a checkpoint's snapshot (build + send) blocks the node's event loop.

Then the most strategies once more, dealt over ``--split`` node children (2 by default)
side by side, each under its own tree with its own account: the fill latency of the
alternative to one node holding them all (issue 29), beside the one node's. And once
more in one node with ``[service] node_cpus`` as on a host running one service: the
node child on a CPU of its own, this process's tree on the others (``--no-pin``: not).

The classifier and its circuit breakers are the service's defaults: a count whose
strategies trip one is halted as the service would be, and its rows say so (rejects,
halts, the bar it halted at).

Goals: the node's RSS with 20 strategies at most 1.5 x the RSS with one; a checkpoint
write within 100 ms. Writes ``test-artifacts/bench-strategies.json`` (the rows, as
``scripts.bench`` writes them, and each count's figures) and prints the table.
``scripts.bench`` runs it in its full run (not ``--quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TypedDict, override

import pykka

from actors.base import ChildContext
from actors.checkpointer import CheckpointerActor
from actors.inbox import Inbox
from protocol import (
    ChildExited,
    Decision,
    Mailbox,
    NodeSettings,
    NodeStarted,
    OrderRejected,
    ReplaySettings,
    ServiceSettings,
    Snapshot,
    SnapshotTaken,
    StrategyEntry,
    TakeSnapshot,
    TradingState,
    TradingStateChanged,
    WhereIs,
    place_supervisor,
    unplace_supervisor,
    usable_cpus,
)
from scripts import bench_latency, bench_stall
from scripts.bench_common import ROOT, SCRATCH, Row, Stage, pct, print_rows
from storage import RunInfo, Store
from supervisor import freeze_heap

SPEED = 3000.0  # x real time: 50 one-minute bars a second, as the latency bench plays
INSTRUMENT = NodeSettings().instrument_id
BAR_TYPE = f"{INSTRUMENT}-1-MINUTE-LAST-EXTERNAL"
STRATEGY = ("node.strategy:EmaCross", "node.strategy:EmaCrossConfig")
RSS_GOAL = 1.5  # the node's RSS with the most strategies / with the fewest
WRITE_GOAL_MS = 100.0
# Checkpoints after every fill (coalesced) as in service, and at least once a second.
SERVICE = ServiceSettings(checkpoint_interval_s=1.0)


def strategy_entries(count: int) -> tuple[StrategyEntry, ...]:
    """``count`` EMA crosses by import path: tags 001.., fast 2-4, slow fast+3 and up
    (no two alike up to 21), each risking 1/count of what a lone one would."""
    leverage = (Decimal(1) / count).quantize(Decimal("0.0001"))
    entries = []
    for i in range(count):
        fast = 2 + i % 3
        slow = fast + 3 + i // 3
        config: dict[str, object] = {
            "instrument_id": INSTRUMENT,
            "bar_type": BAR_TYPE,
            "order_id_tag": f"{i + 1:03d}",
            "strategy": {
                "fast_period": fast,
                "slow_period": slow,
                "ladder_orders": 3,
                "ladder_step_pct": "0.05",
            },
            "risk": {"max_leverage": str(leverage)},
        }
        entries.append(
            StrategyEntry.model_validate(
                {"strategy_path": STRATEGY[0], "config_path": STRATEGY[1], "config": config}
            )
        )
    return tuple(entries)


@dataclass(frozen=True, slots=True)
class Plan:
    """What a run measures: ``bars`` played (then the RSS is read) at ``speed``, and
    each of the stall bench's two probe windows (without, with checkpoints)."""

    counts: tuple[int, ...] = (1, 5, 20)
    bars: int = 1200
    speed: float = SPEED
    stall_seconds: float = 3.0
    split: int = 2  # the most strategies also over this many node children (0: not)
    pin: bool = True  # the most strategies also with the node child on a CPU of its own

    @property
    def bars_per_s(self) -> float:
        return self.speed / 60  # one-minute bars


def node_settings(count: int, bars: int, speed: float) -> NodeSettings:
    return NodeSettings(
        trader_id=f"BENCH-S{count:03d}",
        replay=ReplaySettings(speed=speed, bars=bars),
        strategies=strategy_entries(count),
    )


# ---------------------------------------------------------------- the timed checkpointer


@dataclass(frozen=True, slots=True)
class Written:
    """One checkpoint write (store.write_checkpoint: JSON, insert, retention trim)."""

    ms: float
    open_orders: int
    positions: int
    position_fills: int  # the fills the snapshot keeps to rebuild its open positions
    cursor: int
    halted: bool


class CheckpointLog:
    """What the checkpointer saw, from its thread, read by the bench's."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._writes: list[Written] = []
        self.rejects = 0
        self.errors: list[str] = []
        self.halts: list[str] = []

    def add(self, written: Written) -> None:
        with self._lock:
            self._writes.append(written)

    def note(self, message: object) -> None:
        with self._lock:
            match message:
                case OrderRejected():
                    self.rejects += 1
                case Decision(reason=reason):
                    self.errors.append(reason)
                case TradingStateChanged(state=TradingState.HALTED, reason=reason):
                    self.halts.append(reason)

    @property
    def writes(self) -> list[Written]:
        with self._lock:
            return list(self._writes)


class TimedCheckpointer(CheckpointerActor):
    """The service's checkpointer, unchanged, that also stamps each message's arrival
    into ``inbox`` (as ``bench_latency.Stamp`` does, for the fill latency) and times
    each checkpoint write."""

    def __init__(
        self,
        ctx: ChildContext,
        inbox: Inbox,
        log: CheckpointLog,
        db_path: Path,
        run: RunInfo,
    ) -> None:
        super().__init__(ctx, db_path, run, SERVICE)
        self._inbox = inbox
        self._log = log

    @override
    def receive(self, message: object) -> object:
        self._inbox.tell((time.time_ns(), message))
        self._log.note(message)
        return super().receive(message)

    @override
    def _write(self, snapshot: Snapshot, final: bool, notify: Mailbox | None) -> None:
        t0 = time.perf_counter()
        super()._write(snapshot, final, notify)
        ms = (time.perf_counter() - t0) * 1e3
        fills = _position_fills(snapshot)
        halted = snapshot.trading_state is TradingState.HALTED
        orders, positions = len(snapshot.open_orders), len(snapshot.positions)
        self._log.add(Written(ms, orders, positions, fills, snapshot.replay_cursor, halted))


# ---------------------------------------------------------------- one count


class Scaling(TypedDict):
    """One count's figures (ms, MB)."""

    strategies: int
    bars: int
    speed: float
    rss_start_mb: float
    rss_mb: float
    rss_probed_mb: float
    fills: int
    fill_p50_ms: float
    fill_p99_ms: float
    ours_p50_ms: float
    ours_p99_ms: float
    rejects: int
    errors: list[str]
    halts: list[str]
    halted_at_bar: int | None
    writes: int
    write_p50_ms: float
    write_p99_ms: float
    write_max_ms: float
    open_orders: int
    positions: int
    position_fills: int
    probed_position_fills: int
    gross_notional: float  # every strategy's position, summed
    net_notional: float  # the account's net position
    equity: float
    snapshot_kb: float
    stall_p50_ms: float
    stall_max_ms: float
    probe_max_ms: float
    probe_max_without_ms: float


def _quantile(xs: list[float], at: float) -> float:
    """``pct``, or NaN for a run that had none (a node halted before its first fill)."""
    return pct(xs, at) if xs else float("nan")


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    kb = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
    return int(kb) / 1024


def _played(node: pykka.ActorRef[pykka.Actor], bars: int, timeout: float) -> Snapshot:
    """The node's snapshot once its replay cursor reached ``bars``."""
    deadline = time.monotonic() + timeout
    while True:
        reply = Inbox()
        node.tell(TakeSnapshot(reply_to=reply))
        snap = reply.expect(SnapshotTaken, 10).snapshot
        if snap.replay_cursor >= bars:
            return snap
        if time.monotonic() > deadline:
            raise TimeoutError(f"cursor {snap.replay_cursor} of {bars} bars after {timeout} s")
        time.sleep(0.2)


def _last_snapshot_kb(db: Path) -> float:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        row = conn.execute(
            "SELECT length(snapshot) FROM checkpoints ORDER BY id DESC LIMIT 1"
        ).fetchone()
    finally:
        conn.close()
    return 0.0 if row is None else int(row[0]) / 1024


@dataclass(frozen=True, slots=True)
class TreeRun:
    rss_start_mb: float
    rss_mb: float
    fills: bench_latency.FillTimes
    played: Snapshot
    writes: list[Written]
    snapshot_kb: float
    rejects: int
    errors: list[str]
    halts: list[str]


def under_the_tree(
    count: int, plan: Plan, work: Path, settings: NodeSettings | None = None, place: bool = True
) -> TreeRun:
    """``plan.bars`` bars through a node with ``count`` strategies under the actor tree
    (``settings``: that node's, if not the count's own), this process placed on a CPU as
    the service places itself (``place``: here; else the caller did, once for all trees)."""
    bars = plan.bars
    settings = settings or node_settings(count, bars, plan.speed)
    db = work / f"strategies-{settings.trader_id}.db"
    store = Store(db)
    run = store.open_run(settings.trader_id, settings.mode.value)
    store.close()
    inbox, events, trace, log = Inbox(), Inbox(), bench_latency.FillTrace(), CheckpointLog()
    fill_trace = work / f"fills-{settings.trader_id}.txt"

    def start_checkpointer(ctx: ChildContext) -> pykka.ActorRef[TimedCheckpointer]:
        return TimedCheckpointer.start(ctx, inbox, log, db, run)

    if place:
        place_supervisor(settings.cpus)  # as the service does before its tree
    sup = bench_latency.node_tree(
        settings, inbox, events, (trace, fill_trace), checkpointer=start_checkpointer
    )
    freeze_heap()  # as the service does once its tree is built
    try:
        _, started = bench_latency.arrived(inbox, NodeStarted, 120)
        assert isinstance(started, NodeStarted)
        rss_start = rss_mb(started.pid)
        fills = bench_latency.collect_fills(inbox, trace, fill_trace, bars / plan.bars_per_s)
        node = sup.ask(WhereIs("node"), timeout=5)
        assert isinstance(node, pykka.ActorRef)
        played = _played(node, bars, timeout=60 + bars / plan.bars_per_s)
        if any(e.role == "node" for e in events.of_type(ChildExited)):
            raise RuntimeError(f"{count} strategies: the node child exited during the run")
        rss = rss_mb(started.pid)
        writes = log.writes  # before the stop's final snapshot adds one
        snapshot_kb = _last_snapshot_kb(db)
    finally:
        sup.stop(timeout=60)
        if place:
            unplace_supervisor()
    return TreeRun(
        rss_start, rss, fills, played, writes, snapshot_kb, log.rejects, log.errors, log.halts
    )


@dataclass(frozen=True, slots=True)
class StallRun:
    rss_mb: float
    position_fills: int
    row: Row
    stalls: list[float]
    lag: list[float]
    baseline: list[float]


def stall_when_played(count: int, plan: Plan) -> StallRun:
    """A probed node with ``count`` strategies played to bar ``plan.bars`` and trading
    on: the loop stall of a snapshot asked for every 100 ms (``bench_stall``)."""
    bars, seconds = plan.bars, plan.stall_seconds
    more = int((2 * seconds + 5) * plan.bars_per_s)  # still trading through both windows
    node = bench_stall.ProbedNode(node_settings(count, bars + more, plan.speed))
    try:
        started = node.inbox.expect(NodeStarted, 120)
        deadline = time.monotonic() + 60 + bars / plan.bars_per_s
        while (held := node.snapshot()).replay_cursor < bars:
            if time.monotonic() > deadline:
                raise TimeoutError(f"cursor {held.replay_cursor} of {bars} bars")
            time.sleep(0.2)
        rss = rss_mb(started.pid)
        lag, baseline, times = bench_stall.stall_window(node, seconds)
    finally:
        node.close()
    stalls = [b + s for b, s in zip(times.build_ms, times.send_ms, strict=True)]
    row = bench_stall.stall_row(_label(count), held, lag, baseline, times)
    return StallRun(rss, _position_fills(held), row, stalls, lag, baseline)


def _notional(snap: Snapshot) -> tuple[float, float]:
    """The positions' notional: every strategy's summed (gross), and the account's net."""
    signed = [
        float(p.quantity * p.avg_px_open) * (1 if p.side == "LONG" else -1) for p in snap.positions
    ]
    return sum(abs(x) for x in signed), abs(sum(signed))


def _position_fills(snap: Snapshot) -> int:
    return sum(len(p.fills) for p in snap.positions)


@dataclass(frozen=True, slots=True)
class Measured:
    figures: Scaling
    stall: Row
    stages: list[Stage]


def one_count(count: int, plan: Plan, work: Path) -> Measured:
    tree = under_the_tree(count, plan, work)
    stall = stall_when_played(count, plan)
    gross, net = _notional(tree.played)
    fills, writes = tree.fills, [w.ms for w in tree.writes]
    last = tree.writes[-1] if tree.writes else Written(0.0, 0, 0, 0, 0, False)
    halted_at = [w.cursor for w in tree.writes if w.halted]
    nan = float("nan")
    scaling = Scaling(
        strategies=count,
        bars=plan.bars,
        speed=plan.speed,
        rss_start_mb=tree.rss_start_mb,
        rss_mb=tree.rss_mb,
        rss_probed_mb=stall.rss_mb,
        fills=len(fills.total),
        fill_p50_ms=_quantile(fills.total, 0.5),
        fill_p99_ms=_quantile(fills.total, 0.99),
        ours_p50_ms=_quantile(fills.ours, 0.5),
        ours_p99_ms=_quantile(fills.ours, 0.99),
        rejects=tree.rejects,
        errors=tree.errors[:10],
        halts=tree.halts,
        halted_at_bar=min(halted_at, default=None),
        writes=len(writes),
        write_p50_ms=_quantile(writes, 0.5),
        write_p99_ms=_quantile(writes, 0.99),
        write_max_ms=max(writes, default=nan),
        open_orders=last.open_orders,
        positions=last.positions,
        position_fills=last.position_fills,
        probed_position_fills=stall.position_fills,
        gross_notional=gross,
        net_notional=net,
        equity=float(tree.played.equity),
        snapshot_kb=tree.snapshot_kb,
        stall_p50_ms=_quantile(stall.stalls, 0.5),
        stall_max_ms=max(stall.stalls, default=nan),
        probe_max_ms=max(stall.lag, default=nan),
        probe_max_without_ms=max(stall.baseline, default=nan),
    )
    stages = [
        Stage(name=name, p50=pct(xs, 0.5), p99=pct(xs, 0.99), unit="ms")
        for name, xs in fills.stages
        if xs
    ]
    return Measured(scaling, stall.row, stages)


# ---------------------------------------------------------------- the section


def strategy_scaling(plan: Plan = Plan(), figures: list[Scaling] | None = None) -> list[Row]:
    """The rows for ``plan.counts`` strategies (each count's figures go to ``figures``)."""
    bars = plan.bars
    work = Path(tempfile.mkdtemp(prefix="strategies-", dir=ROOT / "test-artifacts"))
    try:
        measured = [one_count(n, plan, work) for n in sorted(plan.counts)]
        most = max(plan.counts)
        # (a child with no strategy of its own would run the bundled one)
        splits = 1 < plan.split <= most
        split = split_over_children(most, plan.split, plan, work) if splits else None
        pinned = on_its_own_cpu(most, plan, work) if plan.pin else None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if figures is not None:
        figures.extend(m.figures for m in measured)
    base = measured[0].figures
    rows: list[Row] = []
    for m in measured:
        rows += _rows(m, base, bars)
    top = measured[-1].figures
    if split is not None:
        rows.append(_split_row(split, top))
    if pinned is not None:
        rows.append(_pinned_row(most, pinned, top))
    if top is base:
        return rows  # one count: no ratio
    ratio = top["rss_mb"] / base["rss_mb"]
    rows.append(
        Row(name=f"node RSS, {top['strategies']} / {base['strategies']} strategies",
            value=ratio, unit="x", target=f"<= {RSS_GOAL} x", ok=ratio <= RSS_GOAL,
            anchor=f"{top['rss_mb']:.0f} / {base['rss_mb']:.0f} MB after {bars} bars; "
                   f"at start {top['rss_start_mb']:.0f} / {base['rss_start_mb']:.0f} MB")
    )  # fmt: skip
    return rows


@dataclass(frozen=True, slots=True)
class Split:
    """``count`` strategies spread over ``children`` nodes, each under its own tree."""

    count: int
    children: int
    fills: list[float]
    ours: list[float]
    rss_mb: list[float]
    halts: list[str]


def split_over_children(count: int, children: int, plan: Plan, work: Path) -> Split:
    """The alternative to one node holding every strategy: the same ``count`` strategies
    dealt round-robin to ``children`` node children (each with its own account, its own
    pipe and checkpointer), played side by side: each node's events wait behind its own
    strategies' only, and the machine's cores share the work."""
    entries = strategy_entries(count)
    runs: dict[int, TreeRun] = {}
    failed: list[BaseException] = []

    def one(k: int) -> None:
        settings = replace(
            node_settings(count, plan.bars, plan.speed),
            trader_id=f"BENCH-P{k + 1:03d}",
            strategies=entries[k::children],
        )
        try:
            runs[k] = under_the_tree(count, plan, work, settings, place=False)
        except BaseException as exc:  # reported by the caller's thread
            failed.append(exc)

    place_supervisor()  # one process holds every tree here: placed once
    threads = [threading.Thread(target=one, args=(k,)) for k in range(children)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        unplace_supervisor()
    if failed:
        raise failed[0]
    return Split(
        count=count,
        children=children,
        fills=[ms for run in runs.values() for ms in run.fills.total],
        ours=[ms for run in runs.values() for ms in run.fills.ours],
        rss_mb=[run.rss_mb for run in runs.values()],
        halts=[halt for run in runs.values() for halt in run.halts],
    )


def on_its_own_cpu(count: int, plan: Plan, work: Path) -> TreeRun | None:
    """``count`` strategies in one node again, with ``[service] node_cpus`` set as on a
    host running one service: the node child on the last CPU, this process (the
    supervisor's tree) on one of the others. None on a single CPU."""
    usable = usable_cpus()
    if len(usable) < 2:
        return None
    node_cpu = (max(usable),)
    settings = replace(
        node_settings(count, plan.bars, plan.speed), trader_id=f"BENCH-C{count:03d}", cpus=node_cpu
    )
    return under_the_tree(count, plan, work, settings)


def _pinned_row(count: int, run: TreeRun, one: Scaling) -> Row:
    fills, ours = run.fills.total, run.fills.ours
    stages = "; ".join(f"{name.split(' (')[0]} p99 {_quantile(xs, 0.99):.2f}" for name, xs in
                       run.fills.stages if xs)  # fmt: skip
    return Row(
        name=f"{_label(count)}, node child on its own CPU: fill -> parent actor, p99",
        value=_quantile(fills, 0.99), unit="ms", target="-", ok=None,
        anchor=f"unpinned {one['fill_p99_ms']:.1f} ms; p50 {_quantile(fills, 0.5):.2f} ms of "
               f"{len(fills)} fills; our part p50 / p99 {_quantile(ours, 0.5):.2f} / "
               f"{_quantile(ours, 0.99):.2f} ms (unpinned {one['ours_p99_ms']:.2f}): {stages}",
    )  # fmt: skip


def _split_row(split: Split, one: Scaling) -> Row:
    p99 = _quantile(split.fills, 0.99)
    halts = f"; {len(split.halts)} halts" if split.halts else ""
    return Row(
        name=f"{_label(split.count)} over {split.children} node children: fill -> parent "
             "actor, p99",
        value=p99, unit="ms", target="-", ok=None,
        anchor=f"one node {one['fill_p99_ms']:.1f} ms; p50 {_quantile(split.fills, 0.5):.2f} ms of "
               f"{len(split.fills)} fills, our part p50 / p99 {_quantile(split.ours, 0.5):.2f} / "
               f"{_quantile(split.ours, 0.99):.2f} ms; node RSS "
               f"{' + '.join(f'{mb:.0f}' for mb in split.rss_mb)} MB (one node "
               f"{one['rss_mb']:.0f}); each child its own account{halts}",
    )  # fmt: skip


def _label(count: int) -> str:
    return f"{count} strateg{'y' if count == 1 else 'ies'}"


def _rows(m: Measured, base: Scaling, bars: int) -> list[Row]:
    s, n = m.figures, _label(m.figures["strategies"])
    ratio = s["rss_mb"] / base["rss_mb"]
    trouble = (
        f"; {s['rejects']} rejects, {len(s['errors'])} errors, {len(s['halts'])} halts"
        if s["rejects"] or s["errors"] or s["halts"]
        else ""
    )
    if s["halted_at_bar"] is not None:
        trouble += f" (halted at bar {s['halted_at_bar']}: {s['halts'][0] if s['halts'] else ''})"
    rss = Row(
        name=f"{n}: node child RSS after {bars} bars",
        value=s["rss_mb"], unit="MB",
        target="-" if s is base else f"<= {RSS_GOAL} x {base['strategies']}",
        ok=None if s is base else ratio <= RSS_GOAL,
        anchor=f"{ratio:.2f} x {base['strategies']}; {s['rss_start_mb']:.0f} MB at start, "
               f"{s['rss_probed_mb']:.0f} MB in the probed run; {s['fills']} fills; positions "
               f"{s['gross_notional'] / 1e3:,.0f}k gross, {s['net_notional'] / 1e3:,.0f}k net, "
               f"equity {s['equity'] / 1e3:,.0f}k{trouble}",
    )  # fmt: skip
    fill = Row(
        name=f"{n}: fill -> parent actor, p99, from ts_event",
        value=s["fill_p99_ms"], unit="ms", target="<= 2 ms", ok=s["fill_p99_ms"] <= 2.0,
        anchor=f"p50 {s['fill_p50_ms']:.2f} ms of {s['fills']} fills; our part (bridge -> "
               f"checkpointer) p50 / p99 {s['ours_p50_ms']:.2f} / {s['ours_p99_ms']:.2f} ms",
        stages=m.stages,
    )  # fmt: skip
    write = Row(
        name=f"{n}: checkpoint write, p99",
        value=s["write_p99_ms"], unit="ms", target=f"<= {WRITE_GOAL_MS:g} ms",
        ok=s["write_max_ms"] <= WRITE_GOAL_MS,
        anchor=f"p50 {s['write_p50_ms']:.2f}, max {s['write_max_ms']:.2f} ms of {s['writes']}; "
               f"last: {s['open_orders']} orders, {s['positions']} positions holding "
               f"{s['position_fills']} fills, {s['snapshot_kb']:.1f} KB JSON",
    )  # fmt: skip
    stall = m.stall
    stall["anchor"] += f"; its positions hold {s['probed_position_fills']} fills"
    return [rss, fill, write, stall]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     prog="scripts.bench_strategies")  # fmt: skip
    parser.add_argument("--counts", default="1,5,20", help="strategies a node (default 1,5,20)")
    parser.add_argument("--bars", type=int, default=1200,
                        help="bars played before the RSS is read (default 1200: 24 s)")  # fmt: skip
    parser.add_argument("--speed", type=float, default=SPEED,
                        help="x real time (default 3000: 50 bars/s, as bench_latency)")  # fmt: skip
    parser.add_argument("--stall-seconds", type=float, default=3.0,
                        help="each loop-probe window (default 3)")  # fmt: skip
    parser.add_argument("--split", type=int, default=2,
                        help="the most strategies also over this many node children "
                             "(default 2; 0 or 1: not)")  # fmt: skip
    parser.add_argument("--no-pin", action="store_true",
                        help="skip the run with the node child on a CPU of its own")  # fmt: skip
    parser.add_argument(
        "--out", type=Path, default=ROOT / "test-artifacts" / "bench-strategies.json"
    )
    args = parser.parse_args()
    counts = tuple(int(c) for c in str(args.counts).split(","))
    if not counts or min(counts) < 1 or args.bars < 100 or args.speed <= 0:
        parser.error("counts must be positive, --bars at least 100 and --speed above 0")
    plan = Plan(counts, args.bars, args.speed, args.stall_seconds, args.split, not args.no_pin)
    (ROOT / "test-artifacts").mkdir(exist_ok=True)
    SCRATCH.mkdir(exist_ok=True)
    figures: list[Scaling] = []
    try:
        rows = strategy_scaling(plan, figures)
    finally:
        shutil.rmtree(SCRATCH, ignore_errors=True)
    machine = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine, "rows": rows, "counts": figures}
    args.out.write_text(json.dumps(report, indent=2))
    print_rows(rows)
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
