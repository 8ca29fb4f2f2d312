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
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from protocol import (
    SUPPORTED_INSTRUMENTS,
    TELEGRAM_CHATS_ENV,
    TELEGRAM_TOKEN_ENV,
    TESTNET_KEY_ENV,
    Config,
    InstrumentSpec,
    Mode,
    NodeSettings,
    RecordedSettings,
    StrategyEntry,
    TelegramSettings,
    child_environment,
    file_sha256,
    traded_instruments,
)
from supervisor.endpoints import LIVE_REST, TESTNET_REST, url_problems

type TomlValue = str | int | float | bool | list[TomlValue] | dict[str, TomlValue]

DEFAULT_CONFIG_NAME = "default.toml"
MAX_CONFIG_BYTES = 1024 * 1024  # a config is a few KiB; a bigger file is a mistake
TELEGRAM_USERS_ENV = "TELEGRAM_USER_IDS"
FROM_ENVIRONMENT = {
    ("telegram", "chat_ids"): TELEGRAM_CHATS_ENV,
    ("telegram", "user_ids"): TELEGRAM_USERS_ENV,
}
STRATEGIES = "strategies"  # the lists of tables: [[strategies]], [[instruments]]
INSTRUMENTS = "instruments"
TABLE_ARRAYS: dict[str, type[BaseModel]] = {STRATEGIES: StrategyEntry, INSTRUMENTS: InstrumentSpec}
STRATEGY_CHECK_TIMEOUT_S = 120.0
VENUE_CHECK_TIMEOUT_S = 5.0
EXCHANGE_INFO = "/fapi/v1/exchangeInfo"
# The adapter's REST URL for each Binance mode when [binance] base_url_http is unset
# (written out in ``supervisor.endpoints``: the supervisor never imports NautilusTrader).
VENUE_REST = {Mode.BINANCE_TESTNET: TESTNET_REST, Mode.BINANCE_SANDBOX: LIVE_REST}
# The contract types NautilusTrader's Binance provider makes a perpetual of (``-PERP``).
PERPETUALS = frozenset({"PERPETUAL", "PERPETUAL_DELIVERING", "TRADIFI_PERPETUAL"})


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
        telegram = settings.telegram.model_copy(update={"chat_ids": (), "user_ids": ()})
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
    ask_venue: bool = False,
) -> ServiceConfig:
    """Validate already-parsed TOML (a file, or a preset composed into one).
    ``import_strategies=False``: the entries are not imported (``status``, ``halt``: an
    operator's command needs the database, not the trader's code on its path).
    ``ask_venue``: a Binance mode's instruments are checked against the venue's exchange
    info (``venue_problems``: ``run`` and ``config check``)."""
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
    if (
        ask_venue
        and not failed & {STRATEGIES, "instrument", "service", "binance"}
        and not any(p.startswith((STRATEGIES, "binance.")) for p in problems)
    ):
        # Asked about entries that checked clean (each names what it will trade); a
        # file with broken entries gets their problems without a round trip, and one
        # whose endpoint the mode refuses (``url_problems``) sends nothing there.
        problems.extend(venue_problems(settings))
    chats = _env_ids(TELEGRAM_CHATS_ENV, "chat", env, problems)
    users = _env_ids(TELEGRAM_USERS_ENV, "user", env, problems)
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
    telegram = settings.telegram.model_copy(
        update={"chat_ids": tuple(chats), "user_ids": tuple(users)}
    )
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
            env=child_environment(os.environ),  # importing strategy code: no secret
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


class VenueUnreachable(Exception):
    """The venue's exchange info could not be read."""


def venue_problems(settings: Config, timeout_s: float = VENUE_CHECK_TIMEOUT_S) -> list[str]:
    """Every instrument a Binance mode would trade that the venue does not list (or does
    not trade), each naming where the config names it: ``instrument.id``, or the
    ``[[strategies]]`` entry's ``config.instrument_id``. The node loads each one from the
    same exchange info at connect (``node.venues``); one the venue lacks gave its
    strategy no instrument and nothing failed loudly.

    A venue that cannot be asked (``GET {base_url_http}/fapi/v1/exchangeInfo``, public,
    within ``timeout_s``) is a problem too, not a warning: without its answer the loader
    cannot tell, and a Binance session cannot run without that venue anyway - its node
    connects to the same host, and loads every instrument from the same endpoint, before
    it trades - so refusing costs no session that could have traded, while a warning
    would start one that may trade nothing. ``run`` exits 2 with the reason; under
    systemd (``Restart=on-failure``) it is started again once the venue answers."""
    mode = settings.service.mode
    if mode not in VENUE_REST:
        return []
    base = settings.binance.base_url_http or VENUE_REST[mode]
    url = base.rstrip("/") + EXCHANGE_INFO
    try:
        symbols = _exchange_symbols(url, timeout_s)
    except VenueUnreachable as exc:
        return [
            f"binance: cannot check the instruments with the venue (GET {url}): {exc}; "
            f"a {mode.value} session needs the venue to start"
        ]
    problems: list[str] = []
    named = [("instrument.id", settings.instrument.id)] + [
        (f"{STRATEGIES}[{i}].config.instrument_id", iid)
        for i, entry in enumerate(settings.strategies)
        if isinstance(iid := entry.config.get("instrument_id"), str)
    ]
    for where, instrument_id in named:
        problem = _unlisted(instrument_id, symbols)
        if problem is not None:
            problems.append(f"{where}: {instrument_id}: {problem} (GET {url})")
    return problems


