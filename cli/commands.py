"""The commands of ``paper-node`` (imported by ``supervisor.cli`` once it has kept
pandas out of the supervisor's process).

    paper-node run [--config PATH] [--db PATH] [--duration SECONDS] [--fresh]
    paper-node status [--config PATH] [--db PATH] [--json]
    paper-node status --all [--config-dir DIR] [--state-root DIR] [--json]
    paper-node metrics targets [--config-dir DIR] [--state-root DIR] [--output FILE]
    paper-node halt|resume|stop [--config PATH] [--db PATH] [--reason TEXT] [--strategy ID]
                           [--mode cancel|reduce|flatten]  (halt)
    paper-node events [--config PATH] [--db PATH] [--tail N] [--json]
    paper-node report parity [--config PATH] [--db PATH] [--trader ID] [--json]
    paper-node report trades [--config PATH] [--db PATH] [--trader ID] [--n N] [--json]
    paper-node report stats [--config PATH] [--db PATH] [--trader ID] [--days N] [--json]
    paper-node report readiness [--config PATH] [--db PATH] [--trader ID] [--strategy NAME]
                                [--json]
    paper-node config check [--config PATH]
    paper-node config schema | example
    paper-node strategies add NAME --strategy-path P --config-path P
                          [--strategy-config JSON|@FILE] [--metrics JSON|@FILE] [--replace]
                          [--returns CSV] [--trade-returns CSV] [--trials N]
                          [--slippage-bps B] [--fee-bps B] [--funding-bps-per-day B]
    paper-node strategies list [--json]

Exit codes: 0 success; 1 runtime or storage error (``run``: also a final checkpoint that
could not be saved); 2 bad config or usage;
3 the service stopped itself (restart intensity escalation), or it is not running
(status with a stale heartbeat, a control command with nobody to carry it out);
4 status, or a trades or stats report, found no run in the database; 5 this trader
already runs on this database; 6 the parity report found the session and the backtest
different; 7 ``status --all``: every trader is up but one is halted or degraded (its other
codes are the worst trader's: 3 one down, 2 a config that does not load, 1 a database
that cannot be read).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from decimal import Decimal
from pathlib import Path

import anyio

from actors.redact import install as install_redaction
from cli import fleet, registry
from cli.printable import printable, printable_lines
from cli.report import ReportError, report_parity
from cli.trades import report_stats, report_trades
from protocol import TESTNET_KEY_ENV, CheckpointFailed, HaltMode
from storage import (
    DEFAULT_ROWS,
    Command,
    CommandStatus,
    ControlChannel,
    StatusReport,
    StorageError,
    capital_return,
    catch_up_text,
    held,
    lock_path,
    percent,
    read_events,
    read_status,
)
from storage.lock import AlreadyRunning
from supervisor.config import (
    ConfigError,
    ServiceConfig,
    example_text,
    load_config,
    schema,
)
from supervisor.endpoints import endpoints
from supervisor.logs import configure as configure_logging
from supervisor.progress import Progress, wanted
from supervisor.runtime import EarlySignals, Watchdog, serve
from supervisor.sdnotify import Notifier, watchdog_interval_s
from supervisor.service import Service, refuse_if_running

EXIT_OK, EXIT_ERROR, EXIT_CONFIG, EXIT_NOT_RUNNING, EXIT_NO_RUN, EXIT_RUNNING = 0, 1, 2, 3, 4, 5

log = logging.getLogger("paper-node")
DESCRIPTION = "the supervised paper-trading service"


class CliError(Exception):
    """Ends a command with ``code`` after printing ``lines`` to stderr (no traceback)."""

    def __init__(self, code: int, *lines: str) -> None:
        super().__init__(lines[0] if lines else "")
        self.code = code
        self.lines = lines


def _load(
    args: argparse.Namespace, import_strategies: bool = True, ask_venue: bool = False
) -> ServiceConfig:
    """The config; ``import_strategies=False`` for the commands that only need its
    database and trader (the strategies are checked when the service starts);
    ``ask_venue`` for those that start one or say it would start (``run``, ``config
    check``): a Binance mode's instruments are checked with the venue."""
    try:
        config = load_config(args.config, import_strategies=import_strategies, ask_venue=ask_venue)
    except ConfigError as exc:
        raise CliError(
            EXIT_CONFIG,
            f"config {exc.source}: {len(exc.problems)} problem(s)",
            *(f"  - {problem}" for problem in exc.problems),
        ) from None
    if getattr(args, "db", None) is not None:
        config = config.with_db(args.db)
    return config


