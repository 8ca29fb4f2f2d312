"""Issue 24: the bundled strategy's protective stop on binance-testnet, against the loopback
emulator's Algo Service (where Binance takes conditional orders since 2025-12-09).

Each test lets the strategy open a position and rest its stop at the venue, then pauses the
emulator's market (no bar, so no new cross moves the stop meanwhile; the stale-data breaker
is set far off) and steers the price itself."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.binance_emulator import AlgoSnapshot, BinanceEmulator
from tests.service import ServiceProcess, cli, events, last_checkpoint_of, wait_for
from tests.test_binance_modes import KEY, SECRET, env, status_position, venue_position, write

pytestmark = pytest.mark.node

TICK = Decimal("0.1")
# The market pauses while a test steers it: far from a stall the breaker should halt on.
PATIENT = "\n[breakers]\ndata_stale_alert_bars = 5000\ndata_stale_halt_bars = 10000\n"


def start_emulator(fill_before_finished: float = 0.5) -> BinanceEmulator:
    emu = BinanceEmulator(
        KEY,
        SECRET,
        kline_interval_s=0.2,
        volatility=Decimal("0.0008"),
        fill_before_finished=fill_before_finished,
    )
    emu.start()
    return emu


@pytest.fixture
def emulator() -> Iterator[BinanceEmulator]:
    emu = start_emulator()
    yield emu
    emu.stop()


def the_stop(emu: BinanceEmulator) -> AlgoSnapshot | None:
    """The one conditional order waiting at the venue, when it covers the whole position:
    a reduce-only STOP_MARKET on the other side, for the position's size."""
    waiting = [a for a in emu.algo_orders() if a.status == "NEW"]
    side, size = venue_position(emu)
    if len(waiting) != 1 or side == "FLAT":
        return None
    (stop,) = waiting
    closing = "SELL" if side == "LONG" else "BUY"
    if (stop.type, stop.side, stop.quantity, stop.reduce_only) != (
        "STOP_MARKET",
        closing,
        size,
        True,
    ):
        return None
    return stop


def never_doubled(emu: BinanceEmulator) -> None:
    """No stop was placed twice: two position events of one fill (a turn closes the
    position and opens it again) once put two identical stops at the venue."""
    placed = [(a.side, a.quantity, a.trigger_price) for a in emu.algo_orders()]
    assert all(a != b for a, b in itertools.pairwise(placed)), placed


def protected_and_paused(emu: BinanceEmulator, service: ServiceProcess) -> AlgoSnapshot:
    """Wait for a position with its one stop at the venue after a turn (the stop of a
    position that was turned, not opened from flat: the turn's fill moves the position
    twice), pause the market, and return the stop once the service's status shows the
    same position (nothing left in flight)."""

    def turned() -> AlgoSnapshot | None:
        stop = the_stop(emu)
        return stop if stop is not None and len(emu.algo_orders()) >= 2 else None

    wait_for("a turned position and its one stop at the venue", turned, 60)
    emu.pause_market(True)
    service.wait_status(
        "the service's position equal to the venue's",
        lambda r: (
            the_stop(emu) is not None
            and status_position(r) == venue_position(emu)
            and r["open_orders"] == 1
        ),
        30,
    )
    stop = the_stop(emu)
    assert stop is not None
    return stop


def steer_through(emu: BinanceEmulator, stop: AlgoSnapshot) -> None:
    """Walk the price up to the stop's trigger: a tick short of it nothing happens; at it
    (the last trade prints at the bid or a tick above, at the ask) the stop triggers."""
    trigger = stop.trigger_price
    if stop.side == "SELL":  # triggers when the last price falls to the trigger
        emu.set_price(trigger + TICK)  # last: trigger + 1 or 2 ticks
        assert emu.open_algo_orders() == [stop]
        emu.set_price(trigger - TICK)  # last: trigger - 1 tick or the trigger
    else:  # a buy stop triggers when the last price rises to the trigger
        emu.set_price(trigger - 2 * TICK)  # last: trigger - 2 or 1 ticks
        assert emu.open_algo_orders() == [stop]
        emu.set_price(trigger)  # last: the trigger or a tick above


def stop_config(tmp_path: Path, emu: BinanceEmulator, trader: str) -> tuple[Path, Path]:
    return write(tmp_path, emu, trader, "binance-testnet", PATIENT)


