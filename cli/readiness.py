"""``paper-node report readiness``: is a session's strategy ready for live money?

The verdict and its criteria are ``storage.readiness``'s, a replay's decision prices
``node.readiness``': the same text Telegram's ``/readiness`` replies with, except for a
live-feed session's market criteria: only this command runs the backtest of the
session's recording (``cli.report.parity``, NautilusTrader imported on demand), so
Telegram and the alerter show them ``n/a`` with a pointer here.
"""

from __future__ import annotations

import json
from pathlib import Path

from cli.report import EXIT_USAGE, ReportError, parity, session_settings
from cli.trades import EXIT_ERROR, EXIT_NO_RUN
from node.readiness import NotRegistered, session_readiness
from protocol import ReadinessSettings
from storage import NoRun, StorageError, read_session
from storage.readiness import (
    MarketParity,
    SessionReadiness,
    market_parity,
    readiness_json,
    readiness_text,
)


def market(db: Path, trader_id: str | None) -> MarketParity | str | None:
    """A live-feed session beside the backtest of its recording; None for a replay (or no
    session: the report says so), the reason as text when the backtest cannot run."""
    try:
        record = read_session(db, trader_id)
        played = session_settings(record)
        if played.recording is None:
            return None
        result, _ = parity(db, trader_id, record)
    except (ReportError, StorageError, ImportError, OSError, ValueError) as exc:
        # The market criteria are one part of the report: the rest stands without them.
        return f"not computed: {exc}"
    start = played.settings.account.starting_balance
    return market_parity(result.session, result.backtest, start, result.from_bar)


def readiness(
    db: Path, trader_id: str | None, settings: ReadinessSettings, strategy: str | None
) -> SessionReadiness:
    try:
        return session_readiness(db, trader_id, settings, strategy, market(db, trader_id))
    except NotRegistered as exc:
        raise ReportError(EXIT_USAGE, str(exc)) from None
    except NoRun as exc:
        raise ReportError(EXIT_NO_RUN, f"{exc} ({db})") from None
    except StorageError as exc:
        raise ReportError(EXIT_ERROR, str(exc)) from None


def report_readiness(
    db: Path,
    trader_id: str | None,
    settings: ReadinessSettings,
    strategy: str | None,
    json_output: bool,
) -> str:
    report = readiness(db, trader_id, settings, strategy)
    if json_output:
        return json.dumps(readiness_json(report), indent=2)
    return readiness_text(report)