def _report(args: argparse.Namespace, config: ServiceConfig) -> StatusReport | None:
    """The status of the config's trader (of the latest run when no --config was given)."""
    trader_id = config.node.trader_id if args.config is not None else None
    try:
        return read_status(
            config.db_path,
            trader_id,
            stale_after_s=3 * config.settings.service.heartbeat_interval_s,
        )
    except StorageError as exc:
        raise CliError(EXIT_ERROR, f"error: {exc}") from None


def _refuse_a_second_session(args: argparse.Namespace) -> None:
    """A second session of this trader on this database, or on these binance-testnet
    keys, is refused (exit 5) before the venue is asked anything: the refusal does not
    wait on a round trip, nor turn into a config problem while the venue is down. The
    service takes the locks for good when it starts (``Service``); a config with
    problems is left to the full load, which lists every one."""
    try:
        config = load_config(args.config, import_strategies=False)
    except ConfigError:
        return
    if getattr(args, "db", None) is not None:
        config = config.with_db(args.db)
    try:
        refuse_if_running(config)
    except AlreadyRunning as exc:
        raise CliError(EXIT_RUNNING, f"error: {exc}; refusing to start a second instance") from None
    except StorageError as exc:
        raise CliError(EXIT_ERROR, f"error: {exc}") from None


def cmd_run(args: argparse.Namespace) -> int:
    # Everything the service and its node child create - the database, its WAL and SHM,
    # lock files, recordings, directories - is its user's alone (positions, alert texts).
    os.umask(0o077)
    early = EarlySignals()
    early.install()
    _refuse_a_second_session(args)
    config = _load(args, ask_venue=True)
    settings = config.settings.service
    configure_logging(settings.log_level, args.log_format or settings.log_format)
    try:
        service = Service(config, restore=not args.fresh, config_path=args.config)
    except AlreadyRunning as exc:
        print(f"error: {exc}; refusing to start a second instance", file=sys.stderr)
        return EXIT_RUNNING
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    notifier = Notifier()
    interval = watchdog_interval_s(settings.heartbeat_interval_s)
    watchdog = Watchdog(service, notifier, interval, deadline_s=min(interval, 5.0))
    progress = _progress_for(args, config)
    service.start()
    # Whatever ends the runtime - a stop, or a bug in it - the tree stops with it: no
    # actor and no node child may go on trading without the process that owns them.
    watchers = () if progress is None else (progress.run,)
    try:
        outcome = anyio.run(
            serve, service, args.duration, early, watchdog, watchers, backend="trio"
        )
    except BaseException as exc:
        log.critical("runtime failed, stopping the service: %r", exc, exc_info=True)
        notifier.stopping("stopping: runtime failure")
        service.stop(f"runtime failure: {exc!r}")
        notifier.close()
        if isinstance(exc, KeyboardInterrupt):
            return EXIT_OK
        print(f"error: the runtime failed ({exc!r}); the service was stopped", file=sys.stderr)
        return EXIT_ERROR
    log.info("stopping: %s", outcome.reason)
    notifier.stopping(f"stopping: {outcome.reason}")
    final = service.stop(outcome.reason)
    notifier.close()
    if progress is not None:
        print(progress.summary(outcome.reason), flush=True)
    if not outcome.graceful:
        return EXIT_NOT_RUNNING
    if isinstance(final, CheckpointFailed):
        print(
            f"error: the final checkpoint was not saved ({final.reason}); a restart "
            "resumes from the last checkpoint saved",
            file=sys.stderr,
        )
        return EXIT_ERROR
    return EXIT_OK


