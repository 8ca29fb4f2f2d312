"""Issue 25: a binance-sandbox session exact across its own downtime.

Two sessions trade the same emulated market side by side: A without a break, B SIGKILLed
mid-position - a resting ladder limit and a protective stop - and down for a minute while
the market trades through both, then restarted. B's restart plays the minute it missed
from the venue's history before it goes live, so its orders, funding and balance come out
as A's. What the live feed itself makes different is bounded, not hidden:

- a live order fills at the touch when it reaches the venue, after the node's own
  processing time; an order B decides in the gap fills at the touch of the moment it was
  decided (as a backtest fills it), the last trade's price (at the bid or the ask): the
  same side and quantity, the average price within ``SLACK`` of A's - the market's moves
  in a few of its steps (about a tick each here) and the one-tick spread;
- A charges funding at the last mark-price update before a settlement (or the first
  after it), B's catch-up at the venue's recorded mark of the settlement, both on the
  position held at its time: within 1 % of each other;
- the balance differs by what those make: at most a tick per unit traded, plus the fees
  on it, plus the funding difference.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.binance_emulator import BinanceEmulator
from tests.service import (
    ServiceProcess,
    cli,
    events,
    last_checkpoint_of,
    query,
    wait_for,
)
from tests.test_binance_modes import KEY, SECRET, env

pytestmark = pytest.mark.node

TICK = Decimal("0.1")
SLACK = 10 * TICK
GAP_S = 60.0


def start_emulator() -> BinanceEmulator:
    emu = BinanceEmulator(
        KEY,
        SECRET,
        kline_interval_s=1.0,  # a "1m" bar a second: the minute's gap is 60 bars
        tick_interval_s=0.1,
        volatility=Decimal("0.000002"),  # a tick or so a step: only the test's jumps cross
        funding_period_s=15,
        funding_rate=Decimal("0.0003"),
        tape=50_000,
        min_size_steps=20,  # no order here outsizes the book: no partial fill by chance
    )
    emu.start()
    return emu


@pytest.fixture
def emulator() -> Iterator[BinanceEmulator]:
    emu = start_emulator()
    yield emu
    emu.stop()


def config(tmp_path: Path, emu: BinanceEmulator, trader: str, extra: str = "") -> tuple[Path, Path]:
    home = tmp_path / trader
    home.mkdir()
    db, path = home / "paper.db", home / "paper.toml"
    path.write_text(
        f"""
[service]
trader_id = "{trader}"
mode = "binance-sandbox"
db_path = "{db}"
checkpoint_interval_s = 1
heartbeat_interval_s = 0.5
node_log_level = "ERROR"
[binance]
base_url_http = "{emu.http_url}"
base_url_ws = "{emu.ws_url}"
base_url_ws_stream = "{emu.ws_stream_url}"
[account]
starting_balance = "10000"
[strategy]
fast_period = 3
slow_period = 6
ladder_orders = 1
ladder_step_pct = 0.002
protective_stop = true
[sizing]
stop_loss_pct = 0.004
[risk]
risk_per_trade = 0.0001
[simulation]
prob_fill_on_limit = 1
prob_slippage = 0
{extra}
[breakers]
data_stale_alert_bars = 5000
data_stale_halt_bars = 10000
"""
    )
    return path, db


def protected(db: Path, trader: str) -> dict[str, object] | None:
    """The last checkpoint, when it holds a position with its ladder limit and its stop."""
    try:
        snap = last_checkpoint_of(db, trader)
    except (IndexError, OSError):
        return None
    working = [o for o in snap["open_orders"] if o["status"] == "ACCEPTED"]  # type: ignore[union-attr]
    types = sorted(str(o["order_type"]) for o in working)
    return snap if snap["positions"] and types == ["LIMIT", "STOP_MARKET"] else None


def resting(snap: dict[str, object], kind: str) -> dict[str, object]:
    (order,) = [o for o in snap["open_orders"] if o["order_type"] == kind]  # type: ignore[union-attr]
    return order


def orders(db: Path) -> list[tuple[str, Decimal, Decimal]]:
    """Each order's fills as one: (side, quantity, average price), in fill order."""
    grouped: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
    for _, fill in events(db, "fill"):
        grouped.setdefault(str(fill["client_order_id"]), []).append(
            (str(fill["side"]), Decimal(str(fill["quantity"])), Decimal(str(fill["price"])))
        )
    out = []
    for parts in grouped.values():
        qty = sum((q for _, q, _ in parts), Decimal(0))
        avg = sum((q * p for _, q, p in parts), Decimal(0)) / qty
        out.append((parts[0][0], qty, avg))
    return out


