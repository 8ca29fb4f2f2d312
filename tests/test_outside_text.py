"""Text and names from outside stay what they are: a '#' in a database's path, a halt
reason naming a Telegram user and chat, escape sequences and Markdown in a reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from protocol import TradingState, TradingStateChanged
from sessions.plain import literal
from storage import AppDatabase, Store
from storage.status import open_readonly
from tests.service import cli
from tests.test_dashboard import app, seed
from tests.test_metrics_actor import health, metrics  # noqa: F401 (the fixture)


def test_a_hash_in_the_database_path_opens_that_file_read_only(tmp_path: Path) -> None:
    db = tmp_path / "runs#1" / "paper.db"
    Store(db).close()
    conn = open_readonly(db)
    try:
        assert conn.execute("SELECT count(*) FROM runs").fetchone()[0] == 0
    finally:
        conn.close()
    # Unescaped, the URI ended at '#': SQLite opened (and created) "runs" read-write.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs#1"]


def test_readyz_names_the_halt_but_not_who_sent_it_nor_the_chat(metrics) -> None:  # noqa: F811
    actor, _ = metrics
    reason = "telegram /halt from user 123456789 in chat -100987654321: flatten"
    actor.tell(TradingStateChanged(TradingState.HALTED, reason))
    (shown,) = [r for r in health(actor).ready_reasons if r.startswith("trading halted")]
    assert shown == "trading halted (HALTED: telegram /halt from user <id> in chat <id>: flatten)"


def test_events_prints_escape_sequences_as_text(tmp_path: Path) -> None:
    db = tmp_path / "paper.db"
    store = Store(db)
    run = store.open_run("ESC-001", "replay")
    store.append_event(run, "halt", {"reason": "\x1b]0;pwned\x07\x1b[2Jgone\u202eevil"})
    store.close()
    done = cli("events", "--db", str(db), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout and "\x07" not in done.stdout and "\u202e" not in done.stdout
    assert r"reason=\x1b]0;pwned\x07\x1b[2Jgone\u202eevil" in done.stdout


def test_markdown_in_a_reason_is_shown_as_written() -> None:
    reason = "**urgent** [see](http://evil.example) :red[halt] $x$\nsecond line"
    shown = literal(reason)
    assert shown == (
        r"\*\*urgent\*\* \[see\]\(http\:\/\/evil\.example\) \:red\[halt\] \$x\$ second line"
    )


def test_the_dashboard_shows_a_sessions_exit_line_as_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "paper.db"
    seed(db, "EXIT-001", ["100000", "100100"])
    log = tmp_path / "service.log"
    log.write_text("error: cannot open **urgent** [the backup](http://evil.example) :red[now]\n")
    appdb = AppDatabase(db)
    appdb.record_launch("EXIT-001", "swing", os.getpid(), tmp_path / "config.toml", log)
    appdb.record_exit("EXIT-001", 1)
    appdb.close()
    at = app(db, monkeypatch)
    at.query_params["page"] = "Session"
    at.query_params["trader"] = "EXIT-001"
    at.run()
    assert not at.exception
    (shown,) = [e.value for e in at.error if "exit code 1" in e.value]
    assert r"\*\*urgent\*\* \[the backup\]\(http\:\/\/evil\.example\) \:red\[now\]" in shown
