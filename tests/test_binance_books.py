"""Issue 24: every strategy's book on the testnet after a restart, and every instrument a
strategy names, in both Binance modes, against the loopback emulator."""

from __future__ import annotations

import socket
from decimal import Decimal
from pathlib import Path

import pytest

from tests.binance_symbols import MultiSymbolEmulator
from tests.service import ROOT, ServiceProcess, bars_of, cli, entry, events, wait_for
from tests.test_binance_modes import (
    KEY,
    SECRET,
    emulator,
    env,
    status_position,
    venue_position,
    write,
)

BTC = "BTCUSDT-PERP.BINANCE"
PROBE = "BookProbe-051"
_ = emulator  # the loopback Binance of tests.test_binance_modes (a fixture)


def probe(tmp_path: Path, instrument_id: str = BTC, tag: str = "051") -> str:
    """A ``[[strategies]]`` entry of ``tests.book_probe``: a position and a resting order
    from flat, once a node's life; its entries counted in a file."""
    config = {
        "instrument_id": instrument_id,
        "bar_type": bars_of(instrument_id),
        "order_id_tag": tag,
        "path": str(tmp_path / f"entries-{tag}.txt"),
    }
    return entry("BookProbe", config, module="tests.book_probe")


def entries(tmp_path: Path, tag: str = "051") -> list[str]:
    path = tmp_path / f"entries-{tag}.txt"
    return path.read_text().split() if path.exists() else []


def user_env() -> dict[str, str]:
    return env(PYTHONPATH=str(ROOT))


def test_whose_reconciled_orders_and_positions_are():
    """The rules, without a venue: an order its tag's strategy's (this trader's tags
    only), else the checkpoint's owner; a position its instrument's strategy's; and a
    checkpoint compared owner by owner."""
    from node.reconcile import compare_with_checkpoint, owners_for
    from protocol import OrderView, PositionView, Snapshot, TradingState

    def snap(owner: str, orders: tuple[str, ...]) -> Snapshot:
        position = PositionView(
            f"{BTC}-{owner}", BTC, "LONG", Decimal("0.010"), Decimal(60000), Decimal(0),
            Decimal(0), strategy_id=owner,
        )  # fmt: skip
        views = tuple(
            OrderView(o, BTC, "BUY", "LIMIT", Decimal("0.010"), Decimal(0), Decimal(42000),
                      "ACCEPTED", strategy_id=owner)
            for o in orders
        )  # fmt: skip
        return Snapshot(
            1, "TN-001", TradingState.ACTIVE, "USDT", Decimal(10000), Decimal(10000),
            Decimal(0), Decimal(0), 0, open_orders=views, positions=(position,),
        )  # fmt: skip

    uuid = "a8098c1a-f86e-11da-bd1a-00112444be1e"  # use_uuid_client_order_ids: no tag
    checkpoint = snap(PROBE, ("O-20261207-061112-001-051-2", uuid))
    owners = owners_for("TN-001", [(PROBE, BTC), ("EmaCross-002", SOL)], checkpoint)
    assert owners.order("O-20261207-061112-001-051-7") == PROBE
    assert owners.order("O-20261207-061112-001-002-1") == "EmaCross-002"
    assert owners.order("O-20261207-061112-009-051-7") is None, "another trader's tag"
    assert owners.order("O-20261207-061112-001-777-7") is None, "no strategy's tag"
    assert owners.order(uuid) == PROBE, "the checkpoint had it under the probe"
    assert owners.order("web_8cKx2") is None, "placed by hand at the venue"
    assert owners.order(None) is None
    assert owners.position(BTC) == PROBE and owners.position(SOL) == "EmaCross-002"
    assert owners.position("ETHUSDT-PERP.BINANCE") is None

    same = snap(PROBE, ("O-20261207-061112-001-051-2",))
    assert compare_with_checkpoint(same, same) == []
    external = snap("EXTERNAL", ("O-20261207-061112-001-051-2",))
    assert compare_with_checkpoint(same, external) == [
        f"position {BTC}: the checkpoint's is {PROBE}'s, the venue's reconciled as EXTERNAL's",
        f"order O-20261207-061112-001-051-2: the checkpoint's is {PROBE}'s, the venue's "
        "reconciled as EXTERNAL's",
    ]


