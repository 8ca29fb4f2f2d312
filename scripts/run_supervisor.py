#!/usr/bin/env python3
"""Command line of the supervised paper-trading service.

    run_supervisor.py run [--config PATH] [--db PATH] [--duration SECONDS]
    run_supervisor.py status [--config PATH] [--db PATH] [--json]
    run_supervisor.py config check [--config PATH]

Exit codes: 0 success; 1 runtime or storage error; 2 bad config or usage;
3 the service stopped itself (restart intensity escalation) or status found it not
running; 4 status found no run in the database.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import anyio

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # runnable as a plain script from a checkout
    sys.path.insert(0, str(ROOT))

from actors.inbox import Inbox  # noqa: E402
from actors.messages import SupervisorTerminated  # noqa: E402
from storage import StatusReport, StorageError, read_status  # noqa: E402
from supervisor.config import ConfigError, ServiceConfig, load_config  # noqa: E402

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_NOT_RUNNING, EXIT_NO_RUN = 0, 1, 2, 3, 4
POLL_S = 0.2

log = logging.getLogger("run_supervisor")


@dataclass(frozen=True, slots=True)
class StopOutcome:
    reason: str
    graceful: bool


class EarlySignals:
    """Records SIGINT/SIGTERM that arrive before the async loop listens for them."""

    def __init__(self) -> None:
        self.received: list[int] = []

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)


async def wait_for_stop(
    events: Inbox, duration_s: float | None, early: EarlySignals
) -> StopOutcome:
    """Until a signal, the end of ``duration_s`` or the tree stopping itself."""
    outcome: list[StopOutcome] = []
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        if early.received:
            return StopOutcome(f"signal {signal.Signals(early.received[0]).name}", True)
        async with anyio.create_task_group() as tg:

            async def on_signal() -> None:
                async for signum in signals:
                    outcome.append(StopOutcome(f"signal {signal.Signals(signum).name}", True))
                    tg.cancel_scope.cancel()
                    return

            async def on_tree() -> None:
                while True:
                    for message in events.poll():
                        if isinstance(message, SupervisorTerminated):
                            outcome.append(StopOutcome(f"escalation: {message.reason}", False))
                            tg.cancel_scope.cancel()
                            return
                    await anyio.sleep(POLL_S)

            async def on_duration(seconds: float) -> None:
                await anyio.sleep(seconds)
                outcome.append(StopOutcome(f"duration of {seconds:g} s reached", True))
                tg.cancel_scope.cancel()

            tg.start_soon(on_signal)
            tg.start_soon(on_tree)
            if duration_s is not None:
                tg.start_soon(on_duration, duration_s)
    return outcome[0] if outcome else StopOutcome("stopped", True)


def _load(args: argparse.Namespace) -> ServiceConfig:
    config = load_config(args.config)
    if getattr(args, "db", None) is not None:
        config = replace(config, db_path=args.db)
    return config


def _print_problems(exc: ConfigError) -> None:
    print(f"config {exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
    for problem in exc.problems:
        print(f"  - {problem}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    early = EarlySignals()
    early.install()
    try:
        config = _load(args)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from supervisor.service import Service  # heavy: imports Nautilus

    try:
        service = Service(config)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    service.start()
    outcome = anyio.run(wait_for_stop, service.events, args.duration, early, backend="trio")
    log.info("stopping: %s", outcome.reason)
    service.stop(outcome.reason)
    return EXIT_OK if outcome.graceful else EXIT_NOT_RUNNING


def _status_table(report: StatusReport) -> str:
    rows = [
        ("state", report["state"]),
        ("trader / mode", f"{report['trader_id']} / {report['mode']}"),
        ("run / pid", f"{report['run_id']} / {report['pid']}"),
        ("heartbeat", f"{report['heartbeat_at']} ({report['heartbeat_age_s']} s ago)"),
        ("last checkpoint", f"{report['last_checkpoint_at']} ({report['checkpoints']} kept)"),
        ("trading state", str(report["trading_state"])),
        ("balance", f"{report['balance']} {report['currency']}"),
        ("equity", f"{report['equity']} {report['currency']}"),
        ("realized / unrealized", f"{report['realized_pnl']} / {report['unrealized_pnl']}"),
        ("fills / rejects", f"{report['fills']} / {report['rejects']}"),
        ("open orders", str(report["open_orders"])),
        ("replay cursor", str(report["replay_cursor"])),
    ]
    lines = [f"{name:<22} {value}" for name, value in rows]
    for p in report["positions"]:
        lines.append(
            f"{'position':<22} {p['instrument_id']} {p['side']} {p['quantity']} "
            f"@ {p['avg_px_open']} (unrealized {p['unrealized_pnl']})"
        )
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        config = _load(args)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    trader_id = config.node.trader_id if args.config is not None else None
    try:
        report = read_status(
            config.db_path, trader_id, stale_after_s=3 * config.heartbeat_interval_s
        )
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if report is None:
        print(f"no run recorded in {config.db_path}", file=sys.stderr)
        return EXIT_NO_RUN
    print(json.dumps(report, indent=2) if args.json else _status_table(report))
    return EXIT_NOT_RUNNING if report["state"] == "not_running" else EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    node = config.node
    print(
        f"config {config.source}: ok (trader {node.trader_id}, mode {node.mode.value}, "
        f"{node.instrument_id}, sizing {node.sizing.method.value}, db {config.db_path})"
    )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="run_supervisor.py", description=__doc__.split("\n")[0])
    sub = root.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service until SIGINT/SIGTERM or --duration")
    run.add_argument("--config", type=Path, help="TOML config (default: bundled replay example)")
    run.add_argument("--db", type=Path, help="database path (overrides service.db_path)")
    run.add_argument("--duration", type=float, help="stop gracefully after SECONDS")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="state, balance and positions from the database")
    status.add_argument("--config", type=Path)
    status.add_argument("--db", type=Path)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config; exit 2 listing every problem")
    check.add_argument("--config", type=Path)
    check.set_defaults(func=cmd_config_check)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
