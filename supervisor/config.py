"""TOML config -> frozen, typed ``ServiceConfig``, with every problem reported at once.

Validation happens at load time, before anything starts: unknown sections and keys,
values out of bounds, a sizing method that does not exist, missing environment
secrets for the chosen mode. ``ConfigError`` carries the full list, so an operator
fixes a file in one pass. Secrets are never read from the file: only their
environment variable names appear here, never their values.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import TypeVar

from actors.settings import (
    SUPPORTED_INSTRUMENTS,
    BinanceSettings,
    BreakerSettings,
    Mode,
    NodeSettings,
    ReplaySettings,
    RiskLimits,
    SizingMethod,
    SizingSettings,
    StrategySettings,
    TelegramSettings,
)
from supervisor.spec import Escalation, Strategy

T = TypeVar("T")
type TomlValue = str | int | float | bool | list[TomlValue] | dict[str, TomlValue]

DEFAULT_CONFIG_NAME = "default.toml"
TESTNET_KEY_ENV = ("BINANCE_FUTURES_TESTNET_API_KEY", "BINANCE_FUTURES_TESTNET_API_SECRET")
TELEGRAM_TOKEN_ENV = "TELEGRAM_BOT_TOKEN"  # noqa: S105 (the name of the variable)
TELEGRAM_CHATS_ENV = "TELEGRAM_CHAT_IDS"
TRADER_ID = re.compile(r"^[A-Za-z0-9_]+-[A-Za-z0-9_]+$")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
BINANCE_INSTRUMENTS = ("BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE")
URL = re.compile(r"^(https?|wss?)://[^\s]+$")


class ConfigError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = tuple(problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n" + "\n".join(problems))


@dataclass(frozen=True, slots=True)
class SupervisionSettings:
    strategy: Strategy = Strategy.ONE_FOR_ONE
    max_restarts: int = 5
    period_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    escalation: Escalation = Escalation.HALT_AND_STOP


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    node: NodeSettings
    db_path: Path = Path("state/paper.db")
    checkpoint_interval_s: float = 60.0
    heartbeat_interval_s: float = 5.0
    keep_checkpoints: int = 1000
    keep_hourly_h: int = 48
    keep_daily_d: int = 90
    keep_alerts_d: int = 30
    keep_commands_d: int = 30
    keep_events_d: int = 7
    retention_sweep_s: float = 3600.0
    halt_after_failed_intervals: int = 3
    node_hang_timeout_s: float = 15.0
    log_level: str = "INFO"
    log_format: str = "text"
    supervision: SupervisionSettings = field(default_factory=SupervisionSettings)
    breakers: BreakerSettings = field(default_factory=BreakerSettings)
    telegram: TelegramSettings | None = None  # None: no token in the environment
    source: str = "<defaults>"


# ---------------------------------------------------------------- value parsers


def _dec(
    lo: Decimal | None = None, hi: Decimal | None = None, lo_open: bool = True
) -> Callable[[TomlValue], Decimal]:
    def parse(value: TomlValue) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(f"expected a number, got {value!r}")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f"expected a number, got {value!r}") from None
        if not number.is_finite():
            raise ValueError(f"expected a finite number, got {value!r}")
        if lo is not None and (number <= lo if lo_open else number < lo):
            raise ValueError(f"must be {'>' if lo_open else '>='} {lo}, got {number}")
        if hi is not None and number > hi:
            raise ValueError(f"must be <= {hi}, got {number}")
        return number

    return parse


def _float(
    lo: float, hi: float | None = None, lo_open: bool = True
) -> Callable[[TomlValue], float]:
    inner = _dec(Decimal(str(lo)), None if hi is None else Decimal(str(hi)), lo_open)

    def parse(value: TomlValue) -> float:
        return float(inner(value))

    return parse


def _int(lo: int, hi: int | None = None) -> Callable[[TomlValue], int]:
    def parse(value: TomlValue) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        if value < lo or (hi is not None and value > hi):
            bound = f">= {lo}" if hi is None else f"between {lo} and {hi}"
            raise ValueError(f"must be {bound}, got {value}")
        return value

    return parse


def _str(pattern: re.Pattern[str] | None = None, hint: str = "") -> Callable[[TomlValue], str]:
    def parse(value: TomlValue) -> str:
        if not isinstance(value, str) or not value:
            raise ValueError(f"expected a non-empty string, got {value!r}")
        if pattern is not None and not pattern.match(value):
            raise ValueError(f"{value!r} is not valid{': ' + hint if hint else ''}")
        return value

    return parse


def _bool(value: TomlValue) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _choice(choices: tuple[str, ...]) -> Callable[[TomlValue], str]:
    def parse(value: TomlValue) -> str:
        if value not in choices:
            raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
        return str(value)

    return parse


# section -> key -> parser
SCHEMA: dict[str, dict[str, Callable[[TomlValue], object]]] = {
    "service": {
        "trader_id": _str(TRADER_ID, "use NAME-TAG, e.g. PAPER-001"),
        "mode": _choice(tuple(m.value for m in Mode)),
        "db_path": _str(),
        "checkpoint_interval_s": _float(0.0),
        "heartbeat_interval_s": _float(0.0),
        "keep_checkpoints": _int(1),
        "keep_hourly_h": _int(0, 24 * 365),
        "keep_daily_d": _int(0, 3650),
        "keep_alerts_d": _int(1, 3650),
        "keep_events_d": _int(0, 3650),
        "retention_sweep_s": _float(0.0),
        "node_purge_interval_mins": _int(1, 10_000),
        "node_purge_buffer_mins": _int(0, 100_000),
        "keep_commands_d": _int(1, 3650),
        "halt_after_failed_intervals": _int(1, 1000),
        "node_hang_timeout_s": _float(0.0),
        "log_level": _choice(LOG_LEVELS),
        "log_format": _choice(("text", "json")),
        "node_log_level": _choice(LOG_LEVELS),
    },
    "instrument": {"id": _choice(SUPPORTED_INSTRUMENTS)},
    "account": {
        "starting_balance": _dec(Decimal(0)),
        "currency": _str(re.compile(r"^[A-Z]{3,5}$"), "a currency code such as USDT"),
        "leverage": _dec(Decimal(1), Decimal(125), lo_open=False),
    },
    "replay": {
        "source": _choice(("synthetic", "file")),
        "path": _str(),
        "seed": _int(0),
        "bars": _int(1),
        "bar_minutes": _int(1, 1440),
        "speed": _float(0.0, lo_open=False),
        "start_price": _dec(Decimal(0)),
        "volatility": _dec(Decimal(0), Decimal("0.5")),
    },
    "strategy": {
        "name": _choice(("ema_cross",)),
        "fast_period": _int(2),
        "slow_period": _int(3),
        "ladder_orders": _int(0, 20),
        "ladder_step_pct": _dec(Decimal(0), Decimal("0.5")),
    },
    "sizing": {
        "method": _choice(tuple(m.value for m in SizingMethod)),
        "stop_loss_pct": _dec(Decimal(0), Decimal("0.5")),
        "win_rate": _dec(Decimal(0), Decimal("0.99")),
        "payoff_ratio": _dec(Decimal(0)),
        "kelly_fraction": _dec(Decimal(0), Decimal(1)),
        "atr_period": _int(2, 1000),
        "atr_multiplier": _dec(Decimal(0), Decimal(20)),
    },
    "risk": {
        "risk_per_trade": _dec(Decimal(0), Decimal("0.1")),
        "max_leverage": _dec(Decimal(0), Decimal(20)),
        "max_drawdown_pct": _dec(Decimal(0), Decimal(100)),
        "daily_loss_limit_pct": _dec(Decimal(0), Decimal(100)),
    },
    "telegram": {
        "api_base": _str(re.compile(r"^https?://[^\s]+$"), "an http(s) URL"),
        "commands": _bool,
        "pump_interval_s": _float(0.0),
        "poll_timeout_s": _int(0, 50),
        "request_timeout_s": _float(0.0),
        "backoff_max_s": _float(0.0),
    },
    "binance": {
        "account_type": _choice(("usdt_futures",)),
        "base_url_http": _str(URL, "an http(s) URL"),
        "base_url_ws": _str(URL, "a ws(s) URL"),
        "base_url_ws_stream": _str(URL, "a ws(s) URL"),
    },
    "breakers": {
        "max_consecutive_rejects": _int(1, 10_000),
        "max_errors": _int(1, 100_000),
        "error_window_s": _float(0.0),
        "realert_step_pct": _dec(Decimal(0), Decimal(100)),
        "data_stale_alert_bars": _int(1, 100_000),
        "data_stale_halt_bars": _int(1, 100_000),
    },
    "supervisor": {
        "strategy": _choice(tuple(s.value for s in Strategy)),
        "max_restarts": _int(0, 1000),
        "period_s": _float(0.0),
        "backoff_initial_s": _float(0.0, lo_open=False),
        "backoff_max_s": _float(0.0, lo_open=False),
        "escalation": _choice(tuple(e.value for e in Escalation)),
    },
}


class _Reader:
    """Pulls typed values out of parsed TOML, collecting problems instead of raising."""

    def __init__(self, data: Mapping[str, TomlValue]) -> None:
        self.problems: list[str] = []
        self.values: dict[str, dict[str, object]] = {}
        for section, body in data.items():
            if section not in SCHEMA:
                self.problems.append(f"[{section}]: unknown section (known: {', '.join(SCHEMA)})")
                continue
            if not isinstance(body, dict):
                self.problems.append(f"[{section}]: must be a table")
                continue
            parsed: dict[str, object] = {}
            for key, raw in body.items():
                parser = SCHEMA[section].get(key)
                if parser is None:
                    self.problems.append(
                        f"{section}.{key}: unknown key (known: {', '.join(SCHEMA[section])})"
                    )
                    continue
                try:
                    parsed[key] = parser(raw)
                except ValueError as exc:
                    self.problems.append(f"{section}.{key}: {exc}")
            self.values[section] = parsed

    def get(self, section: str, key: str, default: T) -> T:
        value = self.values.get(section, {}).get(key, default)
        return value if isinstance(value, type(default)) else default

    def path(self, section: str, key: str) -> Path | None:
        value = self.values.get(section, {}).get(key)
        return Path(str(value)) if value is not None else None


def build_config(
    data: Mapping[str, TomlValue], source: str, env: Mapping[str, str]
) -> ServiceConfig:
    """Validate already-parsed TOML (a file, or a preset composed into one)."""
    r = _Reader(data)
    problems = r.problems
    s, z, rk, rp = SizingSettings(), RiskLimits(), ReplaySettings(), StrategySettings()
    node_defaults = NodeSettings()
    mode = Mode(r.get("service", "mode", Mode.REPLAY.value))

    sizing = SizingSettings(
        method=SizingMethod(r.get("sizing", "method", s.method.value)),
        stop_loss_pct=r.get("sizing", "stop_loss_pct", s.stop_loss_pct),
        win_rate=r.get("sizing", "win_rate", s.win_rate),
        payoff_ratio=r.get("sizing", "payoff_ratio", s.payoff_ratio),
        kelly_fraction=r.get("sizing", "kelly_fraction", s.kelly_fraction),
        atr_period=r.get("sizing", "atr_period", s.atr_period),
        atr_multiplier=r.get("sizing", "atr_multiplier", s.atr_multiplier),
    )
    if sizing.method is SizingMethod.KELLY:
        edge = sizing.win_rate - (1 - sizing.win_rate) / sizing.payoff_ratio
        if edge <= 0:
            problems.append(
                f"sizing: kelly with win_rate {sizing.win_rate} and payoff_ratio "
                f"{sizing.payoff_ratio} has no edge (f* = {edge:.4f}); it would never trade"
            )
    risk = RiskLimits(
        risk_per_trade=r.get("risk", "risk_per_trade", z.risk_per_trade),
        max_leverage=r.get("risk", "max_leverage", z.max_leverage),
        max_drawdown_pct=r.get("risk", "max_drawdown_pct", z.max_drawdown_pct),
        daily_loss_limit_pct=r.get("risk", "daily_loss_limit_pct", z.daily_loss_limit_pct),
    )
    source_kind = r.get("replay", "source", rk.source)
    replay_path = r.path("replay", "path")
    if source_kind == "file":
        if replay_path is None:
            problems.append("replay.path: required when replay.source = 'file'")
        elif replay_path.suffix.lower() not in (".csv", ".parquet"):
            problems.append(f"replay.path: {replay_path} must be a .csv or .parquet file")
        elif not replay_path.is_file():
            problems.append(f"replay.path: {replay_path} does not exist")
    replay = ReplaySettings(
        source=source_kind,
        path=replay_path,
        seed=r.get("replay", "seed", rk.seed),
        bars=r.get("replay", "bars", rk.bars),
        bar_minutes=r.get("replay", "bar_minutes", rk.bar_minutes),
        speed=r.get("replay", "speed", rk.speed),
        start_price=r.get("replay", "start_price", rk.start_price),
        volatility=r.get("replay", "volatility", rk.volatility),
    )
    strategy = StrategySettings(
        name=r.get("strategy", "name", rp.name),
        fast_period=r.get("strategy", "fast_period", rp.fast_period),
        slow_period=r.get("strategy", "slow_period", rp.slow_period),
        ladder_orders=r.get("strategy", "ladder_orders", rp.ladder_orders),
        ladder_step_pct=r.get("strategy", "ladder_step_pct", rp.ladder_step_pct),
    )
    if strategy.fast_period >= strategy.slow_period:
        problems.append(
            f"strategy: fast_period ({strategy.fast_period}) must be less than "
            f"slow_period ({strategy.slow_period})"
        )
    leverage = r.get("account", "leverage", node_defaults.leverage)
    if risk.max_leverage > leverage:
        problems.append(
            f"risk.max_leverage ({risk.max_leverage}) exceeds account.leverage ({leverage})"
        )

    if mode is Mode.BINANCE_TESTNET:
        for name in TESTNET_KEY_ENV:
            if not env.get(name):
                problems.append(f"service.mode = binance-testnet needs environment variable {name}")
    instrument_id = r.get("instrument", "id", node_defaults.instrument_id)
    if mode is not Mode.REPLAY and instrument_id not in BINANCE_INSTRUMENTS:
        problems.append(f"instrument.id: {instrument_id} is not a Binance USDT-M perpetual")
    b = BinanceSettings()
    binance = BinanceSettings(
        account_type=r.get("binance", "account_type", b.account_type),
        base_url_http=r.get("binance", "base_url_http", "") or None,
        base_url_ws=r.get("binance", "base_url_ws", "") or None,
        base_url_ws_stream=r.get("binance", "base_url_ws_stream", "") or None,
    )

    sv = SupervisionSettings()
    supervision = SupervisionSettings(
        strategy=Strategy(r.get("supervisor", "strategy", sv.strategy.value)),
        max_restarts=r.get("supervisor", "max_restarts", sv.max_restarts),
        period_s=r.get("supervisor", "period_s", sv.period_s),
        backoff_initial_s=r.get("supervisor", "backoff_initial_s", sv.backoff_initial_s),
        backoff_max_s=r.get("supervisor", "backoff_max_s", sv.backoff_max_s),
        escalation=Escalation(r.get("supervisor", "escalation", sv.escalation.value)),
    )
    telegram = _telegram(r, env, problems)
    bd = BreakerSettings()
    breakers = BreakerSettings(
        max_drawdown_pct=risk.max_drawdown_pct,
        daily_loss_limit_pct=risk.daily_loss_limit_pct,
        max_consecutive_rejects=r.get(
            "breakers", "max_consecutive_rejects", bd.max_consecutive_rejects
        ),
        max_errors=r.get("breakers", "max_errors", bd.max_errors),
        error_window_s=r.get("breakers", "error_window_s", bd.error_window_s),
        realert_step_pct=r.get("breakers", "realert_step_pct", bd.realert_step_pct),
        data_stale_alert_bars=r.get("breakers", "data_stale_alert_bars", bd.data_stale_alert_bars),
        data_stale_halt_bars=r.get("breakers", "data_stale_halt_bars", bd.data_stale_halt_bars),
    )
    if breakers.data_stale_halt_bars <= breakers.data_stale_alert_bars:
        problems.append(
            f"breakers.data_stale_halt_bars ({breakers.data_stale_halt_bars}) must be more "
            f"than breakers.data_stale_alert_bars ({breakers.data_stale_alert_bars})"
        )
    if problems:
        raise ConfigError(source, problems)

    node = NodeSettings(
        trader_id=r.get("service", "trader_id", node_defaults.trader_id),
        mode=mode,
        instrument_id=r.get("instrument", "id", node_defaults.instrument_id),
        starting_balance=r.get("account", "starting_balance", node_defaults.starting_balance),
        currency=r.get("account", "currency", node_defaults.currency),
        leverage=leverage,
        replay=replay,
        strategy=strategy,
        sizing=sizing,
        risk=risk,
        binance=binance,
        log_level=r.get("service", "node_log_level", node_defaults.log_level),
        purge_interval_mins=r.get(
            "service", "node_purge_interval_mins", node_defaults.purge_interval_mins
        ),
        purge_buffer_mins=r.get(
            "service", "node_purge_buffer_mins", node_defaults.purge_buffer_mins
        ),
    )
    defaults = ServiceConfig(node=node)
    return ServiceConfig(
        node=node,
        db_path=r.path("service", "db_path") or defaults.db_path,
        checkpoint_interval_s=r.get(
            "service", "checkpoint_interval_s", defaults.checkpoint_interval_s
        ),
        heartbeat_interval_s=r.get(
            "service", "heartbeat_interval_s", defaults.heartbeat_interval_s
        ),
        keep_checkpoints=r.get("service", "keep_checkpoints", defaults.keep_checkpoints),
        keep_hourly_h=r.get("service", "keep_hourly_h", defaults.keep_hourly_h),
        keep_daily_d=r.get("service", "keep_daily_d", defaults.keep_daily_d),
        keep_alerts_d=r.get("service", "keep_alerts_d", defaults.keep_alerts_d),
        keep_commands_d=r.get("service", "keep_commands_d", defaults.keep_commands_d),
        keep_events_d=r.get("service", "keep_events_d", defaults.keep_events_d),
        retention_sweep_s=r.get("service", "retention_sweep_s", defaults.retention_sweep_s),
        halt_after_failed_intervals=r.get(
            "service", "halt_after_failed_intervals", defaults.halt_after_failed_intervals
        ),
        node_hang_timeout_s=r.get("service", "node_hang_timeout_s", defaults.node_hang_timeout_s),
        log_level=r.get("service", "log_level", defaults.log_level),
        log_format=r.get("service", "log_format", defaults.log_format),
        supervision=supervision,
        breakers=breakers,
        telegram=telegram,
        source=source,
    )


def _telegram(r: _Reader, env: Mapping[str, str], problems: list[str]) -> TelegramSettings | None:
    """Telegram is on when the token is in the environment; chat ids come from there too."""
    token = env.get(TELEGRAM_TOKEN_ENV, "")
    chats_raw = env.get(TELEGRAM_CHATS_ENV, "")
    chat_ids: list[int] = []
    for part in (p.strip() for p in chats_raw.split(",")):
        if not part:
            continue
        try:
            chat_ids.append(int(part))
        except ValueError:
            problems.append(f"{TELEGRAM_CHATS_ENV}: {part!r} is not a numeric chat id")
    if not token:
        return None
    if ":" not in token:
        problems.append(f"{TELEGRAM_TOKEN_ENV} does not look like a bot token (no ':')")
    if not chat_ids:
        problems.append(
            f"{TELEGRAM_TOKEN_ENV} is set but {TELEGRAM_CHATS_ENV} lists no chat id to alert"
        )
    t = TelegramSettings()
    return TelegramSettings(
        api_base=r.get("telegram", "api_base", t.api_base),
        chat_ids=tuple(chat_ids),
        commands=r.get("telegram", "commands", t.commands),
        pump_interval_s=r.get("telegram", "pump_interval_s", t.pump_interval_s),
        poll_timeout_s=r.get("telegram", "poll_timeout_s", t.poll_timeout_s),
        request_timeout_s=r.get("telegram", "request_timeout_s", t.request_timeout_s),
        backoff_max_s=r.get("telegram", "backoff_max_s", t.backoff_max_s),
    )


def default_config_text() -> str:
    return resources.files("supervisor").joinpath(DEFAULT_CONFIG_NAME).read_text()


def parse_config(text: str, source: str, env: Mapping[str, str] | None = None) -> ServiceConfig:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, [f"not valid TOML: {exc}"]) from None
    return build_config(data, source, os.environ if env is None else env)


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> ServiceConfig:
    """Load ``path``, or the bundled offline replay example when ``path`` is None."""
    if path is None:
        return parse_config(default_config_text(), f"<bundled {DEFAULT_CONFIG_NAME}>", env)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read config file: {exc.strerror}"]) from None
    return parse_config(text, str(path), env)