def _progress_for(args: argparse.Namespace, config: ServiceConfig) -> Progress | None:
    """Status lines and a stop summary for a person at a terminal (not under systemd)."""
    settings = config.settings.service
    if not wanted(settings.progress_every_s, sys.stdout):
        return None
    given = "".join(
        f" --{name} {value}" for name in ("config", "db") if (value := getattr(args, name))
    )
    return Progress(
        config.db_path,
        config.node.trader_id,
        settings.progress_every_s,
        stale_after_s=3 * settings.heartbeat_interval_s,
        out=sys.stdout,
        next_args=given,
    )


def _duration(text: str) -> float:
    """``--duration``: a finite number of seconds above zero."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text}")
    return value


def _positive(text: str) -> int:
    """``--n``, ``--days``: a whole number of rows above zero."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _progress(cursor: int | None, total: int | None, width: int = 30) -> str:
    if cursor is None:
        return "-"
    if not total:
        return f"bar {cursor}"
    done = min(cursor / total, 1.0)
    filled = round(done * width)
    return f"[{'#' * filled}{'.' * (width - filled)}] {done:6.1%}  {cursor}/{total} bars"


def _age(seconds: float | None) -> str:
    return "-" if seconds is None else f"last bar {seconds:.1f} s ago"


def _joined(part: str) -> str:
    return f", {part}" if part else ""


def _account_return(report: StatusReport) -> str:
    gain = report["account_return"]
    return "" if gain is None else f" ({percent(Decimal(gain) * 100, sign=True)} on the start)"


def _status_table(report: StatusReport) -> str:
    rows = [
        ("state", report["state"]),
        ("trader / mode", f"{report['trader_id']} / {report['mode']}"),
        ("run / pid", f"{report['run_id']} / {report['pid']}"),
        ("heartbeat", f"{report['heartbeat_at']} ({report['heartbeat_age_s']} s ago)"),
        ("last checkpoint", f"{report['last_checkpoint_at']} ({report['checkpoints']} kept)"),
        ("trading state", str(report["trading_state"])),
        ("balance", f"{report['balance']} {report['currency']}"),
        ("equity", f"{report['equity']} {report['currency']}" + _account_return(report)),
        ("realized / unrealized", f"{report['realized_pnl']} / {report['unrealized_pnl']}"),
        ("fills / rejects", f"{report['fills']} / {report['rejects']}"),
        ("open orders", str(report["open_orders"])),
        ("replay", _progress(report["replay_cursor"], report["replay_total"])),
        ("market data", _age(report["data_age_s"])),
    ]
    lines = [f"{name:<22} {value}" for name, value in rows]
    lines.extend(f"{'catch-up':<22} {catch_up_text(c)}" for c in report["catch_ups"][:1])
    for p in report["positions"]:
        lines.append(
            f"{'position':<22} {p['instrument_id']} {p['side']} {p['quantity']} "
            f"@ {Decimal(p['avg_px_open']):.2f} (unrealized {Decimal(p['unrealized_pnl']):.2f})"
        )
    for s in report["strategies"]:
        lines.append(
            f"{'strategy':<22} {s['strategy_id']}: {s['fills']} fills, realized "
            f"{Decimal(s['realized_pnl']):.2f}, unrealized {Decimal(s['unrealized_pnl']):.2f}, "
            f"fees {Decimal(s['fees']):.2f}, {s['positions']} position(s), "
            f"{s['open_orders']} open order(s)"
            + _joined(capital_return(s["capital"], s["return_on_capital"]))
            + (f", HALTED ({s['halt_reason']})" if s["trading_state"] == "HALTED" else "")
        )
    return "\n".join(lines)


def cmd_status(args: argparse.Namespace) -> int:
    if args.all:
        return cmd_status_all(args)
    config = _load(args, import_strategies=False)
    report = _report(args, config)
    if report is None:
        print(f"no run recorded in {config.db_path}", file=sys.stderr)
        return EXIT_NO_RUN
    print(json.dumps(report, indent=2) if args.json else printable_lines(_status_table(report)))
    return EXIT_NOT_RUNNING if report["state"] == "not_running" else EXIT_OK


