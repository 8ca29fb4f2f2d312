"""The stop criterion of the readiness report: from checkpoints, whether each open
position had a reduce-only stop for its quantity, and the longest span it had none."""

from __future__ import annotations

from decimal import Decimal

from protocol import (
    OrderView,
    PositionView,
    ReadinessSettings,
    Snapshot,
    TradingState,
)
from storage.readiness.stops import coverage
from storage.readiness.verdict import Status, _stops

S = 1_000_000_000
SID = "EmaCross-000"
ETH = "ETHUSDT-PERP.BINANCE"


def long(qty: str, strategy: str = SID) -> PositionView:
    return PositionView(
        position_id="P-1",
        instrument_id=ETH,
        side="LONG",
        quantity=Decimal(qty),
        avg_px_open=Decimal(2000),
        realized_pnl=Decimal(0),
        unrealized_pnl=Decimal(0),
        strategy_id=strategy,
    )


def stop(qty: str, side: str = "SELL", reduce_only: bool = True, filled: str = "0") -> OrderView:
    return OrderView(
        client_order_id="O-stop",
        instrument_id=ETH,
        side=side,
        order_type="STOP_MARKET",
        quantity=Decimal(qty),
        filled_qty=Decimal(filled),
        price=None,
        status="ACCEPTED",
        strategy_id=SID,
        trigger_price=Decimal(1900),
        reduce_only=reduce_only,
    )


def snap(at_s: int, positions=(), orders=()) -> Snapshot:
    zero = Decimal(0)
    return Snapshot(
        taken_at_ns=at_s * S,
        trader_id="T-1",
        trading_state=TradingState.ACTIVE,
        currency="USDT",
        balance=Decimal(10_000),
        equity=Decimal(10_000),
        realized_pnl=zero,
        unrealized_pnl=zero,
        replay_cursor=0,
        open_orders=tuple(orders),
        positions=tuple(positions),
    )


def test_each_checkpoint_with_a_position_is_judged_and_the_longest_bare_span_measured():
    snaps = [
        snap(0),  # flat
        snap(10, [long("1")]),  # the entry filled, its stop not yet resting: bare
        snap(20, [long("1")], [stop("1")]),  # covered: bare for 10 s
        snap(30, [long("2")], [stop("1")]),  # added to, the stop still for 1: bare
        snap(40, [long("2")], [stop("2", side="BUY")]),  # a stop on the wrong side: bare
        snap(50, [long("2")], [stop("2", reduce_only=False)]),  # not reduce-only: bare
        snap(60, [long("2")], [stop("3", filled="1")]),  # 2 left unfilled: covered
        snap(70),  # flat again
        snap(80, [long("1", strategy="Other-001")]),  # another strategy's position
    ]
    cover = coverage(snaps, SID, alone=False)
    assert cover.placed_stops
    assert (cover.open_checkpoints, cover.protected) == (6, 2)
    assert cover.longest_unprotected_s == 30.0  # bare at 30 s, covered again at 60 s
    # The position still bare at the last checkpoint counts up to it.
    tail = coverage([*snaps[:3], snap(90, [long("1")]), snap(150, [long("1")])], SID, False)
    assert tail.longest_unprotected_s == 60.0


def test_a_single_strategy_services_rows_name_no_strategy():
    position = long("1", strategy="")
    order = OrderView(
        **{**{f: getattr(stop("1"), f) for f in OrderView.__slots__}, "strategy_id": ""}
    )
    cover = coverage([snap(0, [position], [order])], SID, alone=True)
    assert (cover.open_checkpoints, cover.protected) == (1, 1)
    assert coverage([snap(0, [position], [order])], SID, alone=False).open_checkpoints == 0


def test_the_criterion_applies_only_to_a_strategy_that_placed_stops():
    settings = ReadinessSettings(max_unprotected_s=15)

    class Paper:  # the one field _stops reads
        def __init__(self, snaps):
            self.stops = coverage(snaps, SID, alone=True)

    none = _stops(Paper([snap(0, [long("1")]), snap(99, [long("1")])]), settings)
    assert (none.status, none.detail) == (Status.NA, "the strategy placed no stop")
    ok = _stops(Paper([snap(0, [long("1")]), snap(10, [long("1")], [stop("1")])]), settings)
    assert (ok.status, ok.figure) == (Status.PASS, 0.5)
    bare = [snap(0, [long("1")], [stop("1")]), snap(10, [long("1")]), snap(30, [long("1")])]
    failed = _stops(Paper(bare), settings)
    assert failed.status is Status.FAIL
    assert "longest unprotected 20.0 s, longer by 5.0 s" in failed.detail
