"""Progress where a person watches: a status line every few seconds, a summary on stop.

Someone who runs ``paper-node run`` in a terminal otherwise sees the start-up lines and
then nothing for as long as it trades. So, only when the service writes to a terminal
(never under systemd, where ``NOTIFY_SOCKET`` is set and the journal and the metrics
serve, nor into a pipe or a file), every ``service.progress_every_s``: the replay's bars
played of its total with the rate and the time left, fills, equity, PnL and its
percentage, drawdown from the node's own peak, trading state, and one line per strategy
when there are several. On stop: bars, fills, round trips, net PnL, return, max
drawdown, fees and funding, and the commands that say more.

The lines are read from the service's own database (read-only, as ``status`` reads it):
the progress task asks no actor anything, so printing can never slow trading.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TextIO

import anyio

from storage import NoCheckpoint, NoRun, StatusReport, StorageError, read_status
from storage.stats import read_trade_report
from storage.watch import Peaks, equity_peaks

log = logging.getLogger(__name__)
CENT = Decimal("0.01")


def wanted(every_s: float, out: TextIO, env: Mapping[str, str] | None = None) -> bool:
    """Progress is for a person at a terminal: not under systemd, not into a pipe."""
    environment = os.environ if env is None else env
    return every_s > 0 and "NOTIFY_SOCKET" not in environment and out.isatty()


def _money(value: Decimal) -> str:
    return f"{value.quantize(CENT):,}"


def _signed(value: Decimal) -> str:
    return f"{value.quantize(CENT):+,}"


def _pct(fraction: Decimal) -> str:
    return f"{(fraction * 100).quantize(CENT):+}%"


def _span(seconds: float) -> str:
    s = int(seconds)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _drawdown(equity: Decimal | None, peak: Decimal | None) -> str:
    if equity is None or peak is None or peak <= 0:
        return "-"
    fall = min(Decimal(0), equity / peak - 1)
    return "0.00%" if fall > -CENT / 100 else _pct(fall)


class Progress:
    """Prints a status line every ``every_s`` (``run``, an anyio task in the runtime) and
    the summary once the service has stopped (``summary``, called by the CLI)."""

    def __init__(
        self,
        db: Path,
        trader_id: str,
        every_s: float,
        stale_after_s: float,
        out: TextIO,
        next_args: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db, self.trader_id, self.every_s = db, trader_id, every_s
        self._stale_after_s, self._out, self._next_args = stale_after_s, out, next_args
        self._clock = clock
        self._last: tuple[float, int] | None = None  # (when, replay cursor) of the last line

    async def run(self) -> None:
        """Runs in the runtime's task group (trio) until the service stops."""
        while True:
            await anyio.sleep(self.every_s)
            lines = await anyio.to_thread.run_sync(self.lines)
            if lines:
                print("\n".join(lines), file=self._out, flush=True)

    def _read(self) -> tuple[StatusReport, Peaks] | None:
        try:
            report = read_status(self.db, self.trader_id, self._stale_after_s)
            peaks = equity_peaks(self.db, self.trader_id)
        except StorageError as exc:
            log.debug("progress: %s", exc)
            return None
        return None if report is None else (report, peaks)

    def lines(self) -> list[str]:
        """The account's line, and one per strategy when there are several."""
        read = self._read()
        if read is None or read[0]["equity"] is None:
            return []
        report, peaks = read
        parts = [self._bars(report), f"fills {report['fills']}"]
        equity = Decimal(str(report["equity"]))
        parts.append(f"equity {_money(equity)} {report['currency']}")
        gain = report["account_return"]
        if gain is not None:
            start = equity / (1 + Decimal(gain))
            parts.append(f"PnL {_signed(equity - start)} ({_pct(Decimal(gain))})")
        parts.append(f"drawdown {_drawdown(equity, peaks.account)}")
        parts.append(str(report["trading_state"]))
        lines = ["[progress] " + " | ".join(p for p in parts if p)]
        if len(report["strategies"]) > 1:
            for s in report["strategies"]:
                own = [f"fills {s['fills']}"]
                if s["equity"] is not None and s["capital"] is not None:
                    own.append(f"equity {_money(Decimal(s['equity']))}")
                    own.append(
                        f"PnL {_signed(Decimal(s['equity']) - Decimal(s['capital']))}"
                        + (
                            f" ({_pct(Decimal(s['return_on_capital']))})"
                            if s["return_on_capital"] is not None
                            else ""
                        )
                    )
                    own.append(
                        "drawdown "
                        + _drawdown(Decimal(s["equity"]), peaks.strategies.get(s["strategy_id"]))
                    )
                own.append(s["trading_state"])
                lines.append(f"[progress]   {s['strategy_id']}: " + " | ".join(own))
        return lines

    def _bars(self, report: StatusReport) -> str:
        cursor, total = report["replay_cursor"], report["replay_total"]
        if cursor is None or not total:  # a live feed: how fresh it is
            age = report["data_age_s"]
            return "" if age is None else f"last bar {age:.0f}s ago"
        now, last = self._clock(), self._last
        self._last = (now, cursor)
        text = f"bars {cursor:,}/{total:,} ({cursor / total:.1%})"
        if last is not None and now > last[0] and cursor > last[1]:
            rate = (cursor - last[1]) / (now - last[0])
            text += f" {rate:,.1f} bars/s, {_span((total - cursor) / rate)} left"
        return text

    def summary(self, reason: str) -> str:
        """What the session did, and where to read more."""
        read = self._read()
        lines = [f"stopped: {reason}"]
        if read is not None:
            report = read[0]
            cursor, total = report["replay_cursor"], report["replay_total"]
            if cursor is not None and total:
                lines.append(f"  bars          {cursor:,} of {total:,}")
            lines.append(f"  fills         {report['fills']:,}")
            if report["equity"] is not None:
                equity = Decimal(report["equity"])
                gain = report["account_return"]
                ret = "" if gain is None else f" (return {_pct(Decimal(gain))})"
                lines.append(f"  equity        {_money(equity)} {report['currency']}{ret}")
        try:
            trades = read_trade_report(self.db, self.trader_id)
        except (NoRun, NoCheckpoint, StorageError) as exc:
            log.debug("summary: %s", exc)
        else:
            o, ccy = trades["overall"], trades["currency"]
            lines += [
                f"  round trips   {o['trades']:,} ({o['wins']} won)",
                f"  net PnL       {_signed(o['net_pnl'])} {ccy} (closed trips, after fees "
                f"and funding; {(o['return_pct']).quantize(CENT):+}% of {_money(o['capital'])})",
                f"  max drawdown  {o['max_drawdown_pct'].quantize(CENT)}% "
                f"({_signed(o['max_drawdown'])} {ccy}, of the closed trips' equity)",
                f"  fees          {_money(o['fees'])} {ccy}",
                f"  funding       {_signed(o['funding'])} {ccy}",
            ]
        lines += [
            "next:",
            f"  paper-node report stats{self._next_args}    # win rate, Sharpe, by strategy, day",
            f"  paper-node report parity{self._next_args}   # the same bars through BacktestEngine",
        ]
        return "\n".join(lines)
