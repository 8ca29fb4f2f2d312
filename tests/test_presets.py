"""Presets and the session configs composed from them (``sessions.presets``): what an
operator sets in the dashboard is what the launched session runs with."""

from __future__ import annotations

import tomllib
from decimal import Decimal
from pathlib import Path

import pytest

from protocol import StrategyEntry
from sessions.presets import (
    FIELDS_BY_PATH,
    default_preset,
    from_text,
    session_config_text,
    validate_preset,
)
from supervisor.config import ConfigError, build_config

ENTRY = StrategyEntry(
    strategy_path="tests.user_strategy:Breakout",
    config_path="tests.user_strategy:BreakoutConfig",
    config={"lookback": 12},
    max_notional_per_order=Decimal("2500.5"),
    max_leverage=Decimal("1.5"),
    capital=Decimal("40000"),
)


def test_a_registered_entry_keeps_its_own_limits_and_capital_in_the_session_it_launches(
    tmp_path: Path,
) -> None:
    """The registry's launch wrote only the import paths and the config: a strategy
    registered with ``max_notional_per_order`` and ``max_leverage`` traded without them."""
    text = session_config_text(
        "swing", default_preset(), "BREAKOUT-001", tmp_path / "paper.db", (ENTRY,), "breakout"
    )
    config = build_config(tomllib.loads(text), "session", env={}, import_strategies=False)
    [entry] = config.settings.strategies
    assert entry == ENTRY
    assert entry.max_notional_per_order == Decimal("2500.5")  # exact: written as text
    assert entry.max_leverage == Decimal("1.5") and entry.capital == Decimal("40000")


def test_a_preset_sets_the_node_wide_limits_or_leaves_them_unset(tmp_path: Path) -> None:
    notional = FIELDS_BY_PATH["risk.max_notional_per_order"]
    leverage = FIELDS_BY_PATH["risk.leverage_limit"]
    assert notional.kind == leverage.kind == "decimal" and notional.optional
    assert from_text(notional, "  ") is None  # an empty field: no such limit
    assert "max_notional_per_order" not in default_preset()["risk"]

    body = default_preset()
    body["risk"]["max_notional_per_order"] = from_text(notional, "1000.25")
    body["risk"]["leverage_limit"] = from_text(leverage, "2")
    config = validate_preset("capped", body, env={})
    assert config.settings.risk.max_notional_per_order == Decimal("1000.25")
    assert config.settings.risk.leverage_limit == Decimal("2")
    text = session_config_text("capped", body, "CAPPED-001", tmp_path / "paper.db")
    assert tomllib.loads(text)["risk"]["max_notional_per_order"] == "1000.25"

    body["risk"]["leverage_limit"] = "0"
    with pytest.raises(ConfigError, match=r"risk\.leverage_limit: must be > 0"):
        validate_preset("capped", body, env={})
