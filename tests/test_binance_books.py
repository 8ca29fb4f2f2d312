"""Issue 24: every strategy's book on the testnet after a restart, and every instrument a
strategy names, in both Binance modes, against the loopback emulator."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.service import ROOT, ServiceProcess, bars_of, cli, entry, events, wait_for
from tests.test_binance_modes import emulator, env, status_position, venue_position, write

pytestmark = pytest.mark.node

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
