"""TOML -> ``ServiceConfig``, with every problem reported at once, each naming its field.

The fields, types, defaults and bounds are declared once, in ``protocol.settings``;
this module only reads a file against them. Each section is validated on its own, so
a bad value in one does not hide the problems of another; rules that join sections
(or the environment) run on the sections that validated. Pydantic's error types are
worded here the way an operator reads them (``risk.risk_per_trade: must be <= 0.1,
got 0.9``). Secrets are never read from the file: only their environment variables'
names appear here, never their values.
"""

from __future__ import annotations

import enum
import json
import os
import re
import subprocess
import sys
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from protocol import (
    SUPPORTED_INSTRUMENTS,
    Config,
    InstrumentSpec,
    Mode,
    NodeSettings,
    RecordedSettings,
    StrategyEntry,
    TelegramSettings,
    file_sha256,
    traded_instruments,
)

type TomlValue = str | int | float | bool | list[TomlValue] | dict[str, TomlValue]

DEFAULT_CONFIG_NAME = "default.toml"
TESTNET_KEY_ENV = ("BINANCE_FUTURES_TESTNET_API_KEY", "BINANCE_FUTURES_TESTNET_API_SECRET")
TELEGRAM_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"  # noqa: S105 (the name of the variable)
TELEGRAM_CHATS_ENV = "TELEGRAM_CHAT_IDS"
FROM_ENVIRONMENT = {("telegram", "chat_ids"): TELEGRAM_CHATS_ENV}
STRATEGIES = "strategies"  # the lists of tables: [[strategies]], [[instruments]]
INSTRUMENTS = "instruments"
TABLE_ARRAYS: dict[str, type[BaseModel]] = {STRATEGIES: StrategyEntry, INSTRUMENTS: InstrumentSpec}
STRATEGY_CHECK_TIMEOUT_S = 120.0


class ConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """A validated config: the file's settings, where they came from, and whether
    Telegram is on (a token in the environment; the chat ids are in the settings)."""

    settings: Config
    source: str = "<defaults>"
    telegram_on: bool = False

    @property
    def db_path(self) -> Path:
        return self.settings.service.db_path

    @property
    def node(self) -> NodeSettings:
        return NodeSettings.of(self.settings)

    @property
    def telegram(self) -> TelegramSettings | None:
        return self.settings.telegram if self.telegram_on else None

    def recorded(self) -> str:
        """The settings as a run records them (``protocol.RecordedSettings``)."""
        settings = self.settings
        replay = settings.replay
        digest = None
        if replay.source == "file" and replay.path is not None:
            path = replay.path.resolve()
            replay = replay.model_copy(update={"path": path})
            digest = file_sha256(path)
        telegram = settings.telegram.model_copy(update={"chat_ids": ()})
        kept = settings.model_copy(update={"replay": replay, "telegram": telegram})
        recording = self.node.recording_path
        return RecordedSettings(
            config=kept,
            replay_sha256=digest,
            recording=recording.resolve() if recording is not None else None,
        ).model_dump_json()

    def with_db(self, path: Path) -> ServiceConfig:
        """``--db``: the same config with another database file."""
        service = self.settings.service.model_copy(update={"db_path": path})
        return replace(self, settings=self.settings.model_copy(update={"service": service}))


