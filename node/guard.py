"""The drawdown and daily-loss breakers of a replay, judged by the node on market time.

Judged once a wall-clock second from the node's reports, a replay's breakers depended on
the machine: at speed 240 the 5 % daily limit spanned 240 market days, and the bar at
which a drawdown breaker halted moved with the load (on 45,000 real minute bars with a
10 % limit, the same replay halted after 719 fills at speed 0 and after 404 at 60,000). So
in a replay the node judges them itself, at every bar, before the strategies see it
(a handler of the bar's topic with a priority above theirs): the equity - the balance
and every open position marked at its instrument's last close - against the peak and
the day's start, the day being the bar's market day. A trip halts at once, in the
configured mode (``node.halting``), so the strategies' orders on that very bar are
denied and the cancels settle in the same step, whatever the speed; the parity backtest
installs the same guard, so a halting replay still equals its backtest, halt bar
included. Each strategy (with several) is judged the same way on its own capital.

The Binance modes keep the classifier's breakers on the node's once-a-second reports:
there the wall clock is market time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal

from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.component import MessageBus
from nautilus_trader.model.data import Bar, BarType
from nautilus_trader.model.position import Position

from node.books import Books, Valuation
from node.halting import Halting
from node.marks import Deepened, EquityBreaker, EquityMarks, Trip
from protocol import (
    MARKET,
    BreakerSettings,
    BreakerTripped,
    HaltMode,
    RiskLimits,
    TradingState,
)

PRIORITY = 100  # above the strategies' (0): judged before they act on the bar
SOURCE = MARKET  # a halt's source when the node's own breakers made it


class MarketBreakers:
    """The account's equity breaker and each strategy's (with several), fed by bars."""

    def __init__(
        self,
        halting: Halting,
        books: Books,
        valuation: Valuation,
        cache: Cache,
        marks: EquityMarks,
        risk: RiskLimits,
        breakers: BreakerSettings,
        step: Callable[[], int],
        tell: Callable[[BreakerTripped], None],
    ) -> None:
        """``marks``: the account's (the bridge's, checkpointed); ``step``: the replay's
        step being played; ``tell``: a trip or a deepening loss, before the halt."""
        self._halting = halting
        self._books = books
        self._valuation = valuation
        self._cache = cache
        self.marks = marks
        self._step = step
        self._tell = tell
        self._mode = breakers.halt_mode
        self._account = EquityBreaker(risk, breakers)
        self._raw = _RawMarks()
        self._limits = _ratios(risk)
        several = len(books.by_strategy) > 1
        self._own = {sid: EquityBreaker(risk, breakers) for sid in books.by_strategy if several}

    def subscribe(
        self,
        msgbus: MessageBus,
        bar_types: Iterable[BarType],
        then: Callable[[object], None] | None = None,
    ) -> None:
        """``on_bar`` ahead of the strategies; ``then``: a handler of the same bars to
        call right after it (one handler on the bus, not two: a bar's dispatch is a step's
        cost)."""
        handler = self.on_bar
        if then is not None:

            def judged(bar: object) -> None:
                self.on_bar(bar)
                then(bar)

            handler = judged
        for bar_type in bar_types:
            msgbus.subscribe(topic=f"data.bars.{bar_type}", handler=handler, priority=PRIORITY)

    def update(self, risk: RiskLimits, breakers: BreakerSettings) -> None:
        """A reload's limits, from the next bar on."""
        self._mode = breakers.halt_mode
        self._limits = _ratios(risk)
        for judge in (self._account, *self._own.values()):
            judge.limits(risk, breakers)

    def reset(self, strategy_id: str | None = None) -> None:
        """A resume: the operator has reviewed the loss so far; the drawdown starts over."""
        if strategy_id is None:
            self._account.reset()
            self.marks.rebaseline()
            return
        own = self._own.get(strategy_id)
        if own is not None:
            own.reset()
        book = self._books.by_strategy.get(strategy_id)
        if book is not None:
            book.marks.rebaseline()

    def on_bar(self, bar: object) -> None:
        if not isinstance(bar, Bar):
            return
        ts = bar.ts_event
        self._valuation.mark(bar)
        positions = self._cache.positions_open()
        active = self._halting.state is TradingState.ACTIVE
        quiet = active and not self._own and self._account.tripped is None
        if quiet and self._quiet(ts, positions):
            return
        equity = self._valuation.account(positions)
        marks = self.marks
        marks.update(equity, ts)
        verdict = self._account.judge(equity, marks.peak, marks.day_start, armed=active)
        if verdict is not None:
            self._act(verdict, None, ts)
        if not self._own:
            return
        halted = self._halting.halted_strategies
        worth = self._valuation.strategies(positions)
        for sid, judge in self._own.items():
            book = self._books.by_strategy[sid]
            book.marks.update(worth[sid], ts)
            verdict = judge.judge(
                worth[sid], book.marks.peak, book.marks.day_start, armed=sid not in halted
            )
            if verdict is not None:
                self._act(verdict, sid, ts)

    def _quiet(self, ts: int, positions: Sequence[Position]) -> bool:
        """The common bar - one account, trading, no breaker tripped - judged in
        NautilusTrader's raw integers, the marks moved as Decimals only when they move:
        whether it is clearly within both limits (else the Decimal judgement decides, on
        the very same marks). A step of a quiet bar cost about 12 us more in Decimals."""
        valuation, marks, raw = self._valuation, self.marks, self._raw
        equity = valuation.account_raw(positions)
        if marks.peak is not raw.peak_mark:  # restored, rebaselined: read it again
            raw.peak_mark = marks.peak
            raw.peak = None if marks.peak is None else valuation.to_raw(marks.peak)
        if marks.starts_day(ts):
            marks.day_start = valuation.to_decimal(equity)
        if marks.day_start is not raw.day_mark:
            raw.day_mark = marks.day_start
            raw.day = None if marks.day_start is None else valuation.to_raw(marks.day_start)
        if raw.peak is None or equity > raw.peak:
            raw.peak = equity
            marks.peak = raw.peak_mark = valuation.to_decimal(equity)
        limits = self._limits
        return _clearly_within(equity, raw.peak, limits[0]) and _clearly_within(
            equity, raw.day, limits[1]
        )

    def _act(self, verdict: Trip | Deepened, strategy_id: str | None, ts: int) -> None:
        deepened = isinstance(verdict, Deepened)
        mode = self._mode if strategy_id is None else HaltMode.CANCEL
        trip = BreakerTripped(
            verdict.breaker, verdict.detail, strategy_id, mode, self._step(), ts, deepened
        )
        self._tell(trip)  # before the halt's own messages: the gate records it first
        if deepened:
            return
        if strategy_id is None:
            self._halting.halt(trip.reason, mode, SOURCE)
        else:
            self._halting.halt_strategy(strategy_id, trip.reason, SOURCE)


class _RawMarks:
    """The account's marks as raw integers, and the Decimals they were read from."""

    def __init__(self) -> None:
        self.peak: int | None = None
        self.day: int | None = None
        self.peak_mark: Decimal | None = None
        self.day_mark: Decimal | None = None


MARGIN = 10**9  # one part in a billion: near a limit, the Decimal judgement decides


Ratio = tuple[int, int]


def _ratios(risk: RiskLimits) -> tuple[Ratio, Ratio]:
    """The drawdown and daily-loss limits as exact fractions (percent)."""
    return (
        risk.max_drawdown_pct.as_integer_ratio(),
        risk.daily_loss_limit_pct.as_integer_ratio(),
    )


def _clearly_within(equity: int, mark: int | None, limit_pct: Ratio) -> bool:
    """``equity`` is below ``mark`` by clearly less than ``limit_pct`` percent (integers;
    a mark of none or not above zero judges nothing, as ``Losses`` does)."""
    if mark is None or mark <= 0:
        return True
    numerator, denominator = limit_pct
    loss = (mark - equity) * 100 * denominator
    return loss * (MARGIN + 1) < numerator * mark * MARGIN
