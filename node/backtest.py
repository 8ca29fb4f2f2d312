"""``BacktestEngine`` on the bars a session played: the other side of a parity report.

The venue is built from the very ``SandboxExecutionClientConfig`` the session's node
uses (``node.venues``), the instrument, bar type and bars from the same functions the
replay uses, and the strategy from the same config: whatever differs between the two
runs is then the paper-trading machinery, not a setting copied wrong.

Bars are stamped with their market time (``node.bars``: a file's own timestamps, or one
bar length apart from a UTC midnight), as the replay stamps them; a fill's bar - its
step on the replay's timeline - is recovered from its timestamp (the simulated venue
stamps a fill with the time of the bar it happened in), which is how it is set beside
the session's fill for the same bar.
"""

from __future__ import annotations

import time
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from nautilus_trader.adapters.sandbox.config import SandboxExecutionClientConfig
from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
from nautilus_trader.backtest.models import FillModel, LatencyModel
from nautilus_trader.config import LoggingConfig
from nautilus_trader.core.data import Data
from nautilus_trader.model.data import Bar, QuoteTick, TradeTick
from nautilus_trader.model.events import OrderCanceled, OrderFilled, PositionClosed
from nautilus_trader.model.identifiers import InstrumentId, Venue
from nautilus_trader.model.instruments import Instrument
from nautilus_trader.model.objects import Currency
from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog
from nautilus_trader.trading.strategy import Strategy

from node.bars import BarSeries
from node.books import Books, Valuation
from node.funding import FundingModule, replay_funding
from node.guard import MarketBreakers
from node.halting import Halting
from node.marks import EquityMarks
from node.order_limits import HaltedStrategies, install, limits_for
from node.replay import Feed, ReplayData, bar_type_for
from node.strategies import build_strategies
from node.venues import fill_model, sandbox_config, venue_options
from protocol import (
    BarMark,
    HaltAt,
    NodeSettings,
    Outcome,
    Trade,
    TradingState,
    TradingStateChanged,
)

# The parity backtest prints only errors: its strategies' INFO lines are not even built.
LOG_LEVEL = "ERROR"


def run_backtest(
    settings: NodeSettings,
    bars: int | None = None,
    series: BarSeries | None = None,
    ideal: bool = False,
    breakers: bool = True,
) -> Outcome:
    """The strategies of ``settings`` on the first ``bars`` steps of their replay (all of
    them when None; ``series`` in place of the first instrument's), on a simulated venue
    configured as the session's. Bars of one step share a time, in the replay's order.
    ``breakers``: the replay node's market-time breakers (``node.guard``) halt it as they
    halt the session (off: BacktestEngine and the strategy alone, a benchmark's anchor)."""
    played = ReplayData.of(settings)
    if series is not None:
        feeds = list(played.feeds)
        feeds[0] = Feed(feeds[0].instrument, feeds[0].bar_type, series)
        played = ReplayData(feeds)
    timeline = played.timeline
    count = len(timeline) if bars is None else min(bars, len(timeline))
    data: list[Data] = [bar for step in range(count) for bar in played.bars_at(step)]
    instruments = [f.instrument for f in played.feeds]
    if ideal:  # the fill model's effect: the same run with every touch filled, no slippage
        ideal_fills = settings.simulation.model_copy(
            update={"prob_fill_on_limit": Decimal(1), "prob_slippage": Decimal(0)}
        )
        settings = replace(settings, simulation=ideal_fills)
    return _run(settings, instruments, data, sandbox_config(settings), played, count, breakers)


class RecordingError(ValueError):
    """The recording is missing or holds no bars to trade on."""


