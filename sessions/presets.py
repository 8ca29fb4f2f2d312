"""Session presets: which config fields a preset holds, how it is validated and rendered.

A preset is the part of a config file an operator varies between sessions
(strategy, instrument, mode, sizing, risk, breakers). It is validated by the very
loader that checks config files, composed with a placeholder trader id, so a
preset that saves is a session that starts, and every problem names its field
(``sizing.stop_loss_pct: must be > 0, got 0``). Secrets are never part of a
preset: a session reads them from its own environment.

A session may also run strategies by import path (a registered strategy's entry):
they are validated with the preset, by the same loader that imports and checks a
config file's ``[[strategies]]``, and written into the session's config as such.
"""

from __future__ import annotations

import enum
import json
import re
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from protocol import Config, StrategyEntry
from storage import PresetBody, PresetValue
from supervisor.config import (
    STRATEGIES,
    ConfigError,
    ServiceConfig,
    TomlValue,
    build_config,
    choices_of,
    default_config_text,
)

PRESET_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,23}$")
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
PLACEHOLDER_TRADER = "PRESET-CHECK"

# Which settings an operator varies between sessions. Everything about each field -
# type, default, bounds, choices, description - comes from its declaration in
# ``protocol.settings``; only the choice of fields is made here.
PRESET_PATHS: tuple[str, ...] = (
    "service.mode",
    "service.checkpoint_interval_s",
    "service.heartbeat_interval_s",
    "instrument.id",
    "account.starting_balance",
    "account.currency",
    "account.leverage",
    "replay.seed",
    "replay.bars",
    "replay.bar_minutes",
    "replay.speed",
    "strategy.name",
    "strategy.fast_period",
    "strategy.slow_period",
    "strategy.ladder_orders",
    "strategy.ladder_step_pct",
    "sizing.method",
    "sizing.stop_loss_pct",
    "sizing.win_rate",
    "sizing.payoff_ratio",
    "sizing.kelly_fraction",
    "sizing.atr_period",
    "sizing.atr_multiplier",
    "risk.risk_per_trade",
    "risk.max_leverage",
    "risk.max_drawdown_pct",
    "risk.daily_loss_limit_pct",
    "risk.max_notional_per_order",
    "risk.leverage_limit",
    "breakers.max_consecutive_rejects",
    "breakers.max_errors",
    "breakers.error_window_s",
)


@dataclass(frozen=True, slots=True)
class PresetField:
    """One editable field, as the page draws it; ``kind`` says how its text becomes a
    TOML value. Built from the field's declaration (``preset_field``)."""

    section: str
    key: str
    help: str  # the field's description
    kind: str  # "choice" | "int" | "decimal" | "float" | "text"
    choices: tuple[str, ...] = ()
    default: PresetValue | None = None
    optional: bool = False  # None is a value (no such limit): an empty field leaves it out

    @property
    def label(self) -> str:
        """The field's name as the config file spells it: what an operator types."""
        return self.key

    @property
    def path(self) -> str:
        return f"{self.section}.{self.key}"


def _section(name: str) -> type[BaseModel]:
    model = _model_of(name)
    assert model is not None, name
    return model


def _model_of(name: str) -> type[BaseModel] | None:
    """A ``[section]``'s model; None for an unknown name or ``[[strategies]]`` (a list:
    not a preset field)."""
    field = Config.model_fields.get(name)
    annotation = field.annotation if field is not None else None
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def preset_field(path: str) -> PresetField:
    section, key = path.split(".")
    declared = _section(section).model_fields[key]
    annotation: object = declared.annotation
    args = typing.get_args(annotation)
    optional = isinstance(annotation, types.UnionType) and type(None) in args
    if optional:  # ``Decimal | None``: the field's kind is its other member's
        annotation = next(a for a in args if a is not type(None))
    choices = choices_of(annotation)
    kind = (
        "choice"
        if choices
        else "int"
        if annotation is int
        else "decimal"
        if annotation is Decimal
        else "float"
        if annotation is float
        else "text"
    )
    return PresetField(
        section,
        key,
        declared.description or "",
        kind,
        choices,
        _toml_default(declared.default),
        optional,
    )


def _toml_default(value: object) -> PresetValue | None:
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, Decimal):
        return str(value)  # TOML has no decimal: the loader parses the string exactly
    return value if isinstance(value, str | int | float | bool) else None


PRESET_FIELDS: tuple[PresetField, ...] = tuple(preset_field(path) for path in PRESET_PATHS)
FIELDS_BY_PATH = {f.path: f for f in PRESET_FIELDS}


