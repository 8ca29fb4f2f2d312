"""The catch-up player (``node.catchup``) on its own, with the venue's history, the live
feed and the node's engines injected: the order it plays the gap in, the seam, the bound
and a history that fails. (``tests/test_catch_up.py`` drives whole services.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

from nautilus_trader.adapters.binance.futures.types import BinanceFuturesMarkPriceUpdate
from nautilus_trader.model.data import Bar, BarType, CustomData, DataType, QuoteTick, TradeTick
from nautilus_trader.model.enums import AggressorSide
from nautilus_trader.model.identifiers import InstrumentId, TradeId
from nautilus_trader.model.objects import Price, Quantity

from node.catchup import CatchUp, FeedMarks, Plan, Seam, implied_touch
from node.history import HistoryUnavailable, Settlement, WeightBudget
from protocol import DataMark

BTC = InstrumentId.from_str("BTCUSDT-PERP.BINANCE")
SOL = InstrumentId.from_str("SOLUSDT-PERP.BINANCE")
S = 1_000_000_000
T0 = 1_700_000_000 * S


def trade(instrument: InstrumentId, trade_id: int, at_s: float, price: str = "100.0") -> TradeTick:
    ts = T0 + int(at_s * S)
    return TradeTick(
        instrument,
        Price.from_str(price),
        Quantity.from_str("1.000"),
        AggressorSide.SELLER,
        TradeId(str(trade_id)),
        ts,
        ts,
    )


def bar(instrument: InstrumentId, close_s: float, less_ns: int = 0) -> Bar:
    ts = T0 + int(close_s * S) - less_ns
    price = Price.from_str("100.0")
    return Bar(
        BarType.from_str(f"{instrument}-1-MINUTE-LAST-EXTERNAL"),
        price,
        price,
        price,
        price,
        Quantity.from_str("1.000"),
        ts,
        ts,
    )


@dataclass
class FakeHistory:
    """The venue's past: each instrument's tape, bars and settlements; ``fail`` raises."""

    tapes: dict[str, list[TradeTick]]
    closed: list[Bar] = field(default_factory=list)
    settled: list[Settlement] = field(default_factory=list)
    fail: bool = False
    budget: WeightBudget = field(default_factory=WeightBudget)
    page: int = 2

    def _check(self) -> None:
        if self.fail:
            raise HistoryUnavailable("klines: HTTP 503 unable to process (4 tries)")

    async def trades(
        self, instrument_id: InstrumentId, after_id: int | None, start_ms: int | None
    ) -> AsyncIterator[list[TradeTick]]:
        self._check()
        tape = [
            t
            for t in self.tapes.get(instrument_id.value, [])
            if (after_id is None or int(t.trade_id.value) > after_id)
            and (start_ms is None or after_id is not None or t.ts_event // 1_000_000 >= start_ms)
        ]
        for i in range(0, len(tape), self.page):
            yield tape[i : i + self.page]

    async def bars(self, bar_type: BarType, start_ms: int, end_ms: int) -> list[Bar]:
        self._check()
        return [
            b
            for b in self.closed
            if b.bar_type == bar_type and start_ms <= b.ts_event // 1_000_000 <= end_ms
        ]

    async def settlements(
        self, instrument_id: InstrumentId, start_ms: int, end_ms: int
    ) -> list[Settlement]:
        self._check()
        return [
            s
            for s in self.settled
            if s.instrument_id == instrument_id.value and start_ms <= s.at_ns // 1_000_000 <= end_ms
        ]


class Source:
    """The Binance data client's output, as the seam wraps it: what reached the engine."""

    def __init__(self) -> None:
        self.forwarded: list[object] = []

    def _handle_data(self, data: object) -> None:
        self.forwarded.append(data)


class Idle:
    def queued(self) -> int:
        return 0


