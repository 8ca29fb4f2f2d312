"""``paper-node report trades|stats``: a session's round trips and statistics.

Read from the database only (``storage.read_trade_report``, which imports no
NautilusTrader), and printed by ``storage.stats_text``, the same sections the alerter's
Telegram ``/trades``, ``/profit``, ``/balance``, ``/performance`` and ``/daily`` reply
with, so the CLI and the chat show the same numbers. ``--json`` prints the report's
exact values: money as decimal strings, never a float.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from cli.report import ReportError
from storage import (
    NoCheckpoint,
    NoRun,
    StorageError,
    TradeReport,
    read_trade_report,
    stats_text,
    trades_text,
)

EXIT_ERROR, EXIT_NO_RUN = 1, 4


def read(db: Path, trader_id: str | None) -> TradeReport:
    """The report, or a ``ReportError`` with the command's exit code: 4 when there is no
    run to report on, 1 for anything else (no database, no checkpoint yet, unreadable)."""
    try:
        return read_trade_report(db, trader_id)
    except NoRun as exc:
        raise ReportError(EXIT_NO_RUN, f"{exc} ({db})") from None
    except NoCheckpoint as exc:
        raise ReportError(EXIT_ERROR, f"{exc}; try again after the service's first one") from None
    except StorageError as exc:
        raise ReportError(EXIT_ERROR, str(exc)) from None


def as_json(value: object) -> str:
    """Indented JSON, each ``Decimal`` as its exact string."""

    def exact(item: object) -> str:
        if isinstance(item, Decimal):
            return str(item)
        raise TypeError(f"{type(item).__name__} is not JSON serializable")

    return json.dumps(value, indent=2, default=exact)


def report_trades(db: Path, trader_id: str | None, n: int, json_output: bool) -> str:
    """The last ``n`` round trips and the open positions; as JSON, the report's
    ``trader_id``, ``currency``, ``round_trips`` (those n) and ``open_positions``."""
    report = read(db, trader_id)
    if json_output:
        return as_json(
            {
                "trader_id": report["trader_id"],
                "currency": report["currency"],
                "round_trips": report["round_trips"][-n:],
                "open_positions": report["open_positions"],
            }
        )
    return trades_text(report, n)


def report_stats(db: Path, trader_id: str | None, days: int, json_output: bool) -> str:
    """Profit, balance, per strategy and the last ``days`` days; as JSON, the whole report."""
    report = read(db, trader_id)
    return as_json(report) if json_output else stats_text(report, days)
