"""The Nautilus ``Actor`` inside the node child that speaks the project's messages.

Commands from the parent arrive on the node's event loop (the pipe reader thread
hands them over with ``call_soon_threadsafe``) and become Nautilus calls; Nautilus
order and risk events become outgoing messages. Because pings are answered on the
loop, a hung loop shows up as missed pongs in the parent.

The bridge routes; the work is done by collaborators it owns, each with one job and
each usable without a running node (the parity backtest uses the same ones):
``Books`` keeps the account's and each strategy's totals, ``Halting`` halts and
resumes, ``Restorer`` brings a checkpoint back, ``MarketBreakers`` (a replay) judges
the equity breakers at every bar on market time, ``Snapshots`` shows the node's state
as the protocol's snapshot (``node.views``: orders and positions as views),
``node.funding`` settles funding.

Once a second a timer on the loop sends a ``NodeReport`` (equity, the breakers'
marks, the replay cursor, a counter of state changes and the age of the last bar):
from a timer, not from bars, so a stalled market still reports, as stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import msgspec
from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate
from nautilus_trader.backtest.engine import SimulatedExchange
from nautilus_trader.cache.cache import Cache
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.component import Clock, TimeEvent
from nautilus_trader.config import ActorConfig
from nautilus_trader.execution.engine import ExecutionEngine
from nautilus_trader.model.data import Bar, CustomData, DataType, TradeTick
from nautilus_trader.model.events import (
    OrderCanceled as NtOrderCanceled,
)
from nautilus_trader.model.events import (
    OrderDenied as NtOrderDenied,
)
from nautilus_trader.model.events import OrderEvent, PositionClosed
from nautilus_trader.model.events import (
    OrderFilled as NtOrderFilled,
)
from nautilus_trader.model.events import (
    OrderRejected as NtOrderRejected,
)
from nautilus_trader.model.identifiers import ClientId, InstrumentId
from nautilus_trader.portfolio.base import PortfolioFacade
from nautilus_trader.risk.engine import RiskEngine
from nautilus_trader.trading.strategy import Strategy

from node.books import Books, Valuation
from node.catchup import FeedMarks
from node.funding import TOPIC as FUNDING_TOPIC
from node.funding import MarkPriceFunding, VenueIncome
from node.guard import MarketBreakers
from node.halting import Halting
from node.marks import EquityMarks
from node.order_limits import HaltedStrategies, OrderLimits
from node.replay import ReplayDataClient, bar_type_for
from node.restore import Restorer
from node.snapshots import Progress, Snapshots
from node.strategies import TakesRiskLimits
from node.venues import SeededFillModel
from node.views import plain
from protocol import (
    BreakerSettings,
    DataMark,
    EncodedSnapshotReply,
    ErrorRaised,
    FundingPaid,
    Halt,
    HaltMode,
    NodeCommand,
    NodeEvent,
    NodeReport,
    OrderFilled,
    OrderRejected,
    OrderView,
    Ping,
    Pong,
    Resume,
    RiskLimits,
    Snapshot,
    SnapshotRequest,
    Stop,
    TradingState,
    TradingStateChanged,
    UpdateRisk,
)

REPORT_EVERY = timedelta(seconds=1)
MIN_GAPS = 3  # bars seen before their own pace is trusted over the nominal one
RECORDED_BARS = "recording.bars"


class Bridge(Actor):
    def __init__(
        self,
        send: Callable[[NodeEvent], None],
        request_stop: Callable[[str], None],
        risk_engine: RiskEngine,
        exec_engine: ExecutionEngine,
        cache: Cache,
        portfolio: PortfolioFacade,
        clock: Clock,
        strategies: Sequence[Strategy],
        replay: ReplayDataClient | None,
        instrument_ids: Sequence[str],
        bar_minutes: int,
        currency: str,
        halts: HaltedStrategies | None = None,
        capitals: Sequence[Decimal] = (),
        limits: OrderLimits | None = None,
        funding_venue: SimulatedExchange | None = None,
        fills: SeededFillModel | None = None,
        income: VenueIncome | None = None,
        feed_sandbox: bool = False,
        data_interval_s: float = 0.0,
        bars_received: int = 0,
        recording: bool = False,
        breakers: tuple[RiskLimits, BreakerSettings] | None = None,
        data_marks: Sequence[DataMark] = (),
    ) -> None:
        """``capitals``: each strategy's, in ``strategies``' order (none: the account's
        balance for each). ``bars_received``: on a live feed, the bars this session
        received before this node (a checkpoint's cursor), so a fill's bar counts on
        across restarts. ``recording``: the node records its market data
        (``node.host``). ``breakers``: the limits of the equity breakers this node
        judges itself, at every bar (a replay: ``node.guard``); None: the classifier
        judges them from the reports. ``data_marks``: a live feed's position at the
        checkpoint restored (kept until the feed moves it)."""
        super().__init__(ActorConfig(component_id="BRIDGE"))
        self._send = send
        self._request_stop = request_stop
        self._strategies = {s.id.value: s for s in strategies}
        # The first is the one a checkpoint of a single-strategy service belongs to.
        self._strategy = strategies[0]
        self._limits = limits
        self._replay = replay
        # The first is the service's own (instrument.id): its bars count the cursor.
        self._instrument_ids = [InstrumentId.from_str(i) for i in instrument_ids]
        self._venue = self._instrument_ids[0].venue
        self._bar_types = {
            iid: bar_type_for(iid.value, bar_minutes) for iid in self._instrument_ids
        }
        self._bar_type = self._bar_types[self._instrument_ids[0]]
        self._feed_sandbox = feed_sandbox
        shares = list(capitals) or [Decimal(0)] * len(strategies)
        self.books = Books(dict(zip(self._strategies, shares, strict=True)))
        self.valuation = Valuation(
            cache, portfolio, self._venue, currency, self._bar_types, self.books
        )
        self.halting = Halting(
            risk_engine, cache, self._strategies, halts, self._state_changed, self._send
        )
        self.restorer = Restorer(
            cache,
            exec_engine,
            clock,
            self._strategies,
            self.books,
            self.valuation.balance,
            self.halting.open_orders,
            currency,
        )
        self._marks = EquityMarks()
        # The account's state as last told, and the strategies halted on their own: a
        # resume of what was halted starts its drawdown over, a repeated one does not.
        self._told_state = TradingState.ACTIVE
        self._told_halted: set[str] = set()
        self.guard = (
            None
            if breakers is None
            else MarketBreakers(
                self.halting,
                self.books,
                self.valuation,
                cache,
                self._marks,
                breakers[0],
                breakers[1],
                lambda: self.cursor,
                self._send,
            )
        )
        # What a checkpoint and a report show; it keeps each open order's view.
        self.snapshots = Snapshots(
            cache,
            portfolio,
            clock,
            currency,
            self._strategies,
            self._instrument_ids,
            self.books,
            self.valuation,
            self.halting,
            self._marks,
        )
        self._fills = fills  # the simulated venue's fill model (its draws are checkpointed)
        self._income = income  # binance-testnet: the venue's own funding record
        if income is not None:
            income.bar = lambda: self.cursor
            income.report = send  # each poll's failure or success, for the classifier
        self._reports = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the node's, from on_start
        # binance-sandbox: the venue's funding, from its mark-price stream
        self.venue_funding = (
            None
            if funding_venue is None
            else MarkPriceFunding(
                funding_venue,
                self._publish_funding,
                lambda: self.cursor,
                {m.instrument_id: m.settled_ns for m in data_marks if m.settled_ns},
            )
        )
        self._state_version = 0  # +1 for every order, position or trading-state change
        self._data_interval_s = data_interval_s
        self._last_data_ns = 0
        # The last bar's arrival, and its market time (a live feed fill's date).
        self._last_bar_ns = self._market_ns = 0
        self._bar_gaps: deque[float] = deque(maxlen=20)
        self._bars_received = bars_received
        self._recording = recording
        self.feed_marks = FeedMarks(data_marks)  # a live feed's last trade and bar
        # A restart's catch-up plays history (``node.catchup``): its bars come as fast as
        # the node takes them, which is not the feed's pace (``data_interval_s``).
        self.catching_up = False

    # ------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        """On the node's loop, as the trader starts its actors."""
        self._last_data_ns = self.clock.timestamp_ns()  # stale counts from the start
        with contextlib.suppress(RuntimeError):  # started off a loop: no venue polls
            self._loop = asyncio.get_running_loop()
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)
        self.msgbus.subscribe(topic="events.position.*", handler=self._on_position_event)
        if self.guard is not None:  # the guard first, then the bridge's own look at it
            self.guard.subscribe(self.msgbus, self._bar_types.values(), then=self._on_bar)
        else:
            for bar_type in self._bar_types.values():
                self.msgbus.subscribe(topic=f"data.bars.{bar_type}", handler=self._on_bar)
        self.msgbus.subscribe(topic=FUNDING_TOPIC, handler=self._on_funding)
        if self.venue_funding is not None:
            # Before the sandbox's exec client matches a trade or a quote (it listens on
            # ``data.*.<venue>.*`` at priority 0), and before the strategies see a bar: a
            # settlement it passes is charged first.
            venue = self._instrument_ids[0].venue.value
            for topic in (f"data.*.{venue}.*", "data.bars.*"):
                self.msgbus.subscribe(
                    topic=topic, handler=self.venue_funding.on_market, priority=10
                )
        if self.venue_funding is not None or self._income is not None:
            # The venue's funding (binance-sandbox), or when it settles (binance-testnet:
            # the income poll runs once after each settlement).
            for instrument_id in self._instrument_ids:
                self.subscribe_data(
                    DataType(BinanceFuturesMarkPriceUpdate, {"instrument_id": instrument_id}),
                    client_id=ClientId(self._instrument_ids[0].venue.value),
                )
        self.clock.set_timer("node-report", REPORT_EVERY, callback=self._on_report_timer)
        if self._feed_sandbox or self._recording:
            # The sandbox venue matches against the venue's quotes and trades, which a
            # live data client only streams when someone subscribes to them; a recording
            # keeps them for the parity report's simulated venue (on the testnet too).
            for instrument_id in self._instrument_ids:
                self.subscribe_quote_ticks(instrument_id)
                self.subscribe_trade_ticks(instrument_id)

    def on_data(self, data: object) -> None:
        """The venue's mark-price updates (binance-sandbox), for its funding."""
        update = data.data if isinstance(data, CustomData) else data
        if not isinstance(update, BinanceFuturesMarkPriceUpdate):
            return
        if self.venue_funding is not None:
            self.venue_funding.on_update(update)
        if self._income is not None:
            self._income.on_mark_price(update.instrument_id.value, int(update.next_funding_ns))

    def _publish_funding(self, payment: FundingPaid) -> None:
        self.msgbus.publish(FUNDING_TOPIC, payment)

    def _on_funding(self, payment: object) -> None:
        """A settlement's payment (``node.funding``): the account's and its strategy's."""
        if not isinstance(payment, FundingPaid):
            return
        self.books.on_funding(payment)
        self._state_version += 1
        self._send(payment)

    def _on_bar(self, bar: object) -> None:
        # A live feed's bars count the cursor and date its fills (a replay's cursor and
        # dates are its own): not compared in a replay, where every step's bar comes
        # here and a BarType compares by its string.
        if self._replay is None and isinstance(bar, Bar):
            self.feed_marks.bar(bar)
            if bar.bar_type == self._bar_type:
                self._bars_received += 1  # the cursor counts the first instrument's bars
                self._market_ns = bar.ts_event
        if self._recording and type(bar) is not Bar and isinstance(bar, Bar):
            # A venue's own bar type (BinanceBar) has no Arrow schema, so the recorder
            # skips it: it records the plain bar, published where no strategy listens.
            self.msgbus.publish(RECORDED_BARS, plain(bar))
        now = self.clock.timestamp_ns()
        if self._last_bar_ns and not self.catching_up:
            self._bar_gaps.append((now - self._last_bar_ns) / 1e9)
        self._last_bar_ns = self._last_data_ns = now

    def on_trade_tick(self, tick: TradeTick) -> None:
        """A live feed's trade (binance-sandbox, or a recording session): its id and time
        are where a restart's catch-up begins."""
        self.feed_marks.trade(tick)

    def _made_at(self, ts_event: int, received: int) -> int:
        """When a fill was made, on the wall clock, its latency's start: a live venue's
        own stamp; in a replay (whose venue stamps market time) when its step began, or
        now, between steps."""
        replay = self._replay
        if replay is None:
            return ts_event
        return replay.step_wall_ns if replay.in_step else received

    def _fill_bar(self, ts_ns: int) -> int:
        """The step a fill happened in: a replay's, by the venue's market time (as the
        backtest finds it); on a live feed, the bars received so far."""
        if self._replay is not None:
            return self._replay.timeline.step_at(ts_ns)
        return self._bars_received

    @property
    def cursor(self) -> int:
        """Where the session is in its bars: a replay's next bar; on a live feed, the
        bars received so far (the index a parity report finds in the recording)."""
        return self._replay.cursor if self._replay is not None else self._bars_received

    @property
    def data_interval_s(self) -> float:
        """How often bars come, in wall-clock seconds: the median of the last gaps
        between bars, never more than the nominal interval (a replay's pace, the
        exchange's bar length). A feed that delivers faster than nominal (a replay
        sped up, a test venue) is judged by its own pace."""
        if len(self._bar_gaps) < MIN_GAPS:
            return self._data_interval_s
        observed = statistics.median(self._bar_gaps)
        return min(self._data_interval_s, observed) if self._data_interval_s > 0 else observed

    def _on_report_timer(self, event: object) -> None:
        due = event.ts_event if isinstance(event, TimeEvent) else 0
        lag = max(0.0, (self.clock.timestamp_ns() - due) / 1e9) if due else 0.0
        self._send(replace(self.report(), loop_lag_s=lag))
        self._reports += 1
        income = self._income
        loop = self._loop
        now = self.clock.timestamp_ns()
        if income is not None and loop is not None and income.due(now):
            # Once at start and once after each settlement (``IncomeSchedule``). A
            # timer's callback may run off the loop: the poll goes onto it.
            income.polling = True
            asyncio.run_coroutine_threadsafe(income.run(now), loop)

    def report(self) -> NodeReport:
        now = self.clock.timestamp_ns()
        snapshots = self.snapshots
        balance, unrealized = snapshots.balance(), snapshots.unrealized()
        equity = balance + unrealized
        judged = self.guard is not None
        if not judged:  # the wall clock is market time: the marks follow the reports
            self._marks.update(equity, now)
        replay = self._replay
        return NodeReport(
            strategies=snapshots.strategy_marks(now, update=not judged),
            equity=equity,
            balance=balance,
            ts_ns=now,
            equity_peak=self._marks.peak,
            day_start_equity=self._marks.day_start,
            replay_cursor=self.cursor,
            state_version=self._state_version,
            last_data_ns=self._last_data_ns,
            data_interval_s=self.data_interval_s,
            replay_finished=replay is not None and replay.finished,
            fill_draws=self._fills.draws if self._fills is not None else 0,
            judged=judged,
        )

    # ------------------------------------------------------------ commands

    def handle(self, command: NodeCommand) -> None:
        """Runs on the node loop; an exception is reported, never lost."""
        try:
            match command:
                case Halt(reason=reason, strategy_id=str(strategy_id), source=source):
                    self.halting.halt_strategy(strategy_id, reason, source)
                case Resume(reason=reason, strategy_id=str(strategy_id), source=source):
                    self.halting.resume_strategy(strategy_id, reason, source)
                case Halt(reason=reason, mode=mode, source=source):
                    self.halting.halt(reason, mode, source)
                case Resume(reason=reason, source=source):
                    self.halting.resume(reason, source)
                case SnapshotRequest(request_id=request_id):
                    self._send(EncodedSnapshotReply(request_id, self.encoded_snapshot()))
                case Ping(request_id=request_id):
                    self._send(Pong(role="node", request_id=request_id))
                case Stop(reason=reason):
                    self._request_stop(reason)
                case UpdateRisk(risk=risk, breakers=breakers):
                    # The account's limits hold every strategy from the next order on;
                    # a strategy that sizes from them gets them too.
                    if self._limits is not None:
                        self._limits.update(risk)
                    for strategy in self._strategies.values():
                        if isinstance(strategy, TakesRiskLimits):
                            strategy.update_risk(risk)
                    if self.guard is not None and breakers is not None:
                        self.guard.update(risk, breakers)
        except Exception as exc:  # reported to the classifier through the parent
            self._send(ErrorRaised("node.bridge", type(exc).__name__, str(exc)))

    def _state_changed(self, change: TradingStateChanged) -> None:
        """``Halting``'s: a trading state set, sent with the step the session is at; a
        resume starts the drawdown over (the operator reviewed the loss so far)."""
        sid = change.strategy_id
        if sid is None:
            if change.state is TradingState.ACTIVE and self._told_state is not TradingState.ACTIVE:
                self._rebaseline(None)
            self._told_state = change.state
        elif change.state is TradingState.ACTIVE:
            if sid in self._told_halted:
                self._rebaseline(sid)
            self._told_halted.discard(sid)
        else:
            self._told_halted.add(sid)
        self._state_version += 1
        self._send(replace(change, bar=self.cursor))

    def _rebaseline(self, strategy_id: str | None) -> None:
        if self.guard is not None:
            self.guard.reset(strategy_id)
        elif strategy_id is None:
            self._marks.rebaseline()
        elif (book := self.books.by_strategy.get(strategy_id)) is not None:
            book.marks.rebaseline()

    @property
    def trading_state(self) -> TradingState:
        return self.halting.state

    # ------------------------------------------------------------ restore

    def restore_marks(self, snap: Snapshot) -> None:
        """The breakers' marks and the realized PnL carry on from the checkpoint (also on
        a venue, where positions and orders come from the venue itself), the account's
        and each strategy's."""
        self.books.restore(snap)
        self._marks.peak, self._marks.day, self._marks.day_start = (
            snap.equity_peak,
            snap.day,
            snap.day_start_equity,
        )

    async def restore(
        self,
        snap: Snapshot,
        halted: HaltMode | None,
        timeout_s: float = 10.0,
        halted_strategies: frozenset[str] = frozenset(),
    ) -> None:
        """Rebuild a checkpoint's state in this fresh node (``node.restore``); an
        incomplete restore is reported loudly, and trading goes on."""
        self.restore_marks(snap)
        missing = await self.restorer.restore(snap, halted, timeout_s, halted_strategies)
        if missing is not None:
            self._send(ErrorRaised("node.restore", "RestoreIncomplete", missing))

    # ------------------------------------------------------------ events

    def _on_order_event(self, event: object) -> None:
        self._forward_order_event(event)
        self._state_version += 1
        # After the forwarding: keeping the snapshot's view costs the fill nothing.
        if isinstance(event, OrderEvent):
            self.snapshots.track(event.client_order_id)

    def _on_position_event(self, event: object) -> None:
        self._state_version += 1
        if isinstance(event, PositionClosed):
            self.books.on_closed(event)
            self.halting.closed(event.position_id.value)

    def _open_orders(self) -> list[tuple[OrderView, msgspec.Raw]]:
        return self.snapshots.open_orders()

    def _forward_order_event(self, event: object) -> None:
        match event:
            case NtOrderFilled() if event.client_order_id.value in self.restorer.restoring:
                pass  # a restore fill is not a trade
            case NtOrderFilled():
                received = self.clock.timestamp_ns()
                self.books.on_fill(event)
                self._send(
                    OrderFilled(
                        client_order_id=event.client_order_id.value,
                        trade_id=event.trade_id.value,
                        instrument_id=event.instrument_id.value,
                        side=event.order_side.name,
                        quantity=event.last_qty.as_decimal(),
                        price=event.last_px.as_decimal(),
                        commission=event.commission.as_decimal(),
                        ts_event=self._made_at(event.ts_event, received),
                        ts_bridge=received,
                        strategy_id=event.strategy_id.value,
                        bar=self._fill_bar(event.ts_event),
                        # A replay's venue runs on the bars' market time (as the
                        # backtest's); a live feed's fill is dated by its last bar.
                        market_ns=event.ts_event if self._replay is not None else self._market_ns,
                    )
                )
            case NtOrderDenied():
                self._send(
                    OrderRejected(
                        event.client_order_id.value,
                        event.reason,
                        denied=True,
                        strategy_id=event.strategy_id.value,
                    )
                )
            case NtOrderRejected():
                self._send(
                    OrderRejected(
                        event.client_order_id.value,
                        event.reason,
                        denied=False,
                        strategy_id=event.strategy_id.value,
                    )
                )
            case NtOrderCanceled():
                self.halting.canceled(event.strategy_id.value, event.client_order_id.value)

    # ------------------------------------------------------------ snapshot

    def _progress(self) -> Progress:
        replay = self._replay
        return Progress(
            cursor=self.cursor,
            replay_total=replay.total_bars if replay is not None else 0,
            state_version=self._state_version,
            last_data_ns=self._last_data_ns,
            fill_draws=self._fills.draws if self._fills is not None else 0,
            data_marks=self._data_marks() if replay is None else (),
        )

    def _data_marks(self) -> tuple[DataMark, ...]:
        funding = self.venue_funding
        return self.feed_marks.marks(None if funding is None else funding.settled)

    def snapshot(self) -> Snapshot:
        return self.snapshots.snapshot(self.trader_id.value, self._progress())

    def encoded_snapshot(self) -> bytes:
        """The snapshot as ``protocol.wire`` bytes: the open orders' encodings are reused."""
        return self.snapshots.encoded(self.trader_id.value, self._progress())