def run_catch_up(
    history: FakeHistory,
    marks: dict[str, DataMark],
    now_s: float,
    live: list[object] = (),  # type: ignore[assignment]
    max_s: int = 3600,
    mark_stream: bool = False,
) -> tuple[list[object], list[Settlement], object, Source]:
    source = Source()
    seam = Seam(source)  # type: ignore[arg-type]
    for data in live:
        source._handle_data(data)  # the live feed meanwhile: held
    played: list[object] = []
    charged: list[Settlement] = []

    def charge(settlement: Settlement) -> int:
        charged.append(settlement)
        played.append(settlement)  # where it fell among what reached the engines
        return 1

    plan = Plan(
        instruments=[BTC, SOL],
        bar_types=[bar(BTC, 0).bar_type, bar(SOL, 0).bar_type],
        marks=marks,
        last_data_ns=T0,
        max_ns=max_s * S,
        mark_stream=mark_stream,
    )
    player = CatchUp(
        plan,
        history,  # type: ignore[arg-type]
        seam,
        played.append,
        Idle(),
        charge,
        now_ns=lambda: T0 + int(now_s * S),
        seam_wait_s=0.0,
        touch=lambda t: implied_touch(t, Price.from_str("0.1")),
    )
    caught = asyncio.run(player.run())
    return played, charged, caught, source


def describe(items: list[object]) -> list[str]:
    out = []
    for item in items:
        if isinstance(item, TradeTick):
            out.append(f"T{item.instrument_id.symbol.value[:3]}{item.trade_id}")
        elif isinstance(item, Bar):
            out.append(
                f"B{item.bar_type.instrument_id.symbol.value[:3]}@{(item.ts_event - T0) // S}"
            )
        elif isinstance(item, QuoteTick):
            out.append("Q")
        elif isinstance(item, Settlement):
            out.append(f"S@{(item.at_ns - T0) // S}")
    return out


def marks_at(btc_id: int, sol_id: int) -> dict[str, DataMark]:
    return {
        BTC.value: DataMark(BTC.value, btc_id, T0, T0),
        SOL.value: DataMark(SOL.value, sol_id, T0, T0),
    }


def test_two_instruments_play_in_market_time_with_their_bars_and_settlements_once():
    history = FakeHistory(
        tapes={
            BTC.value: [
                trade(BTC, 10, 0),
                trade(BTC, 11, 5),
                trade(BTC, 12, 60),
                trade(BTC, 13, 70),
            ],
            SOL.value: [trade(SOL, 500, 1), trade(SOL, 501, 3), trade(SOL, 502, 65)],
        },
        closed=[bar(BTC, 60), bar(SOL, 60)],
        settled=[Settlement(BTC.value, T0 + 62 * S, Decimal("0.0001"), Decimal("100"))],
    )
    played, charged, caught, _ = run_catch_up(history, marks_at(10, 499), now_s=80)
    kinds = [d for d in describe(played) if d != "Q"]
    # BTC 10 was the checkpoint's last trade: not again; a trade at a bar's close belongs
    # to the bar's period (it plays first); the settlement at 62 s once, after the bars.
    assert kinds == [
        "TSOL500", "TSOL501", "TBTC11", "TBTC12", "BBTC@60", "BSOL@60", "S@62", "TSOL502",
        "TBTC13",
    ]  # fmt: skip
    # each trade after the touch it implies: a seller hit the bid at its price
    first_quote = played[0]
    assert isinstance(first_quote, QuoteTick) and str(first_quote.bid_price) == "100.0"
    assert str(first_quote.ask_price) == "100.1"
    assert [s.at_ns for s in charged] == [T0 + 62 * S]
    assert (caught.trades, caught.bars, caught.settlements, caught.skipped_ns) == (6, 2, 1, 0)


def test_a_settlement_at_a_bars_end_is_charged_before_the_bar_and_a_trade_at_its_time():
    """Binance stamps a kline with its period's last millisecond and settles funding at
    the period's end, the next one: the bar reaches a strategy only after the period
    ended, so an order it sends fills after the settlement, on which the position held
    before it pays (as the live session's does); a trade at the settlement's millisecond
    is after it too (the live feed's first trade at or past a settlement settles it
    first). A trade of the period's last millisecond is before it."""
    ms = S // 1000
    history = FakeHistory(
        tapes={
            BTC.value: [trade(BTC, 11, 59.999), trade(BTC, 12, 60), trade(BTC, 13, 61)],
            SOL.value: [],
        },
        closed=[bar(BTC, 60, less_ns=ms)],  # closeTime: T0 + 59.999 s
        settled=[Settlement(BTC.value, T0 + 60 * S, Decimal("0.0001"), Decimal("100"))],
    )
    played, charged, caught, _ = run_catch_up(history, marks_at(10, 499), now_s=80)
    kinds = [d for d in describe(played) if d != "Q"]
    assert (caught.trades, caught.bars, caught.settlements) == (3, 1, 1)
    assert kinds == ["TBTC11", "S@60", "BBTC@59", "TBTC12", "TBTC13"], kinds
    assert [s.at_ns for s in charged] == [T0 + 60 * S]


