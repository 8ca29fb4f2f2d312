"""The emulator's matching and accounting, on figures worked out by hand.

The Binance emulator is only as good as its numbers: a client (Nautilus, ccxt) reconciles its
own fills, fees, PnL and balances against them. These tests drive the matching engine and the
Algo Service directly, without a server, a socket or a clock, from a market whose touch the
test sets. Unless a test says otherwise: BTCUSDT, bid 60000.0 / ask 60000.1, a 10000 USDT
wallet at 20x, taker fee 0.04 %, maker fee 0.016 %.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.binance_emulator.algo import AlgoOrder, AlgoService, NewAlgo
from tests.binance_emulator.errors import ApiError
from tests.binance_emulator.events import (
    AccountUpdate,
    AlgoUpdate,
    LeverageUpdate,
    OrderUpdate,
    TradeLite,
    UserEvent,
)
from tests.binance_emulator.market import Market
from tests.binance_emulator.matching import MatchingEngine, NewOrder, Order
from tests.binance_emulator.spec import SYMBOLS, SymbolSpec

NOW = 1_700_000_000_000


class Venue:
    """A market, an engine and its Algo Service on a fixed clock, with every user event kept.
    ``fill_first``: the chance a triggered order's fill is reported before ``FINISHED``."""

    def __init__(
        self,
        spec: SymbolSpec = SYMBOLS["BTCUSDT"],
        start: str = "60000",
        chunk: str | None = None,
        fill_first: float = 1.0,
    ) -> None:
        self.now = NOW
        self.events: list[UserEvent] = []
        self.market = Market(spec, D(start), clock=self.clock)
        self.engine = MatchingEngine(
            spec,
            self.market,
            clock=self.clock,
            fill_chunk_qty=D(chunk) if chunk else None,
            emit=self.events.append,
        )
        self.algos = AlgoService(
            self.engine,
            clock=self.clock,
            fill_before_finished=fill_first,
            emit=self.events.append,
        )

    def clock(self) -> int:
        return self.now

    def place(
        self,
        side: str,
        qty: str,
        price: str | None = None,
        *,
        reduce_only: bool = False,
        time_in_force: str = "GTC",
        good_till_date: int = 0,
    ) -> Order:
        """A MARKET order, or a LIMIT order at ``price``; returns the live order."""
        request = NewOrder(
            side=side,
            type="MARKET" if price is None else "LIMIT",
            quantity=D(qty),
            price=D(price) if price else D(0),
            time_in_force=time_in_force,
            reduce_only=reduce_only,
            good_till_date=good_till_date,
        )
        return self.engine.orders[self.engine.place(request).order_id]

    def conditional(self, side: str, type: str, qty: str, trigger: str = "0", **kw) -> AlgoOrder:
        """A conditional order through the Algo Service; returns the live one."""
        request = NewAlgo(side=side, type=type, quantity=D(qty), trigger_price=D(trigger), **kw)
        return self.algos.orders[self.algos.place(request).algo_id]

    def move(self, bid: str) -> None:
        """The market moves: bid at ``bid``, ask a tick above, a trade at the bid (so the
        mark is the bid), then resting orders are matched and conditional orders triggered,
        as on a market tick."""
        self.now += 1000
        self.market.jump(D(bid))
        self.market.print_trade(D(bid), D("0.001"), buyer_maker=True)
        self.engine.match_resting(self.now)
        self.algos.check(self.now)

    def fills(self) -> list[tuple[str, D, D, D, bool]]:
        """(side, qty, price, commission, maker) of every fill."""
        return [(f.side, f.qty, f.price, f.commission, f.maker) for f in self.engine.fills]


def test_a_market_buy_fills_at_the_ask_as_taker():
    v = Venue()
    order = v.place("BUY", "0.010")

    # notional 0.010 * 60000.1 = 600.001; taker fee 600.001 * 0.0004 = 0.2400004
    assert v.fills() == [("BUY", D("0.010"), D("60000.1"), D("0.24000040"), False)]
    assert (order.status, order.executed_qty, order.avg_price) == (
        "FILLED",
        D("0.010"),
        D("60000.1"),
    )
    pos = v.engine.position
    assert (pos.amount, pos.entry_price, pos.realized) == (D("0.010"), D("60000.1"), D(0))
    assert v.engine.wallet == D("9999.7599996")
    assert v.market.last == D("60000.1"), "the taker fill printed on the tape"