def _fleet(args: argparse.Namespace) -> list[fleet.Trader]:
    try:
        return fleet.find(args.config_dir, args.state_root)
    except StorageError as exc:
        raise CliError(EXIT_CONFIG, f"error: {exc}") from None


def cmd_status_all(args: argparse.Namespace) -> int:
    """One line per trader of the host; the exit code is the worst trader's."""
    if args.config is not None or args.db is not None:
        raise CliError(
            EXIT_CONFIG, "status --all takes --config-dir or --state-root, not --config/--db"
        )
    rows = [fleet.row(trader) for trader in _fleet(args)]
    if not rows:
        print("no trader found", file=sys.stderr)
        return EXIT_NO_RUN
    print(fleet.as_json(rows) if args.json else fleet.table(rows))
    return fleet.worst(rows)


def cmd_metrics_targets(args: argparse.Namespace) -> int:
    """A Prometheus file_sd file of the host's traders that serve /metrics."""
    entries, skipped = fleet.targets(_fleet(args))
    for line in skipped:
        print(line, file=sys.stderr)
    text = json.dumps(entries, indent=2) + "\n"
    if args.output is None:
        print(text, end="")
    else:
        fleet.write_atomically(args.output, text)
        print(f"{len(entries)} target(s) written to {args.output}", file=sys.stderr)
    return EXIT_OK


def _add_fleet_options(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--config-dir",
        type=Path,
        help=f"every *.toml here is a trader (default {fleet.DEFAULT_CONFIG_DIR}, with the "
        f"template unit's databases under {fleet.DEFAULT_STATE_ROOT})",
    )
    command.add_argument(
        "--state-root",
        type=Path,
        help="with --config-dir: <root>/<config name>/paper.db is each trader's database; "
        "alone: every *.db under it, every trader in each",
    )


def _carries_out(report: StatusReport, config: ServiceConfig) -> bool:
    """Whether a service is there to carry a command out: a fresh heartbeat, or - while
    the heartbeat is late, as it is while the node child is replaced - the trader's
    instance lock held by a live process. An operator's halt is sent exactly then."""
    if report["state"] in ("running", "halted", "starting"):
        return True
    return report["state"] == "not_running" and held(lock_path(config.db_path, report["trader_id"]))


def cmd_control(args: argparse.Namespace) -> int:
    """halt | resume | stop: queue the command for the running service, wait for its ack."""
    config = _load(args, import_strategies=False)
    report = _report(args, config)
    if report is None or not _carries_out(report, config):
        state = "no run recorded" if report is None else report["state"]
        print(f"service is not running ({state}); nothing sent", file=sys.stderr)
        return EXIT_NOT_RUNNING
    command = Command(args.command)
    strategy_id: str | None = getattr(args, "strategy", None)
    if strategy_id is not None:
        known = [str(s["strategy_id"]) for s in report.get("strategies", [])]
        if known and strategy_id not in known:
            print(
                f"no strategy {strategy_id} in {report['trader_id']} (it runs {', '.join(known)})",
                file=sys.stderr,
            )
            return EXIT_CONFIG  # a usage error, as argparse exits
    reason = args.reason or f"{command} requested from the command line"
    channel = ControlChannel(config.db_path)
    try:
        mode: str | None = getattr(args, "mode", None)
        if strategy_id is not None and mode not in (None, HaltMode.CANCEL.value):
            print(
                "--mode is the account's halt's: a strategy's halt cancels its orders",
                file=sys.stderr,
            )
            return EXIT_CONFIG
        request_id = channel.submit(report["trader_id"], command, reason, strategy_id, mode)
        done = channel.wait(request_id, args.timeout)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        channel.close()
    print(f"{command} #{request_id}: {done.status}: {done.result or 'no answer yet'}")
    if done.status is CommandStatus.DONE:
        return EXIT_OK
    return EXIT_ERROR if done.status is CommandStatus.FAILED else EXIT_NOT_RUNNING


