"""Many traders on one host, seen as an operator sees them: ``status --all`` over a config
directory and a state root, ``metrics targets`` for Prometheus, and the shipped rules and
board checked against a live scrape. One fleet of three real services serves every check
here: FLEET-A running (with /metrics), FLEET-B halted (with /metrics), FLEET-C stopped after
its replay (metrics off)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service import ServiceProcess, cli, wait_for, write_config
from tests.test_deploy import declared_labels, missing, shipped_uses
from tests.test_metrics import free_port, get, metrics_section, probe

pytestmark = pytest.mark.node

KEEP_RUNNING = "bars = 1500\nstop_when_done = false"


@dataclass
class Fleet:
    root: Path  # the config directory, and the state root: each service's db beside its config
    ports: dict[str, int]
    running: ServiceProcess


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    root = tmp_path / "fleet"
    root.mkdir()
    ports = {"FLEET-A": free_port(), "FLEET-B": free_port()}
    config_a, db_a = write_config(
        root, "FLEET-A", speed=0, replay=KEEP_RUNNING, extra=metrics_section(ports["FLEET-A"]),
        name="a",
    )  # fmt: skip
    config_b, db_b = write_config(
        root, "FLEET-B", speed=0, replay=KEEP_RUNNING, extra=metrics_section(ports["FLEET-B"]),
        name="b",
    )  # fmt: skip
    for config in (config_a, config_b):  # a heartbeat that a loaded machine keeps fresh
        config.write_text(
            config.read_text().replace("heartbeat_interval_s = 0.5", "heartbeat_interval_s = 2")
        )
    config_c, db_c = write_config(
        root, "FLEET-C", speed=0, replay="bars = 300\nstop_when_done = true", name="c"
    )
    services = [ServiceProcess(c, d, root) for c, d in ((config_a, db_a), (config_b, db_b))]
    stopped = ServiceProcess(config_c, db_c, root)
    try:
        assert stopped.wait(timeout=120) == 0, stopped.log_path.read_text()[-3000:]
        for service in services:
            service.wait_status(
                "trading", lambda r: r["state"] == "running" and r["fills"] > 0, 120
            )
        halted = cli("halt", "--config", str(config_b), "--reason", "fleet test", cwd=root)
        assert halted.returncode == 0, halted.stdout + halted.stderr
        services[1].wait_status("halted", lambda r: r["state"] == "halted", 30)
        wait_for("A ready", lambda: probe(ports["FLEET-A"], "/readyz")[0] == 200, 60)
        yield Fleet(root, ports, services[0])
        for service in services:
            assert service.terminate() == 0
    finally:
        for service in (*services, stopped):
            service.ensure_dead()


def test_a_fleet_of_three_traders(fleet: Fleet, tmp_path: Path):
    """One fleet for every check (three services are the expensive part): the checks run in
    turn, each named for what it shows."""
    status_all_lists_every_trader_with_the_worst_exit_code(fleet)
    status_all_exit_codes_running_halted_and_a_bad_config(fleet, tmp_path / "codes")
    metrics_targets_writes_a_file_sd_of_the_traders_that_serve_metrics(fleet, tmp_path / "sd")
    the_board_and_the_rules_use_only_what_a_live_scrape_has(fleet)


def status_all(fleet: Fleet, *options: str) -> tuple[int, str, str]:
    done = cli("status", "--all", *options, cwd=fleet.root)
    return done.returncode, done.stdout, done.stderr


def status_all_lists_every_trader_with_the_worst_exit_code(fleet: Fleet) -> None:
    code, out, err = status_all(fleet, "--config-dir", str(fleet.root), "--json")
    assert code == 3, err  # FLEET-C is down: the worst of running (0), halted (7), stopped (3)
    rows = {r["trader_id"]: r for r in json.loads(out)}
    assert {t: r["state"] for t, r in rows.items()} == {
        "FLEET-A": "running",
        "FLEET-B": "halted",
        "FLEET-C": "stopped",
    }
    assert rows["FLEET-B"]["trading_state"] == "HALTED"
    assert rows["FLEET-A"]["trading_state"] == "ACTIVE"
    for r in rows.values():
        assert r["equity"] is not None and r["pnl"] is not None and r["currency"] == "USDT"
        assert r["checkpoint_age_s"] is not None and r["checkpoint_age_s"] < 60
    assert rows["FLEET-A"]["data_age_s"] is not None  # a stopped trader's feed has no age
    assert rows["FLEET-A"]["metrics"] == f"127.0.0.1:{fleet.ports['FLEET-A']}"
    assert rows["FLEET-C"]["metrics"] is None

    # The table: a header and one line per trader, its state and trading state on it.
    code, out, _ = status_all(fleet, "--config-dir", str(fleet.root))
    assert code == 3
    header, *lines = out.splitlines()
    assert header.split()[:3] == ["trader", "state", "trading"]
    assert [line.split()[:3] for line in lines] == [
        ["a", "(FLEET-A)", "running"],
        ["b", "(FLEET-B)", "halted"],
        ["c", "(FLEET-C)", "stopped"],
    ]
    assert "HALTED" in lines[1] and "USDT" in lines[0]

    # Every database under a state root, without the configs: the same three traders.
    code, out, _ = status_all(fleet, "--state-root", str(fleet.root), "--json")
    assert code == 3
    assert {r["trader_id"]: r["state"] for r in json.loads(out)} == {
        "FLEET-A": "running",
        "FLEET-B": "halted",
        "FLEET-C": "stopped",
    }


def status_all_exit_codes_running_halted_and_a_bad_config(fleet: Fleet, tmp_path: Path) -> None:
    up = tmp_path / "up"
    up.mkdir(parents=True)
    shutil.copy(fleet.root / "a.toml", up / "a.toml")
    assert status_all(fleet, "--config-dir", str(up))[0] == 0
    shutil.copy(fleet.root / "b.toml", up / "b.toml")
    assert status_all(fleet, "--config-dir", str(up))[0] == 7  # one halted, none down
    # A binance-testnet trader is listed without its keys in this environment (never run here)
    (up / "t.toml").write_text('[service]\ntrader_id = "TEST-01"\nmode = "binance-testnet"\n'
                               f'db_path = "{tmp_path / 't.db'}"\n')  # fmt: skip
    code, out, _ = status_all(fleet, "--config-dir", str(up), "--json")
    assert code == 3 and json.loads(out)[-1]["state"] == "no_run", out
    (up / "t.toml").unlink()
    (up / "z.toml").write_text("[service]\nheartbeat_interval_s = -1\n")
    code, out, _ = status_all(fleet, "--config-dir", str(up))
    assert code == 2, out
    assert "config_error" in out and "heartbeat_interval_s" in out
    code, _, err = status_all(fleet, "--config-dir", str(tmp_path / "nowhere"))
    assert code == 2 and "no config directory" in err


def metrics_targets_writes_a_file_sd_of_the_traders_that_serve_metrics(
    fleet: Fleet, tmp_path: Path
) -> None:
    out = tmp_path / "sd" / "paper-node.json"
    done = cli("metrics", "targets", "--config-dir", str(fleet.root), "--output", str(out),
               cwd=fleet.root)  # fmt: skip
    assert done.returncode == 0, done.stderr
    entries = json.loads(out.read_text())
    assert [e["targets"] for e in entries] == [
        [f"127.0.0.1:{fleet.ports['FLEET-A']}"],
        [f"127.0.0.1:{fleet.ports['FLEET-B']}"],
    ]
    assert [e["labels"]["paper_instance"] for e in entries] == ["a", "b"]
    assert all(e["labels"]["paper_mode"] == "replay" for e in entries)
    assert all(not k.startswith("__") and k != "trader" for e in entries for k in e["labels"])
    assert "c: not a target: metrics off" in done.stderr
    # From the state root alone, the runs' recorded settings give the same endpoints.
    listed = cli("metrics", "targets", "--state-root", str(fleet.root), cwd=fleet.root)
    assert [e["targets"] for e in json.loads(listed.stdout)] == [e["targets"] for e in entries]


def the_board_and_the_rules_use_only_what_a_live_scrape_has(fleet: Fleet) -> None:
    """Every metric and label of deploy/grafana and deploy/prometheus, against FLEET-A's
    /metrics (a metric renamed in actors/metrics.py fails here, not on someone's board)."""
    code, text = get(fleet.ports["FLEET-A"], "/metrics")
    assert code == 200
    scrape: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        scrape.setdefault(family.name, set())
        if family.type == "counter":  # a labelled counter before its first event: no sample
            scrape.setdefault(f"{family.name}_total", set())
        for sample in family.samples:
            scrape.setdefault(sample.name, set()).update(sample.labels)
            scrape[family.name].update(sample.labels)
    uses = shipped_uses()
    assert missing(uses, scrape, declared_labels()) == [], sorted(scrape)
    assert {"paper_equity", "paper_ready", "paper_fills_total"} <= uses.metrics
