"""``paper-node report parity``: a session beside ``BacktestEngine`` on the same bars.

The session is read from the database (``storage.read_session``) with the settings its
last run recorded; the backtest runs here, in this process, on the bars the session
played (``node.backtest``, which imports NautilusTrader: only this command does): a
replay's series, or the market data a binance session recorded. A replay is meant to
equal its backtest; a sandbox session on live data shows how far paper trading on a
live feed drifts from the backtest of the same data, and a testnet session how far the
venue's own fills do.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from pydantic import ValidationError

from node import Parity, as_json, compare, render
from protocol import Mode, NodeSettings, RecordedSettings, file_sha256
from storage import SessionRecord, StorageError, catch_up_text, read_catch_ups, read_session

EXIT_EQUAL, EXIT_ERROR, EXIT_USAGE, EXIT_DIFFERENT = 0, 1, 2, 6


class ReportError(Exception):
    """The report cannot be made; ``code`` is the command's exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Played:
    """What the session played: its settings, and a binance session's recording."""

    settings: NodeSettings
    recording: Path | None = None


LIVE_NOTE = (
    "a session on a live feed fills as the data arrived, a backtest in time order: "
    "differences are the paper-vs-backtest gap, not a fault"
)


def session_settings(record: SessionRecord) -> Played:
    """The node settings the session's last run traded with, its bars checked unchanged."""
    if record.settings is None:
        raise ReportError(
            EXIT_ERROR,
            f"run {record.runs[-1]} of {record.trader_id} recorded no settings (it ran on "
            "an older service): run the session again to report on it",
        )
    try:
        recorded = RecordedSettings.model_validate_json(record.settings)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ReportError(
            EXIT_ERROR, f"the session's recorded settings no longer load: {problems}"
        ) from None
    config = recorded.config
    if config.service.mode is not Mode.REPLAY:
        if recorded.recording is None:
            raise ReportError(
                EXIT_USAGE,
                f"{record.trader_id} ran in {config.service.mode.value} mode without "
                "recording its market data (service.record_market_data): nothing to replay",
            )
        return Played(NodeSettings.of(config), recorded.recording)
    path = config.replay.path
    digest = recorded.replay_sha256
    if digest is not None and path is not None and file_sha256(path) != digest:
        raise ReportError(
            EXIT_ERROR,
            f"the replay file {path} has changed since the session played it: "
            "its bars are not the session's any more",
        )
    return Played(NodeSettings.of(config))


def parity(
    db: Path, trader_id: str | None, record: SessionRecord | None = None
) -> tuple[Parity, SessionRecord]:
    """The session (``record`` when the caller has read it already) beside its backtest."""
    if record is None:
        try:
            record = read_session(db, trader_id)
        except StorageError as exc:
            raise ReportError(EXIT_ERROR, str(exc)) from None
    played = session_settings(record)
    # NautilusTrader: this command's own import
    from node.backtest import RecordingError, run_backtest, run_backtest_on_recording
    from node.replay import ReplayData

    ideal = None
    if played.recording is None:
        backtest = run_backtest(played.settings, bars=record.outcome.bars)
        if not played.settings.simulation.ideal:
            ideal = run_backtest(played.settings, bars=record.outcome.bars, ideal=True)
        gaps = [
            f"the replay's data has a gap - {gap}" for gap in ReplayData.of(played.settings).gaps()
        ]
        record = replace(record, notes=(*record.notes, *gaps))
    else:
        try:
            backtest = run_backtest_on_recording(played.settings, played.recording)
        except RecordingError as exc:
            raise ReportError(EXIT_ERROR, str(exc)) from None
        caught = [
            f"after a restart, {catch_up_text(c)}"
            for c in reversed(read_catch_ups(db, record.trader_id))
        ]
        record = replace(record, notes=(*record.notes, LIVE_NOTE, *caught))
    return replace(compare(record.outcome, backtest, record.from_bar), ideal=ideal), record


def report_parity(db: Path, trader_id: str | None, as_json_output: bool) -> tuple[str, int]:
    """The report's text (or JSON) and the exit code: 0 equal, 6 different."""
    result, record = parity(db, trader_id)
    if as_json_output:
        text = json.dumps(as_json(result, record.trader_id, record.notes), indent=2)
    else:
        text = render(result, record.trader_id, record.notes)
    return text, EXIT_EQUAL if result.equal else EXIT_DIFFERENT