def test_a_market_sell_fills_at_the_bid_and_opens_a_short():
    v = Venue()
    v.place("SELL", "0.020")

    # 0.020 * 60000.0 = 1200; fee 0.48
    assert v.fills() == [("SELL", D("0.020"), D("60000.0"), D("0.48000000"), False)]
    assert (v.engine.position.amount, v.engine.position.entry_price) == (D("-0.020"), D("60000"))
    assert v.engine.wallet == D("9999.52")


def test_a_fill_is_reported_as_trade_then_account_then_order_after_the_acceptance():
    v = Venue()
    v.place("BUY", "0.010")

    kinds = [(type(e).__name__, getattr(e, "exec_type", None)) for e in v.events]
    assert kinds == [
        ("OrderUpdate", "NEW"),
        ("TradeLite", None),
        ("AccountUpdate", None),
        ("OrderUpdate", "TRADE"),
    ]
    new, lite, account, trade = v.events
    assert isinstance(new, OrderUpdate) and new.fill is None and new.order.status == "NEW"
    assert isinstance(lite, TradeLite) and lite.fill.price == D("60000.1")
    assert isinstance(account, AccountUpdate)
    assert (account.reason, account.wallet) == ("ORDER", D("9999.7599996"))
    assert account.position.amount == D("0.010")
    assert isinstance(trade, OrderUpdate) and trade.order.status == "FILLED"
    assert trade.fill is not None and trade.fill.commission == D("0.2400004")


def test_the_accepted_order_is_returned_as_it_was_before_it_filled():
    v = Venue()
    ack = v.engine.place(NewOrder(side="BUY", type="MARKET", quantity=D("0.010")))

    assert (ack.status, ack.executed_qty) == ("NEW", D(0))
    assert v.engine.orders[ack.order_id].status == "FILLED"


def test_a_crossing_limit_order_fills_at_the_touch_as_taker_not_at_its_price():
    v = Venue()
    v.place("BUY", "0.010", "60010.0")

    assert v.fills() == [("BUY", D("0.010"), D("60000.1"), D("0.24000040"), False)]


def test_a_resting_limit_order_fills_at_its_price_as_maker_when_the_market_crosses_it():
    v = Venue()
    order = v.place("BUY", "0.010", "59990.0")
    assert order.status == "NEW" and v.fills() == []

    v.move("59995.0")  # ask 59995.1 is above the order: nothing
    assert order.status == "NEW"
    v.move("59980.0")  # ask 59980.1 <= 59990.0: filled at 59990.0

    # 0.010 * 59990.0 = 599.9; maker fee 599.9 * 0.00016 = 0.095984
    assert v.fills() == [("BUY", D("0.010"), D("59990.0"), D("0.09598400"), True)]
    assert order.status == "FILLED"
    assert v.engine.wallet == D("9999.904016")
    assert v.engine.position.entry_price == D("59990")


def test_a_market_order_fills_in_chunks_partially_then_completely():
    v = Venue(chunk="0.004")
    order = v.place("BUY", "0.010")

    assert [f[1] for f in v.fills()] == [D("0.004"), D("0.004"), D("0.002")]
    statuses = [e.order.status for e in v.events if isinstance(e, OrderUpdate)]
    assert statuses == ["NEW", "PARTIALLY_FILLED", "PARTIALLY_FILLED", "FILLED"]
    assert (order.executed_qty, order.status) == (D("0.010"), "FILLED")
    # each chunk pays its own fee: 0.004 * 60000.1 * 0.0004 = 0.09600016 (twice),
    # 0.002 * 60000.1 * 0.0004 = 0.04800008
    assert sum(f[3] for f in v.fills()) == D("0.24000040")


def test_a_resting_order_takes_one_chunk_per_market_tick():
    v = Venue(chunk="0.004")
    order = v.place("SELL", "0.010", "60010.0")

    v.move("60010.0")
    assert (order.status, order.executed_qty) == ("PARTIALLY_FILLED", D("0.004"))
    v.move("60011.0")
    assert (order.status, order.executed_qty) == ("PARTIALLY_FILLED", D("0.008"))
    v.move("60012.0")
    assert (order.status, order.executed_qty) == ("FILLED", D("0.010"))
    assert {f[2] for f in v.fills()} == {D("60010.0")}, "maker fills at the order's price"
    assert v.engine.position.amount == D("-0.010")


