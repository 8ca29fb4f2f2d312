"""Launching paper sessions as background jobs, and telling how each one is doing.

A launched session is an ordinary service process (``run_supervisor.py run``)
with its own config file under ``<state>/sessions/<trader id>/`` - never under
/tmp - started in its own process group so it outlives a dashboard restart.
Its ``TMPDIR`` points into that directory too, so nothing it or a library
spools lands in /tmp. The job table keeps its pid; its own heartbeat says
whether it trades; both together tell "starting", "unresponsive" and "crashed"
apart.

A session may run a registered strategy (the promotion record): the preset gives
it the market, account, replay, risk limits and breakers, the entry its one
``[[strategies]]`` table, and its job keeps the entry as it was at launch.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO, TypedDict

from protocol import Mode, RegisteredStrategy, child_environment, session_secrets
from sessions.presets import session_config_text, validate_preset
from storage import (
    AppDatabase,
    CatchUpRow,
    Job,
    PositionRow,
    PresetBody,
    StatusReport,
    StorageError,
    StrategyRow,
)
from supervisor.config import ConfigError

RUN_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "run_supervisor.py"
LIVE_STATES = ("running", "halted", "starting", "unresponsive")
EXIT_LINE_TAIL = 16_384  # bytes of a failed session's log searched for its last error line


class LaunchError(RuntimeError):
    """A session could not be started; the message says why and nothing was left half-made."""


class SessionView(TypedDict):
    """One row of the sessions page: the service's own status joined with its job."""

    trader_id: str
    state: str
    mode: str | None
    preset: str | None
    pid: int | None
    heartbeat_age_s: float | None
    currency: str | None
    balance: str | None
    equity: str | None
    account_return: str | None  # the equity's gain on the starting balance, a fraction
    realized_pnl: str | None
    unrealized_pnl: str | None
    open_orders: int
    positions: list[PositionRow]
    strategies: list[StrategyRow]
    fills: int
    exit_code: int | None
    exit_line: str | None  # a launched session that failed: the one line it ended with
    started_at: str | None
    registered: RegisteredStrategy | None  # the entry it runs, as it was at launch
    catch_ups: list[CatchUpRow]  # its restarts' catch-ups (binance modes), newest first


def pid_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) run of this service, not a recycled pid."""
    proc = Path("/proc") / str(pid)
    try:
        stat = (proc / "stat").read_text()
        cmdline = (proc / "cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
    return state not in ("Z", "X") and RUN_SCRIPT.name.encode() in cmdline


def session_state(status: StatusReport | None, job: Job | None, alive: bool) -> str:
    """running | halted | stopped | starting | unresponsive | crashed | not_running.

    A launched session whose process is gone is crashed at once, however fresh its
    last heartbeat; one the dashboard did not launch is judged by its heartbeat.
    """
    if status is not None and status["state"] == "stopped":
        return "stopped"
    if job is not None and not alive:
        return "stopped" if job.exit_code == 0 else "crashed"
    if status is not None and status["state"] != "not_running":
        return status["state"]
    if job is None:
        return "not_running"
    if status is None or status["heartbeat_at"] is None:
        return "starting"
    return "unresponsive"


def exit_line(job: Job | None) -> str | None:
    """Why a launched session ended with an error, in its command's own one line
    (``error: ... refusing to start a second instance`` - exit 5, another session trades
    these testnet keys - or a database it could not open): the last ``error:`` line of
    its log, which holds the command's stderr. ``None`` while it runs or after exit 0."""
    if job is None or job.exit_code is None or job.exit_code == 0:
        return None
    try:
        with open(job.log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - EXIT_LINE_TAIL))
            tail = log.read().decode(errors="replace")
    except OSError:
        return None
    for line in reversed(tail.splitlines()):
        if line.startswith("error: "):
            return line
    return None