def build_config(
    data: Mapping[str, TomlValue],
    source: str,
    env: Mapping[str, str],
    import_strategies: bool = True,
) -> ServiceConfig:
    """Validate already-parsed TOML (a file, or a preset composed into one).
    ``import_strategies=False``: the entries are not imported (``status``, ``halt``: an
    operator's command needs the database, not the trader's code on its path)."""
    problems: list[str] = []
    sections: dict[str, BaseModel | tuple[BaseModel, ...]] = {}
    for name, body in data.items():
        field = Config.model_fields.get(name)
        if field is None:
            known = ", ".join(Config.model_fields)
            problems.append(f"[{name}]: unknown section (known: {known})")
            continue
        if name in TABLE_ARRAYS:
            entries = _table_array(name, body, problems)
            if entries is not None:
                sections[name] = entries
            continue
        if not isinstance(body, dict):
            problems.append(f"[{name}]: must be a table")
            continue
        model = _section_model(name)
        for key in body:
            if (name, key) in FROM_ENVIRONMENT:
                problems.append(
                    f"{name}.{key}: comes from the environment ({FROM_ENVIRONMENT[name, key]}), "
                    "not from the file"
                )
        try:
            sections[name] = model.model_validate(
                {k: v for k, v in body.items() if (name, k) not in FROM_ENVIRONMENT}
            )
        except ValidationError as exc:
            problems.extend(_problem(name, model, error) for error in exc.errors())
    settings = Config.model_construct(**{**dict(Config()), **sections})
    failed = {name for name in data if name not in sections}
    problems.extend(_across_sections(settings, failed, env))
    if (
        import_strategies
        and settings.strategies
        and not failed
        & {
            STRATEGIES,
            INSTRUMENTS,
            "instrument",
            "replay",
            "service",
        }
    ):
        problems.extend(strategy_problems(settings))
    chats = _chat_ids(env, problems)
    token = env.get(TELEGRAM_TOKEN_ENV, "")
    if token:
        if ":" not in token:
            problems.append(f"{TELEGRAM_TOKEN_ENV} does not look like a bot token (no ':')")
        if not chats:
            problems.append(
                f"{TELEGRAM_TOKEN_ENV} is set but {TELEGRAM_CHATS_ENV} lists no chat id to alert"
            )
    if problems:
        raise ConfigError(source, problems)
    telegram = settings.telegram.model_copy(update={"chat_ids": tuple(chats)})
    return ServiceConfig(
        settings=Config.model_validate({**dict(settings), "telegram": telegram}),
        source=source,
        telegram_on=bool(token),
    )


def _table_array(name: str, body: TomlValue, problems: list[str]) -> tuple[BaseModel, ...] | None:
    """``[[strategies]]``, ``[[instruments]]``: each entry validated on its own, errors
    named by index."""
    if not isinstance(body, list) or not all(isinstance(e, dict) for e in body):
        problems.append(f"{name}: must be an array of tables ([[{name}]])")
        return None
    model = TABLE_ARRAYS[name]
    entries: list[BaseModel] = []
    for i, entry in enumerate(body):
        try:
            entries.append(model.model_validate(entry))
        except ValidationError as exc:
            problems.extend(_problem(f"{name}[{i}]", model, error) for error in exc.errors())
    return tuple(entries) if len(entries) == len(body) else None


def strategy_problems(settings: Config) -> list[str]:
    """The entries checked where they will run: imported, typed, their configs parsed,
    their ids unique (``node.strategies``)."""
    return check_strategy_entries(
        settings.strategies,
        settings.instrument.id,
        settings.replay.bar_minutes,
        settings.service.mode,
    )


def check_strategy_entries(
    entries: tuple[StrategyEntry, ...],
    instrument_id: str | None,
    bar_minutes: int = 1,
    mode: Mode = Mode.REPLAY,
) -> list[str]:
    """``node.strategies``'s check, in a child process, because importing the entries
    imports NautilusTrader, which the supervisor's process never holds (467 MB). With
    no ``instrument_id``, only the entries themselves are checked (the registry's)."""
    request = {
        "entries": [e.model_dump(mode="json") for e in entries],
        "instrument_id": instrument_id,
        "bar_minutes": bar_minutes,
        "mode": mode.value,
    }
    try:
        done = subprocess.run(
            [sys.executable, "-m", "node.strategies"],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=STRATEGY_CHECK_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"{STRATEGIES}: could not be checked: {exc}"]
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-1:] or [f"exit code {done.returncode}"]
        return [f"{STRATEGIES}: could not be checked: {tail[0]}"]
    found = json.loads(lines[-1])
    assert isinstance(found, list)
    return [str(p) for p in found]


def validation_problems(prefix: str, model: type[BaseModel], exc: ValidationError) -> list[str]:
    """Each pydantic error of ``exc`` in the loader's words, its field path under
    ``prefix``."""
    return [_problem(prefix, model, error) for error in exc.errors()]


def _section_model(name: str) -> type[BaseModel]:
    annotation = Config.model_fields[name].annotation
    assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation


