"""The dashboard's trades page: the bars a session saw with its fills on them, and its
trade statistics beside the backtest metrics of the strategy it was launched from.

The database keeps a session's fills, not its bars. A replay's bars are rebuilt from
the settings its last run recorded (``node.replay.feeds_for``: the series the node
played, the one the parity report backtests), up to the last checkpoint's cursor - the
bars played, and only those are built (``played_steps``: a preset's configured length may
be millions of bars the session never reached). A binance session's bars are its
market-data recording (``service.record_market_data``, Nautilus's own stream); without
one the page marks the fills alone and says why. Both load NautilusTrader (the
instrument's tick; the recording's reader), so the imports are made here when a chart is
asked for, not when the dashboard starts. The dashboard runs ``trade_chart`` in a child
with a time limit (``sessions.chart``) and keeps its answer, so a page that redraws
itself every few seconds does not rebuild 50,000 bars each time.

Bars are drawn at their market time: a recording's as the feed stamped them, a replay's
at its series' time (``node.bars``: a file's own timestamps, or one bar length apart from
a UTC midnight - the time the backtest plays it at and the time the round trips beside
the chart are dated by). A fill sits on its bar: a replay's is placed by the step it
carries (its time on the replay's timeline), a live feed's by its bar's market time. Only
a window of ``CAP`` bars is drawn, for speed.

Money stays ``Decimal`` here; it is rounded to text only in the rows for display.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from node import BarSourceError
from protocol import BacktestMetrics, Mode, NodeSettings, RecordedSettings, file_sha256
from storage import Fill, Played, Stats, TradeReport, TripRow
from storage.stats_text import duration, exact, optional_money, ratio

if TYPE_CHECKING:  # NautilusTrader, imported when a chart is drawn (``replay_data``)
    from node.replay import ReplayData

CAP = 2_000  # bars drawn at most
NONE = "n/a"


@dataclass(frozen=True, slots=True)
class Candle:
    """One bar: ``index`` is its place in what the session played (a replay's series
    index; a recording's order), ``at_ns`` its market time."""

    index: int
    at_ns: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal


@dataclass(frozen=True, slots=True)
class TradeChart:
    """The window of bars to draw for one instrument and its fills inside it.

    ``fills`` are dated by their bar's market time. ``total``: the bars there are to
    draw from; ``first``: the index of the first drawn. ``notes``: why there are no bars,
    or what the window leaves out."""

    instrument_id: str
    candles: tuple[Candle, ...]
    fills: tuple[Fill, ...]
    total: int
    first: int
    notes: tuple[str, ...]


def recorded_settings(played: Played) -> RecordedSettings | None:
    if played.settings is None:
        return None
    try:
        return RecordedSettings.model_validate_json(played.settings)
    except ValidationError:
        return None


def instruments(played: Played) -> list[str]:
    """The instruments the session traded: its settings', else its fills'."""
    recorded = recorded_settings(played)
    if recorded is not None:
        return list(NodeSettings.of(recorded.config).instrument_ids)
    return list(dict.fromkeys(f.instrument_id for f in played.fills))


def trade_chart(
    played: Played, instrument_id: str, cap: int = CAP, end: int | None = None
) -> TradeChart:
    """The ``cap`` bars of ``instrument_id`` up to ``end`` (exclusive; the last bar when
    None) and the fills on them; the fills alone when the bars cannot be had."""
    fills = tuple(f for f in played.fills if f.instrument_id == instrument_id)
    recorded = recorded_settings(played)
    if recorded is None:
        return _fills_only(
            instrument_id,
            fills,
            f"{played.trader_id}'s last run recorded no settings (an older service): "
            "its bars cannot be rebuilt, so only its fills are drawn",
        )
    if recorded.config.service.mode is Mode.REPLAY:
        return _replay_chart(played, recorded, instrument_id, fills, cap, end)
    if recorded.recording is None:
        return _fills_only(
            instrument_id,
            fills,
            f"{played.trader_id} did not record its market data "
            "(service.record_market_data = false): only its fills are drawn",
        )
    return _recorded_chart(recorded.recording, instrument_id, fills, cap, end)


def _fills_only(instrument_id: str, fills: tuple[Fill, ...], note: str) -> TradeChart:
    return TradeChart(instrument_id, (), fills, 0, 0, (note,))


def _window(total: int, cap: int, end: int | None) -> tuple[int, int]:
    stop = total if end is None else max(0, min(end, total))
    return max(0, stop - cap), stop


def _replay_chart(
    played: Played,
    recorded: RecordedSettings,
    instrument_id: str,
    fills: tuple[Fill, ...],
    cap: int,
    end: int | None,
) -> TradeChart:
    replay = recorded.config.replay
    digest = recorded.replay_sha256
    if replay.path is not None and digest is not None:
        try:
            changed = file_sha256(replay.path) != digest
        except OSError as exc:
            return _fills_only(instrument_id, fills, f"the replay file is gone: {exc}")
        if changed:
            return _fills_only(
                instrument_id,
                fills,
                f"the replay file {replay.path} has changed since the session played it: "
                "its bars are not the session's any more",
            )
    steps = played_steps(played)
    if steps == 0:
        return TradeChart(instrument_id, (), (), 0, 0, ())
    try:
        data = replay_data(played.settings or "", steps)
    except (BarSourceError, ValueError) as exc:
        return _fills_only(instrument_id, fills, f"the replay's bars cannot be rebuilt: {exc}")
    series = next((f.series for f in data.feeds if f.instrument.id.value == instrument_id), None)
    if series is None:
        return _fills_only(instrument_id, fills, f"{instrument_id} is not in the replay")
    timeline = data.timeline
    steps = min(steps, len(timeline))
    total = timeline.rows_before(series, steps)
    start, stop = _window(total, cap, end)
    candles = tuple(
        Candle(i, series.time_ns(i), row.open, row.high, row.low, row.close)
        for i in range(start, stop)
        for row in (series[i],)
    )
    # On its step's market time (a fill from before market times carries the wall clock).
    first, last = (series.time_ns(start), series.time_ns(stop - 1)) if stop > start else (0, -1)
    placed = (
        replace(f, at_ns=timeline.time_ns(f.bar))
        for f in fills
        if f.bar is not None and 0 <= f.bar < len(timeline)
    )
    drawn = tuple(f for f in placed if first <= f.at_ns <= last)
    notes = _left_out(len(fills) - len(drawn), start, stop, total)
    return TradeChart(instrument_id, candles, drawn, total, start, notes)


def _left_out(hidden: int, start: int, stop: int, total: int) -> tuple[str, ...]:
    if start == 0 and stop == total:
        return ()
    return (
        f"bars {start:,}-{stop - 1:,} of {total:,} drawn"
        + (f"; {hidden} fill(s) outside them are not" if hidden else ""),
    )


def played_steps(played: Played) -> int:
    """The steps the session played: its last checkpoint's cursor (its fills are cut
    there), or past its last fill's step before the first checkpoint - never the
    configured length, which may be millions of bars the session never reached."""
    if played.bars is not None:
        return played.bars
    return max((f.bar + 1 for f in played.fills if f.bar is not None), default=0)


@functools.lru_cache(maxsize=2)
def replay_data(settings_json: str, steps: int) -> ReplayData:
    """The session's series and timeline as its node played them, its first ``steps``
    only (NautilusTrader for the instruments' ticks: imported here, on the first chart)."""
    from node.replay import ReplayData

    config = RecordedSettings.model_validate_json(settings_json).config
    return ReplayData.of(NodeSettings.of(config), steps)


def _recorded_chart(
    path: Path, instrument_id: str, fills: tuple[Fill, ...], cap: int, end: int | None
) -> TradeChart:
    try:
        bars = recorded_bars(path, instrument_id, _stamp(path))
    except Exception as exc:  # a reader's failure on a half-written stream: shown, not raised
        return _fills_only(instrument_id, fills, f"the market data recording cannot be read: {exc}")
    if not bars:
        return _fills_only(
            instrument_id, fills, f"the recording at {path} holds no bars of {instrument_id} yet"
        )
    start, stop = _window(len(bars), cap, end)
    candles = bars[start:stop]
    low, high = candles[0].at_ns, candles[-1].at_ns
    drawn = tuple(f for f in fills if low <= f.at_ns <= high)
    notes = _left_out(len(fills) - len(drawn), start, stop, len(bars))
    return TradeChart(instrument_id, candles, drawn, len(bars), start, notes)


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    """The recording's files, sizes and times: a recording still growing is read again."""
    found: list[tuple[str, int, int]] = []
    for folder, _, names in os.walk(path):
        for name in names:
            stat = (Path(folder) / name).stat()
            found.append((str(Path(folder) / name), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


@functools.lru_cache(maxsize=2)
def recorded_bars(
    path: Path, instrument_id: str, stamp: tuple[tuple[str, int, int], ...]
) -> tuple[Candle, ...]:
    """The bars of ``instrument_id`` in every node life's stream, in time order, each once
    (``stamp``: the files as they are now, for the cache)."""
    from nautilus_trader.model.data import Bar
    from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog

    if not (path / "live").is_dir():
        return ()
    catalog = ParquetDataCatalog(str(path))
    seen: dict[int, Candle] = {}
    for run in sorted(catalog.list_live_runs()):
        found = catalog.read_live_run(run, data_cls=Bar)
        for bar in found if isinstance(found, list) else []:
            if bar.bar_type.instrument_id.value != instrument_id:
                continue
            ts = int(bar.ts_event)
            seen[ts] = Candle(
                0,
                ts,
                bar.open.as_decimal(),
                bar.high.as_decimal(),
                bar.low.as_decimal(),
                bar.close.as_decimal(),
            )
    ordered = sorted(seen.values(), key=lambda c: c.at_ns)
    return tuple(Candle(i, c.at_ns, c.open, c.high, c.low, c.close) for i, c in enumerate(ordered))


# ---------------------------------------------------------------- rows for display

type PlotRow = dict[str, str | float | int | None]


@dataclass(frozen=True, slots=True)
class PlotData:
    """The chart's candles and fills as plotting rows (floats for plotting only): ``x``
    the bar's market time in epoch milliseconds, a candle's body from ``x0`` to ``x1``
    (0.7 of a bar's spacing wide); ``domain``: the x range to show, half a bar beyond
    the first and the last."""

    candles: list[PlotRow]
    fills: list[PlotRow]
    domain: tuple[float, float]


def plot_rows(chart: TradeChart) -> PlotData:
    times = [c.at_ns for c in chart.candles]
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    spacing = gaps[len(gaps) // 2] / 1e6 if gaps else 60_000.0  # the median, in ms
    half = spacing * 0.35
    candles: list[PlotRow] = [
        {
            "x": c.at_ns / 1e6,
            "x0": c.at_ns / 1e6 - half,
            "x1": c.at_ns / 1e6 + half,
            "bar": c.index,
            "open": float(c.open),
            "high": float(c.high),
            "low": float(c.low),
            "close": float(c.close),
        }
        for c in chart.candles
    ]
    fills: list[PlotRow] = [
        {
            "x": f.at_ns / 1e6,
            "price": float(f.price),
            "side": f.side,
            "quantity": str(f.quantity),
            "strategy": f.strategy_id,
            "bar": f.bar,
        }
        for f in chart.fills
    ]
    xs = [float(str(r["x"])) for r in (*candles, *fills)] or [0.0]
    return PlotData(candles, fills, (min(xs) - spacing / 2, max(xs) + spacing / 2))


# The chat's and the command line's formatting (``storage.stats_text``), so the page shows
# the same numbers the same way.
def money(value: Decimal | None) -> str:
    return optional_money(value)


price = exact
_pct = ratio  # the value is in percent already; the row's label says so
_ratio = ratio


def _registered(metrics: BacktestMetrics, name: str) -> str:
    value = getattr(metrics, name)
    if value is None:
        return NONE
    if name == "win_rate":  # registered as a fraction, shown as the session's percent
        return _pct(Decimal(value) * 100)
    return str(value)


def _column(stats: Stats, report: TradeReport, overall: bool) -> dict[str, str]:
    """One column of the statistics table: each statistic's display text."""
    start = report["starting_balance"]
    moved = report["balance"] - start
    win_rate = stats["win_rate"]
    return {
        "round trips": str(stats["trades"]),
        "wins / losses": f"{stats['wins']} / {stats['losses']}",
        "win rate %": NONE if win_rate is None else _pct(win_rate * 100),
        "net PnL": money(stats["net_pnl"]),
        "total return %": _pct(moved / start * 100) if overall and start else NONE,
        "gross profit": money(stats["gross_profit"]),
        "gross loss": money(stats["gross_loss"]),
        "fees": money(stats["fees"]),
        "funding": money(stats["funding"]),
        "profit factor": _ratio(stats["profit_factor"]),
        "expectancy": money(stats["expectancy"]),
        "average win": money(stats["avg_win"]),
        "average loss": money(stats["avg_loss"]),
        "best trip": money(stats["best"]),
        "worst trip": money(stats["worst"]),
        "average duration": duration(stats["avg_duration_s"]),
        "Sharpe": _ratio(stats["sharpe"]),
        "Sortino": _ratio(stats["sortino"]),
        "max drawdown %": _pct(stats["max_drawdown_pct"]),
        "max drawdown": money(stats["max_drawdown"]),
        "drawdown duration": duration(stats["max_drawdown_s"]),
        "exposure %": _pct(stats["exposure_pct"]),
    }


# The session's statistic beside the registered metric it is comparable with.
BESIDE = {
    "round trips": "trade_count",
    "win rate %": "win_rate",
    "total return %": "total_return_pct",
    "profit factor": "profit_factor",
    "Sharpe": "sharpe",
    "Sortino": "sortino",
    "max drawdown %": "max_drawdown_pct",
}
BACKTEST_ONLY = {"deflated Sharpe": "deflated_sharpe", "PBO": "pbo", "period": "period"}
BACKTEST = "backtest (registered)"


def stats_rows(report: TradeReport, metrics: BacktestMetrics | None) -> list[dict[str, str]]:
    """The statistics as rows (one a statistic), columns overall and each strategy, and
    the registered backtest's figure where there is a comparable one."""
    columns = {"overall": _column(report["overall"], report, overall=True)}
    for name, stats in report["strategies"].items():
        columns[name] = _column(stats, report, overall=False)
    rows: list[dict[str, str]] = []
    for label in columns["overall"]:
        row = {"statistic": label} | {name: column[label] for name, column in columns.items()}
        if metrics is not None:
            field = BESIDE.get(label)
            row[BACKTEST] = NONE if field is None else _registered(metrics, field)
        rows.append(row)
    if metrics is not None:
        for label, field in BACKTEST_ONLY.items():
            if getattr(metrics, field) is not None:
                empty = dict.fromkeys(columns, NONE)
                rows.append({"statistic": label, **empty, BACKTEST: _registered(metrics, field)})
    return rows


def open_rows(positions: Sequence[TripRow], currency: str) -> list[dict[str, str]]:
    """Positions still open, as of their last fill: what they hold and have cost so far."""
    return [
        {
            "opened": t["opened_at"],
            "strategy": t["strategy_id"],
            "instrument": t["instrument_id"],
            "direction": t["direction"],
            "quantity": str(t["quantity"]),
            "entry": price(t["entry_price"]),
            f"realized so far {currency}": money(t["gross_pnl"]),
            "fees": money(t["fees"]),
            "funding": money(t["funding"]),
            "fills": str(t["fills"]),
        }
        for t in positions
    ]


def trip_rows(trips: Sequence[TripRow], currency: str) -> list[dict[str, str]]:
    """Round trips for display, newest first."""
    return [
        {
            "closed": t["closed_at"],
            "strategy": t["strategy_id"],
            "instrument": t["instrument_id"],
            "direction": t["direction"],
            "quantity": str(t["quantity"]),
            "entry": price(t["entry_price"]),
            "exit": price(t["exit_price"]),
            "opened": t["opened_at"],
            "duration": duration(t["duration_s"]),
            f"gross PnL {currency}": money(t["gross_pnl"]),
            "fees": money(t["fees"]),
            "funding": money(t["funding"]),
            f"PnL {currency}": money(t["pnl"]),
            "fills": str(t["fills"]),
        }
        for t in reversed(trips)
    ]