def cmd_events(args: argparse.Namespace) -> int:
    config = _load(args, import_strategies=False)
    trader_id = config.node.trader_id if args.config is not None else None
    try:
        events = read_events(config.db_path, trader_id, args.tail)
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(events, indent=2))
    else:
        for event in events:
            details = " ".join(f"{k}={v}" for k, v in event["payload"].items())
            print(printable(f"{event['at']} #{event['id']} {event['kind']:<16} {details}"))
    return EXIT_OK


def cmd_report_parity(args: argparse.Namespace) -> int:
    """The session beside ``BacktestEngine`` on the same bars; exit 6 when they differ."""
    config = _load(args)
    trader_id = args.trader or (config.node.trader_id if args.config is not None else None)
    try:
        text, code = report_parity(config.db_path, trader_id, args.json)
    except ReportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    print(text)
    return code


def _trader(args: argparse.Namespace, config: ServiceConfig) -> str | None:
    """``--trader``, else the config's trader, else (no --config) the latest run's."""
    trader: str | None = args.trader
    return trader or (config.node.trader_id if args.config is not None else None)


def cmd_report_trades(args: argparse.Namespace) -> int:
    """The session's last round trips, from the database."""
    config = _load(args, import_strategies=False)
    try:
        print(report_trades(config.db_path, _trader(args, config), args.n, args.json))
    except ReportError as exc:
        raise CliError(exc.code, f"error: {exc}") from None
    return EXIT_OK


def cmd_report_stats(args: argparse.Namespace) -> int:
    """The session's statistics: overall, per strategy, per day."""
    config = _load(args, import_strategies=False)
    try:
        print(report_stats(config.db_path, _trader(args, config), args.days, args.json))
    except ReportError as exc:
        raise CliError(exc.code, f"error: {exc}") from None
    return EXIT_OK


def cmd_report_readiness(args: argparse.Namespace) -> int:
    """Each strategy's go-live verdict: READY, NOT YET (what is missing) or NO (why)."""
    # Here, not at the top: the statistics (numpy, scipy, dtaidistance) are ~50 MB and
    # a second of import that every other command - ``run`` above all - would carry.
    from cli.readiness import report_readiness

    config = _load(args, import_strategies=False)
    settings = config.settings.readiness
    try:
        print(
            report_readiness(
                config.db_path, _trader(args, config), settings, args.strategy, args.json
            )
        )
    except ReportError as exc:
        raise CliError(exc.code, f"error: {exc}") from None
    return EXIT_OK


def cmd_config_check(args: argparse.Namespace) -> int:
    config = _load(args, ask_venue=True)
    node = config.node
    strategies = (
        ", ".join(e.strategy_path for e in node.strategies)
        if node.strategies
        else f"the bundled EMA cross, sizing {node.sizing.method.value}"
    )
    print(
        f"config {config.source}: ok (trader {node.trader_id}, mode {node.mode.value}, "
        f"{node.instrument_id}, {strategies}, db {config.db_path})"
    )
    # The Binance modes: where a session will connect (the adapter's URLs for the
    # environment, or the [binance] overrides).
    secret = os.environ.get(TESTNET_KEY_ENV[1], "")
    used = endpoints(node.mode, config.settings.binance, secret)
    for line in used.lines() if used is not None else ():
        print(f"  {line}")
    return EXIT_OK


def cmd_config_example(args: argparse.Namespace) -> int:
    """Every setting with its default and description, as a config file."""
    print(example_text(), end="")
    return EXIT_OK


def cmd_config_schema(args: argparse.Namespace) -> int:
    """The config file's JSON Schema, from the same declarations the loader checks."""
    print(json.dumps(schema(), indent=2, default=str))
    return EXIT_OK


def _registry_db(args: argparse.Namespace) -> Path:
    """The registry lives in the service's database (``--db``, or the config's)."""
    if args.db is not None:
        return Path(args.db)
    return _load(args, import_strategies=False).db_path


type _Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def cmd_strategies_add(args: argparse.Namespace) -> int:
    try:
        entry = registry.add(args, _registry_db(args))
    except StorageError as exc:
        raise CliError(EXIT_ERROR, f"strategy {args.name!r} not registered: {exc}") from None
    except registry.RegistryError as exc:
        raise CliError(
            EXIT_CONFIG,
            f"strategy {args.name!r} not registered: {len(exc.problems)} problem(s)",
            *(f"  - {problem}" for problem in exc.problems),
        ) from None
    print(f"registered {entry.name}: {entry.entry.strategy_path} at {entry.registered_at}")
    return EXIT_OK


