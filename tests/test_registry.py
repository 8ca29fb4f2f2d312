"""The promotion record: `paper-node strategies add|list`, driven from outside."""

from __future__ import annotations

import json
import os
import sqlite3

from storage.schema import MIGRATIONS
from storage.store import connect
from tests.service import ROOT, cli

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BREAKOUT = (
    "--strategy-path",
    "tests.user_strategy:Breakout",
    "--config-path",
    "tests.user_strategy:BreakoutConfig",
)
CONFIG = json.dumps(
    {
        "instrument_id": "BTCUSDT-PERP.BINANCE",
        "bar_type": "BTCUSDT-PERP.BINANCE-1-MINUTE-LAST-EXTERNAL",
        "lookback": 20,
    }
)


def strategies(*args: str, cwd, db):
    return cli("strategies", *args, "--db", str(db), cwd=cwd, env=ENV)


def test_a_registered_strategy_is_listed_with_its_exact_metrics(tmp_path):
    db = tmp_path / "reg.db"
    assert strategies("list", "--json", cwd=tmp_path, db=db).stdout.strip() == "[]"
    metrics = tmp_path / "metrics.json"
    metrics.write_text('{"sharpe": 1.4200, "max_drawdown_pct": 12.5, "trade_count": 340}')
    done = strategies(
        "add", "breakout-v1", *BREAKOUT, "--strategy-config", CONFIG,
        "--metrics", f"@{metrics}", cwd=tmp_path, db=db,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("registered breakout-v1: tests.user_strategy:Breakout")
    (entry,) = json.loads(strategies("list", "--json", cwd=tmp_path, db=db).stdout)
    assert entry["entry"]["config"]["lookback"] == 20
    # Decimal metrics stay exact, as strings; absent ones stay absent (null).
    assert entry["metrics"]["sharpe"] == "1.4200"
    assert entry["metrics"]["max_drawdown_pct"] == "12.5"
    assert entry["metrics"]["trade_count"] == 340 and entry["metrics"]["pbo"] is None
    listed = strategies("list", cwd=tmp_path, db=db).stdout
    assert "breakout-v1" in listed and "1.42" in listed and "340" in listed


def test_every_problem_is_named_and_nothing_is_overwritten_unasked(tmp_path):
    db = tmp_path / "reg.db"
    bad = strategies(
        "add", "bad", *BREAKOUT, "--metrics", '{"sharpe": "high", "win_rate": 1.5, "colour": 1}',
        cwd=tmp_path, db=db,
    )  # fmt: skip
    assert bad.returncode == 2
    for problem in (
        "strategy.metrics.sharpe: expected a number, got 'high'",
        "strategy.metrics.win_rate: must be <= 1, got 1.5",
        "strategy.metrics.colour: unknown key (known: sharpe, sortino, max_drawdown_pct",
    ):
        assert problem in bad.stderr, bad.stderr
    missing = strategies(
        "add", "gone", "--strategy-path", "tests.nowhere:Breakout",
        "--config-path", "tests.user_strategy:BreakoutConfig", cwd=tmp_path, db=db,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "strategy.entry.strategy_path: cannot import tests.nowhere:Breakout" in missing.stderr
    first = strategies("add", "b", *BREAKOUT, "--strategy-config", CONFIG, cwd=tmp_path, db=db)
    assert first.returncode == 0, first.stderr
    again = strategies("add", "b", *BREAKOUT, "--strategy-config", CONFIG, cwd=tmp_path, db=db)
    assert again.returncode == 2 and "registered already (--replace to overwrite)" in again.stderr
    (entry,) = json.loads(strategies("list", "--json", cwd=tmp_path, db=db).stdout)
    assert entry["entry"]["config"]["lookback"] == 20, "the refused add changed the entry"
    replaced = strategies(
        "add", "b", *BREAKOUT, "--strategy-config", CONFIG.replace("20", "30"),
        "--metrics", '{"sharpe": 2}', "--replace", cwd=tmp_path, db=db,
    )  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    (entry,) = json.loads(strategies("list", "--json", cwd=tmp_path, db=db).stdout)
    assert entry["metrics"]["sharpe"] == "2" and entry["entry"]["config"]["lookback"] == 30


def test_a_database_of_the_previous_schema_gains_the_registry(tmp_path):
    db_path = tmp_path / "old.db"
    conn = sqlite3.connect(db_path)  # a database as schema 6 left it, whatever came after
    for migration in MIGRATIONS[:6]:
        conn.executescript(migration)
    conn.execute("PRAGMA user_version = 6")
    conn.commit()
    conn.close()
    assert strategies("list", "--json", cwd=tmp_path, db=db_path).stdout.strip() == "[]"
    done = strategies("add", "b", *BREAKOUT, "--strategy-config", CONFIG, cwd=tmp_path, db=db_path)
    assert done.returncode == 0, done.stderr
    assert [e["name"] for e in json.loads(
        strategies("list", "--json", cwd=tmp_path, db=db_path).stdout
    )] == ["b"]  # fmt: skip
    conn = sqlite3.connect(db_path)
    columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
    conn.close()
    assert "registered" in columns, "nor the jobs' record of the entry a session runs"


def test_a_database_of_a_newer_service_is_refused_in_one_line(tmp_path):
    db_path = tmp_path / "new.db"
    connect(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    for args in (("list",), ("add", "b", *BREAKOUT, "--strategy-config", CONFIG)):
        done = strategies(*args, cwd=tmp_path, db=db_path)
        assert done.returncode == 1, done.stderr
        assert "Traceback" not in done.stderr
        assert "schema version 99, newer than this service" in done.stderr
