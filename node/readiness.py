"""The readiness report of a session as every front end shows it (the CLI, Telegram's
``/readiness``, the verdict-change alert, the metrics, the dashboard), with what it needs
of the node layer: the price a replay's strategy decided on, for the slippage criterion.

NautilusTrader's sandbox fills a market order at the close of the bar that triggered it
(plus the fill model's slippage), and the bridge stamps each fill with that bar's step:
so a fill's slippage is its price against the close of its step's bar. The bars are
rebuilt from the session's recorded settings (``node.bars``, which imports no
NautilusTrader: the alerter's ``/readiness`` reads them in the supervisor's process as
the CLI does). A one-instrument replay only: with several, a step is not a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from node.bars import BarSeries, BarSourceError, load
from protocol import Mode, NodeSettings, ReadinessSettings, RecordedSettings, RegisteredStrategy
from storage import StorageError, read_registry, read_session
from storage.readiness import PaperEvidence, SessionReadiness, read_readiness
from storage.readiness.market import MarketParity
from storage.readiness.report import SlippageOf

BPS = 10_000


def _decimals(paper: PaperEvidence) -> int:
    """The instrument's price precision, as its fills show it."""
    exponents = [f.price.as_tuple().exponent for f in paper.fills]
    return max((-e for e in exponents if isinstance(e, int)), default=1)


def replay_slippage(db: Path, trader_id: str | None) -> SlippageOf | None:
    """Each fill's price against its step's close, in bps (> 0: worse for its side);
    None for a live session, a replay of several instruments, or one whose settings or
    bars cannot be read any more."""
    try:
        record = read_session(db, trader_id)
    except StorageError:
        return None
    if record.settings is None:
        return None
    try:
        settings = RecordedSettings.model_validate_json(record.settings).config
    except ValidationError:
        return None
    if settings.service.mode is not Mode.REPLAY:
        return None
    if len(NodeSettings.of(settings).instrument_ids) != 1:
        return None
    cache: dict[int, BarSeries] = {}

    def of(paper: PaperEvidence) -> Sequence[float] | None:
        decimals = _decimals(paper)
        if decimals not in cache:
            try:
                cache[decimals] = load(settings.replay, decimals)
            except (BarSourceError, OSError):
                return None
        series = cache[decimals]
        out: list[float] = []
        for fill in paper.fills:
            if fill.bar is None or not 0 <= fill.bar < len(series):
                continue
            close = series[fill.bar].close
            sign = 1 if fill.side == "BUY" else -1
            out.append(float(sign * (fill.price - close) / close * BPS))
        return out or None

    return of


class NotRegistered(StorageError):
    """The registry entry a report was asked to judge against does not exist."""


def registered_entry(db: Path, name: str | None) -> RegisteredStrategy | None:
    """The registry entry ``name`` (None: none named); ``NotRegistered`` if absent."""
    if name is None:
        return None
    found = [e for e in read_registry(db) if e.name == name]
    if not found:
        raise NotRegistered(f"no registered strategy {name!r} (paper-node strategies list)")
    return found[0]


def session_readiness(
    db: Path,
    trader_id: str | None,
    settings: ReadinessSettings,
    strategy: str | None = None,
    market: MarketParity | str | None = None,
) -> SessionReadiness:
    """The session's report, judged against the registry entry ``strategy`` (else the
    settings' ``registered``, else the entry the session was launched from). ``market``:
    a live-feed session beside the backtest of its recording, which only the CLI runs
    (None here: the criterion says where to see it). Raises ``NoRun`` without a run,
    ``NotRegistered``, or ``StorageError``."""
    entry = registered_entry(db, strategy or settings.registered)
    slippage = replay_slippage(db, trader_id)
    return read_readiness(db, trader_id, settings, entry, slippage, market)
