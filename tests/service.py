"""Running the real service as a subprocess, as an operator or systemd would."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from storage import StatusReport, read_status

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "scripts" / "run_supervisor.py")]

FAST_CONFIG = """
[service]
trader_id = "{trader}"
db_path = "{db}"
checkpoint_interval_s = 1
heartbeat_interval_s = 0.5
node_log_level = "ERROR"
[replay]
speed = {speed}
{replay}
[strategy]
ladder_orders = {ladder}
ladder_step_pct = "{ladder_step}"
{extra}
"""


def write_config(
    tmp_path: Path,
    trader: str = "REC-001",
    speed: float = 600,
    ladder: int = 3,
    extra: str = "",
    replay: str = "bars = 50000",
    ladder_step: str = "0.05",
    name: str = "svc",
) -> tuple[Path, Path]:
    """A replay service's config and database path, fast to checkpoint and to notice."""
    db = tmp_path / f"{name}.db"
    config = tmp_path / f"{name}.toml"
    config.write_text(
        FAST_CONFIG.format(
            trader=trader,
            db=db,
            speed=speed,
            ladder=ladder,
            extra=extra,
            replay=replay,
            ladder_step=ladder_step,
        )
    )
    return config, db


def cli(
    *args: str, cwd: Path, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=env,
    )


def wait_for[T](what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} not seen within {timeout} s")


def query(db: Path, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    conn.row_factory = sqlite3.Row
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # the service has created the file but not yet its schema
        raise
    finally:
        conn.close()


def last_checkpoint_of(db: Path, trader: str) -> dict[str, object]:
    """The newest checkpoint's snapshot, with the replay cursor its row has advanced to
    since (while nothing else changed, the cursor moves on in place)."""
    rows = query(
        db,
        "SELECT replay_cursor, snapshot FROM checkpoints WHERE trader_id = ? ORDER BY id DESC",
        (trader,),
    )
    return {**json.loads(rows[0]["snapshot"]), "replay_cursor": rows[0]["replay_cursor"]}


def events(db: Path, kind: str) -> list[tuple[int, dict[str, object]]]:
    rows = query(db, "SELECT run_id, payload FROM events WHERE kind = ? ORDER BY id", (kind,))
    return [(int(r["run_id"]), json.loads(r["payload"])) for r in rows]


class ServiceProcess:
    def __init__(
        self, config: Path, db: Path, cwd: Path, *extra: str, env: dict[str, str] | None = None
    ) -> None:
        self.db = db
        self.log_path = cwd / f"service-{time.monotonic_ns()}.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [*CLI, "run", "--config", str(config), *extra],
            cwd=cwd,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def status(self) -> StatusReport | None:
        if not self.db.exists():
            return None
        try:
            return read_status(self.db, None, stale_after_s=5)
        except Exception:
            return None

    def wait_status(self, what: str, pred: Callable[[StatusReport], bool], timeout: float = 60):
        def probe() -> StatusReport | None:
            assert self.proc.poll() is None, self.log_path.read_text()[-3000:]
            report = self.status()
            return report if report is not None and pred(report) else None

        return wait_for(what, probe, timeout)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._log.close()

    def terminate(self, timeout: float = 45) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def wait(self, timeout: float = 45) -> int:
        code = self.proc.wait(timeout=timeout)
        self._log.close()
        return code

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self._log.closed:
            self._log.close()


def node_pids(db: Path) -> list[int]:
    return [int(str(p["pid"])) for _, p in events(db, "node_started")]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


# ---------------------------------------------------------------- [[strategies]] entries


def bars_of(instrument_id: str) -> str:
    return f"{instrument_id}-1-MINUTE-LAST-EXTERNAL"


def entry(strategy: str, config: dict[str, object], module: str | None = None) -> str:
    """A ``[[strategies]]`` table for ``module:strategy`` and ``module:strategyConfig``."""

    def value(v: object) -> str:
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        return json.dumps(v)

    if module is None:
        module = "node.strategy" if strategy == "EmaCross" else "tests.user_strategy"
    return (
        "[[strategies]]\n"
        f'strategy_path = "{module}:{strategy}"\n'
        f'config_path = "{module}:{strategy}Config"\n'
        f"config = {value(config)}\n"
    )


def ema(tag: str, instrument_id: str) -> str:
    return entry(
        "EmaCross",
        {
            "instrument_id": instrument_id,
            "bar_type": bars_of(instrument_id),
            "order_id_tag": tag,
            "strategy": {"ladder_orders": 3, "ladder_step_pct": "0.05"},
        },
    )