def from_text(field: PresetField, text: str) -> PresetValue | None:
    """The page's text as a TOML value; text that is not a number stays text, so the
    loader reports it against the field instead of the page guessing. An optional
    field left empty is None: not in the preset (no such limit)."""
    raw = text.strip()
    if field.optional and not raw:
        return None
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
    out (the kelly and atr parameters) gets its declared default."""
    data = tomllib.loads(default_config_text())
    body: PresetBody = {}
    for f in PRESET_FIELDS:
        section = data.get(f.section, {})
        value = section.get(f.key) if isinstance(section, dict) else None
        if not isinstance(value, str | int | float | bool):
            value = f.default
        if value is not None:
            body.setdefault(f.section, {})[f.key] = value
    return body


def _compose(
    body: PresetBody, service: Mapping[str, TomlValue], strategies: Sequence[TomlValue] = ()
) -> dict[str, TomlValue]:
    data: dict[str, TomlValue] = {}
    for section, values in body.items():
        data[section] = dict(values)
    merged: dict[str, TomlValue] = dict(body.get("service", {}))
    merged.update(service)
    data["service"] = merged
    if strategies:
        data[STRATEGIES] = list(strategies)
    return data


def _toml_data(value: object, path: str, problems: list[str]) -> TomlValue | None:
    """A JSON value of a strategy's config as TOML data. TOML has no null: a null is a
    problem naming its field (and is left out, so the loader does not report it again)."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list):
        items = (_toml_data(v, f"{path}[{i}]", problems) for i, v in enumerate(value))
        return [v for v in items if v is not None]
    if isinstance(value, dict):
        pairs = ((str(k), _toml_data(v, f"{path}.{k}", problems)) for k, v in value.items())
        return {k: v for k, v in pairs if v is not None}
    problems.append(
        f"{path}: {'null' if value is None else type(value).__name__} cannot be written to "
        "a config file (TOML has no null); leave the field out to take its default"
    )
    return None


def strategy_tables(entries: Sequence[StrategyEntry], problems: list[str]) -> list[TomlValue]:
    """``entries`` as ``[[strategies]]`` tables, each problem added to ``problems``.
    Every field the entry sets is written, from its declaration: a registered entry's
    own limits (``max_notional_per_order``, ``max_leverage``) and ``capital`` were once
    left out, so a session launched from the registry ran without them."""
    tables: list[TomlValue] = []
    for i, entry in enumerate(entries):
        table: dict[str, TomlValue] = {}
        for key, value in entry.model_dump(mode="json", exclude_none=True).items():
            data = _toml_data(value, f"{STRATEGIES}[{i}].{key}", problems)  # Decimal: str
            if data is not None:
                table[key] = data
        table.setdefault("config", {})
        tables.append(table)
    return tables


def validate_preset(
    name: str,
    body: PresetBody,
    env: Mapping[str, str],
    strategies: Sequence[StrategyEntry] = (),
) -> ServiceConfig:
    """The config a session of this preset would run (with ``strategies`` as its
    ``[[strategies]]``, imported and checked where they will run), or ``ConfigError``
    naming each field."""
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
            model = _model_of(section)
            if model is not None and key in model.model_fields:
                problems.append(f"{path}: set per session or per service, not in a preset")
            else:
                problems.append(f"{path}: unknown preset field")
    tables = strategy_tables(strategies, problems)
    try:
        config = build_config(
            _compose(body, {"trader_id": PLACEHOLDER_TRADER}, tables), f"preset {name!r}", env
        )
    except ConfigError as exc:
        problems.extend(exc.problems)
        config = None
    if problems or config is None:
        raise ConfigError(f"preset {name!r}", problems)
    return config


def _toml_key(key: str) -> str:
    return key if BARE_KEY.match(key) else json.dumps(key)


def _toml_value(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)  # also inf, -inf and nan, as TOML spells them
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def session_config_text(
    name: str,
    body: PresetBody,
    trader_id: str,
    db_path: Path,
    strategies: Sequence[StrategyEntry] = (),
    registered: str | None = None,
) -> str:
    """The config file a launched session runs with (no secrets: those stay in the env);
    ``strategies`` are its ``[[strategies]]``, ``registered`` the registry entry they
    come from. Validate first (``validate_preset``): a strategy's config that has no
    TOML form is an ``AssertionError`` here."""
    problems: list[str] = []
    tables = strategy_tables(strategies, problems)
    assert not problems, problems
    data = _compose(body, {"trader_id": trader_id, "db_path": str(db_path)}, tables)
    origin = f"preset {name!r}"
    if registered is not None:
        origin = f"registered strategy {registered!r} with {origin}"
    lines = [
        f"# Session {trader_id}, launched by the dashboard from {origin}",
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
    for table in tables:  # after every [section]: the keys below a [[table]] are its own
        assert isinstance(table, dict)
        lines.append(f"\n[[{STRATEGIES}]]")
        lines.extend(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"