def _view(status: StatusReport | None, job: Job | None, alive: bool) -> SessionView:
    trader_id = status["trader_id"] if status is not None else job.trader_id if job else "?"
    return SessionView(
        trader_id=trader_id,
        state=session_state(status, job, alive),
        mode=None if status is None else status["mode"],
        preset=None if job is None else job.preset,
        pid=job.pid if job is not None else None if status is None else status["pid"],
        heartbeat_age_s=None if status is None else status["heartbeat_age_s"],
        currency=None if status is None else status["currency"],
        balance=None if status is None else status["balance"],
        equity=None if status is None else status["equity"],
        account_return=None if status is None else status["account_return"],
        realized_pnl=None if status is None else status["realized_pnl"],
        unrealized_pnl=None if status is None else status["unrealized_pnl"],
        open_orders=0 if status is None else status["open_orders"],
        positions=[] if status is None else status["positions"],
        strategies=[] if status is None else status["strategies"],
        fills=0 if status is None else status["fills"],
        exit_code=None if job is None else job.exit_code,
        exit_line=exit_line(job),
        started_at=(
            status["started_at"] if status is not None else job.launched_at if job else None
        ),
        registered=None if job is None else job.registered,
        catch_ups=[] if status is None else status["catch_ups"],
    )


def _private(path: Path, flags: int) -> BinaryIO:
    """``path`` opened for writing, created owner-only (0600) if it is new."""
    return os.fdopen(os.open(path, flags | os.O_CREAT, 0o600), "wb")


