"""Every trader on a host: ``status --all`` and ``metrics targets``.

A host runs one service per trader (``paper-node@<instance>``, each reading
``/etc/paper-node/<instance>.toml`` and keeping ``/var/lib/paper-node/<instance>/paper.db``).
The traders are found from the config directory (each ``*.toml``; with a state root too,
each instance's database is the template unit's, ``<root>/<stem>/paper.db``), or from a
state root alone (every ``*.db`` under it, every trader in each). One row per trader, and
an exit code by the worst of them, so a cron job or a check can act on the host at once.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TypedDict

from protocol import TESTNET_KEY_ENV
from storage import StorageError, read_status
from storage.fleet import RecordedTrader, recorded_traders
from supervisor.config import ConfigError, load_config

# Exit codes of ``status --all``: the worst trader's. A trader halted or degraded wants a
# look (7); one not running, stopped or never run is down (3); a config that does not load
# (2) or a database that cannot be read (1) is worse: nobody knows what that trader does.
EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_DOWN, EXIT_ATTENTION = 0, 1, 2, 3, 7
_WORST_LAST = (EXIT_OK, EXIT_ATTENTION, EXIT_DOWN, EXIT_CONFIG, EXIT_ERROR)
DEFAULT_CONFIG_DIR = Path("/etc/paper-node")
DEFAULT_STATE_ROOT = Path("/var/lib/paper-node")
DB_NAME = "paper.db"  # the template unit's --db, under each instance's state directory


class FleetRow(TypedDict):
    """One trader of the host, as ``status --all --json`` prints it (money as strings)."""

    name: str  # the config's stem (the systemd instance), or the database's path
    trader_id: str | None
    db: str
    state: str  # running | halted | degraded... | stopped | not_running | no_run | error
    trading_state: str | None
    currency: str | None
    equity: str | None
    pnl: str | None  # realized + unrealized
    return_pct: str | None  # the account's equity on its starting balance, in percent
    data_age_s: float | None
    checkpoint_age_s: float | None
    metrics: str | None  # host:port of its /metrics, when served
    mode: str | None
    error: str | None
    exit_code: int


@dataclass(frozen=True, slots=True)
class Trader:
    """Where one trader's status is read from."""

    name: str
    db: Path
    trader_id: str | None
    stale_after_s: float
    metrics: tuple[str, int] | None
    mode: str | None
    problem: str | None = None  # its config did not load


# A trader's status needs its database, not its keys: the keys a Binance mode needs are its
# service's (this user may not have them), so their presence is not checked here.
_WITHOUT_KEYS = {**os.environ, **dict.fromkeys(TESTNET_KEY_ENV, "unused")}


def from_configs(config_dir: Path, state_root: Path | None) -> list[Trader]:
    """Each ``*.toml`` of ``config_dir``, by name; a config that does not load is a row
    saying so (the others are still listed)."""
    if not config_dir.is_dir():
        raise StorageError(f"no config directory {config_dir}")
    traders = []
    for path in sorted(config_dir.glob("*.toml")):
        db = state_root / path.stem / DB_NAME if state_root is not None else None
        try:
            config = load_config(path, env=_WITHOUT_KEYS, import_strategies=False)
        except ConfigError as exc:
            problem = f"config: {'; '.join(exc.problems)}"
            traders.append(Trader(path.stem, db or path, None, 0.0, None, None, problem))
            continue
        metrics = config.settings.metrics
        traders.append(
            Trader(
                name=path.stem,
                db=db or config.db_path,
                trader_id=config.node.trader_id,
                stale_after_s=3 * config.settings.service.heartbeat_interval_s,
                metrics=(str(metrics.host), metrics.port) if metrics.enabled else None,
                mode=config.node.mode.value,
            )
        )
    return traders


def from_state_root(state_root: Path) -> list[Trader]:
    """Every trader of every ``*.db`` under ``state_root``, from its latest run's record."""
    if not state_root.is_dir():
        raise StorageError(f"no state directory {state_root}")
    traders = []
    for db in sorted(state_root.rglob("*.db")):
        name = str(db.relative_to(state_root))
        try:
            recorded: list[RecordedTrader] = recorded_traders(db)
        except StorageError as exc:
            traders.append(Trader(name, db, None, 0.0, None, None, str(exc)))
            continue
        traders.extend(
            Trader(
                name=name if len(recorded) == 1 else f"{name}:{r.trader_id}",
                db=db,
                trader_id=r.trader_id,
                stale_after_s=3 * r.heartbeat_interval_s,
                metrics=r.metrics,
                mode=r.mode,
            )
            for r in recorded
        )
    return traders


def find(config_dir: Path | None, state_root: Path | None) -> list[Trader]:
    """The host's traders: the configs when there is a config directory (with the template
    unit's databases under the state root, if one is given), else the state root's."""
    if config_dir is None and state_root is None:
        config_dir, state_root = DEFAULT_CONFIG_DIR, DEFAULT_STATE_ROOT
    if config_dir is not None:
        return from_configs(config_dir, state_root)
    assert state_root is not None
    return from_state_root(state_root)


def _age(at: str | None, now: datetime) -> float | None:
    if at is None:
        return None
    try:
        return round(max(0.0, (now - datetime.fromisoformat(at)).total_seconds()), 1)
    except ValueError:
        return None


