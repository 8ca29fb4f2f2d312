"""The Nautilus ``Actor`` inside the node child that speaks the project's messages.

Commands from the parent arrive on the node's event loop (the pipe reader thread
hands them over with ``call_soon_threadsafe``) and become Nautilus calls; Nautilus
order and risk events become outgoing messages. Because pings are answered on the
loop, a hung loop shows up as missed pongs in the parent.

Once a second a timer on the loop sends a ``NodeReport`` (equity, the breakers'
marks, the replay cursor, a counter of state changes and the age of the last bar):
from a timer, not from bars, so a stalled market still reports, as stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from decimal import Decimal

import msgspec
from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate
from nautilus_trader.backtest.engine import SimulatedExchange
from nautilus_trader.common.actor import Actor
from nautilus_trader.common.component import TimeEvent
from nautilus_trader.config import ActorConfig
from nautilus_trader.execution.engine import ExecutionEngine
from nautilus_trader.model.data import Bar, CustomData, DataType
from nautilus_trader.model.enums import (
    LiquiditySide,
    OrderSide,
    OrderType,
    order_side_to_str,
    order_status_to_str,
    order_type_to_str,
    position_side_to_str,
)
from nautilus_trader.model.enums import TradingState as NautilusTradingState
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
from nautilus_trader.model.identifiers import (
    ClientId,
    ClientOrderId,
    InstrumentId,
    TradeId,
    VenueOrderId,
)
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Currency, Money, Price
from nautilus_trader.model.orders import Order
from nautilus_trader.model.position import Position
from nautilus_trader.risk.engine import RiskEngine
from nautilus_trader.trading.strategy import Strategy

from node.funding import TOPIC as FUNDING_TOPIC
from node.funding import MarkPriceFunding, VenueIncome
from node.marks import EquityMarks
from node.order_limits import FLATTEN_TAG, HaltedStrategies, OrderLimits
from node.replay import ReplayDataClient, bar_type_for
from node.strategies import TakesRiskLimits
from node.venues import SeededFillModel
from protocol import (
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
    OrdersCanceled,
    OrderView,
    Ping,
    Pong,
    PositionFill,
    PositionView,
    Resume,
    Snapshot,
    SnapshotRequest,
    Stop,
    StrategyMark,
    StrategyView,
    TradingState,
    TradingStateChanged,
    UpdateRisk,
    encode_order,
    encode_snapshot,
)

REPORT_EVERY = timedelta(seconds=1)
INCOME_EVERY = 5  # reports between two polls of the venue's income history
MIN_GAPS = 3  # bars seen before their own pace is trusted over the nominal one
AVG_PX_EXTRA_DIGITS = 4  # an average open price is finer than a tick, but not a float

_NT_STATE = {
    TradingState.ACTIVE: NautilusTradingState.ACTIVE,
    TradingState.HALTED: NautilusTradingState.HALTED,
    TradingState.REDUCING: NautilusTradingState.REDUCING,
}


class Bridge(Actor):
    def __init__(
        self,
        send: Callable[[NodeEvent], None],
        request_stop: Callable[[str], None],
        risk_engine: RiskEngine,
        exec_engine: ExecutionEngine,
        strategies: Sequence[Strategy],
        replay: ReplayDataClient | None,
        instrument_ids: Sequence[str],
        bar_minutes: int,
        currency: str,
        halts: HaltedStrategies | None = None,
        starting_balance: Decimal = Decimal(0),
        limits: OrderLimits | None = None,
        funding_venue: SimulatedExchange | None = None,
        fills: SeededFillModel | None = None,
        income: VenueIncome | None = None,
        feed_sandbox: bool = False,
        data_interval_s: float = 0.0,
        bars_received: int = 0,
        recording: bool = False,
    ) -> None:
        """``bars_received``: on a live feed, the bars this session received before this
        node (a checkpoint's cursor), so a fill's bar counts on across restarts.
        ``recording``: the node records its market data (``node.host``)."""
        super().__init__(ActorConfig(component_id="BRIDGE"))
        self._send = send
        self._request_stop = request_stop
        self._risk_engine = risk_engine
        self._exec_engine = exec_engine
        # The first is the one a checkpoint of a single-strategy service belongs to.
        self._strategy = strategies[0]
        self._strategies = {s.id.value: s for s in strategies}
        self._books = {sid: _Book() for sid in self._strategies}
        # The strategies halted on their own (``Halt(strategy_id=...)``): the pre-trade
        # check in front of the RiskEngine denies their orders.
        self._halts = halts
        self._limits = limits
        self._starting_balance = starting_balance
        self._strategy_cancels: dict[str, tuple[set[str], list[str]]] = {}
        self._replay = replay
        # The first is the service's own (instrument.id): its bars count the cursor.
        self._instrument_ids = [InstrumentId.from_str(i) for i in instrument_ids]
        self._venue = self._instrument_ids[0].venue
        self._bar_types = {
            iid: bar_type_for(iid.value, bar_minutes) for iid in self._instrument_ids
        }
        self._bar_type = self._bar_types[self._instrument_ids[0]]
        self._bar_minutes = bar_minutes
        self._feed_sandbox = feed_sandbox
        self._currency = currency
        self._state = TradingState.ACTIVE
        self._cancelling: set[str] = set()
        self._cancelled: list[str] = []
        # The account's halt in progress: its mode, the reduce-only orders it keeps and
        # the positions a flatten is closing (confirmed by their PositionClosed).
        self._halting: HaltMode | None = None
        self._kept: tuple[str, ...] = ()
        self._flattening: set[str] = set()
        self._flattened = 0
        self._restoring: set[str] = set()
        self._halt_reason = ""
        self._realized_base = Decimal(0)  # realized before this node's life (restored)
        # Realized by positions closed in this node's life, summed from their events:
        # the cache forgets closed positions (purged to bound memory), the sum stays.
        self._closed_realized = Decimal(0)
        self._position_realized_base: dict[str, Decimal] = {}  # restored positions' own
        self._funding = Decimal(0)  # the account's funding (in the balance already)
        self._fills = fills  # the simulated venue's fill model (its draws are checkpointed)
        self._income = income  # binance-testnet: the venue's own funding record
        if income is not None:
            income.bar = lambda: self.cursor
        self._reports = 0
        self._loop: asyncio.AbstractEventLoop | None = None  # the node's, from on_start
        # binance-sandbox: the venue's funding, from its mark-price stream
        self._venue_funding = (
            None
            if funding_venue is None
            else MarkPriceFunding(funding_venue, self._publish_funding, lambda: self.cursor)
        )
        self._marks = EquityMarks()
        self._state_version = 0  # +1 for every order, position or trading-state change
        self._data_interval_s = data_interval_s
        self._last_data_ns = 0
        # The last bar's arrival, and its market time (a live feed fill's date).
        self._last_bar_ns = self._market_ns = 0
        self._bar_gaps: deque[float] = deque(maxlen=20)
        self._bars_received = bars_received
        self._recording = recording
        # Open orders as the snapshot shows them, each with its pipe encoding, kept
        # up to date from the order events: a checkpoint does not rebuild them.
        self._open_views: dict[str, tuple[OrderView, msgspec.Raw]] = {}

    # ------------------------------------------------------------ lifecycle

    def on_start(self) -> None:
        self._last_data_ns = self.clock.timestamp_ns()  # stale counts from the start
        with contextlib.suppress(RuntimeError):  # started off a loop: no venue polls
            self._loop = asyncio.get_running_loop()
        self.msgbus.subscribe(topic="events.order.*", handler=self._on_order_event)
        self.msgbus.subscribe(topic="events.position.*", handler=self._on_position_event)
        for bar_type in self._bar_types.values():
            self.msgbus.subscribe(topic=f"data.bars.{bar_type}", handler=self._on_bar)
        self.msgbus.subscribe(topic=FUNDING_TOPIC, handler=self._on_funding)
        if self._venue_funding is not None:
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
        if self._venue_funding is not None and isinstance(update, BinanceFuturesMarkPriceUpdate):
            self._venue_funding.on_update(update)

    def _publish_funding(self, payment: FundingPaid) -> None:
        self.msgbus.publish(FUNDING_TOPIC, payment)

    def _on_funding(self, payment: object) -> None:
        """A settlement's payment (``node.funding``): the account's and its strategy's."""
        if not isinstance(payment, FundingPaid):
            return
        self._funding += payment.amount
        book = self._books.get(payment.strategy_id)
        if book is not None:
            book.funding += payment.amount
        self._state_version += 1
        self._send(payment)

    def _on_bar(self, bar: object) -> None:
        if isinstance(bar, Bar) and bar.bar_type == self._bar_type:
            self._bars_received += 1  # the cursor counts the first instrument's bars
            self._market_ns = bar.ts_event
        if self._recording and type(bar) is not Bar and isinstance(bar, Bar):
            # A venue's own bar type (BinanceBar) has no Arrow schema, so the recorder
            # skips it: it records the plain bar, published where no strategy listens.
            self.msgbus.publish(RECORDED_BARS, _plain(bar))
        now = self.clock.timestamp_ns()
        if self._last_bar_ns:
            self._bar_gaps.append((now - self._last_bar_ns) / 1e9)
        self._last_bar_ns = self._last_data_ns = now

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
        if (
            income is not None
            and loop is not None
            and not income.polling
            and self._reports % INCOME_EVERY == 0
        ):
            # A timer's callback may run off the loop: the poll goes onto it.
            asyncio.run_coroutine_threadsafe(self._poll_income(income), loop)

    async def _poll_income(self, income: VenueIncome) -> None:
        try:
            await income.poll(self.clock.timestamp_ns() // 1_000_000)
        except Exception as exc:  # the classifier judges it (a timeout is transient)
            self._send(
                ErrorRaised("node.funding", type(exc).__name__, str(exc), operation="income")
            )

    def report(self) -> NodeReport:
        now = self.clock.timestamp_ns()
        balance, unrealized = self._balance(), self._unrealized()
        equity = balance + unrealized
        self._marks.update(equity, now)
        replay = self._replay
        return NodeReport(
            strategies=self._strategy_marks(now),
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
        )

    # ------------------------------------------------------------ commands

    def handle(self, command: NodeCommand) -> None:
        """Runs on the node loop; an exception is reported, never lost."""
        try:
            match command:
                case Halt(reason=reason, strategy_id=str(strategy_id)):
                    self._halt_strategy(strategy_id, reason)
                case Resume(reason=reason, strategy_id=str(strategy_id)):
                    self._resume_strategy(strategy_id, reason)
                case Halt(reason=reason, mode=mode):
                    self._halt(reason, mode)
                case Resume(reason=reason):
                    self._set_state(TradingState.ACTIVE, reason)
                case SnapshotRequest(request_id=request_id):
                    self._send(EncodedSnapshotReply(request_id, self.encoded_snapshot()))
                case Ping(request_id=request_id):
                    self._send(Pong(role="node", request_id=request_id))
                case Stop(reason=reason):
                    self._request_stop(reason)
                case UpdateRisk(risk=risk):
                    # The account's limits hold every strategy from the next order on;
                    # a strategy that sizes from them gets them too.
                    if self._limits is not None:
                        self._limits.update(risk)
                    for strategy in self._strategies.values():
                        if isinstance(strategy, TakesRiskLimits):
                            strategy.update_risk(risk)
        except Exception as exc:  # reported to the classifier through the parent
            self._send(ErrorRaised("node.bridge", type(exc).__name__, str(exc)))

    def _set_state(self, state: TradingState, reason: str) -> None:
        self._risk_engine.set_trading_state(_NT_STATE[state])
        if state is TradingState.ACTIVE and self._state is not TradingState.ACTIVE:
            self._marks.rebaseline()  # the operator reviewed the loss so far
        self._state = state
        self._state_version += 1
        self._halt_reason = reason if state is not TradingState.ACTIVE else ""
        self._send(TradingStateChanged(state, reason))

    def _halt(self, reason: str, mode: HaltMode = HaltMode.CANCEL) -> None:
        """The account's halt in ``mode``; ``OrdersCanceled`` once it is done: every cancel
        confirmed and, flattening, every position closed by its fill. A flatten runs
        REDUCING (its closing orders pass, nothing else) and ends HALTED."""
        state = TradingState.REDUCING if mode is not HaltMode.CANCEL else TradingState.HALTED
        self._set_state(state, reason)
        open_orders = self._our_open_orders()
        kept = [o for o in open_orders if mode is HaltMode.REDUCE and o.is_reduce_only]
        self._kept = tuple(o.client_order_id.value for o in kept)
        cancel = [o for o in open_orders if o.client_order_id.value not in self._kept]
        self._cancelling = {o.client_order_id.value for o in cancel}
        self._cancelled = []
        self._halting = mode
        closing = [
            p
            for p in self.cache.positions_open()
            if mode is HaltMode.FLATTEN and p.strategy_id.value in self._strategies
        ]
        # Counted before anything is sent: a replay's venue answers at once, inline.
        self._flattening = {p.id.value for p in closing}
        self._flattened = len(closing)
        for order in cancel:
            self._strategies[order.strategy_id.value].cancel_order(order)
        for position in closing:
            self._strategies[position.strategy_id.value].close_position(
                position, tags=[FLATTEN_TAG]
            )
        self._halt_progress(reason)

    def _halt_progress(self, reason: str | None = None) -> None:
        """Confirm the account's halt once nothing it waits for is outstanding."""
        mode = self._halting
        if mode is None or self._cancelling or self._flattening:
            return
        self._halting = None
        if mode is HaltMode.FLATTEN:
            self._set_state(TradingState.HALTED, reason or self._halt_reason)
        self._send(
            OrdersCanceled(
                tuple(self._cancelled), mode=mode, kept=self._kept, positions_closed=self._flattened
            )
        )

    def _halt_strategy(self, strategy_id: str, reason: str) -> None:
        """One strategy halted: its new orders denied, its open orders cancelled (the
        cancels confirmed by ``OrdersCanceled`` naming it), the others untouched."""
        strategy = self._strategies.get(strategy_id)
        if strategy is None or self._halts is None:
            known = ", ".join(self._strategies)
            raise ValueError(f"halt: no strategy {strategy_id} in this node (it runs {known})")
        self._halts.halted[strategy_id] = reason
        self._state_version += 1
        self._send(TradingStateChanged(TradingState.HALTED, reason, strategy_id))
        open_orders = [o for o in self._our_open_orders() if o.strategy_id.value == strategy_id]
        if not open_orders:
            self._send(OrdersCanceled((), strategy_id))
            return
        self._strategy_cancels[strategy_id] = ({o.client_order_id.value for o in open_orders}, [])
        for order in open_orders:
            strategy.cancel_order(order)

    def _resume_strategy(self, strategy_id: str, reason: str) -> None:
        if strategy_id not in self._strategies or self._halts is None:
            known = ", ".join(self._strategies)
            raise ValueError(f"resume: no strategy {strategy_id} in this node (it runs {known})")
        if self._halts.halted.pop(strategy_id, None) is not None:
            self._books[strategy_id].marks.rebaseline()  # its loss so far was reviewed
        self._strategy_cancels.pop(strategy_id, None)
        self._state_version += 1
        self._send(TradingStateChanged(TradingState.ACTIVE, reason, strategy_id))

    def _our_open_orders(self) -> list[Order]:
        """The open orders of this node's strategies (not a reconciled stranger's)."""
        return [o for o in self.cache.orders_open() if o.strategy_id.value in self._strategies]

    def _strategy_of(self, strategy_id: str) -> Strategy:
        """A checkpoint's strategy; a row of a single-strategy service names none."""
        return self._strategies.get(strategy_id, self._strategy)

    # ------------------------------------------------------------ restore

    def restore_marks(self, snap: Snapshot) -> None:
        """The breakers' marks and the realized PnL carry on from the checkpoint (also on
        a venue, where positions and orders come from the venue itself), the account's
        and each strategy's."""
        self._realized_base = snap.realized_pnl
        self._funding = snap.funding
        self._marks = EquityMarks(snap.equity_peak, snap.day, snap.day_start_equity)
        if not snap.strategies:  # a single-strategy service's row: all of it was one's
            self._books[self._strategy.id.value] = _Book(realized_base=snap.realized_pnl)
        for view in snap.strategies:
            if view.strategy_id in self._books:
                self._books[view.strategy_id] = _Book(
                    realized_base=view.realized_pnl,
                    fills=view.fills,
                    fees=view.fees,
                    marks=EquityMarks(view.equity_peak),
                    funding=view.funding,
                )

    async def restore(
        self,
        snap: Snapshot,
        halted: HaltMode | None,
        timeout_s: float = 10.0,
        halted_strategies: frozenset[str] = frozenset(),
    ) -> None:
        """Rebuild a checkpoint's positions and open orders in this fresh node.

        Positions come back as their own fills, replayed at their prices without
        commission and generated through the execution client, so the cache, the
        portfolio and the account all agree and each position's average price is the
        one it had (a checkpoint without fills: one fill at the average). Replayed
        reductions realize PnL the checkpoint's balance already holds: the simulated
        account is set back to that balance, and the realized total left as it was.
        Resting orders are placed again with their own client order ids; the order id
        counter continues, so no id is issued twice. A node that starts ``halted`` (the
        gate's record) places no order again.
        """
        self._strategy.order_factory.set_client_order_id_count(snap.orders_total)
        for counted in snap.strategies:
            if (strategy := self._strategies.get(counted.strategy_id)) is not None:
                strategy.order_factory.set_client_order_id_count(counted.orders_total)
        self.restore_marks(snap)
        venue: object = None
        for n, view in enumerate(snap.positions):
            fills = view.fills or (
                PositionFill(
                    "BUY" if view.side == "LONG" else "SELL", view.quantity, view.avg_px_open
                ),
            )
            owner = self._strategy_of(view.strategy_id)
            instrument = self._instrument(view.instrument_id)
            for k, fill in enumerate(fills):
                venue = self._restore_fill(instrument, fill, f"{n}-{k}", owner)
        # A halted node has no working orders (the halt cancelled them, even if the
        # checkpoint was taken before the cancels were confirmed): place none again, but
        # a reducing halt's reduce-only ones (its stops); nor does a strategy halted on
        # its own.
        resting_orders = tuple(
            o
            for o in snap.open_orders
            if (not halted or (halted is HaltMode.REDUCE and o.reduce_only))
            and o.strategy_id not in halted_strategies
            and _restorable(o)
        )
        for resting in resting_orders:
            self._place_again(resting)
        settled = False
        deadline = self.clock.timestamp() + timeout_s
        while self.clock.timestamp() < deadline:
            filled = all(self.cache.order(ClientOrderId(o)).is_closed for o in self._restoring)
            working = len(self._our_open_orders())
            if filled and not settled:
                self._settle_restored(snap, venue)
                settled = True
            if settled and working >= len(resting_orders) and self._balance() == snap.balance:
                return
            await asyncio.sleep(0.005)
        # Trading on without the full state is better than a crash loop: say so loudly.
        positions = len(self.cache.positions_open())
        self._send(
            ErrorRaised(
                "node.restore",
                "RestoreIncomplete",
                f"restore not confirmed within {timeout_s} s: {positions} of "
                f"{len(snap.positions)} position(s), {working} of {len(resting_orders)} "
                f"order(s), balance {self._balance()} of {snap.balance}",
            )
        )

    def _place_again(self, resting: OrderView) -> None:
        """A checkpoint's resting order, under its own client order id."""
        strategy = self._strategy_of(resting.strategy_id)
        instrument = self._instrument(resting.instrument_id)
        side = OrderSide.BUY if resting.side == "BUY" else OrderSide.SELL
        quantity = instrument.make_qty(resting.quantity - resting.filled_qty)
        order_id = ClientOrderId(resting.client_order_id)
        stop = resting.order_type == "STOP_MARKET"
        make = strategy.order_factory.stop_market if stop else strategy.order_factory.limit
        price = resting.trigger_price if stop else resting.price
        assert price is not None  # _restorable
        order: Order = make(
            instrument.id,
            side,
            quantity,
            instrument.make_price(price),
            reduce_only=resting.reduce_only,
            client_order_id=order_id,
        )
        strategy.submit_order(order)

    def _instrument(self, instrument_id: str) -> Instrument:
        instrument = self.cache.instrument(InstrumentId.from_str(instrument_id))
        if instrument is None:
            raise RuntimeError(
                f"restore: the checkpoint holds {instrument_id}, which this node does not "
                "trade (was it removed from the config?)"
            )
        return instrument

    def _restore_fill(
        self, instrument: Instrument, fill: PositionFill, tag: str, strategy: Strategy
    ) -> object:
        """One fill of a restored position; the venue's client that generated it."""
        side = OrderSide.BUY if fill.side == "BUY" else OrderSide.SELL
        qty = instrument.make_qty(fill.quantity)
        instrument_id = instrument.id
        order = strategy.order_factory.market(instrument_id, side, qty, tags=["RESTORE"])
        self._restoring.add(order.client_order_id.value)
        self.cache.add_order(order, None, None)
        client = next(iter(self._exec_engine.get_clients_for_orders([order])))
        now = self.clock.timestamp_ns()
        venue_order_id = VenueOrderId(f"RESTORE-{tag}-{now}")
        client.generate_order_submitted(strategy.id, instrument_id, order.client_order_id, now)
        client.generate_order_accepted(
            strategy.id, instrument_id, order.client_order_id, venue_order_id, now
        )
        client.generate_order_filled(
            strategy.id,
            instrument_id,
            order.client_order_id,
            venue_order_id,
            None,
            TradeId(f"RESTORE-{tag}-{now}"),
            side,
            OrderType.MARKET,
            qty,
            instrument.make_price(fill.price),
            instrument.quote_currency,
            Money(0, instrument.get_settlement_currency()),
            LiquiditySide.TAKER,
            now,
        )
        return client

    def _settle_restored(self, snap: Snapshot, venue: object) -> None:
        """What replayed reductions realized is in the checkpoint already: the realized
        total is kept as it was, and the simulated account set back to its balance."""
        replayed: dict[str, Decimal] = {}
        for position in self.cache.positions_open():
            if position.realized_pnl is not None:
                replayed[position.id.value] = position.realized_pnl.as_decimal()
                book = self._books.get(position.strategy_id.value)
                if book is not None:
                    book.realized_base -= position.realized_pnl.as_decimal()
        for view in snap.positions:
            again = replayed.get(view.position_id, Decimal(0))
            self._position_realized_base[view.position_id] = view.realized_pnl - again
        self._realized_base = snap.realized_pnl - sum(replayed.values(), Decimal(0))
        exchange = getattr(venue, "exchange", None)  # a simulated venue's
        difference = snap.balance - self._balance()
        if exchange is not None and difference:
            exchange.adjust_account(Money(difference, Currency.from_str(self._currency)))

    # ------------------------------------------------------------ events

    def _on_order_event(self, event: object) -> None:
        self._forward_order_event(event)
        self._state_version += 1
        # After the forwarding: keeping the snapshot's view costs the fill nothing.
        if isinstance(event, OrderEvent):
            self._track_order(event.client_order_id)

    def _on_position_event(self, event: object) -> None:
        self._state_version += 1
        if isinstance(event, PositionClosed):
            # Its realized PnL joins the total; a later position under the same id
            # (netting) starts from zero.
            if event.realized_pnl is not None:
                self._closed_realized += event.realized_pnl.as_decimal()
                book = self._books.get(event.strategy_id.value)
                if book is not None:
                    book.closed_realized += event.realized_pnl.as_decimal()
            self._position_realized_base.pop(event.position_id.value, None)
            if event.position_id.value in self._flattening:
                self._flattening.discard(event.position_id.value)
                self._halt_progress()

    def _track_order(self, client_order_id: ClientOrderId) -> None:
        order = self.cache.order(client_order_id)
        if order is not None and order.is_open:
            view = _order_view(order)
            self._open_views[client_order_id.value] = (view, encode_order(view))
        else:
            self._open_views.pop(client_order_id.value, None)

    def _open_orders(self) -> Iterable[tuple[OrderView, msgspec.Raw]]:
        """The kept views, rebuilt only when the cache holds orders no event showed
        the bridge (those already open when it subscribed, e.g. reconciled ones)."""
        # The cache's own index set: its size costs nothing (orders_open_count()
        # would build the list of orders).
        if len(self._open_views) != len(self.cache.client_order_ids_open()):
            views = (_order_view(o) for o in self.cache.orders_open())
            self._open_views = {v.client_order_id: (v, encode_order(v)) for v in views}
        return self._open_views.values()

    def _forward_order_event(self, event: object) -> None:
        match event:
            case NtOrderFilled() if event.client_order_id.value in self._restoring:
                pass  # a restore fill is not a trade
            case NtOrderFilled():
                received = self.clock.timestamp_ns()
                book = self._books.get(event.strategy_id.value)
                if book is not None:
                    book.fills += 1
                    book.fees += event.commission.as_decimal()
                self._send(
                    OrderFilled(
                        client_order_id=event.client_order_id.value,
                        trade_id=event.trade_id.value,
                        instrument_id=event.instrument_id.value,
                        side=event.order_side.name,
                        quantity=event.last_qty.as_decimal(),
                        price=event.last_px.as_decimal(),
                        commission=event.commission.as_decimal(),
                        ts_event=event.ts_event,
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
                order_id = event.client_order_id.value
                self._strategy_cancelled(event.strategy_id.value, order_id)
                if order_id in self._cancelling:
                    self._cancelling.discard(order_id)
                    self._cancelled.append(order_id)
                    self._halt_progress()

    def _strategy_cancelled(self, strategy_id: str, order_id: str) -> None:
        waiting = self._strategy_cancels.get(strategy_id)
        if waiting is None or order_id not in waiting[0]:
            return
        waiting[0].discard(order_id)
        waiting[1].append(order_id)
        if not waiting[0]:
            del self._strategy_cancels[strategy_id]
            self._send(OrdersCanceled(tuple(waiting[1]), strategy_id))

    # ------------------------------------------------------------ snapshot

    def _balance(self) -> Decimal:
        account = self.portfolio.account(self._venue)
        if account is not None:
            for currency, money in account.balances_total().items():
                if currency.code == self._currency:
                    return Decimal(money.as_decimal())
        return Decimal(0)

    @property
    def trading_state(self) -> TradingState:
        return self._state

    def _price_precision(self, instrument_id: InstrumentId) -> int | None:
        instrument = self.cache.instrument(instrument_id)
        return None if instrument is None else int(instrument.price_precision)

    def _unrealized(self) -> Decimal:
        total = Decimal(0)
        for instrument_id in self._instrument_ids:
            money = self.portfolio.unrealized_pnl(instrument_id)
            if money is not None:
                total += money.as_decimal()
        return total

    def _last_close(self, instrument_id: InstrumentId) -> Price | None:
        bar_type = self._bar_types.get(instrument_id)
        bar = self.cache.bar(bar_type) if bar_type is not None else None
        return bar.close if bar is not None else None

    def snapshot(self) -> Snapshot:
        orders = self._open_orders()
        return replace(self._snapshot_without_orders(), open_orders=tuple(v for v, _ in orders))

    def encoded_snapshot(self) -> bytes:
        """The snapshot as ``protocol.wire`` bytes: the open orders' encodings are reused."""
        raws = [raw for _, raw in self._open_orders()]
        return encode_snapshot(self._snapshot_without_orders(), raws)

    def _snapshot_without_orders(self) -> Snapshot:
        balance = self._balance()
        open_positions = self.cache.positions_open()
        positions = self._position_views(open_positions)
        # The portfolio keeps the realized PnL of closed (and flipped) positions too.
        realized = (
            self._realized_base
            + self._closed_realized
            + sum(
                (p.realized_pnl.as_decimal() for p in open_positions if p.realized_pnl), Decimal(0)
            )
        )
        unrealized = self._unrealized()
        return Snapshot(
            taken_at_ns=self.clock.timestamp_ns(),
            trader_id=self.trader_id.value,
            trading_state=self._state,
            currency=self._currency,
            balance=balance,
            equity=balance + unrealized,
            realized_pnl=realized,
            unrealized_pnl=unrealized,
            replay_cursor=self.cursor,
            positions=positions,
            orders_total=self._strategy.order_factory.get_client_order_id_count(),
            replay_total=self._replay.total_bars if self._replay is not None else 0,
            halt_reason=self._halt_reason if self._state is not TradingState.ACTIVE else "",
            equity_peak=self._marks.peak,
            day=self._marks.day,
            day_start_equity=self._marks.day_start,
            state_version=self._state_version,
            last_data_ns=self._last_data_ns,
            strategies=self._strategy_views(positions),
            funding=self._funding,
            fill_draws=self._fills.draws if self._fills is not None else 0,
        )

    def _strategy_marks(self, now_ns: int) -> tuple[StrategyMark, ...]:
        """Each strategy's equity - the account's starting balance plus its realized and
        unrealized PnL - against its own peak, for its drawdown breaker."""
        if len(self._strategies) < 2:
            return ()  # one strategy: the account's breakers are its own
        positions = self._position_views(self.cache.positions_open())
        marks = []
        for view in self._strategy_views(positions):
            equity = self._starting_balance + view.realized_pnl + view.unrealized_pnl
            book = self._books[view.strategy_id]
            book.marks.update(equity, now_ns)
            peak = book.marks.peak if book.marks.peak is not None else equity
            marks.append(StrategyMark(view.strategy_id, equity, peak))
        return tuple(marks)

    def _position_views(self, open_positions: list[Position]) -> tuple[PositionView, ...]:
        return tuple(
            _position_view(
                p,
                self._last_close(p.instrument_id),
                self._position_realized_base.get(p.id.value, Decimal(0)),
                self._price_precision(p.instrument_id),
            )
            for p in open_positions
        )

    def _strategy_views(self, positions: tuple[PositionView, ...]) -> tuple[StrategyView, ...]:
        views = []
        halted = self._halts.halted if self._halts is not None else {}
        for sid, strategy in self._strategies.items():
            book = self._books[sid]
            held = [p for p in positions if p.strategy_id == sid]
            reason = halted.get(sid)
            views.append(
                StrategyView(
                    strategy_id=sid,
                    orders_total=strategy.order_factory.get_client_order_id_count(),
                    fills=book.fills,
                    # As the account's total: Nautilus's own figure for the open
                    # positions (a view's also carries its restored base, which the
                    # book's base holds already).
                    realized_pnl=book.realized_base
                    + book.closed_realized
                    + sum(
                        (
                            p.realized_pnl
                            - self._position_realized_base.get(p.position_id, Decimal(0))
                            for p in held
                        ),
                        Decimal(0),
                    ),
                    unrealized_pnl=sum((p.unrealized_pnl for p in held), Decimal(0)),
                    fees=book.fees,
                    trading_state=TradingState.ACTIVE if reason is None else TradingState.HALTED,
                    halt_reason=reason or "",
                    equity_peak=book.marks.peak,
                    funding=book.funding,
                )
            )
        return tuple(views)


RECORDED_BARS = "recording.bars"


@dataclass(slots=True)
class _Book:
    """One strategy's running totals: before this node's life (``realized_base``, from
    the checkpoint) and in it."""

    realized_base: Decimal = Decimal(0)
    closed_realized: Decimal = Decimal(0)
    fills: int = 0
    fees: Decimal = Decimal(0)
    marks: EquityMarks = field(default_factory=EquityMarks)
    funding: Decimal = Decimal(0)


def _plain(bar: Bar) -> Bar:
    return Bar(
        bar.bar_type, bar.open, bar.high, bar.low, bar.close, bar.volume, bar.ts_event, bar.ts_init
    )


def _restorable(view: OrderView) -> bool:
    """The resting orders a restore places again: limits, and stop-market orders."""
    if view.order_type == "LIMIT":
        return view.price is not None
    return view.order_type == "STOP_MARKET" and view.trigger_price is not None


def _order_view(order: Order) -> OrderView:
    price = order.price.as_decimal() if order.has_price else None
    trigger = order.trigger_price.as_decimal() if order.has_trigger_price else None
    return OrderView(
        client_order_id=order.client_order_id.value,
        instrument_id=order.instrument_id.value,
        side=order_side_to_str(order.side),
        order_type=order_type_to_str(order.order_type),
        quantity=order.quantity.as_decimal(),
        filled_qty=order.filled_qty.as_decimal(),
        price=price,
        status=order_status_to_str(order.status),
        strategy_id=order.strategy_id.value,
        trigger_price=trigger,
        reduce_only=order.is_reduce_only,
    )


def _position_view(
    position: Position, last: Price | None, realized_base: Decimal, price_precision: int | None
) -> PositionView:
    unrealized = Decimal(0)
    if last is not None:
        unrealized = position.unrealized_pnl(last).as_decimal()
    realized = position.realized_pnl.as_decimal() if position.realized_pnl else Decimal(0)
    return PositionView(
        position_id=position.id.value,
        instrument_id=position.instrument_id.value,
        side=position_side_to_str(position.side),
        quantity=position.quantity.as_decimal(),
        avg_px_open=avg_price(position.avg_px_open, price_precision),
        realized_pnl=realized_base + realized,
        unrealized_pnl=unrealized,
        fills=tuple(
            PositionFill(
                order_side_to_str(fill.order_side),
                fill.last_qty.as_decimal(),
                fill.last_px.as_decimal(),
            )
            for fill in position.events
        ),
        strategy_id=position.strategy_id.value,
    )


def avg_price(value: float, price_precision: int | None) -> Decimal:
    """Nautilus keeps an average price as a float (65201.100000000006); the checkpoint
    keeps a Decimal rounded a few digits finer than the instrument's tick."""
    digits = (price_precision if price_precision is not None else 8) + AVG_PX_EXTRA_DIGITS
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-digits))