def run_backtest_on_recording(settings: NodeSettings, path: Path) -> Outcome:
    """The strategy of ``settings`` on the market data a binance session recorded at
    ``path`` (every node life's stream, merged in time order), on a simulated venue
    configured as the sandbox's. The sandbox's venue matches on quotes and trades and
    never sees a bar (the bars go to the strategy only), so neither does this one's."""
    if not (path / "live").is_dir():
        raise RecordingError(f"no market data recording at {path}")
    catalog = ParquetDataCatalog(str(path))
    instruments: list[Instrument] = []
    data: dict[tuple[str, str, int], Data] = {}  # the same data written twice counts once
    for run in sorted(catalog.list_live_runs()):
        for item in catalog.read_live_run(run):
            if isinstance(item, Instrument):
                instruments.append(item)
            elif isinstance(item, Bar | QuoteTick | TradeTick):
                # A restart's catch-up plays again the trades and bars its crashed node
                # had received after its last checkpoint: one trade by its id, one bar by
                # its close, the later copy (what the session's state came from) kept.
                data[_identity(item)] = item
    chosen: list[Instrument] = []
    for instrument_id in settings.instrument_ids:
        wanted = InstrumentId.from_str(instrument_id)
        instrument = next((i for i in reversed(instruments) if i.id == wanted), None)
        if instrument is None:
            raise RecordingError(f"the recording at {path} holds no {instrument_id}")
        chosen.append(instrument)
    ordered = sorted(data.values(), key=lambda d: d.ts_init)
    if not any(isinstance(d, Bar) for d in ordered):
        raise RecordingError(f"the recording at {path} holds no bars")
    venue = sandbox_config(settings)
    venue = SandboxExecutionClientConfig(**{**venue.dict(), "bar_execution": False})
    return _run(settings, chosen, ordered, venue, played=None)


def _identity(item: Bar | QuoteTick | TradeTick) -> tuple[str, str, int]:
    if isinstance(item, TradeTick):
        return ("trade", f"{item.instrument_id}/{item.trade_id}", 0)
    if isinstance(item, Bar):
        return ("bar", str(item.bar_type), int(item.ts_event))
    return ("quote", repr(item), int(item.ts_init))


def _run(
    settings: NodeSettings,
    instruments: list[Instrument],
    data: list[Data],
    venue: SandboxExecutionClientConfig,
    played: ReplayData | None,
    steps: int = 0,
    breakers: bool = True,
) -> Outcome:
    """BacktestEngine with the session's strategy over ``data``. A fill's bar: on a
    replay's timeline (``played``), the step it filled in, from its time; on recorded
    data, the bars given to the strategy before it, as the session's bridge counts them."""
    bar_type = bar_type_for(settings.instrument_id, settings.replay.bar_minutes)
    strategies = build_strategies(settings, bar_type, log_level=LOG_LEVEL)
    books = Books(dict(zip((s.id.value for s in strategies), settings.capitals(), strict=True)))
    engine = BacktestEngine(
        BacktestEngineConfig(
            trader_id=settings.trader_id, logging=LoggingConfig(log_level=LOG_LEVEL)
        )
    )
    try:
        module = (
            None
            if played is None
            else replay_funding(settings.simulation, played, on_payment=books.on_funding)
        )
        funding = [] if module is None else [module]
        latency = settings.simulation.latency_ns
        _add_venue(
            engine,
            venue,
            fill_model(settings.simulation),
            funding,
            LatencyModel(base_latency_nanos=latency) if latency else None,
        )
        for instrument in instruments:
            engine.add_instrument(instrument)
        engine.add_data(data)
        for strategy in strategies:
            engine.add_strategy(strategy)
        kernel = engine.kernel
        # The node's own pre-trade checks, as the session had them: a halted strategy's
        # orders denied, then the notional limits.
        halts = HaltedStrategies(kernel.cache, kernel.msgbus, kernel.clock)
        limits = limits_for(settings, kernel.cache, kernel.msgbus, kernel.clock)
        checks = [halts.wrap]
        if limits is not None:
            limits.assign(strategies)
            checks.append(limits.wrap)
        install(kernel.msgbus, kernel.risk_engine.execute, *checks)
        halted: list[HaltAt] = []
        if played is not None and breakers:  # the breakers a replay's node judges itself
            _guard(engine, settings, venue, strategies, halts, books, played, halted)
        trades: list[Trade] = []
        closed: list[Decimal] = []
        marks: list[BarMark] = []  # the bars given, so far: a fill's bar is their count

        def on_bar(bar: Bar) -> None:
            marks.append(BarMark(int(bar.ts_event), bar.close.as_decimal()))

        def on_fill(event: object) -> None:
            if isinstance(event, OrderFilled):
                trades.append(
                    Trade(
                        bar=len(marks)
                        if played is None
                        else played.timeline.step_at(event.ts_event),
                        side=event.order_side.name,
                        quantity=event.last_qty.as_decimal(),
                        price=event.last_px.as_decimal(),
                        commission=event.commission.as_decimal(),
                    )
                )

        def on_position(event: object) -> None:
            if isinstance(event, PositionClosed) and event.realized_pnl is not None:
                closed.append(event.realized_pnl.as_decimal())

        msgbus = engine.kernel.msgbus
        msgbus.subscribe(f"data.bars.{bar_type}", on_bar)
        msgbus.subscribe("events.order.*", on_fill)
        msgbus.subscribe("events.position.*", on_position)
        started = time.perf_counter()
        engine.run()
        elapsed = time.perf_counter() - started
        currency = settings.account.currency
        account = engine.portfolio.account(Venue(venue.venue))
        balance = account.balance_total(Currency.from_str(currency)) if account else None
        open_realized = sum(
            (
                p.realized_pnl.as_decimal()
                for p in engine.cache.positions_open()
                if p.realized_pnl is not None
            ),
            Decimal(0),
        )
        return Outcome(
            trades=tuple(trades),
            realized_pnl=sum(closed, Decimal(0)) + open_realized,
            fees=sum((t.commission for t in trades), Decimal(0)),
            balance=balance.as_decimal() if balance is not None else Decimal(0),
            currency=currency,
            bars=len(marks) if played is None else steps,
            elapsed_s=elapsed,
            closed_pnls=tuple(closed),
            halts=tuple(halted),
            marks=tuple(marks),
        )
    finally:
        engine.dispose()