def recorded_trade_ids(home: Path, trader: str) -> set[int]:
    """The trade ids a session's recording holds (every node life's stream)."""
    from nautilus_trader.model.data import TradeTick
    from nautilus_trader.persistence.catalog.parquet import ParquetDataCatalog

    catalog = ParquetDataCatalog(str(home / "recordings" / trader))
    return {
        int(item.trade_id.value)
        for run in catalog.list_live_runs()
        for item in catalog.read_live_run(run)
        if isinstance(item, TradeTick)
    }


def funding(db: Path) -> list[Decimal]:
    return [Decimal(str(p["amount"])) for _, p in events(db, "funding")]


def funding_told(db: Path) -> list[tuple[object, ...]]:
    """Each payment as a failure message shows it: when, on what, at what mark."""
    return [
        (p["settled_at_ns"], p["quantity"], p["mark"], p["amount"], p["bar"])
        for _, p in events(db, "funding")
    ]


def position_in_feed(db: Path, trader: str) -> tuple[int, int]:
    """The last trade id and the bars a session has taken, as its last checkpoint says."""
    snap = last_checkpoint_of(db, trader)
    marks = snap.get("data_marks") or []
    trade = max((int(m["trade_id"]) for m in marks), default=0)  # type: ignore[union-attr]
    return trade, int(str(snap["replay_cursor"]))


def in_step(a_db: Path, b_db: Path) -> bool | None:
    """A and B have taken the same trades and bars (the market is paused)."""
    a, b = position_in_feed(a_db, "CU-A"), position_in_feed(b_db, "CU-B")
    return (a == b and a[0] > 0) or None


def steer_through(emu: BinanceEmulator, a_db: Path, snap: dict[str, object]) -> None:
    """Trade through the ladder limit, then - once A has moved its stop to the bigger
    position - through the stop, so both fill while B is down."""
    limit = resting(snap, "LIMIT")
    price = Decimal(str(limit["price"]))
    buy = limit["side"] == "BUY"
    emu.set_price(price - 2 * TICK if buy else price + TICK)

    def moved_stop() -> dict[str, object] | None:
        now = last_checkpoint_of(a_db, "CU-A")
        working = now["open_orders"]
        stops = [o for o in working if o["order_type"] == "STOP_MARKET"]  # type: ignore[union-attr]
        limits = [o for o in working if o["order_type"] == "LIMIT"]  # type: ignore[union-attr]
        accepted = len(stops) == 1 and stops[0]["status"] == "ACCEPTED"
        return stops[0] if accepted and not limits else None

    try:
        stop = wait_for("A's ladder filled and its stop moved", moved_stop, 30)
    except TimeoutError:
        now = last_checkpoint_of(a_db, "CU-A")
        raise AssertionError(
            f"{emu.book} {limit} -> {now['open_orders']} {now['positions']}"
        ) from None
    trigger = Decimal(str(stop["trigger_price"]))
    beyond = (trigger * Decimal("0.005")).quantize(TICK)  # past any stop of the position
    emu.set_price(trigger - beyond if buy else trigger + beyond)

    def flat() -> bool:
        return not last_checkpoint_of(a_db, "CU-A")["positions"]

    wait_for("A's stop filled", flat, 30)


