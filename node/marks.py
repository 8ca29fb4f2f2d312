"""The equity marks the drawdown and daily-loss breakers measure from.

Kept by the node (beside the account it reads) and checkpointed with its state, so a
restart of the node, the classifier or the whole service does not reset them and hide
a drawdown; the classifier's breakers read them from the node's reports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal


class EquityMarks:
    """The equity peak and the UTC day's starting equity, updated from equity readings.

    Lives in the node child (beside the account it reads) and is restored from the
    checkpoint; ``rebaseline`` after a resume starts the drawdown over from the next
    reading, as the operator has reviewed the loss so far.
    """

    def __init__(
        self, peak: Decimal | None = None, day: str = "", day_start: Decimal | None = None
    ) -> None:
        self.peak = peak
        self.day = day
        self.day_start = day_start

    def update(self, equity: Decimal, ts_ns: int) -> None:
        day = datetime.fromtimestamp(ts_ns / 1e9, UTC).date().isoformat()
        if self.day != day or self.day_start is None:
            self.day, self.day_start = day, equity
        if self.peak is None or equity > self.peak:
            self.peak = equity

    def rebaseline(self) -> None:
        self.peak = None