def _across_sections(settings: Config, failed: set[str], env: Mapping[str, str]) -> list[str]:
    """Rules that join sections, checked where the sections they need are valid."""
    problems: list[str] = []
    if not failed & {"risk", "account"} and settings.risk.max_leverage > settings.account.leverage:
        problems.append(
            f"risk.max_leverage ({settings.risk.max_leverage}) exceeds account.leverage "
            f"({settings.account.leverage})"
        )
    if not failed & {STRATEGIES, INSTRUMENTS, "instrument", "replay", "service"}:
        problems.extend(_instrument_problems(settings))
    if not failed & {STRATEGIES, "account"}:
        problems.extend(_capital_problems(settings))
    if "service" not in failed and settings.service.mode is Mode.BINANCE_TESTNET:
        problems.extend(
            f"service.mode = binance-testnet needs environment variable {name}"
            for name in TESTNET_KEY_ENV
            if not env.get(name)
        )
    return problems


def _capital_problems(settings: Config) -> list[str]:
    """The strategies' capital is the account's, shared out: not more than it holds, and
    something left for each entry that states none."""
    balance = settings.account.starting_balance
    stated = [e.capital for e in settings.strategies if e.capital is not None]
    given = sum(stated, Decimal(0))
    if given > balance:
        return [
            f"{STRATEGIES}: their capital adds up to {given}, more than account."
            f"starting_balance ({balance})"
        ]
    unstated = len(settings.strategies) - len(stated)
    if unstated and given >= balance:
        return [
            f"{STRATEGIES}: {unstated} entr(y/ies) state no capital, but the others take all "
            f"of account.starting_balance ({balance})"
        ]
    return []


def _instrument_problems(settings: Config) -> list[str]:
    """Each instrument defined once; in a replay, every traded one defined (bundled or
    ``[[instruments]]``) and, from files, each with its file. The Binance modes take
    definitions from the venue."""
    problems: list[str] = []
    seen: dict[str, int] = {}
    for i, defined in enumerate(settings.instruments):
        if defined.id in seen:
            first = seen[defined.id]
            problems.append(f"{INSTRUMENTS}[{i}].id: {defined.id} is also {INSTRUMENTS}[{first}]'s")
        seen.setdefault(defined.id, i)
    if settings.service.mode is not Mode.REPLAY:
        return problems
    traded = traded_instruments(settings.instrument.id, settings.strategies)
    specs = {s.id: s for s in reversed(settings.instruments)}  # the first one counts
    for index, instrument_id in enumerate(traded):
        spec = specs.get(instrument_id)
        if instrument_id not in SUPPORTED_INSTRUMENTS and (spec is None or not spec.defined):
            problems.append(
                f"{INSTRUMENTS}: {instrument_id} is traded but not defined: give its "
                f"tick_size, step_size, margin_init, margin_maint, maker_fee and taker_fee "
                f"in an [[{INSTRUMENTS}]] entry (bundled: {', '.join(SUPPORTED_INSTRUMENTS)})"
            )
        if (
            index > 0
            and settings.replay.source == "file"
            and (spec is None or spec.replay_path is None)
        ):
            problems.append(
                f"{INSTRUMENTS}: {instrument_id} is traded in a replay from files: give its "
                f"OHLCV file as replay_path in an [[{INSTRUMENTS}]] entry"
            )
    return problems


def _chat_ids(env: Mapping[str, str], problems: list[str]) -> list[int]:
    chat_ids: list[int] = []
    for part in (p.strip() for p in env.get(TELEGRAM_CHATS_ENV, "").split(",")):
        if not part:
            continue
        try:
            chat_ids.append(int(part))
        except ValueError:
            problems.append(f"{TELEGRAM_CHATS_ENV}: {part!r} is not a numeric chat id")
    return chat_ids


_FIELD_PREFIX = re.compile(r"^(\w+): (.*)$", re.DOTALL)


