"""Circuit breakers from the user's risk limits: pure state, fed by the classifier.

A breaker that trips halts trading once; it stays tripped until the operator
resumes, which re-baselines drawdown and clears the counters.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from actors.settings import BreakerSettings

HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class Trip:
    breaker: str
    detail: str


class CircuitBreakers:
    def __init__(
        self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self._clock = clock
        self._peak: Decimal | None = None
        self._day: date | None = None
        self._day_start: Decimal | None = None
        self._rejects = 0
        self._errors: deque[float] = deque()
        self.tripped: Trip | None = None

    def equity(self, equity: Decimal, ts_ns: int) -> Trip | None:
        day = datetime.fromtimestamp(ts_ns / 1e9, UTC).date()
        if self._day != day or self._day_start is None:
            self._day, self._day_start = day, equity
        if self._peak is None or equity > self._peak:
            self._peak = equity
        if self._peak > 0:
            drawdown = (self._peak - equity) / self._peak * HUNDRED
            if drawdown >= self.settings.max_drawdown_pct:
                return self._trip(
                    "max_drawdown",
                    f"equity {equity:.2f} is {drawdown:.2f}% below its peak {self._peak:.2f} "
                    f"(limit {self.settings.max_drawdown_pct}%)",
                )
        if self._day_start > 0:
            loss = (self._day_start - equity) / self._day_start * HUNDRED
            if loss >= self.settings.daily_loss_limit_pct:
                return self._trip(
                    "daily_loss",
                    f"equity {equity:.2f} is {loss:.2f}% below the day's start "
                    f"{self._day_start:.2f} (limit {self.settings.daily_loss_limit_pct}%)",
                )
        return None

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
        self._peak = None
        self._rejects = 0
        self._errors.clear()

    def _trip(self, name: str, detail: str) -> Trip | None:
        if self.tripped is not None:
            return None
        self.tripped = Trip(name, detail)
        return self.tripped
