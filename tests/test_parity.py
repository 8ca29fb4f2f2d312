"""A replay equals the backtest, at any speed and across a SIGKILL, on real market data.

Each session is the real service as a subprocess, playing the repository's real bar file
(``tests/data``: three days of one-minute BTC perpetual bars) until it stops by itself
(``replay.stop_when_done``). Its fills are read from the database with plain SQL and set
against ``BacktestEngine`` run here, in the test, with the same settings: the check does
not go through the parity report it also checks, so a report that read both sides
wrong could not pass it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from node.backtest import run_backtest
from protocol import Outcome, Trade
from supervisor.config import load_config
from tests.service import (
    ROOT,
    ServiceProcess,
    alive,
    cli,
    events,
    node_pids,
    query,
    wait_for,
    write_config,
)

pytestmark = pytest.mark.node

BARS = ROOT / "tests" / "data" / "btc-perp-2022-01-1m.csv"
N_BARS = 4320

# Breakers far away: a backtest has none, and a halted session stops trading (the
# report says so; these tests are about the fills, not the breakers).
FAR_BREAKERS = '[risk]\nmax_drawdown_pct = "90"\ndaily_loss_limit_pct = "90"\n'


def write(tmp_path: Path, trader: str, speed: float, ladder: int) -> tuple[Path, Path]:
    return write_config(
        tmp_path,
        trader=trader,
        speed=speed,
        ladder=ladder,
        ladder_step="0.001",
        replay=f'source = "file"\npath = "{BARS}"\nstop_when_done = true',
        extra=FAR_BREAKERS,
        name="parity",
    )


def play(config: Path, db: Path, cwd: Path, timeout: float = 240, bars: int = N_BARS) -> str:
    """Run the session to the end of the file; the service stops by itself."""
    service = ServiceProcess(config, db, cwd)
    try:
        code = service.wait(timeout)
    finally:
        service.ensure_dead()
    log = service.log_path.read_text()
    assert code == 0, log[-3000:]
    assert f"replay finished after {bars} bars" in log, log[-3000:]
    return log


def session_fills(db: Path, after_event: int = 0) -> list[Trade]:
    """The fills recorded after the event ``after_event`` (all of them by default)."""
    out = []
    rows = query(
        db, "SELECT payload FROM events WHERE kind = 'fill' AND id > ? ORDER BY id", (after_event,)
    )
    for row in rows:
        p = json.loads(row["payload"])
        out.append(
            Trade(
                int(p["bar"]),
                p["side"],
                Decimal(p["quantity"]),
                Decimal(p["price"]),
                Decimal(p["commission"]),
            )
        )
    return out


def final_checkpoint(db: Path) -> sqlite3.Row:
    rows = query(db, "SELECT * FROM checkpoints ORDER BY id DESC LIMIT 1")
    assert rows and rows[0]["final"] == 1, "the session ends with its final checkpoint"
    return rows[0]


def backtest(config: Path) -> Outcome:
    return run_backtest(load_config(config).node)


def closes() -> list[Decimal]:
    with BARS.open(newline="") as handle:
        return [Decimal(row["close"]) for row in csv.DictReader(handle)]


def utc_ns(text: str) -> int:
    moment = datetime.fromisoformat(text).replace(tzinfo=UTC)
    return int(moment.timestamp()) * 10**9 + moment.microsecond * 1000


def bar_times(path: Path = BARS) -> list[int]:
    """Each bar's market time, as the file has it."""
    with path.open(newline="") as handle:
        return [utc_ns(row["timestamp"]) for row in csv.DictReader(handle)]


def assert_dated_by_the_file(db: Path, path: Path = BARS) -> list[int]:
    """Every fill is dated with the file's time of the bar it filled in: the session runs
    on the data's clock (January 2022 here), not the machine's. The fills' times."""
    times = bar_times(path)
    dated = []
    for _, payload in events(db, "fill"):
        market_ns = int(str(payload["market_ns"]))
        assert market_ns == times[int(str(payload["bar"]))], payload
        dated.append(market_ns)
    return dated


def assert_equal_to_backtest(db: Path, bt: Outcome) -> None:
    fills = session_fills(db)
    assert len(fills) == len(bt.trades)
    for n, (ours, theirs) in enumerate(zip(fills, bt.trades, strict=True)):
        assert ours == theirs, f"fill #{n + 1}: session {ours}, backtest {theirs}"
    last = final_checkpoint(db)
    assert last["replay_cursor"] == N_BARS
    assert Decimal(last["balance"]) == bt.balance
    assert Decimal(last["realized_pnl"]) == bt.realized_pnl


