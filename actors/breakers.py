"""Circuit breakers from the user's risk limits: pure state, fed by the classifier.

A breaker that trips halts trading once; it stays tripped until the operator
resumes, which re-baselines drawdown and clears the counters. While it stays
tripped and the loss it measures keeps deepening, it says so again at every
further ``realert_step_pct`` (an operator who saw "20 % drawdown, halted" must
also learn of 30 %: a halt stops new orders, not an open position's losses).

The marks the equity breakers measure from - the equity peak and the UTC day's
starting equity - are kept by the node (``EquityMarks``) and checkpointed with its
state, so a restart of the node, the classifier or the whole service does not
reset them and hide a drawdown.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from node.marks import Deepened, EquityBreaker, EquityMarks, Trip
from protocol import BreakerSettings, RiskLimits

__all__ = ["CircuitBreakers", "DataStale", "DataWatch", "Deepened", "Trip"]


class CircuitBreakers:
    def __init__(
        self,
        settings: BreakerSettings,
        risk: RiskLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.risk = risk  # the user's limits themselves: max drawdown and daily loss
        self._clock = clock
        self._marks = EquityMarks()
        self._rejects = 0
        self._errors: deque[float] = deque()
        self._equity = EquityBreaker(risk, settings)
        self._data = DataWatch(settings)
        self.tripped: Trip | None = None

    def equity(
        self,
        equity: Decimal,
        ts_ns: int,
        peak: Decimal | None = None,
        day_start: Decimal | None = None,
    ) -> Trip | Deepened | None:
        """Judge an equity reading against the peak and the day's start.

        ``peak`` and ``day_start`` are the node's own marks (checkpointed); without them
        the breakers keep marks of their own from the readings they see.
        """
        self._marks.update(equity, ts_ns)
        peak = self._marks.peak if peak is None else peak
        day_start = self._marks.day_start if day_start is None else day_start
        judge = self._equity
        judge.limits(self.risk, self.settings)  # the classifier swaps them on a reload
        verdict = judge.judge(equity, peak, day_start, armed=self.tripped is None)
        if isinstance(verdict, Trip):
            self.tripped = verdict
        return verdict

    def data_age(self, age_s: float, interval_s: float) -> Trip | DataStale | None:
        """How long since the last bar, against how often bars are expected."""
        self._data.settings = self.settings
        verdict = self._data.age(age_s, interval_s)
        if isinstance(verdict, Trip):
            return self._trip(verdict.breaker, verdict.detail)
        return verdict

    def reject(self) -> Trip | None:
        self._rejects += 1
        if self._rejects >= self.settings.max_consecutive_rejects:
            return self._trip("consecutive_rejects", f"{self._rejects} order rejects in a row")
        return None

    def fill(self) -> None:
        self._rejects = 0

    def error(self) -> Trip | None:
        now = self._clock()
        self._errors.append(now)
        while self._errors and now - self._errors[0] > self.settings.error_window_s:
            self._errors.popleft()
        if len(self._errors) >= self.settings.max_errors:
            return self._trip(
                "error_rate",
                f"{len(self._errors)} errors within {self.settings.error_window_s:g} s",
            )
        return None

    def reset(self) -> None:
        """After a resume: start over from the next equity report."""
        self.tripped = None
        self._equity.reset()
        self._marks.rebaseline()
        self._rejects = 0
        self._errors.clear()

    def _trip(self, name: str, detail: str) -> Trip | None:
        if self.tripped is not None:
            return None
        self.tripped = Trip(name, detail)
        return self.tripped


@dataclass(frozen=True, slots=True)
class DataStale:
    """No market data for longer than the alert threshold (``stale``) or back (``fresh``)."""

    stale: bool
    detail: str


ALERT_FLOOR_S = 2.0  # below these, a thread switch or a GC pause would look like a stall
HALT_FLOOR_S = 10.0


class DataWatch:
    """The data-staleness rule: no bar for ``data_stale_alert_bars`` bar intervals is an
    alert, for ``data_stale_halt_bars`` a halt (a strategy must not trade blind on a
    position whose market it cannot see); data flowing again is announced once."""

    def __init__(self, settings: BreakerSettings) -> None:
        self.settings = settings
        self.stale = False

    def age(self, age_s: float, interval_s: float) -> DataStale | Trip | None:
        if interval_s <= 0:  # nothing expected (a finished replay, no market yet)
            return self._fresh(age_s) if self.stale else None
        alert_after = max(self.settings.data_stale_alert_bars * interval_s, ALERT_FLOOR_S)
        halt_after = max(self.settings.data_stale_halt_bars * interval_s, HALT_FLOOR_S)
        if age_s >= halt_after:
            self.stale = True
            return Trip(
                "data_stale",
                f"no market data for {age_s:.1f} s ({self.settings.data_stale_halt_bars} bar "
                f"intervals of {interval_s:g} s)",
            )
        if age_s >= alert_after and not self.stale:
            self.stale = True
            return DataStale(
                True,
                f"no market data for {age_s:.1f} s (a bar is expected every {interval_s:g} s); "
                f"trading halts after {halt_after:g} s",
            )
        if age_s < alert_after and self.stale:
            return self._fresh(age_s)
        return None

    def _fresh(self, age_s: float) -> DataStale:
        self.stale = False
        return DataStale(False, f"market data flowing again (last bar {age_s:.1f} s ago)")