def _exit_code(state: str) -> int:
    if state == "running":
        return EXIT_OK
    if state in ("stopped", "not_running", "no_run"):
        return EXIT_DOWN
    if state == "config_error":
        return EXIT_CONFIG
    if state == "error":
        return EXIT_ERROR
    return EXIT_ATTENTION  # halted, degraded..., starting, stopping


def _endpoint(metrics: tuple[str, int] | None) -> str | None:
    if metrics is None:
        return None
    host, port = metrics
    if ipaddress.ip_address(host).is_unspecified:  # every interface: reached by the host's name
        host = socket.getfqdn()
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def row(trader: Trader, now: datetime | None = None) -> FleetRow:
    """The trader's line, from its database (read-only)."""
    now = now or datetime.now(UTC)
    blank = FleetRow(
        name=trader.name,
        trader_id=trader.trader_id,
        db=str(trader.db),
        state="no_run",
        trading_state=None,
        currency=None,
        equity=None,
        pnl=None,
        return_pct=None,
        data_age_s=None,
        checkpoint_age_s=None,
        metrics=_endpoint(trader.metrics),
        mode=trader.mode,
        error=trader.problem,
        exit_code=EXIT_DOWN,
    )
    if trader.problem is not None:
        state = "config_error" if trader.problem.startswith("config") else "error"
        return {**blank, "state": state, "exit_code": _exit_code(state)}
    if not trader.db.exists():
        return {**blank, "error": f"no database at {trader.db}"}
    try:
        report = read_status(trader.db, trader.trader_id, trader.stale_after_s)
    except StorageError as exc:
        return {**blank, "state": "error", "error": str(exc), "exit_code": EXIT_ERROR}
    if report is None:
        return blank
    realized, unrealized = report["realized_pnl"], report["unrealized_pnl"]
    pnl = (
        None if realized is None or unrealized is None else Decimal(realized) + Decimal(unrealized)
    )
    gain = report["account_return"]
    return {
        **blank,
        "trader_id": report["trader_id"],
        "state": report["state"],
        "trading_state": report["trading_state"],
        "currency": report["currency"],
        "equity": report["equity"],
        "pnl": None if pnl is None else str(pnl),
        "return_pct": None
        if gain is None
        else str((Decimal(gain) * 100).quantize(Decimal("0.01"))),
        "data_age_s": report["data_age_s"],
        "checkpoint_age_s": _age(report["last_checkpoint_at"], now),
        "mode": report["mode"],
        "exit_code": _exit_code(report["state"]),
    }


def worst(rows: list[FleetRow]) -> int:
    """The exit code of the worst row (0 for a host with every trader running)."""
    return max((r["exit_code"] for r in rows), key=_WORST_LAST.index, default=EXIT_OK)


def _money(value: str | None, places: str = "0.01") -> str:
    return "-" if value is None else str(Decimal(value).quantize(Decimal(places)))


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


HEADER = ("trader", "state", "trading", "equity", "pnl", "return", "data age", "checkpoint")


def table(rows: list[FleetRow]) -> str:
    """One line per trader under a header; a row's error under it, indented."""
    lines: list[tuple[str, ...]] = [HEADER]
    for r in rows:
        pnl = "-" if r["pnl"] is None else f"{Decimal(r['pnl']):+.2f}"
        lines.append(
            (
                r["name"]
                if r["trader_id"] in (None, r["name"])
                else f"{r['name']} ({r['trader_id']})",
                r["state"],
                r["trading_state"] or "-",
                f"{_money(r['equity'])} {r['currency'] or ''}".strip(),
                pnl,
                "-" if r["return_pct"] is None else f"{Decimal(r['return_pct']):+.2f}%",
                _seconds(r["data_age_s"]),
                _seconds(r["checkpoint_age_s"]),
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]

    def text(line: tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()

    out = [text(HEADER)]
    for line, r in zip(lines[1:], rows, strict=True):
        out.append(text(line))
        if r["error"]:
            out.append(f"    {r['error']}")
    return "\n".join(out)


def as_json(rows: list[FleetRow]) -> str:
    return json.dumps(rows, indent=2)


class Target(TypedDict):
    """One entry of a Prometheus ``file_sd_configs`` file."""

    targets: list[str]
    labels: dict[str, str]


def targets(traders: list[Trader]) -> tuple[list[Target], list[str]]:
    """The file_sd entries of the traders that serve /metrics, and a line for each that
    does not. The labels name the instance (the config's stem) and its mode; the metrics
    carry ``trader`` themselves, so it is not repeated as a target label (which Prometheus
    would rename to ``exported_trader`` in every series)."""
    entries: list[Target] = []
    skipped: list[str] = []
    host = socket.gethostname()
    for trader in traders:
        address = _endpoint(trader.metrics)
        if address is None:
            why = trader.problem or "metrics off ([metrics] enabled = false)"
            skipped.append(f"{trader.name}: not a target: {why}")
            continue
        labels = {"paper_instance": trader.name, "paper_host": host}
        if trader.mode is not None:
            labels["paper_mode"] = trader.mode
        entries.append(Target(targets=[address], labels=labels))
    return entries, skipped


def write_atomically(path: Path, text: str) -> None:
    """Prometheus re-reads a file_sd file when it changes: it must never see half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # Prometheus runs as its own user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