def mark_update(instrument: InstrumentId, at_s: float, next_s: float) -> CustomData:
    """The live mark-price stream's update at ``at_s``, announcing the settlement at
    ``next_s`` (as the Binance data client hands it on)."""
    px = Price.from_str("100.0")
    at, following = T0 + int(at_s * S), T0 + int(next_s * S)
    update = BinanceFuturesMarkPriceUpdate(
        instrument, px, px, px, Decimal("0.0001"), following, at, at
    )
    metadata = {"instrument_id": instrument}
    return CustomData(DataType(BinanceFuturesMarkPriceUpdate, metadata), update)


def test_a_settlement_after_the_history_was_read_and_before_the_first_live_mark_is_charged():
    """The restart reads the gap's settlements up to its start (80 s) and its trades up to
    the live feed's first (82 s); one settles at 85 s, before the live mark-price stream's
    first update reaches the node (86 s), which announces only the next one (100 s).
    Neither side charged it: the restarted session missed a payment the uninterrupted one
    made. The catch-up now reads the settlements up to the first live mark update."""
    history = FakeHistory(
        tapes={BTC.value: [trade(BTC, 11, 81), trade(BTC, 12, 82)], SOL.value: []},
        settled=[
            Settlement(BTC.value, T0 + 85 * S, Decimal("0.0001"), Decimal("100")),
            Settlement(BTC.value, T0 + 100 * S, Decimal("0.0001"), Decimal("100")),
        ],
    )
    live = [trade(BTC, 12, 82), mark_update(BTC, 86, 100), mark_update(SOL, 86, 100)]
    played, charged, caught, source = run_catch_up(
        history, marks_at(10, 499), now_s=80, live=live, mark_stream=True
    )
    kinds = [d for d in describe(played) if d != "Q"]
    assert kinds == ["TBTC11", "TBTC12", "S@85"], kinds
    assert [s.at_ns for s in charged] == [T0 + 85 * S], "100 s is the live side's"
    assert caught.settlements == 1
    assert source.forwarded == live[1:], "the mark updates go on, announcing 100 s"


def test_a_settlement_past_the_first_read_plays_before_the_gaps_trades_after_it():
    """The history's first read ends at the restart's start (80 s); the gap's trades go on
    past it (its tape is read page by page until the live feed's first trade). A
    settlement at 85 s was charged after every trade of the gap, on the position the
    last of them left: now what settled up to a trade past the read is read first."""
    history = FakeHistory(
        tapes={
            BTC.value: [trade(BTC, 11, 83), trade(BTC, 12, 86), trade(BTC, 13, 87)],
            SOL.value: [],
        },
        settled=[Settlement(BTC.value, T0 + 85 * S, Decimal("0.0001"), Decimal("100"))],
    )
    played, charged, _, _ = run_catch_up(
        history, marks_at(10, 499), now_s=80, live=[trade(BTC, 13, 87)]
    )
    kinds = [d for d in describe(played) if d != "Q"]
    assert kinds == ["TBTC11", "S@85", "TBTC12", "TBTC13"], kinds
    assert [s.at_ns for s in charged] == [T0 + 85 * S]