@pytest.mark.node
def test_a_user_strategy_owns_its_book_after_a_testnet_restart_and_a_flatten_closes_it(
    tmp_path, emulator
):
    """A ``[[strategies]]`` strategy holding a position and a resting order on the testnet
    is SIGKILLed with the service. Before, reconciliation brought both back as EXTERNAL:
    the strategy saw itself flat and entered again, and a flatten skipped them. Now they
    are its own (in the cache, the snapshot and the status), it does not enter again,
    and a flatten closes the position and cancels the order at the venue."""
    config, db = write(tmp_path, emulator, "TNBOOK-001", "binance-testnet", probe(tmp_path))
    first = ServiceProcess(config, db, tmp_path, env=user_env())
    try:

        def held(report) -> bool:  # the status's strategy rows are the last checkpoint's
            rows = report["strategies"]
            return bool(rows) and (rows[0]["positions"], rows[0]["open_orders"]) == (1, 1)

        first.wait_status("a checkpoint with the probe's position and order", held, 90)
        first.kill()
    finally:
        first.ensure_dead()
    assert len(entries(tmp_path)) == 1
    position = venue_position(emulator)
    resting = [o.client_order_id for o in emulator.open_orders()]
    fills = len(emulator.fills())
    assert position == ("LONG", Decimal("0.010")) and len(resting) == 1
    assert "-051-" in resting[0], "the client order id carries the strategy's tag"

    second = ServiceProcess(config, db, tmp_path, env=user_env())
    try:
        restored = wait_for(
            "restore event", lambda: [p for r, p in events(db, "restored") if r == 2], 90
        )
        snap = restored[0]["snapshot"]
        assert [
            (p["strategy_id"], p["side"], Decimal(p["quantity"])) for p in snap["positions"]
        ] == [(PROBE, *position)]
        assert [(o["client_order_id"], o["strategy_id"]) for o in snap["open_orders"]] == [
            (resting[0], PROBE)
        ]
        assert not [p for r, p in events(db, "reconcile_diff") if r == 2], "owners as checkpointed"
        cursor = int(snap["replay_cursor"])

        # It held what it had: several bars on, no second entry at the venue.
        report = second.wait_status(
            "four bars after the restore",
            lambda r: (r["replay_cursor"] or 0) >= cursor + 4,
            60,
        )
        assert len(entries(tmp_path)) == 1, "the strategy entered again after the restart"
        assert len(emulator.fills()) == fills and venue_position(emulator) == position
        (row,) = report["strategies"]
        assert (row["strategy_id"], row["positions"], row["open_orders"]) == (PROBE, 1, 1)
        assert status_position(report) == position

        done = cli(
            "halt", "--mode", "flatten", "--reason", "test", "--config", str(config),
            cwd=tmp_path, env=user_env(),
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        wait_for(
            "the venue flat, its order cancelled",
            lambda: venue_position(emulator)[0] == "FLAT" and not emulator.open_orders(),
            30,
        )
        flat = second.wait_status(
            "halted, flat", lambda r: r["trading_state"] == "HALTED" and not r["positions"], 30
        )
        assert flat["strategies"][0]["open_orders"] == 0
        assert second.terminate() == 0
    finally:
        second.ensure_dead()


# ---------------------------------------------------------------- every instrument

SOL = "SOLUSDT-PERP.BINANCE"


def ema_on(instrument_id: str, tag: str) -> str:
    """The bundled EMA cross as a ``[[strategies]]`` entry on ``instrument_id``, quick to
    cross on the emulator's 0.2 s bars."""
    config = {
        "instrument_id": instrument_id,
        "bar_type": bars_of(instrument_id),
        "order_id_tag": tag,
        "strategy": {"fast_period": 3, "slow_period": 6},
    }
    return entry("EmaCross", config)


def positions_by_instrument(report) -> dict[str, tuple[str, Decimal]]:
    return {
        p["instrument_id"]: (p["side"], Decimal(p["quantity"]))
        for p in report["positions"]
        if Decimal(p["quantity"]) != 0
    }


def venue_positions(emu: MultiSymbolEmulator) -> dict[str, tuple[str, Decimal]]:
    return {
        f"{p.symbol}-PERP.BINANCE": ("LONG" if p.amount > 0 else "SHORT", abs(p.amount))
        for p in emu.positions()
        if p.amount != 0
    }


@pytest.mark.node
@pytest.mark.parametrize("mode", ["binance-testnet", "binance-sandbox"])
def test_strategies_on_btcusdt_and_solusdt_both_trade(tmp_path, mode):
    """Before, the Binance clients loaded the first instrument only: the strategy on
    SOLUSDT found no instrument, logged an error and stopped, and nothing failed. Now
    every instrument a strategy names comes from the venue's exchange info, and both
    trade - on the venue, or on the simulated one fed by the venue's market data."""
    emu = MultiSymbolEmulator(KEY, SECRET, kline_interval_s=0.2, volatility=Decimal("0.0008"))
    emu.start()
    try:
        trader = "TN2-001" if mode == "binance-testnet" else "SB2-001"
        extra = ema_on(BTC, "101") + ema_on(SOL, "102")
        config, db = write(tmp_path, emu, trader, mode, extra)
        service = ServiceProcess(config, db, tmp_path, env=env())
        try:

            def both_traded(report) -> bool:
                rows = {r["strategy_id"]: r["fills"] for r in report["strategies"]}
                return rows.get("EmaCross-101", 0) > 0 and rows.get("EmaCross-102", 0) > 0

            report = service.wait_status("fills of both strategies", both_traded, 60)
            traded = {str(fill["instrument_id"]) for _, fill in events(db, "fill")}
            assert traded == {BTC, SOL}
            assert set(positions_by_instrument(report)) <= {BTC, SOL}
            if mode == "binance-sandbox":
                assert not emu.fills(), "the sandbox sent an order to the venue"
            else:
                assert emu.symbol_fills("BTCUSDT") and emu.symbol_fills("SOLUSDT")
                # The venue's own step for each (SOL: 0.01).
                assert all(f.qty % Decimal("0.01") == 0 for f in emu.symbol_fills("SOLUSDT"))
                service.wait_status(
                    "positions equal to the venue's, symbol by symbol",
                    lambda r: positions_by_instrument(r) == venue_positions(emu),
                    30,
                )
            assert service.terminate() == 0
        finally:
            service.ensure_dead()
    finally:
        emu.stop()


def test_a_symbol_the_venue_does_not_list_is_refused_at_load_time_with_its_entry_named(
    tmp_path, emulator
):
    """``config check`` (and ``run``) in a Binance mode asks the venue's exchange info
    (``GET {base_url_http}/fapi/v1/exchangeInfo``) for every instrument the node would
    trade, and names each entry whose symbol it does not list; a venue that cannot be
    asked is a problem too (the session could not start without it)."""
    unknown = "DOGEXUSDT-PERP.BINANCE"
    extra = ema_on(BTC, "101") + ema_on(unknown, "102")
    url = f"{emulator.http_url}/fapi/v1/exchangeInfo"
    problem = f"strategies[1].config.instrument_id: {unknown}: the venue does not list it"
    for mode in ("binance-testnet", "binance-sandbox"):
        config, _ = write(tmp_path, emulator, "CHK-001", mode, extra)
        done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=env())
        out = done.stdout + done.stderr
        assert done.returncode == 2, out
        assert f"{problem} (GET {url})" in out, out
        assert "strategies[0]" not in out and "instrument.id" not in out, out

    # ``run`` refuses it before anything starts.
    config, db = write(tmp_path, emulator, "CHK-002", "binance-testnet", extra)
    done = cli("run", "--config", str(config), cwd=tmp_path, env=env(), timeout=60)
    assert done.returncode == 2 and problem in done.stderr, done.stdout + done.stderr
    assert not db.exists(), "nothing started"

    # A venue that does not answer: refused, with the endpoint and the reason.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    config, _ = write(tmp_path, emulator, "CHK-003", "binance-testnet", ema_on(BTC, "101"))
    config.write_text(config.read_text().replace(emulator.http_url, f"http://127.0.0.1:{port}"))
    done = cli("config", "check", "--config", str(config), cwd=tmp_path, env=env())
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert (
        f"binance: cannot check the instruments with the venue "
        f"(GET http://127.0.0.1:{port}/fapi/v1/exchangeInfo)"
    ) in out, out


def test_why_the_venue_cannot_give_an_instrument():
    """The loader's reading of the exchange info: listed, perpetual, trading."""
    from supervisor.config import _unlisted as unlisted

    symbols = {
        "BTCUSDT": ("PERPETUAL", "TRADING"),
        "ETHUSDT_260327": ("CURRENT_QUARTER", "TRADING"),
        "LUNAUSDT": ("PERPETUAL", "SETTLING"),
    }
    assert unlisted(BTC, symbols) is None
    assert unlisted("SOLUSDT-PERP.BINANCE", symbols) == "the venue does not list it"
    assert unlisted("LUNAUSDT-PERP.BINANCE", symbols) == (
        "the venue lists it as SETTLING, not trading"
    )
    assert unlisted("ETHUSDT_260327-PERP.BINANCE", symbols) == (
        "not a perpetual: the venue's ETHUSDT_260327 is CURRENT_QUARTER"
    )
    assert unlisted("BTCUSDT-PERP.BYBIT", symbols) == "not an instrument of Binance (venue BYBIT)"
