"""Endings and safety edges (issue 23): the final checkpoint, snapshot timeouts, the
in-place cursor and the fill model's draws, ``run --fresh`` and every halt on record.

The checkpointer is driven by messages in a small tree of recording peers; only the exit
code of ``run`` needs the real service.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

import pytest

from actors.checkpointer import CheckpointerActor
from actors.inbox import Inbox
from protocol import (
    Alert,
    CheckpointFailed,
    CheckpointNow,
    CheckpointSaved,
    ExpectFinal,
    FinalSnapshot,
    Halt,
    NodeReport,
    ServiceSettings,
    Severity,
    SnapshotTaken,
    TakeSnapshot,
    WhereIs,
)
from storage import GateRow, Store
from supervisor import ChildSpec, Supervisor, SupervisorSpec
from supervisor.config import load_config
from supervisor.service import Service
from tests.helpers import Recorded, Recorder, recorder, snapshot
from tests.service import ServiceProcess, events, query, wait_for, write_config

TRADER = "END-001"
QUIET = ServiceSettings(checkpoint_interval_s=3600, heartbeat_interval_s=3600)


@dataclass(frozen=True)
class Move:
    """The fake venue's state moves on: a later bar, more fill-model draws."""

    cursor: int
    draws: int
    peak: Decimal | None = None  # the breakers' equity peak


@dataclass(frozen=True)
class Answer:
    """Whether the fake node answers snapshot requests from now on."""

    on: bool


class Venue(Recorder):
    """A node whose snapshot is its current state (cursor, draws), and which can stop
    answering snapshot requests while it stays alive."""

    def __init__(self, ctx, inbox, base):
        super().__init__(ctx, inbox, base)
        self.answering = True

    def receive(self, message):
        match message:
            case Move(cursor=cursor, draws=draws, peak=peak):
                self.snapshot = replace(
                    self.snapshot, replay_cursor=cursor, fill_draws=draws, equity_peak=peak
                )
                return None
            case Answer(on=on):
                self.answering = on
                return None
            case TakeSnapshot(reply_to=reply_to, request_id=request_id) if reply_to:
                self.inbox.tell(Recorded(self.ctx.role, self.actor_urn, message))
                if self.answering:
                    reply_to.tell(SnapshotTaken(request_id, self.snapshot))
                return None
        return super().receive(message)


def tree(db: Path, inbox: Inbox, service: ServiceSettings, busy_timeout_s: float = 1.0):
    store = Store(db)
    run = store.open_run(TRADER, "replay")
    store.close()
    spec = SupervisorSpec(
        children=(
            recorder("alerter", inbox),
            recorder("classifier", inbox),
            recorder("gate", inbox),
            ChildSpec(
                "node",
                lambda ctx: Venue.start(ctx, inbox, snapshot(trader_id=TRADER, replay_cursor=7)),
            ),
            ChildSpec(
                "checkpointer",
                lambda ctx: CheckpointerActor.start(
                    ctx, db, run, service, busy_timeout_s=busy_timeout_s
                ),
            ),
        )
    )
    return Supervisor.start(spec, parent=Inbox())


def last(db: Path):
    store = Store(db)
    try:
        found = store.last_checkpoint(TRADER)
    finally:
        store.close()
    assert found is not None
    return found[1]


# ---------------------------------------------------------------- the final checkpoint


def test_a_final_checkpoint_is_retried_while_the_database_is_briefly_locked(tmp_path):
    """A lock held a little longer than the busy timeout at the stop (another writer, a
    loaded machine) used to lose the final checkpoint: it is retried."""
    db = tmp_path / "final.db"
    sup = tree(db, Inbox(), QUIET, busy_timeout_s=0.2)
    try:
        checkpointer = sup.ask(WhereIs("checkpointer"), timeout=5)
        holder = sqlite3.connect(db, timeout=5, check_same_thread=False)
        holder.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.7, holder.rollback)
        release.start()
        try:
            final = Inbox()
            checkpointer.tell(ExpectFinal(final))
            checkpointer.tell(FinalSnapshot(snapshot(trader_id=TRADER, replay_cursor=99)))
            result = final.expect_any((CheckpointSaved, CheckpointFailed), timeout=10)
        finally:
            release.join()
            holder.close()
        assert isinstance(result, CheckpointSaved), result
        assert result.final
        row = query(db, "SELECT final, replay_cursor FROM checkpoints ORDER BY id")[-1]
        assert (row["final"], row["replay_cursor"]) == (1, 99)
    finally:
        sup.stop(timeout=10)


