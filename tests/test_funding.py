"""Funding in a replay: every settlement - at the venue's times, 00:00, 08:00 and 16:00
UTC, or at a funding history file's own times - charges the positions held into it,
exactly as computed by hand; a position opened after a settlement pays nothing for it;
a SIGKILL neither charges a settlement twice nor skips one; the parity backtest charges
the same."""

from __future__ import annotations

import csv
import json
import os
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

import pytest

from tests.service import (
    ROOT,
    ServiceProcess,
    bars_of,
    cli,
    entry,
    events,
    last_checkpoint_of,
    wait_for,
    write_config,
)

ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
BARS = ROOT / "tests" / "data" / "btc-perp-2022-01-1m.csv"
BTC = "BTCUSDT-PERP.BINANCE"
RATE = Decimal("0.0001")
HOUR_NS = 3600 * 10**9
LONG, SHORT = ("Hold-001", Decimal("0.5"), 2), ("Hold-002", Decimal("-0.2"), 500)


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000) * 10**6


# The venue's own history for three settlements (Binance's columns, epoch milliseconds):
# one of them recorded 3 ms late, as the venue's rows sometimes are, and one before the
# data starts (never charged).
HISTORY = {
    at("2021-12-31 16:00:00"): Decimal("0.0005"),
    at("2022-01-01 16:00:00"): Decimal("0.0002"),
    at("2022-01-02 00:00:00") + 3_000_000: Decimal("-0.0003"),
}


def bars() -> list[tuple[int, Decimal]]:
    """Each bar's market time (its open) and open price."""
    with BARS.open(newline="") as handle:
        return [(at(row["timestamp"]), Decimal(row["open"])) for row in csv.DictReader(handle)]


def settlements() -> list[tuple[int, Decimal]]:
    """When funding settles within the data, at what rate: every 8 hours from 00:00 UTC
    at the constant, except where the history has the settlement; the history's rows at
    their own times."""
    series = bars()
    first, last = series[0][0], series[-1][0]
    grid = range(-(-first // (8 * HOUR_NS)) * 8 * HOUR_NS, last + 1, 8 * HOUR_NS)
    due = [(t, RATE) for t in grid if all(abs(t - h) >= 4 * HOUR_NS for h in HISTORY)]
    due += [(t, r) for t, r in HISTORY.items() if first <= t <= last]
    return sorted(due)


def by_hand() -> dict[str, Decimal]:
    """What each strategy's position pays: at every settlement it was held into,
    quantity x the open of the first bar at or after it x the rate, rounded to USDT's 8
    decimals."""
    series = bars()
    owed: dict[str, Decimal] = {}
    for sid, size, opened_at in (LONG, SHORT):
        total = Decimal(0)
        for when, rate in settlements():
            bar = next(i for i, (t, _) in enumerate(series) if t >= when)
            if bar < opened_at:  # not held yet: it pays nothing for this one
                continue
            total -= (size * series[bar][1] * rate).quantize(Decimal("1e-8"), ROUND_HALF_EVEN)
        owed[sid] = total
    return owed


def config_for(tmp_path: Path, trader: str, speed: float) -> tuple[Path, Path]:
    rates = tmp_path / "funding.csv"
    rates.write_text(
        "symbol,fundingTime,fundingRate\n"
        + "".join(f"BTCUSDT,{t // 10**6},{r}\n" for t, r in HISTORY.items())
    )
    holds = "".join(
        entry(
            "Hold",
            {
                "instrument_id": BTC,
                "bar_type": bars_of(BTC),
                "size": str(size),
                "at_bar": at,
                "order_id_tag": sid[-3:],
            },
            module="tests.fill_probe",
        )
        for sid, size, at in (LONG, SHORT)
    )
    simulation = (
        f'[simulation]\nfunding_rate = "{RATE}"\nfunding_file = "{rates}"\n'
        "prob_slippage = 0\nprob_fill_on_limit = 1\n"
    )
    return write_config(
        tmp_path,
        trader=trader,
        speed=speed,
        ladder=0,
        replay=f'source = "file"\npath = "{BARS}"\nstop_when_done = true',
        extra=holds + simulation,
        name=trader.lower(),
    )


def funding_of(checkpoint: dict[str, object]) -> dict[str, Decimal]:
    views = checkpoint["strategies"]
    assert isinstance(views, list)
    return {str(v["strategy_id"]): Decimal(str(v["funding"])) for v in views}


@pytest.mark.node
def test_funding_settles_as_computed_by_hand_and_equals_the_backtest(tmp_path):
    config, db = config_for(tmp_path, "FUND-001", speed=0)
    service = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        assert service.wait(120) == 0, service.log_path.read_text()[-3000:]
    finally:
        service.ensure_dead()
    final = last_checkpoint_of(db, "FUND-001")
    owed = by_hand()
    assert funding_of(final) == owed
    assert Decimal(str(final["funding"])) == sum(owed.values(), Decimal(0))
    # The balance holds it: the start, the realized PnL (the fees, positions never
    # closed) and the funding.
    assert Decimal(str(final["balance"])) == (
        Decimal("100000") + Decimal(str(final["realized_pnl"])) + sum(owed.values(), Decimal(0))
    )
    paid = [p for _, p in events(db, "funding")]
    # Settled at the venue's times: 00:00, 08:00, 16:00 UTC, or the history's own.
    times = {int(str(p["settled_at_ns"])) for p in paid}
    assert times == {t for t, _ in settlements()}
    assert at("2022-01-02 00:00:00") + 3_000_000 in times, "the history's row, at its time"
    short = [p for p in paid if p["strategy_id"] == SHORT[0]]
    assert at("2022-01-01 00:00:00") not in [p["settled_at_ns"] for p in short], (
        "opened after the first settlement: nothing for it"
    )
    assert len(paid) == 9 + 8
    report = cli("report", "parity", "--config", str(config), "--json", cwd=tmp_path, env=ENV)
    assert report.returncode == 0, report.stdout + report.stderr
    assert json.loads(report.stdout)["equal"] is True


@pytest.mark.node
def test_funding_survives_a_sigkill_neither_twice_nor_skipped(tmp_path):
    config, db = config_for(tmp_path, "FUND-002", speed=20_000)
    first = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        wait_for(
            "the third settlement",
            lambda: [
                p
                for _, p in events(db, "funding")
                if int(str(p["settled_at_ns"])) >= at("2022-01-01 16:00:00")
            ],
            120,
        )
        first.kill()
    finally:
        first.ensure_dead()
    second = ServiceProcess(config, db, tmp_path, env=ENV)
    try:
        assert second.wait(120) == 0, second.log_path.read_text()[-3000:]
    finally:
        second.ensure_dead()
    final = last_checkpoint_of(db, "FUND-002")
    assert funding_of(final) == by_hand()
    assert Decimal(str(final["balance"])) == (
        Decimal("100000")
        + Decimal(str(final["realized_pnl"]))
        + sum(by_hand().values(), Decimal(0))
    )
