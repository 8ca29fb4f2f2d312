"""``paper-node report readiness``: is a session's strategy ready for live money?

The verdict and its criteria are ``storage.readiness``'s, a replay's decision prices
``node.readiness``': the same text Telegram's ``/readiness`` replies with.
"""

from __future__ import annotations

import json
from pathlib import Path

from cli.report import EXIT_USAGE, ReportError
from cli.trades import EXIT_ERROR, EXIT_NO_RUN
from node.readiness import NotRegistered, session_readiness
from protocol import ReadinessSettings
from storage import NoRun, StorageError
from storage.readiness import SessionReadiness, readiness_json, readiness_text


def readiness(
    db: Path, trader_id: str | None, settings: ReadinessSettings, strategy: str | None
) -> SessionReadiness:
    try:
        return session_readiness(db, trader_id, settings, strategy)
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