@pytest.mark.parametrize(
    "fill_before_finished", [1.0, 0.0], ids=["fill-then-finished", "finished-then-fill"]
)
def test_the_stop_rests_as_an_algo_order_triggers_at_its_price_and_closes_the_position(
    tmp_path, fill_before_finished
):
    """The stop goes to the Algo Service and is accepted there; the price reaches it, its
    order fills at the trigger and the position is closed, at the venue and in the service,
    whichever the venue reports first: the fill or the algo order's FINISHED.

    With FINISHED first, NautilusTrader 1.231 closes its order with a fill of its own (trade
    id ``ALGO-<algoId>``, at the average price, no commission) and refuses the venue's as an
    overfill; with the fill first it does the same when FINISHED is handled before the fill
    was applied (both come in one burst here). The service records one fill either way, and
    its balance is the venue's."""
    emu = start_emulator(fill_before_finished)
    try:
        config, db = stop_config(tmp_path, emu, "TNSTOP-001")
        service = ServiceProcess(config, db, tmp_path, env=env())
        try:
            stop = protected_and_paused(emu, service)
            snapshot = last_checkpoint_of(db, "TNSTOP-001")
            (order,) = snapshot["open_orders"]
            assert (order["client_order_id"], order["order_type"], order["status"]) == (
                stop.client_algo_id,
                "STOP_MARKET",
                "ACCEPTED",
            )

            served = [(r.method, r.path, r.status) for r in emu.requests()]
            assert ("POST", "/fapi/v1/algoOrder", 200) in served
            assert not [r for r in emu.requests() if r.code == -4120]

            steer_through(emu, stop)

            (done,) = [a for a in emu.algo_orders() if a.algo_id == stop.algo_id]
            assert (done.status, done.executed_qty) == ("FINISHED", stop.quantity)
            (fill,) = [f for f in emu.fills() if f.order_id == done.actual_order_id]
            assert (fill.client_order_id, fill.qty) == (stop.client_algo_id, stop.quantity)
            assert abs(fill.price - stop.trigger_price) <= TICK, "filled at its trigger"
            assert venue_position(emu) == ("FLAT", Decimal(0))

            flat = service.wait_status(
                "the service flat, no order open",
                lambda r: status_position(r)[0] == "FLAT" and r["open_orders"] == 0,
                30,
            )
            fills = [
                p for _, p in events(db, "fill") if p["client_order_id"] == fill.client_order_id
            ]
            assert [(Decimal(str(p["quantity"])), Decimal(str(p["price"]))) for p in fills] == [
                (fill.qty, fill.price)
            ]
            assert Decimal(flat["balance"]) == emu.balance().wallet_balance
            assert flat["rejects"] == 0
            never_doubled(emu)
            assert emu.unknown_requests() == []
            emu.pause_market(False)
            assert service.terminate() == 0
        finally:
            service.ensure_dead()
    finally:
        emu.stop()


def test_after_a_sigkill_while_the_stop_rests_the_one_stop_is_found_again_and_protects(
    tmp_path, emulator
):
    """SIGKILL while the stop rests: after the restart reconciliation brings the position
    and the stop back as the strategy's own (``openAlgoOrders``), the strategy places no
    second stop, and the one stop still closes the position when the price reaches it."""
    config, db = stop_config(tmp_path, emulator, "TNSTOP-002")
    first = ServiceProcess(config, db, tmp_path, env=env())
    try:
        stop = protected_and_paused(emulator, first)
        first.kill()
    finally:
        first.ensure_dead()
    position = venue_position(emulator)  # the market is paused: nothing moves meanwhile
    placed = len(emulator.algo_orders())

    second = ServiceProcess(config, db, tmp_path, env=env())
    try:
        restored = wait_for(
            "the restore", lambda: [p for r, p in events(db, "restored") if r == 2], 90
        )
        snap = restored[0]["snapshot"]
        assert [(p["side"], Decimal(p["quantity"])) for p in snap["positions"]] == [position]
        assert [p["strategy_id"] for p in snap["positions"]] == ["EmaCross-000"]
        assert [
            (o["client_order_id"], o["order_type"], o["status"], o["strategy_id"])
            for o in snap["open_orders"]
        ] == [(stop.client_algo_id, "STOP_MARKET", "ACCEPTED", "EmaCross-000")]
        report = second.wait_status(
            "running, its position equal to the venue's",
            lambda r: r["state"] == "running" and status_position(r) == position,
            30,
        )
        second.wait_status(
            "two checkpoints later", lambda r: r["checkpoints"] >= report["checkpoints"] + 2, 30
        )
        # Exactly one stop at the venue: the one reconciliation found, not a second one.
        assert len(emulator.algo_orders()) == placed
        assert emulator.open_algo_orders() == [stop]

        steer_through(emulator, stop)  # and it still protects the restored position
        assert venue_position(emulator) == ("FLAT", Decimal(0))
        flat = second.wait_status(
            "the service flat, no order open",
            lambda r: status_position(r)[0] == "FLAT" and r["open_orders"] == 0,
            30,
        )
        (row,) = flat["strategies"]
        assert row["strategy_id"] == "EmaCross-000"
        assert Decimal(flat["balance"]) == emulator.balance().wallet_balance
        never_doubled(emulator)
        emulator.pause_market(False)
        assert second.terminate() == 0
    finally:
        second.ensure_dead()


def test_a_reduce_halt_keeps_the_stop_at_the_venue_and_a_flatten_cancels_it(tmp_path, emulator):
    """``reduce`` keeps the reduce-only stop resting at the venue; ``flatten`` cancels it
    there (at the Algo Service) and closes the position."""
    config, db = stop_config(tmp_path, emulator, "TNSTOP-003")
    service = ServiceProcess(config, db, tmp_path, env=env())
    try:
        stop = protected_and_paused(emulator, service)

        done = cli(
            "halt", "--mode", "reduce", "--reason", "test", "--config", str(config),
            cwd=tmp_path, env=env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 reduce-only order(s) kept" in done.stdout, done.stdout
        service.wait_status("reducing", lambda r: r["trading_state"] == "REDUCING", 30)
        assert emulator.open_algo_orders() == [stop], "the reduce halt kept the stop"

        done = cli(
            "halt", "--mode", "flatten", "--reason", "test", "--config", str(config),
            cwd=tmp_path, env=env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        assert "1 open order(s) cancelled" in done.stdout, done.stdout
        assert "1 position(s) closed" in done.stdout, done.stdout
        wait_for(
            "the venue flat, the stop cancelled",
            lambda: venue_position(emulator)[0] == "FLAT" and not emulator.open_algo_orders(),
            30,
        )
        (cancelled,) = [a for a in emulator.algo_orders() if a.algo_id == stop.algo_id]
        assert cancelled.status == "CANCELED"
        service.wait_status(
            "halted, flat, nothing open",
            lambda r: (
                r["trading_state"] == "HALTED" and not r["positions"] and not r["open_orders"]
            ),
            30,
        )
        emulator.pause_market(False)
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