def test_an_ioc_limit_that_does_not_cross_expires_unfilled():
    v = Venue()
    order = v.place("BUY", "0.010", "59990.0", time_in_force="IOC")

    assert (order.status, order.executed_qty) == ("EXPIRED", D(0))
    assert v.fills() == []


def test_adding_to_a_position_averages_the_entry_and_realizes_nothing():
    v = Venue()
    v.place("BUY", "0.010")  # @ 60000.1
    v.move("60100.0")
    v.place("BUY", "0.010")  # @ 60100.1

    pos = v.engine.position
    # (0.010 * 60000.1 + 0.010 * 60100.1) / 0.020 = 1201.002 / 0.020 = 60050.1
    assert (pos.amount, pos.entry_price, pos.realized) == (D("0.020"), D("60050.1"), D(0))


def test_a_fill_through_flat_realizes_the_closed_part_and_opens_the_rest_at_its_price():
    v = Venue()
    v.place("BUY", "0.010")  # @ 60000.1, fee 0.2400004
    v.move("60100.0")
    v.place("BUY", "0.010")  # @ 60100.1, fee 601.001 * 0.0004 = 0.2404004
    v.move("60200.0")
    v.place("SELL", "0.030")  # @ 60200.0, fee 1806.0 * 0.0004 = 0.7224

    # closes 0.020 long from 60050.1 at 60200.0: 0.020 * 149.9 = 2.998; 0.010 short opens
    pos = v.engine.position
    assert (pos.amount, pos.entry_price, pos.realized) == (D("-0.010"), D("60200.0"), D("2.998"))
    assert v.engine.fills[-1].realized_pnl == D("2.998")

    v.move("60100.0")
    v.place("BUY", "0.010")  # @ 60100.1, fee 0.2404004

    # the short from 60200.0 covered at 60100.1: 0.010 * 99.9 = 0.999
    assert v.engine.fills[-1].realized_pnl == D("0.999")
    assert (pos.amount, pos.entry_price, pos.realized) == (D("0.000"), D(0), D("3.997"))
    # 10000 + 2.998 + 0.999 - (0.2400004 + 0.2404004 + 0.7224 + 0.2404004)
    assert v.engine.wallet == D("10002.5537988")


def test_a_short_realizes_a_loss_when_covered_higher():
    v = Venue()
    v.place("SELL", "0.010")  # @ 60000.0, fee 0.24
    v.move("60500.0")
    v.place("BUY", "0.010")  # @ 60500.1, fee 605.001 * 0.0004 = 0.2420004

    # 0.010 * (60500.1 - 60000.0) * -1 = -5.001
    assert v.engine.position.realized == D("-5.001")
    assert v.engine.wallet == D("10000") - D("5.001") - D("0.24") - D("0.2420004")


def test_reduce_only_is_rejected_when_it_would_not_reduce():
    v = Venue()
    with pytest.raises(ApiError) as flat:
        v.place("SELL", "0.010", reduce_only=True)
    assert flat.value.code == -2022

    v.place("BUY", "0.010")
    with pytest.raises(ApiError) as same_side:
        v.place("BUY", "0.010", reduce_only=True)
    assert same_side.value.code == -2022
    assert len(v.engine.orders) == 1, "a rejected order is not recorded"


def test_a_reduce_only_order_fills_up_to_flat_and_expires_the_rest():
    v = Venue()
    v.place("BUY", "0.010")
    order = v.place("SELL", "0.030", reduce_only=True)

    assert (order.status, order.executed_qty) == ("EXPIRED", D("0.010"))
    assert v.engine.position.amount == D(0)
    assert [f[:3] for f in v.fills()][-1] == ("SELL", D("0.010"), D("60000.0"))


def test_a_resting_reduce_only_order_expires_when_the_position_is_gone_before_it_crosses():
    v = Venue()
    v.place("BUY", "0.010")
    resting = v.place("SELL", "0.010", "60100.0", reduce_only=True)
    v.place("SELL", "0.010")  # flat by another order

    v.move("60100.0")
    assert (resting.status, resting.executed_qty) == ("EXPIRED", D(0))
    assert v.engine.position.amount == D(0)