def _problem(section: str, model: type[BaseModel], error: ErrorDetails) -> str:
    """One pydantic error in the operator's words, with its field path."""
    loc = [str(part) for part in error["loc"]]
    kind, given, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    field = model.model_fields.get(loc[0]) if loc else None
    if kind == "value_error":
        text = str(ctx.get("error", error["msg"]))
        match = _FIELD_PREFIX.match(text)
        if not loc and match and match.group(1) in model.model_fields:
            return f"{section}.{match.group(1)}: {match.group(2)}"
    elif kind == "extra_forbidden":
        text = f"unknown key (known: {', '.join(_model_at(model, loc[:-1]).model_fields)})"
    elif kind in ("literal_error", "enum"):
        choices = choices_of(field.annotation) if field is not None else ()
        text = f"{given!r} is not one of {', '.join(choices)}"
    elif kind in _BOUNDS:
        word, key = _BOUNDS[kind]
        text = f"must be {word} {ctx[key]}, got {given}"
    elif kind.startswith("int_"):
        text = f"expected an integer, got {given!r}"
    elif kind.startswith(("float_", "decimal_")):
        text = f"expected a number, got {given!r}"
    elif kind == "finite_number":
        text = f"expected a finite number, got {given!r}"
    elif kind.startswith("bool_"):
        text = f"expected true or false, got {given!r}"
    elif kind == "string_pattern_mismatch":
        hint = field.description if field is not None and field.description else "not valid"
        text = f"{given!r} is not valid: {hint}"
    else:
        text = error["msg"]
    return f"{'.'.join([section, *loc])}: {text}" if loc else f"{section}: {text}"


def _model_at(model: type[BaseModel], path: list[str]) -> type[BaseModel]:
    """The nested model a field path leads to (``metrics`` of a registry entry)."""
    for name in path:
        field = model.model_fields.get(name)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return model


_BOUNDS = {
    "greater_than": (">", "gt"),
    "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"),
    "less_than_equal": ("<=", "le"),
}


def choices_of(annotation: object) -> tuple[str, ...]:
    """The values a Literal or an enum field (possibly Annotated) allows."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) is typing.Literal:
        return tuple(str(v) for v in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return tuple(str(m.value) for m in annotation)
    return ()


def schema() -> dict[str, object]:
    """The config file's JSON Schema (``config schema``), from the same declarations."""
    return Config.model_json_schema()


def example_text() -> str:
    """Every section and key with its default and description, as a TOML file
    (``config example``): the declarations, written out."""
    lines = ["# Every setting with its default (paper-node config example)."]
    for name in Config.model_fields:
        if name in TABLE_ARRAYS:
            lines.extend(_table_array_example(name))
            continue
        model = _section_model(name)
        lines.append(f"\n[{name}]")
        for key, field in model.model_fields.items():
            if (name, key) in FROM_ENVIRONMENT:
                lines.append(f"# {key}: from {FROM_ENVIRONMENT[name, key]}, not the file")
                continue
            value = _toml(field.default)
            note = f"  # {field.description}" if field.description else ""
            lines.append(f"{key} = {value}{note}" if value else f"# {key} ={note}")
    return "\n".join(lines) + "\n"


TABLE_ARRAY_NOTES = {
    STRATEGIES: "Your own strategies by import path (none: the bundled EMA cross of [strategy]).",
    INSTRUMENTS: "Instruments a replay has no definition of, and their replay data.",
}


def _table_array_example(name: str) -> list[str]:
    fields = TABLE_ARRAYS[name].model_fields
    return [
        f"\n# {TABLE_ARRAY_NOTES[name]}",
        f"# [[{name}]]",
        *(f"# {key} = ...  # {field.description}" for key, field in fields.items()),
    ]


def _toml(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))  # Decimal and Path as strings: exact, and valid TOML


def default_config_text() -> str:
    return resources.files("supervisor").joinpath(DEFAULT_CONFIG_NAME).read_text()


def parse_config(
    text: str,
    source: str,
    env: Mapping[str, str] | None = None,
    import_strategies: bool = True,
) -> ServiceConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return build_config(data, source, os.environ if env is None else env, import_strategies)


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    import_strategies: bool = True,
) -> ServiceConfig:
    """Load ``path``, or the bundled offline replay example when ``path`` is None."""
    if path is None:
        bundled = f"<bundled {DEFAULT_CONFIG_NAME}>"
        return parse_config(default_config_text(), bundled, env, import_strategies)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read config file: {exc.strerror}"]) from None
    return parse_config(text, str(path), env, import_strategies)