def _exchange_symbols(url: str, timeout_s: float) -> dict[str, tuple[str, str]]:
    """The venue's symbols: each one's contract type and status."""
    # http(s) only: ``base_url_http`` is validated as one ([binance]).
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as reply:  # noqa: S310
            body = json.loads(reply.read())
    except urllib.error.HTTPError as exc:
        raise VenueUnreachable(f"HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise VenueUnreachable(str(exc.reason)) from None
    except (OSError, ValueError) as exc:  # a timeout, a reset, a reply that is no JSON
        raise VenueUnreachable(f"{type(exc).__name__}: {exc}") from None
    listed = body.get("symbols") if isinstance(body, dict) else None
    if not isinstance(listed, list):
        raise VenueUnreachable("the reply lists no symbols")
    return {
        str(s["symbol"]): (str(s.get("contractType", "")), str(s.get("status", "")))
        for s in listed
        if isinstance(s, dict) and "symbol" in s
    }


def _unlisted(instrument_id: str, symbols: Mapping[str, tuple[str, str]]) -> str | None:
    """Why the venue cannot give ``instrument_id`` (None: it can). A ``-PERP`` id is a
    perpetual of its symbol, as NautilusTrader's Binance provider names them."""
    symbol, _, venue = instrument_id.rpartition(".")
    if venue != "BINANCE":
        return f"not an instrument of Binance (venue {venue or 'none'})"
    perpetual = symbol.endswith("-PERP")
    found = symbols.get(symbol.removesuffix("-PERP"))
    if found is None:
        return "the venue does not list it"
    contract, status = found
    if perpetual and contract not in PERPETUALS:
        return f"not a perpetual: the venue's {symbol.removesuffix('-PERP')} is {contract or '?'}"
    if status != "TRADING":
        return f"the venue lists it as {status or 'no status'}, not trading"
    return None


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
    if not failed & {"service", "binance"}:
        problems.extend(url_problems(settings.service.mode, settings.binance))
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


def _env_ids(name: str, what: str, env: Mapping[str, str], problems: list[str]) -> list[int]:
    """``TELEGRAM_CHAT_IDS``, ``TELEGRAM_USER_IDS``: comma-separated numeric ids."""
    ids: list[int] = []
    for part in (p.strip() for p in env.get(name, "").split(",")):
        if not part:
            continue
        if not re.fullmatch(r"-?[0-9]{1,19}", part):  # Telegram's ids fit 64 bits
            problems.append(f"{name}: {part[:24]!r} is not a numeric {what} id")
            continue
        ids.append(int(part))
    return ids


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
    if isinstance(value, tuple):  # a TOML array
        return f"[{', '.join(_toml(item) for item in value)}]"
    return json.dumps(str(value))  # Decimal and Path as strings: exact, and valid TOML


def default_config_text() -> str:
    return resources.files("supervisor").joinpath(DEFAULT_CONFIG_NAME).read_text()


def parse_config(
    text: str,
    source: str,
    env: Mapping[str, str] | None = None,
    import_strategies: bool = True,
    ask_venue: bool = False,
) -> ServiceConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    except ValueError as exc:  # an integer past Python's 4,300-digit conversion limit
        raise ConfigError(source, [f"not a usable TOML file: {exc}"]) from None
    except RecursionError:
        raise ConfigError(source, ["not a usable TOML file: nested too deeply"]) from None
    environment = os.environ if env is None else env
    return build_config(data, source, environment, import_strategies, ask_venue)


def load_config(
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    import_strategies: bool = True,
    ask_venue: bool = False,
) -> ServiceConfig:
    """Load ``path``, or the bundled offline replay example when ``path`` is None.
    ``ask_venue``: check a Binance mode's instruments with the venue (``run``, ``config
    check``; not a SIGHUP reload, which changes no instrument)."""
    if path is None:
        bundled = f"<bundled {DEFAULT_CONFIG_NAME}>"
        return parse_config(default_config_text(), bundled, env, import_strategies, ask_venue)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read config file: {exc.strerror}"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(str(path), [f"larger than {MAX_CONFIG_BYTES // 1024} KiB: not a config"])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            str(path), [f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at offset {exc.start}"]
        ) from None
    return parse_config(text, str(path), env, import_strategies, ask_venue)