def test_a_gap_in_the_file_stays_a_gap_in_time_and_the_replay_still_equals_its_backtest(
    tmp_path,
):
    """The real file with an hour cut out (exchange data misses minutes): no bar is
    played in it and no fill is dated in it; the gap is in the log and in the parity
    report, and the session is still its backtest's, fill for fill."""
    start, end = utc_ns("2022-01-02 10:00:00"), utc_ns("2022-01-02 11:00:00")
    rows = BARS.read_text().splitlines()
    kept = [rows[0]] + [r for r in rows[1:] if not start <= utc_ns(r.split(",")[0]) < end]
    assert len(kept) == len(rows) - 60
    cut = tmp_path / "btc-gap.csv"
    cut.write_text("\n".join(kept) + "\n")
    config, db = write_config(
        tmp_path,
        trader="GAP-001",
        speed=0,
        ladder=3,
        ladder_step="0.001",
        replay=f'source = "file"\npath = "{cut}"\nstop_when_done = true',
        extra=FAR_BREAKERS,
        name="gap",
    )
    log = play(config, db, tmp_path, bars=N_BARS - 60)
    assert "gap" in log and "2022-01-02 09:59:00 UTC to 2022-01-02 11:00:00 UTC" in log, log[-3000:]
    dated = assert_dated_by_the_file(db, cut)
    assert dated and not [t for t in dated if start <= t < end], "no fill dated in the gap"
    assert min(dated) >= utc_ns("2021-12-31 23:01:00") and max(dated) < utc_ns("2022-01-04")
    bt = run_backtest(load_config(config).node)
    fills = session_fills(db)
    assert fills == list(bt.trades)
    assert Decimal(final_checkpoint(db)["balance"]) == bt.balance
    report = cli("report", "parity", "--db", str(db), "--json", cwd=tmp_path, timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr
    body = json.loads(report.stdout)
    assert body["equal"] is True
    assert any("60 bar(s) missing" in note for note in body["notes"]), body["notes"]


@pytest.mark.parametrize(
    ("speed", "mode"),
    [(0, "cancel"), (20_000, "cancel"), (0, "flatten")],
    ids=["full-speed", "paced", "flatten"],
)
def test_a_replay_its_drawdown_breaker_halts_stops_at_the_backtests_bar_at_any_speed(
    tmp_path, speed, mode
):
    """Real bars and a tight drawdown limit: the node judges the breaker on market time at
    every step, so the halt falls on the same bar at full speed and paced, and that is the
    bar the parity backtest (running the same breakers, in the same halt mode) halts at;
    the report is EQUAL and names the bar on both sides."""
    config, db = write_config(
        tmp_path,
        trader=f"DD-{mode.upper()}{speed}",
        speed=speed,
        ladder=3,
        ladder_step="0.001",
        replay=f'source = "file"\npath = "{BARS}"\nstop_when_done = true',
        extra=(
            '[risk]\nmax_drawdown_pct = "3"\ndaily_loss_limit_pct = "90"\n'
            f'[breakers]\nhalt_mode = "{mode}"\n'
        ),
        name="drawdown",
    )
    bt = backtest(config)
    assert len(bt.halts) == 1 and bt.halts[0].reason.startswith("circuit breaker max_drawdown")
    halt_bar = bt.halts[0].bar
    assert halt_bar is not None and 100 < halt_bar < N_BARS - 100, "it halts mid-session"
    play(config, db, tmp_path)
    halts = [
        p
        for _, p in events(db, "trading_state")
        if p["state"] != "ACTIVE" and p.get("source") == "market"
    ]
    assert halts, "the node's breaker halted the session"
    assert {p["bar"] for p in halts} == {halt_bar}, "the backtest's bar"
    assert [p["bar"] for _, p in events(db, "breaker")] == [halt_bar]
    assert_equal_to_backtest(db, bt)
    assert not [t for t in session_fills(db) if t.bar > halt_bar], "nothing trades after it"
    gate = query(db, "SELECT state, source FROM trading_gate")
    assert [tuple(r) for r in gate] == [("HALTED", "market")], "on record for a restart"
    report = cli("report", "parity", "--db", str(db), "--json", cwd=tmp_path, timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr
    body = json.loads(report.stdout)
    assert body["equal"] is True and body["halts_equal"] is True
    assert [h["bar"] for h in body["halts"]] == [h["bar"] for h in body["backtest_halts"]]
    text = cli("report", "parity", "--db", str(db), cwd=tmp_path, timeout=120).stdout
    assert f"halted at bar {halt_bar} (the account), session and backtest alike" in text


@pytest.mark.parametrize(
    ("speed", "ladder"),
    [(0, 0), (0, 3), (30_000, 3)],
    ids=["full-speed", "full-speed-ladder", "paced-ladder"],
)
def test_a_replay_equals_the_backtest_fill_for_fill(tmp_path, speed, ladder):
    """Speed 0 plays as fast as the node goes, 30,000 paces it at 500 bars a second; with
    a ladder, limit orders rest inside a bar and fill there."""
    config, db = write(tmp_path, f"PAR-{speed}{ladder}", speed, ladder)
    play(config, db, tmp_path)
    bt = backtest(config)
    assert len(bt.trades) > 150, "enough trading to compare"
    assert_equal_to_backtest(db, bt)
    dated = assert_dated_by_the_file(db)
    assert sum(1 for t in dated if t >= utc_ns("2022-01-01 00:00:00")) > 150, "January 2022"
    if ladder:
        close = closes()
        resting = [t for t in bt.trades if abs(t.price - close[t.bar]) > Decimal(1)]
        assert resting, "some fills are resting limit orders, away from the bar's close"
    assert not events(db, "reject"), "no order denied or rejected"

    # The operator's report says the same, from the database and its own backtest.
    report = cli("report", "parity", "--db", str(db), "--json", cwd=tmp_path, timeout=120)
    assert report.returncode == 0, report.stderr
    body = json.loads(report.stdout)
    assert body["equal"] is True
    assert body["session"]["fills"] == body["backtest"]["fills"] == len(bt.trades)
    assert Decimal(body["session"]["balance"]) == bt.balance
    assert body["first_divergence"] is None


def test_the_report_names_the_first_diverging_fill(tmp_path):
    """A session whose fills differ from the backtest's: the report says DIFFERENT, exits
    6 and points at the first fill that differs (here one changed in the database's
    ledger, which the report reads)."""
    config, db = write(tmp_path, "PAR-DIFF", 0, 0)
    play(config, db, tmp_path)
    changed = tmp_path / "changed.db"
    shutil.copy(db, changed)
    conn = sqlite3.connect(changed)
    rows = conn.execute("SELECT id, price, bar FROM ledger WHERE kind = 'fill' ORDER BY id")
    fill_id, price, bar = rows.fetchall()[10]
    price = str(Decimal(price) + 1)
    conn.execute("UPDATE ledger SET price = ? WHERE id = ?", (price, fill_id))
    conn.commit()
    conn.close()

    report = cli("report", "parity", "--db", str(changed), cwd=tmp_path, timeout=120)
    assert report.returncode == 6, report.stdout + report.stderr
    assert "DIFFERENT" in report.stdout
    assert "first diverging fill: #11" in report.stdout
    assert f"@ {price} (bar {bar})" in report.stdout

    moved = cli("report", "parity", "--db", str(tmp_path / "absent.db"), cwd=tmp_path)
    assert moved.returncode == 1 and "no database" in moved.stderr


@pytest.mark.parametrize("victim", ["service", "node"])
def test_a_sigkill_mid_replay_resumes_at_the_right_bar(tmp_path, victim):
    """SIGKILL half way (the whole service, then a new ``run``; or the node child, which
    its supervisor restarts): the session ends with the backtest's balance, and the fills
    after the restart point are the backtest's, none traded twice or skipped."""
    config, db = write(tmp_path, f"KILL-{victim.upper()}", 20_000, 3)
    service = ServiceProcess(config, db, tmp_path)
    try:
        service.wait_status(
            "half the bars played",
            lambda r: (r["replay_cursor"] or 0) > N_BARS // 3 and r["fills"] > 20,
            timeout=120,
        )
        if victim == "service":
            service.kill()
            node = node_pids(db)[-1]
            wait_for("the orphaned node to stop", lambda: not alive(node), 30)
            play(config, db, tmp_path)
        else:
            os.kill(node_pids(db)[-1], signal.SIGKILL)
            code = service.wait(240)
            assert code == 0, service.log_path.read_text()[-3000:]
    finally:
        service.ensure_dead()

    starts = query(db, "SELECT id, payload FROM events WHERE kind = 'node_started' ORDER BY id")
    assert len(starts) == 2
    restarted = json.loads(starts[1]["payload"])
    cursor = int(restarted["replay_cursor"])
    assert restarted["restored"] is not None, "the second node restored the checkpoint"
    assert N_BARS // 3 <= cursor < N_BARS

    bt = backtest(config)
    after = [t for t in bt.trades if t.bar >= cursor]
    # What the first node filled after the checkpoint it died past is played again from
    # the checkpoint: the second node's fills are the backtest's from there on.
    fills = session_fills(db, after_event=starts[1]["id"])
    assert fills == after, "the fills after the restart point are the backtest's"
    last = final_checkpoint(db)
    assert Decimal(last["balance"]) == bt.balance
    assert Decimal(last["realized_pnl"]) == bt.realized_pnl

    report = cli("report", "parity", "--db", str(db), "--json", cwd=tmp_path, timeout=120)
    assert report.returncode == 0, report.stdout + report.stderr
    assert json.loads(report.stdout)["equal"] is True


def test_speed_0_plays_the_default_series_to_the_end_without_a_denial(tmp_path):
    """The bundled example as fast as possible: every bar played, no order denied by the
    RiskEngine's rate limit (or anything else), no breaker tripped."""
    db = tmp_path / "default.db"
    config = tmp_path / "default.toml"
    default = (ROOT / "supervisor" / "default.toml").read_text()
    config.write_text(default + "\n[replay]\nspeed = 0\nstop_when_done = true\n")
    service = ServiceProcess(config, db, tmp_path, "--db", str(db))
    try:
        code = service.wait(300)
    finally:
        service.ensure_dead()
    log = service.log_path.read_text()
    assert code == 0, log[-3000:]
    assert "replay finished after 50000 bars" in log
    assert final_checkpoint(db)["replay_cursor"] == 50_000
    assert len(events(db, "fill")) > 1000
    assert not events(db, "reject")
    assert not events(db, "breaker")
    assert not events(db, "trading_state"), "trading was never halted"