def test_a_settlement_charged_before_the_kill_is_not_charged_again():
    """The bar of the period a settlement ends charges it (``node.funding``) before any
    trade past it: a checkpoint taken then has its last trade and bar before the
    settlement, and a restart from there read the settlement again and charged it twice.
    The checkpoint's marks hold the last settlement charged; the catch-up goes on after
    it, and the feed's marks carry it into the next checkpoint."""
    ms = S // 1000
    mark = DataMark(BTC.value, 10, T0 + 59 * S, T0 + 60 * S - ms, settled_ns=T0 + 60 * S)
    rate, px = Decimal("0.0001"), Decimal("100")
    history = FakeHistory(
        tapes={BTC.value: [trade(BTC, 11, 61), trade(BTC, 12, 121)], SOL.value: []},
        settled=[
            Settlement(BTC.value, T0 + 60 * S, rate, px),
            Settlement(BTC.value, T0 + 120 * S, rate, px),
        ],
    )
    _, charged, caught, _ = run_catch_up(history, {BTC.value: mark}, now_s=130)
    assert [s.at_ns for s in charged] == [T0 + 120 * S]
    assert caught.settlements == 1
    kept = FeedMarks([mark]).marks({BTC.value: T0 + 120 * S, SOL.value: T0 + 120 * S})
    assert [(m.instrument_id, m.trade_id, m.settled_ns) for m in kept] == [
        (BTC.value, 10, T0 + 120 * S),
        (SOL.value, 0, T0 + 120 * S),
    ]


def test_the_seam_lets_through_only_what_the_gap_did_not_play():
    history = FakeHistory(tapes={BTC.value: [trade(BTC, 11, 5), trade(BTC, 12, 6)], SOL.value: []})
    late_quote = QuoteTick(
        BTC, Price.from_str("100.0"), Price.from_str("100.1"), Quantity.from_str("1.000"),
        Quantity.from_str("1.000"), T0 + 9 * S, T0 + 9 * S,
    )  # fmt: skip
    early_quote = QuoteTick(
        BTC, Price.from_str("99.0"), Price.from_str("99.1"), Quantity.from_str("1.000"),
        Quantity.from_str("1.000"), T0 + 2 * S, T0 + 2 * S,
    )  # fmt: skip
    live = [early_quote, trade(BTC, 12, 6), trade(BTC, 13, 8), late_quote]
    _, _, caught, source = run_catch_up(history, marks_at(10, 0), now_s=10, live=live)
    # trade 12 was played from history, trade 13 was not; the quote older than the last
    # trade played is stale, the later one goes on
    assert source.forwarded == [trade(BTC, 13, 8), late_quote]
    assert caught.trades == 2


def test_a_gap_longer_than_the_bound_plays_its_last_part_and_says_how_much_was_left():
    history = FakeHistory(
        tapes={
            BTC.value: [trade(BTC, 11, 100), trade(BTC, 12, 3500), trade(BTC, 13, 3590)],
            SOL.value: [],
        },
    )
    played, _, caught, _ = run_catch_up(history, marks_at(10, 0), now_s=3600, max_s=600)
    assert [d for d in describe(played) if d != "Q"] == ["TBTC12", "TBTC13"]
    assert caught.skipped_ns == 3000 * S and caught.gap and not caught.failure


def test_a_history_the_venue_cannot_serve_leaves_the_gap_and_opens_the_feed():
    history = FakeHistory(tapes={BTC.value: [trade(BTC, 11, 5)], SOL.value: []}, fail=True)
    played, _, caught, source = run_catch_up(
        history, marks_at(10, 0), now_s=30, live=[trade(BTC, 40, 29)]
    )
    assert played == [] and "HTTP 503" in caught.failure and caught.gap
    assert caught.skipped_ns >= 29 * S
    assert source.forwarded == [trade(BTC, 40, 29)], "trading goes on from the live feed"


def test_the_venue_learns_where_the_market_stood_before_the_gaps_first_bar():
    """A quiet market: the gap's first bar closed before its first trade. The restarted
    simulated venue knew no market, so an order sent on that bar was rejected ("no
    market") where the session, never stopped, had filled it. The checkpoint's last
    trade is read again, not played: only the touch it implies goes first."""
    history = FakeHistory(
        tapes={BTC.value: [trade(BTC, 10, 0, "101.0"), trade(BTC, 11, 40)], SOL.value: []},
        closed=[bar(BTC, 30)],
    )
    played, _, caught, _ = run_catch_up(history, marks_at(10, 0), now_s=50)
    assert describe(played) == ["Q", "BBTC@30", "Q", "TBTC11"]
    first = played[0]
    assert isinstance(first, QuoteTick) and first.instrument_id == BTC
    assert (str(first.bid_price), str(first.ask_price)) == ("101.0", "101.1")
    assert first.ts_event == T0  # the checkpoint's last trade's time, not the gap's
    assert caught.trades == 1  # trade 10 is not played twice