def _guard(
    engine: BacktestEngine,
    settings: NodeSettings,
    venue: SandboxExecutionClientConfig,
    strategies: list[Strategy],
    halts: HaltedStrategies,
    books: Books,
    played: ReplayData,
    halted: list[HaltAt],
) -> MarketBreakers:
    """The replay node's own breakers (``node.guard``), on this engine: the same
    valuation, judged at the same point of every bar, halting the same way; each halt,
    at the step it fell on, goes to ``halted``."""
    kernel = engine.kernel
    clock = kernel.clock
    timeline = played.timeline
    bar_types = {f.instrument.id: f.bar_type for f in played.feeds}
    valuation = Valuation(
        kernel.cache,
        engine.portfolio,
        Venue(venue.venue),
        settings.account.currency,
        bar_types,
        books,
    )
    held: set[str | None] = set()  # whose halt holds (None: the account's)

    def changed(change: TradingStateChanged) -> None:
        whose = change.strategy_id
        if change.state is TradingState.ACTIVE:
            held.discard(whose)
        elif whose not in held:  # a flatten passes REDUCING on its way to HALTED
            held.add(whose)
            step = timeline.step_at(clock.timestamp_ns())
            halted.append(HaltAt(step, change.reason, whose, change.source))

    by_id = {s.id.value: s for s in strategies}
    halting = Halting(kernel.risk_engine, kernel.cache, by_id, halts, changed, _ignore)
    guard = MarketBreakers(
        halting,
        books,
        valuation,
        kernel.cache,
        EquityMarks(),
        settings.risk,
        settings.breakers,
        lambda: timeline.step_at(clock.timestamp_ns()),
        _ignore,
    )
    guard.subscribe(kernel.msgbus, bar_types.values())

    def on_order(event: object) -> None:
        if isinstance(event, OrderFilled):
            books.on_fill(event)
        elif isinstance(event, OrderCanceled):
            halting.canceled(event.strategy_id.value, event.client_order_id.value)

    def on_position(event: object) -> None:
        if isinstance(event, PositionClosed):
            books.on_closed(event)
            halting.closed(event.position_id.value)

    kernel.msgbus.subscribe("events.order.*", on_order)
    kernel.msgbus.subscribe("events.position.*", on_position)
    return guard


def _ignore(_: object) -> None:
    return None


def _add_venue(
    engine: BacktestEngine,
    config: SandboxExecutionClientConfig,
    fills: FillModel,
    modules: list[FundingModule],
    latency: LatencyModel | None = None,
) -> None:
    """The venue as the replay builds its simulated exchange from the same config
    (``venue_options``); everything else is ``BacktestEngine``'s default, as a trader's own
    backtest would have it."""
    engine.add_venue(
        venue=Venue(config.venue),
        fill_model=fills,
        modules=list(modules),
        latency_model=latency,
        **venue_options(config),
    )