def test_a_reduce_only_order_is_exempt_from_the_notional_floor():
    v = Venue()
    v.place("BUY", "0.010")
    with pytest.raises(ApiError) as small:
        v.place("SELL", "0.001")  # 0.001 * 60000.0 = 60 < 100
    assert small.value.code == -4164

    v.place("SELL", "0.001", reduce_only=True)
    assert v.engine.position.amount == D("0.009")


def test_an_order_whose_margin_exceeds_the_available_balance_is_rejected():
    v = Venue()
    # 3.500 * 60000.1 = 210000.35: margin 210000.35 / 20 + fee 84.00014 = 10584.03189 > 10000
    with pytest.raises(ApiError) as rejected:
        v.place("BUY", "3.500")
    assert rejected.value.code == -2019
    # 3.000: 9000.015 + 72.00012 = 9072.01512 <= 10000
    v.place("BUY", "3.000")
    assert v.engine.position.amount == D("3.000")


def test_closing_a_position_needs_no_margin():
    v = Venue()
    v.place("BUY", "3.000")
    # available is now far below the margin 3.000 BTC would need, but selling only closes
    assert v.engine.figures().available < D(9000)
    v.place("SELL", "3.000")
    assert v.engine.position.amount == D(0)


def test_the_margin_figures_of_a_position_and_open_orders_at_the_mark():
    v = Venue()
    v.place("BUY", "0.010")  # @ 60000.1: wallet 9999.7599996
    v.move("61000.0")  # mark 61000.0
    v.place("SELL", "0.020", "61500.0")  # rests above the market
    v.place("BUY", "0.005", "60000.0")  # rests below

    f = v.engine.figures()
    assert f.upnl == D("9.999")  # 0.010 * (61000.0 - 60000.1)
    assert f.margin_balance == D("10009.7589996")  # 9999.7599996 + 9.999
    assert f.notional == D("610")  # 0.010 * 61000.0
    assert f.position_initial_margin == D("30.5")  # 610 / 20
    assert (f.bid_notional, f.ask_notional) == (D("300"), D("1230"))
    assert f.open_order_initial_margin == D("61.5")  # the larger side: 1230 / 20
    assert f.initial_margin == D("92")
    assert f.maint_margin == D("2.44")  # 610 * 0.004
    assert f.available == D("9917.7589996")  # 10009.7589996 - 30.5 - 61.5

    balance = v.engine.balance_snapshot()
    assert balance.wallet_balance == D("9999.7599996")
    assert str(balance.initial_margin) == "92.00000000"
    assert str(balance.available_balance) == "9917.75899960"
    position = v.engine.position_snapshot()
    assert (position.unrealized_pnl, position.mark_price) == (D("9.999"), D("61000.0"))


def test_a_canceled_order_releases_its_margin():
    v = Venue()
    order = v.place("BUY", "0.100", "59000.0")
    assert v.engine.figures().available == D("9705")  # 10000 - 5900 / 20

    v.engine.cancel(order)
    assert order.status == "CANCELED"
    assert v.engine.figures().available == D("10000")
    last = v.events[-1]
    assert isinstance(last, OrderUpdate) and last.exec_type == "CANCELED"


def test_an_amended_order_that_now_crosses_trades_at_once():
    v = Venue()
    order = v.place("BUY", "0.010", "59990.0")

    v.engine.amend(order, D("0.020"), D("60005.0"))
    assert (order.status, order.quantity) == ("FILLED", D("0.020"))
    assert v.fills() == [("BUY", D("0.020"), D("60000.1"), D("0.48000080"), False)]
    with pytest.raises(ApiError) as unchanged:
        v.engine.amend(v.place("BUY", "0.010", "59000.0"), D("0.010"), D("59000.0"))
    assert unchanged.value.code == -5027


def test_a_gtd_order_expires_when_its_date_passes():
    v = Venue()
    order = v.place("BUY", "0.010", "59000.0", time_in_force="GTD", good_till_date=NOW + 5000)

    v.move("60000.0")  # NOW + 1000
    assert order.status == "NEW"
    v.now = NOW + 5000
    v.engine.match_resting(v.now)
    assert order.status == "EXPIRED"