def cmd_strategies_list(args: argparse.Namespace) -> int:
    try:
        entries = registry.listing(_registry_db(args))
    except StorageError as exc:
        raise CliError(EXIT_ERROR, f"strategy registry: {exc}") from None
    print(registry.as_json(entries) if args.json else registry.table(entries))
    return EXIT_OK


def _add_strategies_parser(sub: _Subparsers) -> None:
    strategies = sub.add_parser("strategies", help="the registry of backtested strategies")
    strategies_sub = strategies.add_subparsers(dest="strategies_command", required=True)
    add = strategies_sub.add_parser("add", help="register a backtested strategy")
    add.add_argument("name", help="the registry's key, e.g. breakout-v3")
    add.add_argument("--strategy-path", required=True, help="package.module:Class")
    add.add_argument("--config-path", required=True, help="package.module:ConfigClass")
    add.add_argument("--strategy-config", help="its config: a JSON object, or @file.json")
    add.add_argument("--metrics", help="backtest metrics: a JSON object, or @file.json")
    add.add_argument("--replace", action="store_true", help="overwrite an entry of that name")
    add.add_argument(
        "--returns",
        metavar="CSV",
        help="the backtest's daily returns (a 'return' column of fractions, oldest first)",
    )
    add.add_argument(
        "--trade-returns",
        metavar="CSV",
        help="its returns a round trip (the PnL over the capital), likewise",
    )
    add.add_argument("--trials", type=int, help="configurations tried before this one (DSR)")
    add.add_argument(
        "--trials-sharpe-variance",
        type=Decimal,
        metavar="V",
        help="variance of the trials' daily Sharpe ratios (DSR; default: the estimator's own)",
    )
    add.add_argument("--slippage-bps", type=Decimal, help="the backtest's slippage a fill")
    add.add_argument("--fee-bps", type=Decimal, help="the backtest's fees, bps of notional")
    add.add_argument(
        "--funding-bps-per-day",
        type=Decimal,
        help="the backtest's funding a day, bps of the notional held",
    )
    listed = strategies_sub.add_parser("list", help="the registered strategies")
    listed.add_argument("--json", action="store_true", help="machine-readable output")
    for command, func in ((add, cmd_strategies_add), (listed, cmd_strategies_list)):
        command.add_argument("--config", type=Path)
        command.add_argument("--db", type=Path)
        command.set_defaults(func=func)