@pytest.mark.node
def test_run_says_in_one_line_and_exits_1_when_the_final_checkpoint_fails(tmp_path):
    config, db = write_config(tmp_path, trader="FINAL-001", ladder=0)
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status("trading", lambda r: r["last_checkpoint_at"] is not None, 60)
        holder = sqlite3.connect(db, timeout=10)
        holder.execute("BEGIN IMMEDIATE")  # longer than every retry of the final write
        try:
            service.proc.send_signal(signal.SIGTERM)
            wait_for(
                "the final checkpoint's failure in the log",
                lambda: "final checkpoint failed" in service.log_path.read_text(),
                45,
            )
        finally:
            holder.rollback()  # the run's end can be recorded
            holder.close()
        code = service.wait(30)
    finally:
        service.ensure_dead()
    output = service.log_path.read_text()
    said = [line for line in output.splitlines() if line.startswith("error:")]
    assert code == 1, output[-3000:]
    assert len(said) == 1 and "final checkpoint" in said[0], said
    assert "Traceback" not in output
    assert query(db, "SELECT count(*) AS n FROM checkpoints WHERE final = 1")[0]["n"] == 0


# ---------------------------------------------------------------- snapshot timeouts


def test_a_node_that_stops_answering_snapshots_halts_trading_then_recovery_is_announced(
    tmp_path,
):
    """Requests given up after ``snapshot_timeout_s`` count as failed checkpoints: a node
    alive (it reports) that never answers one halts trading through the gate after
    ``halt_after_failed_intervals`` intervals, as a failing write does."""
    inbox = Inbox()
    service = ServiceSettings(
        checkpoint_interval_s=0.2,
        heartbeat_interval_s=3600,
        halt_after_failed_intervals=2,
        snapshot_timeout_s=0.3,
    )
    sup = tree(tmp_path / "mute.db", inbox, service)
    stop = threading.Event()

    def reports() -> None:  # the node's vital signs, once every 0.1 s
        while not stop.wait(0.1):
            ref = sup.ask(WhereIs("checkpointer"), timeout=5)
            ref.tell(NodeReport(Decimal(1), Decimal(1), time.time_ns(), replay_cursor=7))

    reporter = threading.Thread(target=reports, daemon=True)
    try:
        sup.ask(WhereIs("node"), timeout=5).tell(Answer(False))
        reporter.start()
        halt = inbox.expect(
            Recorded,
            timeout=10,
            where=lambda r: r.role == "gate" and isinstance(r.message, Halt),
        ).message
        assert halt.source == "checkpointer", halt
        assert "no checkpoint succeeded" in halt.reason and "did not answer" in halt.reason
        sup.ask(WhereIs("node"), timeout=5).tell(Answer(True))
        recovered = inbox.expect(
            Recorded,
            timeout=10,
            where=lambda r: (
                r.role == "alerter"
                and isinstance(r.message, Alert)
                and r.message.title == "Checkpoints recovered"
            ),
        ).message
        assert recovered.severity is Severity.INFO
    finally:
        stop.set()
        if reporter.is_alive():
            reporter.join(5)
        sup.stop(timeout=10)


def test_a_node_still_starting_that_has_not_answered_yet_does_not_halt(tmp_path):
    """A node child starting (or restarting) sends no reports and answers nothing yet:
    its unanswered requests are not storage failures."""
    inbox = Inbox()
    service = ServiceSettings(
        checkpoint_interval_s=0.2,
        heartbeat_interval_s=3600,
        halt_after_failed_intervals=2,
        snapshot_timeout_s=0.3,
    )
    sup = tree(tmp_path / "starting.db", inbox, service)
    try:
        sup.ask(WhereIs("node"), timeout=5).tell(Answer(False))
        with pytest.raises(TimeoutError):  # requests expire at 1 s; a halt would be at 1.4 s
            inbox.expect(
                Recorded,
                timeout=2.0,
                where=lambda r: r.role == "gate" and isinstance(r.message, Halt),
            )
    finally:
        sup.stop(timeout=10)


# ---------------------------------------------------------------- the in-place cursor


