"""Config loading: the bundled example is valid; bad input lists every problem at once."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from protocol import Mode, SizingMethod
from supervisor.config import ConfigError, load_config, parse_config

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, str(ROOT / "scripts" / "run_supervisor.py")]


def test_bundled_example_is_the_offline_replay_default():
    config = load_config(None, env={})
    assert config.node.mode is Mode.REPLAY
    assert config.node.replay.source == "synthetic"
    assert config.node.sizing.method is SizingMethod.FIXED_FRACTIONAL
    assert config.node.risk.risk_per_trade == Decimal("0.01")
    assert config.settings.service.checkpoint_interval_s == 60


def test_values_are_read_into_typed_settings():
    config = parse_config(
        """
        [service]
        trader_id = "ALPHA-7"
        db_path = "x/y.db"
        [sizing]
        method = "kelly"
        win_rate = 0.6
        payoff_ratio = "2"
        [risk]
        max_leverage = 2
        """,
        "t.toml",
        env={},
    )
    assert config.node.trader_id == "ALPHA-7"
    assert config.db_path == Path("x/y.db")
    assert config.node.sizing.method is SizingMethod.KELLY
    assert config.node.sizing.win_rate == Decimal("0.6")
    assert config.node.risk.max_leverage == Decimal(2)


BAD = """
[service]
trader_id = "no_dash"
mode = "moon"
colour = "blue"
checkpoint_interval_s = -5

[sizing]
method = "martingale"

[risk]
risk_per_trade = 0.5
max_leverage = 0
max_drawdown_pct = 150

[strategy]
fast_period = 30
slow_period = 10

[telemetry]
x = 1
"""


def test_every_problem_is_reported_together():
    with pytest.raises(ConfigError) as info:
        parse_config(BAD, "bad.toml", env={})
    text = "\n".join(info.value.problems)
    for expected in (
        "service.trader_id",
        "service.mode: 'moon' is not one of",
        "service.colour: unknown key",
        "service.checkpoint_interval_s: must be > 0",
        "sizing.method: 'martingale' is not one of fixed_fractional, kelly, atr",
        "risk.risk_per_trade: must be <= 0.1",
        "risk.max_leverage: must be > 0",
        "risk.max_drawdown_pct: must be <= 100",
        "fast_period (30) must be less than slow_period (10)",
        "[telemetry]: unknown section",
    ):
        assert expected in text, f"missing: {expected}\n{text}"
    assert len(info.value.problems) == 10


def test_testnet_mode_names_the_missing_environment_secrets_without_values():
    with pytest.raises(ConfigError) as info:
        parse_config('[service]\nmode = "binance-testnet"\n', "t.toml", env={})
    text = "\n".join(info.value.problems)
    assert "BINANCE_FUTURES_TESTNET_API_KEY" in text
    assert "BINANCE_FUTURES_TESTNET_API_SECRET" in text


def test_kelly_without_an_edge_is_rejected():
    with pytest.raises(ConfigError, match="no edge"):
        parse_config('[sizing]\nmethod = "kelly"\nwin_rate = 0.3\npayoff_ratio = 1\n', "k", env={})


def test_replay_file_must_exist(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ConfigError, match="does not exist"):
        parse_config(f'[replay]\nsource = "file"\npath = "{missing}"\n', "f", env={})


def test_a_bar_length_nautilus_cannot_spell_is_refused_and_an_hour_is_an_hour():
    """Found by the statistics test: ``bar_minutes = 60`` loaded, then every node start
    failed on NautilusTrader's ``60-MINUTE`` bar type until the restarts escalated."""
    with pytest.raises(ConfigError, match="bar_minutes: 7 is not a bar length"):
        parse_config("[replay]\nbar_minutes = 7\n", "b", env={})
    config = parse_config("[replay]\nbar_minutes = 60\n", "b", env={})
    assert config.settings.replay.bar_minutes == 60


def test_broken_toml_is_one_clear_problem():
    with pytest.raises(ConfigError, match="not valid TOML"):
        parse_config("[service\n", "broken.toml", env={})