@pytest.mark.timeout(400)
def test_a_restarted_sandbox_session_plays_its_downtime_and_ends_as_the_uninterrupted_one(
    tmp_path, emulator
):
    a_config, a_db = config(tmp_path, emulator, "CU-A")
    b_config, b_db = config(tmp_path, emulator, "CU-B")
    emulator.pause_market(True)  # both start, warm up and go live on the same market
    a = ServiceProcess(a_config, a_db, a_config.parent, env=env())
    b = ServiceProcess(b_config, b_db, b_config.parent, env=env())
    try:
        for service in (a, b):
            service.wait_status("live", lambda r: r["state"] == "running", 60)
        emulator.pause_market(False)
        snap = wait_for(
            "B in a position with its ladder and stop", lambda: protected(b_db, "CU-B"), 120
        )
        emulator.pause_market(True)
        wait_for("A and B at the same trade and bar", lambda: in_step(a_db, b_db), 20)
        snap = protected(b_db, "CU-B")
        assert snap is not None, "B's position and orders moved before the pause"
        b.kill()
        killed = emulator.price
        steer_through(emulator, a_db, snap)
        emulator.pause_market(False)
        time.sleep(GAP_S - 10)  # the market trades on while B is down
        assert emulator.price != killed
        b = ServiceProcess(b_config, b_db, b_config.parent, env=env())
        caught = wait_for("B's catch-up", lambda: events(b_db, "catch_up") or None, 90)
        ((_, played),) = caught
        assert played["trades"] > 100 and played["bars"] >= 50, played
        assert played["fills"] >= 2, "the ladder and the stop filled in the gap"
        assert played["settlements"] >= 3 and played["skipped_ns"] == 0, played
        time.sleep(10)
        emulator.pause_market(True)
        wait_for("A and B at the same trade and bar", lambda: in_step(a_db, b_db), 30)
        assert a.terminate() == 0
        assert b.terminate() == 0
    finally:
        a.ensure_dead()
        b.ensure_dead()

    a_orders, b_orders = orders(a_db), orders(b_db)
    assert len(a_orders) == len(b_orders) >= 4, (a_orders, b_orders)
    for (a_side, a_qty, a_px), (b_side, b_qty, b_px) in zip(a_orders, b_orders, strict=True):
        assert (a_side, a_qty) == (b_side, b_qty), (a_orders, b_orders)
        assert abs(a_px - b_px) <= SLACK, (a_orders, b_orders)
    a_funding, b_funding = funding(a_db), funding(b_db)
    told = (funding_told(a_db), funding_told(b_db), events(a_db, "fill"), events(b_db, "fill"))
    assert len(a_funding) == len(b_funding) >= 3, told
    for x, y in zip(a_funding, b_funding, strict=True):
        assert abs(x - y) <= abs(x) / 100, told
    # The seam: B's recording holds every trade A's does - the gap's from the history,
    # those after it from the live feed - so none was missed (the parity report of B
    # replays what B played).
    missing = recorded_trade_ids(a_config.parent, "CU-A") - recorded_trade_ids(
        b_config.parent, "CU-B"
    )
    assert not missing, sorted(missing)[:20]
    a_end = last_checkpoint_of(a_db, "CU-A")
    b_end = last_checkpoint_of(b_db, "CU-B")
    traded = sum((q for _, q, _ in a_orders), Decimal(0))
    bound = traded * SLACK * Decimal("1.001") + sum((abs(x) for x in a_funding), Decimal(0)) / 100
    assert abs(Decimal(str(a_end["balance"])) - Decimal(str(b_end["balance"]))) <= bound


def test_a_gap_the_venue_cannot_serve_is_recorded_alerted_and_shown_and_trading_goes_on(
    tmp_path, emulator
):
    """The history endpoints fail (HTTP 503, every retry): the restart plays nothing of
    the gap, records it as a gap with its length and the venue's error, alerts it, shows
    it in ``status`` and in ``report parity``, and trades on from the live feed."""
    path, db = config(tmp_path, emulator, "CU-GAP")
    service = ServiceProcess(path, db, path.parent, env=env())
    try:
        before = service.wait_status("fills", lambda r: r["fills"] >= 2, 90)
        wait_for(
            "a checkpoint with the feed's marks", lambda: position_in_feed(db, "CU-GAP")[0], 10
        )
        service.kill()
        emulator.history_down(True)
        time.sleep(5)  # the market trades on while the service is down
        service = ServiceProcess(path, db, path.parent, env=env())
        ((_, gap),) = wait_for("the gap", lambda: events(db, "gap") or None, 90)
        assert "503" in str(gap["failure"]) and "(4 tries)" in str(gap["failure"]), gap
        assert "waited_s" in gap, "the time spent within the venue's weight limit is said"
        assert gap["trades"] == 0 and gap["skipped_ns"] >= 4 * 10**9, gap
        (alert,) = wait_for(
            "the gap's alert",
            lambda: query(
                db, "SELECT text FROM alert_outbox WHERE title = ?", ("Market gap not replayed",)
            ),
            30,
        )
        assert "not played" in alert["text"]
        service.wait_status("trading on", lambda r: r["fills"] > before["fills"], 90)
        shown = cli("status", "--db", str(db), cwd=path.parent, timeout=60)
        assert "GAP of" in shown.stdout and "503" in shown.stdout, shown.stdout
        listed = json.loads(cli("status", "--db", str(db), "--json", cwd=path.parent).stdout)
        assert listed["gaps"] == 1 and listed["catch_ups"][0]["failure"], listed["catch_ups"]
        emulator.history_down(False)
        assert service.terminate() == 0
    finally:
        service.ensure_dead()
    done = cli("report", "parity", "--db", str(db), "--json", cwd=path.parent, timeout=120)
    assert done.returncode in (0, 6), done.stderr
    notes = json.loads(done.stdout)["notes"]
    assert any("GAP of" in note for note in notes), notes
