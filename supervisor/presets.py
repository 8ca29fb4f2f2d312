"""Session presets: which config fields a preset holds, how it is validated and rendered.

A preset is the part of a config file an operator varies between sessions
(strategy, instrument, mode, sizing, risk, breakers). It is validated by the very
loader that checks config files, composed with a placeholder trader id, so a
preset that saves is a session that starts, and every problem names its field
(``sizing.stop_loss_pct: must be > 0, got 0``). Secrets are never part of a
preset: a session reads them from its own environment.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from actors.settings import (
    SUPPORTED_INSTRUMENTS,
    BreakerSettings,
    Mode,
    RiskLimits,
    SizingMethod,
    SizingSettings,
    StrategySettings,
)
from storage import PresetBody, PresetValue
from supervisor.config import (
    SCHEMA,
    ConfigError,
    ServiceConfig,
    TomlValue,
    build_config,
    default_config_text,
)

PRESET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")
PLACEHOLDER_TRADER = "PRESET-CHECK"


@dataclass(frozen=True, slots=True)
class PresetField:
    """One editable field; ``kind`` says how the page's text turns into a TOML value."""

    section: str
    key: str
    label: str
    kind: str  # "choice" | "int" | "decimal" | "float" | "text"
    choices: tuple[str, ...] = ()

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"


def _f(section: str, key: str, label: str, kind: str, choices: tuple[str, ...] = ()) -> PresetField:
    return PresetField(section, key, label, kind, choices)


PRESET_FIELDS: tuple[PresetField, ...] = (
    _f("service", "mode", "Mode", "choice", tuple(m.value for m in Mode)),
    _f("service", "checkpoint_interval_s", "Checkpoint every (s)", "float"),
    _f("service", "heartbeat_interval_s", "Heartbeat every (s)", "float"),
    _f("instrument", "id", "Instrument", "choice", SUPPORTED_INSTRUMENTS),
    _f("account", "starting_balance", "Starting balance", "decimal"),
    _f("account", "currency", "Currency", "text"),
    _f("account", "leverage", "Account leverage", "decimal"),
    _f("replay", "seed", "Replay seed", "int"),
    _f("replay", "bars", "Replay bars", "int"),
    _f("replay", "bar_minutes", "Bar minutes", "int"),
    _f("replay", "speed", "Replay speed (x real time, 0 = max)", "float"),
    _f("strategy", "name", "Strategy", "choice", ("ema_cross",)),
    _f("strategy", "fast_period", "Fast EMA period", "int"),
    _f("strategy", "slow_period", "Slow EMA period", "int"),
    _f("strategy", "ladder_orders", "Ladder orders", "int"),
    _f("strategy", "ladder_step_pct", "Ladder step (fraction)", "decimal"),
    _f("sizing", "method", "Sizing method", "choice", tuple(m.value for m in SizingMethod)),
    _f("sizing", "stop_loss_pct", "Stop loss (fraction)", "decimal"),
    _f("sizing", "win_rate", "Kelly win rate", "decimal"),
    _f("sizing", "payoff_ratio", "Kelly payoff ratio", "decimal"),
    _f("sizing", "kelly_fraction", "Kelly fraction", "decimal"),
    _f("sizing", "atr_period", "ATR period", "int"),
    _f("sizing", "atr_multiplier", "ATR multiplier", "decimal"),
    _f("risk", "risk_per_trade", "Risk per trade (fraction)", "decimal"),
    _f("risk", "max_leverage", "Max leverage", "decimal"),
    _f("risk", "max_drawdown_pct", "Max drawdown (%)", "decimal"),
    _f("risk", "daily_loss_limit_pct", "Daily loss limit (%)", "decimal"),
    _f("breakers", "max_consecutive_rejects", "Halt after consecutive rejects", "int"),
    _f("breakers", "max_errors", "Halt after errors in window", "int"),
    _f("breakers", "error_window_s", "Error window (s)", "float"),
)
FIELDS_BY_PATH = {f.path: f for f in PRESET_FIELDS}
_SETTINGS_DEFAULTS: dict[str, object] = {
    "sizing": SizingSettings(),
    "strategy": StrategySettings(),
    "risk": RiskLimits(),
    "breakers": BreakerSettings(),
}


def from_text(field: PresetField, text: str) -> PresetValue:
    """The page's text as a TOML value; text that is not a number stays text, so the
    loader reports it against the field instead of the page guessing."""
    raw = text.strip()
    if field.kind == "int":
        try:
            return int(raw)
        except ValueError:
            return raw
    if field.kind == "float":
        try:
            return float(raw)
        except ValueError:
            return raw
    return raw


def default_preset() -> PresetBody:
    """The bundled example's values for every preset field; a field the example leaves
    out (the kelly and atr parameters) gets its settings class's default."""
    data = tomllib.loads(default_config_text())
    body: PresetBody = {}
    for f in PRESET_FIELDS:
        section = data.get(f.section, {})
        value = section.get(f.key) if isinstance(section, dict) else None
        if not isinstance(value, str | int | float | bool):
            value = _settings_default(f)
        if value is not None:
            body.setdefault(f.section, {})[f.key] = value
    return body


def _settings_default(f: PresetField) -> PresetValue | None:
    settings = _SETTINGS_DEFAULTS.get(f.section)
    value: object = getattr(settings, f.key, None)
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)  # TOML has no decimal: the loader parses the string exactly
    return value if isinstance(value, str | int | float | bool) else None


def _compose(body: PresetBody, service: Mapping[str, TomlValue]) -> dict[str, TomlValue]:
    data: dict[str, TomlValue] = {}
    for section, values in body.items():
        data[section] = dict(values)
    merged: dict[str, TomlValue] = dict(body.get("service", {}))
    merged.update(service)
    data["service"] = merged
    return data


def validate_preset(name: str, body: PresetBody, env: Mapping[str, str]) -> ServiceConfig:
    """The config a session of this preset would run, or ``ConfigError`` naming each field."""
    problems: list[str] = []
    if not PRESET_NAME.match(name):
        problems.append(
            f"name: {name!r} is not valid: a letter, then up to 23 letters, digits or _"
        )
    for section, values in body.items():
        for key in values:
            path = f"{section}.{key}"
            if path in FIELDS_BY_PATH:
                continue
            if section in SCHEMA and key in SCHEMA[section]:
                problems.append(f"{path}: set per session or per service, not in a preset")
            else:
                problems.append(f"{path}: unknown preset field")
    try:
        config = build_config(
            _compose(body, {"trader_id": PLACEHOLDER_TRADER}), f"preset {name!r}", env
        )
    except ConfigError as exc:
        problems.extend(exc.problems)
        config = None
    if problems or config is None:
        raise ConfigError(f"preset {name!r}", problems)
    return config


def _toml_value(value: PresetValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def session_config_text(name: str, body: PresetBody, trader_id: str, db_path: Path) -> str:
    """The config file a launched session runs with (no secrets: those stay in the env)."""
    data = _compose(body, {"trader_id": trader_id, "db_path": str(db_path)})
    lines = [
        f"# Session {trader_id}, launched by the dashboard from preset {name!r}",
        f"# at {datetime.now(UTC).isoformat(timespec='seconds')}. Secrets come from the",
        "# service's environment and are never written here.",
    ]
    for section, values in data.items():
        if not isinstance(values, dict):
            continue
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            if isinstance(value, str | int | float | bool):
                lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