class Launcher:
    """Starts sessions from presets and reaps the ones this process started.

    One per app process. Children it started are polled for their exit code
    (recorded in the job table); sessions started by an earlier process are
    judged by their pid in /proc.
    """

    def __init__(
        self,
        appdb: AppDatabase,
        state_dir: Path,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
    ) -> None:
        self.appdb = appdb
        self.state_dir = state_dir.resolve()
        self.env = dict(os.environ if env is None else env)
        self.python = python
        self._children: dict[str, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def launch(self, preset: str) -> Job:
        body = self._preset(preset)
        try:
            config = validate_preset(preset, body, self.env)
        except ConfigError as exc:
            raise LaunchError(
                f"preset {preset!r} is not valid: " + "; ".join(exc.problems)
            ) from None
        db = self.appdb.path.resolve()
        return self._start(
            preset.upper(),
            preset,
            lambda tid: session_config_text(preset, body, tid, db),
            config.settings.service.mode,
        )

    def launch_registered(self, name: str, preset: str) -> Job:
        """A session running the registered strategy ``name`` as its one ``[[strategies]]``
        entry, with ``preset``'s market, account, replay, limits and breakers (its
        ``[strategy]`` and ``[sizing]`` are the bundled EMA cross's, which does not run).
        The entry is checked as a config file's would be: one whose classes no longer
        import, or whose config no longer parses or does not fit the preset's
        instrument and bars, is refused with the check's words."""
        registered = self.appdb.registered(name)
        if registered is None:
            raise LaunchError(f"no strategy registered as {name!r}")
        body = self._preset(preset)
        entries = (registered.entry,)
        try:
            config = validate_preset(preset, body, self.env, entries)
        except ConfigError as exc:
            problems = [p.replace("strategies[0]", "strategy.entry") for p in exc.problems]
            raise LaunchError(
                f"registered strategy {name!r} cannot run with preset {preset!r}: "
                + "; ".join(problems)
            ) from None
        db = self.appdb.path.resolve()
        return self._start(
            re.sub(r"[^A-Z0-9_]", "_", name.upper()),
            preset,
            lambda tid: session_config_text(preset, body, tid, db, entries, registered=name),
            config.settings.service.mode,
            registered,
        )

    def _preset(self, preset: str) -> PresetBody:
        body = self.appdb.load_preset(preset)
        if body is None:
            raise LaunchError(f"no preset named {preset!r}")
        return body

    def _start(
        self,
        prefix: str,
        preset: str,
        config_text: Callable[[str], str],
        mode: Mode,
        registered: RegisteredStrategy | None = None,
    ) -> Job:
        """Start a session of a validated config (``config_text`` of its trader id) under
        the next free ``<prefix>-NNN``, and record its job. The session is given only the
        secrets its ``mode`` needs (``protocol.session_secrets``)."""
        with self._lock:
            trader_id = self._next_trader_id(prefix)
            session_dir = self.state_dir / "sessions" / trader_id
            config_path = session_dir / "config.toml"
            log_path = session_dir / "service.log"
            tmp_dir = session_dir / "tmp"
            try:
                # Owner-only: the config names the strategy and limits, the log its trades.
                self.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
                for directory in (self.state_dir / "sessions", session_dir, tmp_dir):
                    directory.mkdir(mode=0o700, exist_ok=directory != session_dir)
                with _private(config_path, os.O_WRONLY | os.O_TRUNC) as file:
                    file.write(config_text(trader_id).encode())
            except OSError as exc:
                raise LaunchError(f"cannot prepare {session_dir}: {exc.strerror}") from None
            env = child_environment(self.env, session_secrets(mode))
            env["TMPDIR"] = str(tmp_dir)
            try:
                with _private(log_path, os.O_WRONLY | os.O_APPEND) as log:
                    child = subprocess.Popen(
                        [self.python, str(RUN_SCRIPT), "run", "--config", str(config_path)],
                        cwd=session_dir,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
            except OSError as exc:
                raise LaunchError(f"cannot start {trader_id}: {exc.strerror}") from None
            self._children[trader_id] = child
        try:
            return self.appdb.record_launch(
                trader_id, preset, child.pid, config_path, log_path, registered
            )
        except StorageError as exc:
            # An untracked session would trade with nobody watching it: stop it.
            child.kill()
            child.wait(timeout=10)
            with self._lock:
                self._children.pop(trader_id, None)
            raise LaunchError(
                f"{trader_id} started but could not be recorded, so it was stopped: {exc}"
            ) from None

    def _next_trader_id(self, prefix: str) -> str:
        prefix = prefix[:20]
        used = self.appdb.used_trader_ids(prefix + "-")
        number = 1
        while (
            f"{prefix}-{number:03d}" in used
            or (self.state_dir / "sessions" / f"{prefix}-{number:03d}").exists()
        ):
            number += 1
        return f"{prefix}-{number:03d}"

    def poll(self) -> None:
        """Record the exit code of every child of this process that has exited."""
        with self._lock:
            done = {tid: c.returncode for tid, c in self._children.items() if c.poll() is not None}
            for trader_id in done:
                del self._children[trader_id]
        for trader_id, code in done.items():
            self.appdb.record_exit(trader_id, code)

    def alive(self, job: Job) -> bool:
        with self._lock:
            child = self._children.get(job.trader_id)
            if child is not None:
                return child.poll() is None
        return job.exit_code is None and pid_alive(job.pid)

    def sessions(self, stale_after_s: float) -> list[SessionView]:
        """Every session in the database: those that ran, and launched ones not yet running."""
        self.poll()
        jobs = {j.trader_id: j for j in self.appdb.jobs()}
        views: list[SessionView] = []
        seen: set[str] = set()
        for status in self.appdb.sessions(stale_after_s):
            job = jobs.get(status["trader_id"])
            views.append(_view(status, job, job is not None and self.alive(job)))
            seen.add(status["trader_id"])
        for trader_id, job in jobs.items():
            if trader_id not in seen:
                views.append(_view(None, job, self.alive(job)))
        return views

    def session(self, trader_id: str, stale_after_s: float) -> SessionView | None:
        self.poll()
        status = self.appdb.status(trader_id, stale_after_s)
        job = self.appdb.job(trader_id)
        if status is None and job is None:
            return None
        return _view(status, job, job is not None and self.alive(job))
