"""The equity marks the drawdown and daily-loss breakers measure from, and the judgement.

Kept by the node (beside the account it reads) and checkpointed with its state, so a
restart of the node, the classifier or the whole service does not reset them and hide
a drawdown. Where time is the market's (a replay), the node itself judges them at every
step (``node.guard``), with the bars' market time deciding the day; where it is the
wall clock (the Binance modes), the classifier's breakers read them from the node's
reports. Both judge with ``EquityBreaker`` here, so the two cannot drift apart. Imports
nothing of NautilusTrader.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from protocol import BreakerSettings, RiskLimits

HUNDRED = Decimal(100)
DAY_NS = 86_400 * 10**9


class EquityMarks:
    """The equity peak and the UTC day's starting equity, updated from equity readings.

    ``rebaseline`` after a resume starts the drawdown over from the next reading, as the
    operator has reviewed the loss so far.
    """

    def __init__(
        self, peak: Decimal | None = None, day: str = "", day_start: Decimal | None = None
    ) -> None:
        self.peak = peak
        self.day = day
        self.day_start = day_start
        self._day_end_ns = 0  # the current day's end: readings before it need no date

    def update(self, equity: Decimal, ts_ns: int) -> None:
        if self.starts_day(ts_ns):
            self.day_start = equity
        if self.peak is None or equity > self.peak:
            self.peak = equity

    def starts_day(self, ts_ns: int) -> bool:
        """Whether a reading at ``ts_ns`` starts a new UTC day (or the first one), whose
        start the caller then sets; ``day`` moves on to it."""
        if ts_ns < self._day_end_ns and self.day_start is not None:
            return False
        day = datetime.fromtimestamp(ts_ns // 10**9, UTC).date().isoformat()
        self._day_end_ns = (ts_ns // DAY_NS + 1) * DAY_NS
        if self.day != day or self.day_start is None:
            self.day = day
            return True
        return False

    def rebaseline(self) -> None:
        self.peak = None


@dataclass(frozen=True, slots=True)
class Trip:
    breaker: str
    detail: str


@dataclass(frozen=True, slots=True)
class Deepened:
    """A tripped breaker's loss went another step further: alert, nothing else."""

    breaker: str
    detail: str


@dataclass(frozen=True, slots=True)
class Losses:
    """How far equity is below its peak and below the day's start, in percent."""

    drawdown: Decimal | None
    daily: Decimal | None

    @classmethod
    def of(cls, equity: Decimal, peak: Decimal | None, day_start: Decimal | None) -> Losses:
        drawdown = (peak - equity) / peak * HUNDRED if peak is not None and peak > 0 else None
        daily = (
            (day_start - equity) / day_start * HUNDRED
            if day_start is not None and day_start > 0
            else None
        )
        return cls(drawdown, daily)


class EquityBreaker:
    """The drawdown and daily-loss limits on one equity series (the account's, or one
    strategy's on its own capital): trips once, then says so again at every further
    ``realert_step_pct`` while the loss deepens, until ``reset``."""

    def __init__(self, risk: RiskLimits, breakers: BreakerSettings) -> None:
        self.tripped: Trip | None = None
        self._alerted_at: Decimal | None = None
        self.limits(risk, breakers)

    def limits(self, risk: RiskLimits, breakers: BreakerSettings) -> None:
        """The user's limits (a reload's from the next reading on)."""
        self.max_drawdown_pct = risk.max_drawdown_pct
        self.daily_loss_limit_pct = risk.daily_loss_limit_pct
        self.realert_step_pct = breakers.realert_step_pct

    def judge(
        self, equity: Decimal, peak: Decimal | None, day_start: Decimal | None, armed: bool = True
    ) -> Trip | Deepened | None:
        """``armed``: may trip now (not while trading is halted for another reason)."""
        losses = Losses.of(equity, peak, day_start)
        if self.tripped is not None:
            return self._deepened(losses)
        if not armed:
            return None
        if losses.drawdown is not None and losses.drawdown >= self.max_drawdown_pct:
            self._alerted_at = losses.drawdown
            self.tripped = Trip(
                "max_drawdown",
                f"equity {equity:.2f} is {losses.drawdown:.2f}% below its peak {peak:.2f} "
                f"(limit {self.max_drawdown_pct}%)",
            )
            return self.tripped
        if losses.daily is not None and losses.daily >= self.daily_loss_limit_pct:
            self._alerted_at = losses.daily
            self.tripped = Trip(
                "daily_loss",
                f"equity {equity:.2f} is {losses.daily:.2f}% below the day's start "
                f"{day_start:.2f} (limit {self.daily_loss_limit_pct}%)",
            )
            return self.tripped
        return None

    def _deepened(self, losses: Losses) -> Deepened | None:
        tripped = self.tripped
        if tripped is None or self._alerted_at is None:
            return None
        now = losses.drawdown if tripped.breaker == "max_drawdown" else losses.daily
        step = self.realert_step_pct
        if now is None or step <= 0 or now < self._alerted_at + step:
            return None
        self._alerted_at = now
        what = "below its peak" if tripped.breaker == "max_drawdown" else "below the day's start"
        return Deepened(
            tripped.breaker,
            f"equity is now {now:.2f}% {what}, and still falling while halted "
            f"(tripped: {tripped.detail})",
        )

    def reset(self) -> None:
        self.tripped = None
        self._alerted_at = None