def test_the_cursor_never_moves_on_in_place_past_an_unsaved_fill_model_draw(tmp_path):
    """A touched limit order that does not fill draws from the fill model and changes no
    state: the restore point (cursor, draws) must stay a pair the node had, else a restore
    at the later cursor skips too few draws and leaves the backtest."""
    db = tmp_path / "draws.db"
    sup = tree(db, Inbox(), QUIET)
    try:
        checkpointer = sup.ask(WhereIs("checkpointer"), timeout=5)
        node = sup.ask(WhereIs("node"), timeout=5)
        saved = Inbox()
        checkpointer.tell(CheckpointNow(notify=saved))
        saved.expect(CheckpointSaved)

        def report(cursor: int, draws: int) -> None:
            node.ask(Move(cursor, draws), timeout=5)
            checkpointer.ask(
                NodeReport(Decimal(1), Decimal(1), 0, replay_cursor=cursor, fill_draws=draws),
                timeout=5,
            )

        report(50, 0)  # bars without draws: the cursor moves on in place
        assert (last(db).replay_cursor, last(db).fill_draws) == (50, 0)

        report(80, 2)  # two draws on the way, nothing else changed
        wait_for("the restore point at cursor 80", lambda: last(db).replay_cursor == 80, 5)
        assert last(db).fill_draws == 2, "a restore at cursor 80 must skip both draws"

        report(90, 2)  # no new draw: in place again
        assert (last(db).replay_cursor, last(db).fill_draws) == (90, 2)
    finally:
        sup.stop(timeout=10)


def test_the_cursor_never_moves_on_in_place_past_moved_equity_marks(tmp_path):
    """The breakers' marks (a new equity peak, a new day's start) move without any order
    or position event: a restore at an in-place cursor would resume the breakers from the
    older marks and halt at another bar than the backtest."""
    db = tmp_path / "marks.db"
    sup = tree(db, Inbox(), QUIET)
    try:
        checkpointer = sup.ask(WhereIs("checkpointer"), timeout=5)
        node = sup.ask(WhereIs("node"), timeout=5)
        saved = Inbox()
        checkpointer.tell(CheckpointNow(notify=saved))
        saved.expect(CheckpointSaved)

        def report(cursor: int, peak: Decimal | None) -> None:
            node.ask(Move(cursor, 0, peak), timeout=5)
            checkpointer.ask(
                NodeReport(Decimal(1), Decimal(1), 0, replay_cursor=cursor, equity_peak=peak),
                timeout=5,
            )

        report(50, None)  # the marks as checkpointed: the cursor moves on in place
        assert (last(db).replay_cursor, last(db).equity_peak) == (50, None)

        report(80, Decimal(105))  # a new peak on the way, nothing else changed
        wait_for("the restore point at cursor 80", lambda: last(db).replay_cursor == 80, 5)
        assert last(db).equity_peak == Decimal(105), "a restore at 80 resumes from the peak"

        report(90, Decimal(105))  # the peak as checkpointed: in place again
        assert (last(db).replay_cursor, last(db).equity_peak) == (90, Decimal(105))
    finally:
        sup.stop(timeout=10)


# ---------------------------------------------------------------- run --fresh


def test_fresh_lifts_every_halt_on_record_and_says_which(tmp_path):
    db = tmp_path / "fresh.db"
    path = tmp_path / "fresh.toml"
    path.write_text(f'[service]\ntrader_id = "{TRADER}"\ndb_path = "{db}"\n')
    store = Store(db)
    store.set_gate(TRADER, GateRow("HALTED", "drawdown 21 %", "classifier", "2026-01-01"))
    for sid, state, reason in (
        ("EmaCross-001", "HALTED", "too many rejects"),
        ("EmaCross-002", "ACTIVE", "operator resume"),
        ("EmaCross-003", "HALTED", "its own drawdown"),
    ):
        store.set_strategy_gate(TRADER, sid, GateRow(state, reason, "operator", "2026-01-01"))
    store.close()

    service = Service(load_config(path, import_strategies=False), restore=False)
    service.stop("test: not started")

    store = Store(db)
    try:
        gate = store.gate(TRADER)
        strategies = store.strategy_gates(TRADER)
    finally:
        store.close()
    assert gate is not None and gate.state == "ACTIVE"
    assert {sid: row.state for sid, row in strategies.items()} == {
        "EmaCross-001": "ACTIVE",
        "EmaCross-002": "ACTIVE",
        "EmaCross-003": "ACTIVE",
    }
    [(_, fresh)] = events(db, "fresh_start")
    detail = str(fresh["detail"])
    for lifted in ("drawdown 21 %", "EmaCross-001", "too many rejects", "EmaCross-003"):
        assert lifted in detail, detail
    assert "EmaCross-002" not in detail, "it was not halted"
    assert fresh["lifted"] == {
        "account": "drawdown 21 %",
        "strategies": {"EmaCross-001": "too many rejects", "EmaCross-003": "its own drawdown"},
    }