def test_leverage_changes_the_margin_and_is_reported():
    v = Venue()
    v.place("BUY", "0.010")
    v.engine.set_leverage(10)

    assert v.engine.figures().position_initial_margin == D("60.0001")  # 600.001 / 10
    assert v.events[-1] == LeverageUpdate("BTCUSDT", 10, NOW)
    with pytest.raises(ApiError) as too_high:
        v.engine.set_leverage(126)
    assert too_high.value.code == -4028


def test_the_margin_type_cannot_change_with_a_position():
    v = Venue()
    v.place("BUY", "0.010")
    with pytest.raises(ApiError) as refused:
        v.engine.set_margin_type("ISOLATED")
    assert refused.value.code == -4048
    v.place("SELL", "0.010")
    v.engine.set_margin_type("ISOLATED")
    assert v.engine.margin_type == "ISOLATED"


def test_a_deposit_moves_the_wallet_and_is_reported():
    v = Venue()
    v.engine.deposit(D("250.5"))
    v.engine.deposit(D("-50"))

    assert v.engine.wallet == D("10200.5")
    reasons = [(e.reason, e.balance_change) for e in v.events if isinstance(e, AccountUpdate)]
    assert reasons == [("DEPOSIT", D("250.5")), ("WITHDRAW", D("-50"))]


def test_fills_and_tape_share_one_trade_id_sequence():
    v = Venue()
    v.place("BUY", "0.010")

    fill_id = v.engine.fills[0].trade_id
    assert v.market.trades[-1].trade_id == fill_id + 1, "the taker print follows its fill"


def test_another_symbol_trades_at_its_own_precision_and_floor():
    v = Venue(SYMBOLS["SOLUSDT"], start="150")
    spec = v.engine.spec
    assert (v.market.bid, v.market.ask) == (D("150.0000"), D("150.0100"))
    assert (spec.px(D("150")), spec.qty(D("1.5"))) == ("150.0000", "1.50")

    with pytest.raises(ApiError) as small:
        v.place("BUY", "0.03")  # 0.03 * 150.01 = 4.5003 < 5
    assert small.value.code == -4164
    v.place("BUY", "1.00")
    # 1.00 * 150.01 = 150.01; taker fee 0.060004
    assert v.fills() == [("BUY", D("1.00"), D("150.0100"), D("0.06000400"), False)]
    with pytest.raises(ApiError):
        v.engine.set_leverage(101)  # SOLUSDT's first bracket allows 100x


# Conditional orders: the Algo Service


def kinds(events: list[UserEvent]) -> list[str]:
    """Each event as ``ALGO <status>``, ``ORDER <execution type>``, ``LITE`` or ``ACCOUNT``."""
    names = []
    for e in events:
        match e:
            case AlgoUpdate():
                names.append(f"ALGO {e.algo.status}")
            case OrderUpdate():
                names.append(f"ORDER {e.exec_type}")
            case TradeLite():
                names.append("LITE")
            case AccountUpdate():
                names.append("ACCOUNT")
    return names


@pytest.mark.parametrize(
    ("fill_first", "reported"),
    [
        (1.0, ["LITE", "ACCOUNT", "ORDER TRADE", "ALGO FINISHED"]),
        (0.0, ["ALGO FINISHED", "LITE", "ACCOUNT", "ORDER TRADE"]),
    ],
    ids=["fill-before-finished", "finished-before-fill"],
)
def test_a_protective_stop_waits_then_triggers_at_its_price_and_closes_the_long(
    fill_first, reported
):
    v = Venue(fill_first=fill_first)
    v.place("BUY", "0.010")  # long 0.010 at 60000.1, wallet 9999.7599996
    stop = v.conditional("SELL", "STOP_MARKET", "0.010", "59000.0", reduce_only=True)
    assert stop.status == "NEW" and v.engine.open_orders() == []
    placed = len(v.events)

    v.move("59000.1")  # the last price is a tick above the trigger: it waits
    assert (stop.status, len(v.events)) == ("NEW", placed)
    v.move("59000.0")  # reached: a market sell, at the bid

    (child,) = [o for o in v.engine.orders.values() if o.side == "SELL"]
    assert (child.type, child.client_order_id, child.reduce_only) == (
        "MARKET",
        stop.client_algo_id,
        True,
    )
    assert (stop.status, stop.actual_order_id) == ("FINISHED", child.order_id)
    assert kinds(v.events[placed:]) == [
        "ALGO TRIGGERING",
        "ALGO TRIGGERED",
        "ORDER NEW",
        *reported,
    ]
    triggered = v.events[placed + 1]
    assert isinstance(triggered, AlgoUpdate) and triggered.algo.actual_order_id == child.order_id
    finished = [e for e in v.events if isinstance(e, AlgoUpdate)][-1]
    assert (finished.algo.executed_qty, finished.algo.avg_price) == (D("0.010"), D("59000.0"))
    # realized 0.010 * (59000.0 - 60000.1) = -10.001; fee 0.010 * 59000.0 * 0.0004 = 0.236
    assert v.fills()[-1] == ("SELL", D("0.010"), D("59000.0"), D("0.23600000"), False)
    assert v.engine.position.amount == 0
    assert v.engine.wallet == D("9999.7599996") - D("10.001") - D("0.236") == D("9989.5229996")