def test_config_check_cli_lists_problems_and_exits_2(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    done = subprocess.run(
        [*CLI, "config", "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "10 problem(s)" in done.stderr
    assert "Traceback" not in done.stderr
    assert "sizing.method" in done.stderr


def test_config_check_cli_accepts_the_default():
    done = subprocess.run(
        [*CLI, "config", "check"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "ok" in done.stdout


def test_missing_config_file_is_a_clear_error(tmp_path):
    done = subprocess.run(
        [*CLI, "run", "--config", str(tmp_path / "absent.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "cannot read config file" in done.stderr
    assert "Traceback" not in done.stderr


def test_config_schema_and_example_come_from_the_declarations(tmp_path):
    schema = subprocess.run(
        [*CLI, "config", "schema"], capture_output=True, text=True, timeout=60, check=False
    )
    assert schema.returncode == 0, schema.stderr
    import json

    risk = json.loads(schema.stdout)["$defs"]["RiskLimits"]["properties"]["risk_per_trade"]
    assert "equity risked a trade" in risk["description"]
    example = subprocess.run(
        [*CLI, "config", "example"], capture_output=True, text=True, timeout=60, check=False
    )
    assert example.returncode == 0 and 'risk_per_trade = "0.01"' in example.stdout
    written = tmp_path / "example.toml"
    written.write_text(example.stdout)
    checked = subprocess.run(
        [*CLI, "config", "check", "--config", str(written)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_chat_ids_come_from_the_environment_only():
    with pytest.raises(ConfigError, match=r"telegram\.chat_ids: comes from the environment"):
        parse_config("[telegram]\nchat_ids = [1]\n", "t.toml", env={})


def test_user_ids_come_from_the_environment_and_are_numbers():
    with pytest.raises(ConfigError, match=r"telegram\.user_ids: comes from the environment"):
        parse_config("[telegram]\nuser_ids = [1]\n", "t.toml", env={})
    with pytest.raises(ConfigError, match=r"TELEGRAM_USER_IDS: 'bob' is not a numeric user id"):
        parse_config("", "t.toml", env={"TELEGRAM_USER_IDS": "12, bob"})
    env = {"TELEGRAM_CHAT_IDS": "-1001234", "TELEGRAM_USER_IDS": "12,34"}
    assert parse_config("", "t.toml", env=env).settings.telegram.user_ids == (12, 34)


def test_a_replay_needs_a_definition_of_every_instrument_it_trades(tmp_path):
    """Any USDT-M perpetual: a replay builds it from [[instruments]]; the Binance modes
    read it from the venue, so there the definition is not needed."""
    sol = tmp_path / "sol.csv"
    sol.write_text("open,high,low,close,volume\n150,151,149,150.5,10\n")
    base = """
        [instrument]
        id = "SOLUSDT-PERP.BINANCE"
        [[instruments]]
        id = "SOLUSDT-PERP.BINANCE"
        tick_size = "0.01"
        step_size = "0.1"
        """
    with pytest.raises(ConfigError) as caught:
        parse_config(base, "t.toml", env={})
    assert list(caught.value.problems) == [
        "instruments[0]: a definition needs all of its fields; missing margin_init, "
        "margin_maint, maker_fee, taker_fee",
    ]
    with pytest.raises(ConfigError) as caught:
        parse_config('[instrument]\nid = "SOLUSDT-PERP.BINANCE"\n', "t.toml", env={})
    assert "instruments: SOLUSDT-PERP.BINANCE is traded but not defined" in caught.value.problems[0]
    with pytest.raises(ConfigError) as caught:
        parse_config('[instrument]\nid = "SOLUSDT-PERP"\n', "t.toml", env={})
    assert caught.value.problems[0].startswith("instrument.id: 'SOLUSDT-PERP' is not valid")
    defined = base + (
        'margin_init = "0.05"\nmargin_maint = "0.025"\nmaker_fee = "0.0002"\ntaker_fee = "0.0004"\n'
    )
    config = parse_config(defined, "t.toml", env={})
    assert config.node.instrument_ids == ("SOLUSDT-PERP.BINANCE",)
    assert config.node.spec("SOLUSDT-PERP.BINANCE").margin_init == Decimal("0.05")
    testnet = parse_config(
        '[service]\nmode = "binance-sandbox"\n[instrument]\nid = "SOLUSDT-PERP.BINANCE"\n',
        "t.toml",
        env={},
    )
    assert testnet.node.instrument_ids == ("SOLUSDT-PERP.BINANCE",)
    twice = defined + '[[instruments]]\nid = "SOLUSDT-PERP.BINANCE"\n'
    with pytest.raises(ConfigError) as caught:
        parse_config(twice, "t.toml", env={})
    assert list(caught.value.problems) == [
        "instruments[1].id: SOLUSDT-PERP.BINANCE is also instruments[0]'s"
    ]


TESTNET_KEYS = {
    "BINANCE_FUTURES_TESTNET_API_KEY": "k",
    "BINANCE_FUTURES_TESTNET_API_SECRET": "s",
}


def binance(mode: str, **urls: str) -> str:
    lines = "".join(f'{name} = "{url}"\n' for name, url in urls.items())
    return f'[service]\nmode = "{mode}"\n[binance]\n{lines}'


def test_testnet_refuses_a_mainnet_or_plain_text_endpoint_listing_every_one():
    """binance-testnet sends its keys and orders: to the testnet or loopback only, and in
    plain text to loopback only. Every problem is listed at once, each naming its field."""
    text = binance(
        "binance-testnet",
        base_url_http="https://fapi.binance.com",
        base_url_ws="ws://stream.binancefuture.com",
        base_url_ws_stream="wss://fstream.binance.com/private",
    )
    with pytest.raises(ConfigError) as caught:
        parse_config(text + "[risk]\nmax_leverage = -1\n", "t.toml", env=TESTNET_KEYS)
    problems = caught.value.problems
    assert problems[0] == "risk.max_leverage: must be > 0, got -1"
    assert list(problems[1:]) == [
        "binance.base_url_http: binance-testnet connects only to Binance's futures testnet "
        "(demo-fapi.binance.com, demo-fstream.binance.com, fstream.binancefuture.com, "
        "stream.binancefuture.com, testnet.binancefuture.com) or to loopback, "
        "not to https://fapi.binance.com",
        "binance.base_url_ws: ws://stream.binancefuture.com is plain text, which only a "
        "loopback endpoint may be (wss:// elsewhere)",
        "binance.base_url_ws_stream: binance-testnet connects only to Binance's futures "
        "testnet (demo-fapi.binance.com, demo-fstream.binance.com, fstream.binancefuture.com, "
        "stream.binancefuture.com, testnet.binancefuture.com) or to loopback, "
        "not to wss://fstream.binance.com",
    ]
    with pytest.raises(ConfigError, match=r"binance.base_url_http: http://10.0.0.5:8080 is plain"):
        parse_config(
            binance("binance-testnet", base_url_http="http://10.0.0.5:8080/fapi"),
            "t.toml",
            env=TESTNET_KEYS,
        )
    # Nor is a refused endpoint asked for its instruments (``run``, ``config check``).
    with pytest.raises(ConfigError) as caught:
        parse_config(
            binance("binance-testnet", base_url_http="http://10.255.255.1:9"),
            "t.toml",
            env=TESTNET_KEYS,
            ask_venue=True,
        )
    assert all(p.startswith("binance.base_url_http:") for p in caught.value.problems)


def test_testnet_accepts_its_own_hosts_and_loopback_in_plain_text():
    for urls in (
        {
            "base_url_http": "https://demo-fapi.binance.com",
            "base_url_ws": "wss://stream.binancefuture.com",
            "base_url_ws_stream": "wss://fstream.binancefuture.com",
        },
        {
            "base_url_http": "http://127.0.0.1:8090",
            "base_url_ws": "ws://localhost:8090",
            "base_url_ws_stream": "ws://[::1]:8090",
        },
    ):
        config = parse_config(binance("binance-testnet", **urls), "t.toml", env=TESTNET_KEYS)
        assert config.settings.binance.base_url_http == urls["base_url_http"]


def test_sandbox_reads_any_secure_endpoint_and_plain_text_only_on_loopback():
    """binance-sandbox sends no keys: any https/wss host, the mainnet's included."""
    parse_config(
        binance(
            "binance-sandbox",
            base_url_http="https://fapi.binance.com",
            base_url_ws="wss://data.example.net/market",
        ),
        "t.toml",
        env={},
    )
    parse_config(binance("binance-sandbox", base_url_http="http://127.0.0.2:9"), "t.toml", env={})
    with pytest.raises(ConfigError) as caught:
        parse_config(
            binance(
                "binance-sandbox",
                base_url_http="http://fapi.binance.com",
                base_url_ws="ws://fstream.binance.com",
            ),
            "t.toml",
            env={},
        )
    assert [p.split(":")[0] for p in caught.value.problems] == [
        "binance.base_url_http",
        "binance.base_url_ws",
    ]
    assert all("plain text" in p for p in caught.value.problems)