def _add_report_parser(sub: _Subparsers) -> None:
    """``report parity`` runs a backtest; ``report trades|stats`` read the database."""
    report = sub.add_parser("report", help="reports on a session")
    report_sub = report.add_subparsers(dest="report_command", required=True)
    parity = report_sub.add_parser(
        "parity", help="the session beside BacktestEngine on the same bars (exit 6: different)"
    )
    parity.add_argument("--config", type=Path)
    parity.add_argument("--db", type=Path)
    parity.add_argument("--trader", help="the session's trader id (default: the latest run's)")
    parity.add_argument("--json", action="store_true", help="machine-readable output")
    parity.set_defaults(func=cmd_report_parity)
    trades = report_sub.add_parser("trades", help="the session's round trips, from the database")
    trades.add_argument(
        "--n", type=_positive, default=DEFAULT_ROWS, help=f"the last N (default {DEFAULT_ROWS})"
    )
    trades.set_defaults(func=cmd_report_trades)
    stats = report_sub.add_parser(
        "stats", help="win rate, PnL, Sharpe, drawdown...: overall, per strategy, per day"
    )
    stats.add_argument(
        "--days",
        type=_positive,
        default=DEFAULT_ROWS,
        help=f"the last N days (default {DEFAULT_ROWS}; --json has them all)",
    )
    stats.set_defaults(func=cmd_report_stats)
    ready = report_sub.add_parser(
        "readiness", help="go live? READY, NOT YET (what is missing) or NO (which test failed)"
    )
    ready.add_argument(
        "--strategy",
        metavar="NAME",
        help="judge against this registry entry (default: the entry the session was launched from)",
    )
    ready.set_defaults(func=cmd_report_readiness)
    for command in (trades, stats, ready):
        command.add_argument("--config", type=Path)
        command.add_argument("--db", type=Path)
        command.add_argument("--trader", help="the session's trader id (default: the latest run's)")
        command.add_argument("--json", action="store_true", help="machine-readable, exact")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="paper-node", description=DESCRIPTION)
    sub = root.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the service until SIGINT/SIGTERM or --duration")
    run.add_argument("--config", type=Path, help="TOML config (default: bundled replay example)")
    run.add_argument("--db", type=Path, help="database path (overrides service.db_path)")
    run.add_argument("--duration", type=_duration, help="stop gracefully after SECONDS")
    run.add_argument("--fresh", action="store_true", help="do not restore from the last checkpoint")
    run.add_argument("--log-format", choices=("text", "json"), help="override service.log_format")
    run.set_defaults(func=cmd_run)

    for name, text in (
        ("halt", "halt trading: cancel the strategy's open orders, deny new ones"),
        ("resume", "resume trading after a halt"),
        ("stop", "stop the service gracefully (final checkpoint, then exit)"),
    ):
        control = sub.add_parser(name, help=text)
        control.add_argument("--config", type=Path)
        control.add_argument("--db", type=Path)
        control.add_argument("--reason", help="recorded with the command and in the alert")
        control.add_argument("--timeout", type=float, default=30.0, help="wait for the ack")
        if name == "halt":
            control.add_argument(
                "--mode",
                choices=[m.value for m in HaltMode],
                help="cancel: every open order (default); reduce: cancel entries, keep "
                "reduce-only stops, only reducing orders pass; flatten: cancel everything and "
                "close every position at market",
            )
        if name != "stop":
            control.add_argument(
                "--strategy",
                metavar="ID",
                help="only this strategy (e.g. EmaCross-001): its orders cancelled and "
                "denied, or allowed again; the others trade on",
            )
        control.set_defaults(func=cmd_control)

    events = sub.add_parser("events", help="the event log: fills, rejects, state changes")
    events.add_argument("--config", type=Path)
    events.add_argument("--db", type=Path)
    events.add_argument("--tail", type=int, default=20)
    events.add_argument("--json", action="store_true")
    events.set_defaults(func=cmd_events)

    status = sub.add_parser("status", help="state, balance and positions from the database")
    status.add_argument("--config", type=Path)
    status.add_argument("--db", type=Path)
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--all",
        action="store_true",
        help="every trader of the host, one line each; exit: the worst trader's (0 all "
        "running, 7 one halted or degraded, 3 one down, 2 a config, 1 a database unreadable)",
    )
    _add_fleet_options(status)
    status.set_defaults(func=cmd_status)

    metrics = sub.add_parser("metrics", help="Prometheus tools")
    metrics_sub = metrics.add_subparsers(dest="metrics_command", required=True)
    targets = metrics_sub.add_parser(
        "targets", help="a file_sd JSON of the host's traders that serve /metrics"
    )
    targets.add_argument("--output", type=Path, help="write here, atomically (default: stdout)")
    _add_fleet_options(targets)
    targets.set_defaults(func=cmd_metrics_targets)

    _add_report_parser(sub)

    config = sub.add_parser("config", help="configuration tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config; exit 2 listing every problem")
    check.add_argument("--config", type=Path)
    check.set_defaults(func=cmd_config_check)
    described = config_sub.add_parser("schema", help="the config file's JSON Schema")
    described.set_defaults(func=cmd_config_schema)
    example = config_sub.add_parser("example", help="every setting with its default")
    example.set_defaults(func=cmd_config_example)

    _add_strategies_parser(sub)
    return root


def main(argv: list[str] | None = None) -> int:
    install_redaction()  # before any log line: secrets from the environment never print
    args = parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except CliError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.code
    return code