@pytest.mark.parametrize(
    ("order_type", "side", "trigger", "short_of_it"),
    [
        ("STOP_MARKET", "SELL", "59000.0", "59000.1"),
        ("STOP_MARKET", "BUY", "61000.0", "60999.9"),
        ("TAKE_PROFIT_MARKET", "SELL", "61000.0", "60999.9"),
        ("TAKE_PROFIT_MARKET", "BUY", "59000.0", "59000.1"),
    ],
)
def test_stops_trigger_on_the_way_against_take_profits_on_the_way_for(
    order_type, side, trigger, short_of_it
):
    v = Venue()
    algo = v.conditional(side, order_type, "0.010", trigger)

    v.move(short_of_it)
    assert algo.status == "NEW"
    v.move(trigger)
    assert algo.status == "FINISHED"
    # a buy takes the ask (a tick above the bid), a sell the bid
    price = D(trigger) + (D("0.1") if side == "BUY" else 0)
    assert v.fills() == [
        (side, D("0.010"), price, round(D("0.010") * price * D("0.0004"), 8), False)
    ]


def test_a_stop_limit_rests_its_limit_order_until_the_market_reaches_it():
    v = Venue()
    v.place("BUY", "0.010")
    stop = v.conditional("SELL", "STOP", "0.010", "59000.0", price=D("59010.0"), reduce_only=True)

    v.move("59000.0")  # triggered: a limit sell at 59010.0, above the bid - it rests
    (child,) = v.engine.open_orders()
    assert (child.type, child.price, child.client_order_id) == (
        "LIMIT",
        D("59010.0"),
        stop.client_algo_id,
    )
    assert stop.status == "TRIGGERED"
    v.move("59010.0")  # the bid reaches it: filled as maker, then FINISHED

    # 0.010 * 59010.0 * 0.00016 = 0.094416
    assert v.fills()[-1] == ("SELL", D("0.010"), D("59010.0"), D("0.09441600"), True)
    assert stop.status == "FINISHED"
    assert kinds(v.events)[-4:] == ["LITE", "ACCOUNT", "ORDER TRADE", "ALGO FINISHED"]


def test_a_triggered_order_cancelled_at_the_order_endpoint_finishes_its_algo_order_unfilled():
    v = Venue()
    stop = v.conditional("SELL", "STOP", "0.010", "59000.0", price=D("59010.0"))
    v.move("59000.0")
    (child,) = v.engine.open_orders()

    v.engine.cancel(child)

    assert stop.status == "FINISHED"
    finished = v.events[-1]
    assert isinstance(finished, AlgoUpdate) and finished.algo.executed_qty == 0


def test_a_reduce_only_stop_that_triggers_with_nothing_to_reduce_is_rejected():
    v = Venue()
    stop = v.conditional("SELL", "STOP_MARKET", "0.010", "59000.0", reduce_only=True)

    v.move("59000.0")

    assert (stop.status, stop.reason, stop.actual_order_id) == (
        "REJECTED",
        "ReduceOnly Order is rejected.",
        None,
    )
    assert v.engine.orders == {} and v.fills() == []
    assert kinds(v.events) == ["ALGO NEW", "ALGO TRIGGERING", "ALGO REJECTED"]


