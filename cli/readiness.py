"""``paper-node report readiness``: is a session's strategy ready for live money?

The verdict and its criteria are ``storage.readiness``'s (the same text Telegram's
``/readiness`` replies with). What this command adds is what needs the session's bars: a
replay's fills set against their step's close, the price the strategy decided on, for
the slippage criterion (NautilusTrader's sandbox fills a market order at the close of
the bar that triggered it, plus the fill model's slippage).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cli.report import EXIT_USAGE, ReportError, session_settings
from cli.trades import EXIT_ERROR, EXIT_NO_RUN
from protocol import Mode, NodeSettings, ReadinessSettings, RegisteredStrategy
from storage import NoRun, StorageError, read_registry, read_session
from storage.readiness import (
    PaperEvidence,
    SessionReadiness,
    read_readiness,
    readiness_json,
    readiness_text,
)
from storage.readiness.report import SlippageOf

BPS = 10_000


def replay_slippage(settings: NodeSettings) -> SlippageOf:
    """Each fill's price against the close of its instrument's bar at the fill's step,
    in bps (> 0: worse for the side that traded)."""
    from node.replay import ReplayData  # NautilusTrader: this command's own import

    data = ReplayData.of(settings)
    feeds = {str(f.instrument.id): n for n, f in enumerate(data.feeds)}

    def of(paper: PaperEvidence) -> Sequence[float] | None:
        out: list[float] = []
        for fill in paper.fills:
            feed = feeds.get(fill.instrument_id)
            if fill.bar is None or feed is None or fill.bar >= len(data.timeline):
                continue
            row = data.timeline.row(feed, fill.bar)
            if row is None:
                continue
            close = data.feeds[feed].series[row].close
            sign = 1 if fill.side == "BUY" else -1
            out.append(float(sign * (fill.price - close) / close * BPS))
        return out or None

    return of


def _entry(db: Path, name: str | None) -> RegisteredStrategy | None:
    if name is None:
        return None
    try:
        found = [e for e in read_registry(db) if e.name == name]
    except StorageError as exc:
        raise ReportError(EXIT_ERROR, str(exc)) from None
    if not found:
        raise ReportError(EXIT_USAGE, f"no registered strategy {name!r} (strategies list)")
    return found[0]


def _slippage(db: Path, trader_id: str | None) -> SlippageOf | None:
    """A replay's decision prices; a live session's are not recorded (None)."""
    try:
        record = read_session(db, trader_id)
        played = session_settings(record)
    except (StorageError, ReportError):
        return None
    if played.settings.mode is not Mode.REPLAY:
        return None
    return replay_slippage(played.settings)


def readiness(
    db: Path, trader_id: str | None, settings: ReadinessSettings, strategy: str | None
) -> SessionReadiness:
    entry = _entry(db, strategy)
    try:
        return read_readiness(db, trader_id, settings, entry, _slippage(db, trader_id))
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