def test_close_position_sells_the_whole_position_it_finds_at_the_trigger():
    v = Venue()
    v.place("BUY", "0.010")
    stop = v.conditional("SELL", "STOP_MARKET", "0", "59000.0", close_position=True)
    v.place("BUY", "0.005")  # the position grew after the stop was placed

    v.move("59000.0")

    assert stop.status == "FINISHED"
    assert v.fills()[-1][:3] == ("SELL", D("0.015"), D("59000.0"))
    assert v.engine.position.amount == 0


def test_a_trailing_stop_follows_the_high_and_triggers_its_callback_below_it():
    v = Venue()
    v.place("BUY", "0.010")  # prints at the ask: the last price is 60000.1
    trail = v.conditional("SELL", "TRAILING_STOP_MARKET", "0.010", callback_rate=D("1"))
    assert (trail.activated, trail.extreme) == (True, D("60000.1"))

    v.move("61000.0")  # a new high; 1 % below it: 61000.0 * 0.99 = 60390.0
    v.move("60400.0")
    assert (trail.status, trail.extreme) == ("NEW", D("61000.0"))
    v.move("60390.0")

    assert (trail.status, trail.trigger_price) == ("FINISHED", D("60390.0"))
    assert v.fills()[-1][:3] == ("SELL", D("0.010"), D("60390.0"))


def test_a_trailing_stop_with_an_activation_price_waits_for_it():
    v = Venue()
    trail = v.conditional(
        "BUY", "TRAILING_STOP_MARKET", "0.010", callback_rate=D("0.5"), activate_price=D("59000.0")
    )
    v.move("59500.0")
    assert not trail.activated
    v.move("58000.0")  # activated below 59000.0, low 58000.0; 0.5 % above: 58290.0
    v.move("58289.9")
    assert (trail.activated, trail.extreme, trail.status) == (True, D("58000.0"), "NEW")
    v.move("58290.0")
    assert trail.status == "FINISHED"


def test_a_conditional_order_that_would_trigger_at_once_is_refused():
    v = Venue()
    with pytest.raises(ApiError) as refused:
        v.conditional("SELL", "STOP_MARKET", "0.010", "60000.0")  # last is 60000.0
    assert (refused.value.code, refused.value.msg) == (-2021, "Order would immediately trigger.")
    assert v.algos.orders == {} and v.events == []


def test_at_most_200_conditional_orders_wait_and_their_client_ids_are_unique():
    v = Venue()
    for k in range(200):
        v.conditional("SELL", "STOP_MARKET", "0.010", "50000.0", client_algo_id=f"s-{k}")
    with pytest.raises(ApiError) as full:
        v.conditional("SELL", "STOP_MARKET", "0.010", "50000.0")
    assert full.value.code == -4045
    v.algos.cancel(v.algos.orders[min(v.algos.orders)])
    with pytest.raises(ApiError) as duplicate:
        v.conditional("SELL", "STOP_MARKET", "0.010", "50000.0", client_algo_id="s-1")
    assert duplicate.value.code == -4116
    v.conditional("SELL", "STOP_MARKET", "0.010", "50000.0", client_algo_id="s-0")  # freed


def test_regular_and_conditional_orders_have_separate_cancel_alls():
    v = Venue()
    limit = v.place("BUY", "0.010", "59000.0")
    stop = v.conditional("SELL", "STOP_MARKET", "0.010", "58000.0")

    v.engine.cancel_all()
    assert (limit.status, stop.status) == ("CANCELED", "NEW")
    limit = v.place("BUY", "0.010", "59000.0")
    assert v.algos.cancel_all() == 1
    assert (limit.status, stop.status) == ("NEW", "CANCELED")
    assert kinds(v.events)[-1] == "ALGO CANCELED"


def test_a_gtd_conditional_order_expires_when_its_date_passes():
    v = Venue()
    algo = v.conditional(
        "SELL", "STOP_MARKET", "0.010", "58000.0", time_in_force="GTD", good_till_date=NOW + 700_000
    )
    v.move("59000.0")
    assert algo.status == "NEW"
    v.now += 700_000
    v.move("59000.0")
    assert algo.status == "EXPIRED"
    assert kinds(v.events)[-1] == "ALGO EXPIRED"
