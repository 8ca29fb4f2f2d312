"""The configuration, declared once: every field's type, default, bounds and description.

Each ``[section]`` of the TOML file is a frozen pydantic model here, and everything
else is derived from these declarations: the loader and its error messages
(``supervisor.config``), ``config check``, the JSON Schema (``config schema``) and the
dashboard's preset form. Adding a setting is adding a field here, plus its use.

Secrets are never settings: the environment holds them, and only their names appear
in the loader. ``NodeSettings`` is not a section: it is what the node child is built
from (the sections it needs plus its start state), pickled through the spawn context.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from ipaddress import IPv4Address
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    JsonValue,
    model_validator,
)

from protocol.cpus import supervisor_cpus
from protocol.state import HaltMode, Snapshot

SUPPORTED_INSTRUMENTS = ("BTCUSDT-PERP.BINANCE", "ETHUSDT-PERP.BINANCE")  # bundled definitions
INSTRUMENT_ID = r"^[A-Z0-9]{2,30}USDT-PERP\.BINANCE$"
TRADER_ID_PATTERN = r"^[A-Za-z0-9_]+-[A-Za-z0-9_]+$"
HTTP_URL = r"^https?://[^\s]+$"
WS_URL = r"^wss?://[^\s]+$"
IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
# Upper bounds every count, interval and amount has (see ``Section``).
DAY_S = 86_400.0
MAX_BARS = 2_000_000  # a synthetic walk: ~4 years of 1-minute bars
MAX_SEED = 2**32 - 1  # numpy's and Nautilus's seeds are 32-bit
MAX_PRICE = Decimal("1e9")
MAX_MONEY = Decimal("1e12")
DURATION = re.compile(
    r"^\s*(?:(\d{1,7})d)?\s*(?:(\d{1,7})h)?\s*(?:(\d{1,7})m)?\s*(?:(\d{1,9})s)?\s*$"
)


def duration_s(value: object) -> object:
    """A duration as seconds: a whole number of seconds, or text such as 90s, 45m, 1h30m,
    2d; anything else is left for the field's own type check to refuse."""
    if isinstance(value, str):
        match = DURATION.match(value)
        if match is None or not any(match.groups()):
            raise ValueError(f"{value!r} is not a duration (e.g. 90s, 45m, 1h30m, 2d)")
        days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
        return days * 86_400 + hours * 3600 + minutes * 60 + seconds
    return value


class Mode(StrEnum):
    REPLAY = "replay"
    BINANCE_SANDBOX = "binance-sandbox"
    BINANCE_TESTNET = "binance-testnet"


class SizingMethod(StrEnum):
    FIXED_FRACTIONAL = "fixed_fractional"
    KELLY = "kelly"
    ATR = "atr"


class RestartStrategy(StrEnum):
    ONE_FOR_ONE = "one_for_one"  # only the failed child is restarted
    REST_FOR_ONE = "rest_for_one"  # the failed child and every child started after it


class Escalation(StrEnum):
    HALT_AND_STOP = "halt_and_stop"  # halt trading, alert, stop the whole tree
    HALT_AND_CONTINUE = "halt_and_continue"  # halt, alert, leave the child down (degraded)


class Section(BaseModel):
    """A config section: frozen, no unknown keys, floats read as the decimal they show.
    No ``inf`` or ``nan`` anywhere (an infinite interval silently stopped its timer), and
    every number has an upper bound (a preset's ``bars = 10**9`` cost the dashboard
    hours of CPU and ~40 GB)."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_enum_values=False, allow_inf_nan=False
    )


class ServiceSettings(Section):
    trader_id: Annotated[
        str, Field(pattern=TRADER_ID_PATTERN, description="NAME-TAG, e.g. PAPER-001")
    ] = "PAPER-001"
    mode: Annotated[Mode, Field(description="replay | binance-sandbox | binance-testnet")] = (
        Mode.REPLAY
    )
    db_path: Annotated[
        Path, Field(description="the SQLite file, relative to the working directory")
    ] = Path("state/paper.db")
    checkpoint_interval_s: Annotated[
        float,
        Field(gt=0, le=DAY_S, description="a checkpoint at least this often (and after fills)"),
    ] = 60.0
    heartbeat_interval_s: Annotated[
        float, Field(gt=0, le=3600, description="the heartbeat row and the systemd watchdog")
    ] = 5.0
    keep_checkpoints: Annotated[
        int, Field(ge=1, le=1_000_000, description="the last N checkpoints")
    ] = 1000
    keep_hourly_h: Annotated[
        int, Field(ge=0, le=24 * 365, description="and the first of every hour, this long")
    ] = 48
    keep_daily_d: Annotated[
        int, Field(ge=0, le=3650, description="and the first of every day, this long")
    ] = 90
    keep_alerts_d: Annotated[int, Field(ge=1, le=3650, description="delivered alerts")] = 30
    keep_events_d: Annotated[
        int,
        Field(ge=0, le=3650, description="events: as far back as the oldest checkpoint, "
              "at least this many days"),
    ] = 7  # fmt: skip
    keep_commands_d: Annotated[
        int, Field(ge=1, le=3650, description="answered operator commands")
    ] = 30
    keep_recordings_d: Annotated[
        int,
        Field(ge=1, le=3650, description="binance modes: a node run's market-data recording "
              "last written longer ago than this is deleted (the parity report needs it)"),
    ] = 30  # fmt: skip
    max_recordings_mb: Annotated[
        int,
        Field(ge=1, le=10_000_000, description="and the oldest recordings go while all of "
              "this trader's take more (the one being written stays)"),
    ] = 10_240  # fmt: skip
    max_log_mb: Annotated[
        int,
        Field(ge=1, le=100_000, description="when the service's output is a file (a "
              "dashboard launch's service.log, run > file), it keeps its last half past this"),
    ] = 100  # fmt: skip
    retention_sweep_s: Annotated[
        float, Field(gt=0, le=DAY_S, description="how often old rows go")
    ] = 3600.0
    snapshot_timeout_s: Annotated[
        float,
        Field(gt=0, le=3600, description="a snapshot the node has not sent by then is given up"),
    ] = 10.0
    halt_after_failed_intervals: Annotated[
        int,
        Field(ge=1, le=1000, description="halt when no checkpoint succeeded this many intervals"),
    ] = 3
    node_hang_timeout_s: Annotated[
        float,
        Field(gt=0, le=3600, description="a node child silent this long is killed and restarted"),
    ] = 15.0
    node_purge_interval_mins: Annotated[
        int, Field(ge=1, le=10_000, description="how often the node's cache is purged")
    ] = 10
    node_purge_buffer_mins: Annotated[
        int,
        Field(ge=0, le=100_000, description="closed orders and positions older than this leave "
              "the node's memory (their PnL stays counted)"),
    ] = 60  # fmt: skip
    log_level: Annotated[LogLevel, Field(description="the service's log level")] = "INFO"
    log_format: Annotated[Literal["text", "json"], Field(description="json: one object a line")] = (
        "text"
    )
    node_log_level: Annotated[LogLevel, Field(description="NautilusTrader's log level")] = "WARNING"
    record_market_data: Annotated[
        bool,
        Field(description="binance modes: record the bars and trades the node receives "
              "(recordings/<trader> beside the database) for the parity report"),
    ] = True  # fmt: skip
    progress_every_s: Annotated[
        float,
        Field(ge=0, le=3600, description="a status line this often, and a summary on stop, "
              "when the service writes to a terminal (never under systemd, NOTIFY_SOCKET "
              "set, or into a pipe or the journal); 0: none"),
    ] = 10.0  # fmt: skip
    node_cpus: Annotated[
        tuple[Annotated[int, Field(ge=0)], ...],
        Field(description="CPUs the node child runs on alone, the supervisor on one of the "
              "rest (e.g. [1] on a 2-core host running one service); none: the supervisor "
              "on one CPU chosen by its pid, the node child on the others (split_cpus)"),
    ] = ()  # fmt: skip
    split_cpus: Annotated[
        bool,
        Field(description="the supervisor's threads on one CPU, the node child on the "
              "others (or node_cpus); false without node_cpus: both anywhere, balanced by "
              "the scheduler (many busy nodes on few cores)"),
    ] = True  # fmt: skip

    @model_validator(mode="after")
    def _node_cpus_leave_the_supervisor_one(self) -> Self:
        if self.node_cpus:
            supervisor_cpus(self.node_cpus)  # its ValueError names what cannot be
        return self


class InstrumentSettings(Section):
    id: Annotated[
        str,
        Field(
            pattern=INSTRUMENT_ID,
            description="the instrument the bundled strategy trades, a USDT-M perpetual "
            "such as BTCUSDT-PERP.BINANCE",
        ),
    ] = "BTCUSDT-PERP.BINANCE"


INSTRUMENT_DEFINITION = ("tick_size", "step_size", "margin_init", "margin_maint", "maker_fee",
                         "taker_fee")  # fmt: skip


class InstrumentSpec(Section):
    """An instrument the replay has no definition of (``[[instruments]]``), or the data
    a replay plays for one that is not ``instrument.id``. In the Binance modes the
    venue's exchange info defines every instrument; these fields are then unused."""

    id: Annotated[str, Field(pattern=INSTRUMENT_ID, description="e.g. SOLUSDT-PERP.BINANCE")]
    tick_size: Annotated[Decimal | None, Field(gt=0, description="the price increment")] = None
    step_size: Annotated[Decimal | None, Field(gt=0, description="the quantity increment")] = None
    max_quantity: Annotated[
        Decimal | None, Field(gt=0, description="the largest quantity of one order")
    ] = None
    margin_init: Annotated[
        Decimal | None, Field(gt=0, le=1, description="initial margin, a fraction")
    ] = None
    margin_maint: Annotated[
        Decimal | None, Field(gt=0, le=1, description="maintenance margin, a fraction")
    ] = None
    maker_fee: Annotated[
        Decimal | None, Field(ge=Decimal("-0.01"), le=Decimal("0.01"), description="a fraction")
    ] = None
    taker_fee: Annotated[
        Decimal | None, Field(ge=0, le=Decimal("0.01"), description="a fraction")
    ] = None
    start_price: Annotated[
        Decimal | None,
        Field(gt=0, le=MAX_PRICE, description="replay, synthetic: the walk's first price"),
    ] = None
    replay_path: Annotated[
        Path | None, Field(description="replay, source = file: this instrument's OHLCV file")
    ] = None

    @property
    def defined(self) -> bool:
        """Has every field a replay needs to build the instrument itself."""
        return all(getattr(self, name) is not None for name in INSTRUMENT_DEFINITION)

    @model_validator(mode="after")
    def _spec(self) -> Self:
        given = [n for n in INSTRUMENT_DEFINITION if getattr(self, n) is not None]
        if given and not self.defined:
            missing = ", ".join(n for n in INSTRUMENT_DEFINITION if n not in given)
            raise ValueError(f"a definition needs all of its fields; missing {missing}")
        init, maint = self.margin_init, self.margin_maint
        if init is not None and maint is not None and maint > init:
            raise ValueError("margin_maint: must not exceed margin_init")
        if self.replay_path is not None and not self.replay_path.is_file():
            raise ValueError(f"replay_path: {self.replay_path} does not exist")
        return self


class AccountSettings(Section):
    starting_balance: Annotated[
        Decimal, Field(gt=0, le=MAX_MONEY, description="the paper account's starting balance")
    ] = Decimal("100000")
    currency: Annotated[
        str, Field(pattern=r"^[A-Z]{3,5}$", description="a currency code such as USDT")
    ] = "USDT"
    leverage: Annotated[
        Decimal, Field(ge=1, le=125, description="the account's leverage at the venue")
    ] = Decimal("3")


class SimulationSettings(Section):
    """How the simulated venue fills (replay and binance-sandbox; the parity backtest uses
    the same model, with the same seed). The defaults are not more optimistic than a
    venue: bars show trades, not the spread or the queue, so half the time a taker pays a
    tick, and a limit order the market only touches fills half the time (its queue), at
    its price - never worse."""

    prob_fill_on_limit: Annotated[
        Decimal,
        Field(ge=0, le=1, description="the chance that a limit order the market only touches "
              "(trades at, not through) fills: its place in the queue"),
    ] = Decimal("0.5")  # fmt: skip
    prob_slippage: Annotated[
        Decimal,
        Field(ge=0, le=1, description="the chance that the market is one tick away from the "
              "trade price a bar shows: a market (or triggered stop) order fills a tick worse; "
              "a limit order never fills worse than its price"),
    ] = Decimal("0.5")  # fmt: skip
    seed: Annotated[int, Field(ge=0, le=MAX_SEED, description="the fill model's random seed")] = 42
    funding_rate: Annotated[
        Decimal | None,
        Field(ge=Decimal("-0.05"), le=Decimal("0.05"), description="replay: the funding rate "
              "of every settlement (every funding_interval_hours from 00:00 UTC; longs pay "
              "when positive); none: no funding unless a file"),
    ] = None  # fmt: skip
    funding_file: Annotated[
        Path | None,
        Field(description="replay: the venue's funding history, a fundingTime,fundingRate "
              "CSV (epoch ms, as Binance serves it): each row settles at its time, in place "
              "of funding_rate there (an older bar,rate file: at that bar)"),
    ] = None  # fmt: skip
    maker_fee: Annotated[
        Decimal | None,
        Field(ge=Decimal("-0.01"), le=Decimal("0.01"), description="your fee tier's maker "
              "fee, a fraction, instead of the instrument's (in binance-sandbox: the venue's "
              "tier 0); none: the instrument's"),
    ] = None  # fmt: skip
    taker_fee: Annotated[
        Decimal | None,
        Field(ge=0, le=Decimal("0.01"), description="your fee tier's taker fee"),
    ] = None
    latency_ms: Annotated[
        int,
        Field(ge=0, le=3_600_000, description="how long a strategy's order (a submit, modify "
              "or cancel) takes to reach the simulated venue, in market time: it arrives with "
              "the first market data at or after sent + latency (binance-sandbox: the live "
              "feed's); in a replay, with bars, any latency moves it to a later bar's settle "
              "(0: within the bar it was decided on)"),
    ] = 0  # fmt: skip

    @property
    def latency_ns(self) -> int:
        """Market time a command takes to reach the simulated venue."""
        return self.latency_ms * 1_000_000

    venue_funding: Annotated[
        bool,
        Field(description="binance-sandbox: charge the venue's funding, from its mark-price "
              "stream, on the simulated positions"),
    ] = True  # fmt: skip
    catch_up_max: Annotated[
        int,
        BeforeValidator(duration_s),
        Field(ge=0, le=7 * int(DAY_S), description="binance-sandbox: after a restart, the "
              "market the node missed is played from the venue's history before it goes "
              "live, at most this much of it (a duration: 90s, 45m, 1h, 2d; 0: none); a "
              "longer gap plays its last part and is recorded as a gap"),
    ] = 3600  # fmt: skip
    funding_interval_hours: Annotated[
        int,
        Field(ge=1, le=24, description="replay: hours between settlements, from 00:00 UTC "
              "(8: 00:00, 08:00, 16:00); divides 24"),
    ] = 8  # fmt: skip

    @model_validator(mode="after")
    def _funding_file(self) -> Self:
        if self.funding_file is not None and not self.funding_file.is_file():
            raise ValueError(f"funding_file: {self.funding_file} does not exist")
        if 24 % self.funding_interval_hours:
            raise ValueError(
                f"funding_interval_hours: {self.funding_interval_hours} does not divide a day "
                "(settlements fall at the same hours every day: 1, 2, 3, 4, 6, 8, 12 or 24)"
            )
        return self

    @property
    def ideal(self) -> bool:
        return self.prob_fill_on_limit == 1 and self.prob_slippage == 0


# The bar lengths NautilusTrader's BarType takes, in minutes: a minute step that divides an
# hour, an hour step that divides a day, or a day (``node.replay.bar_type_for``).
BAR_MINUTES = (
    *(m for m in range(1, 60) if 60 % m == 0),
    *(h * 60 for h in range(1, 24) if 24 % h == 0),
    1440,
)


class ReplaySettings(Section):
    """Where bars come from and how fast they are played: ``speed`` multiplies the bar
    interval (1 real time, 240 a one-minute bar every 0.25 s, 0 as fast as the node goes)."""

    source: Annotated[Literal["synthetic", "file"], Field(description="synthetic | file")] = (
        "synthetic"
    )
    path: Annotated[
        Path | None, Field(description="with source = file: a .csv or .parquet OHLCV file")
    ] = None
    seed: Annotated[int, Field(ge=0, le=MAX_SEED, description="the synthetic walk's seed")] = 7
    bars: Annotated[int, Field(ge=1, le=MAX_BARS, description="the synthetic walk's length")] = (
        50_000
    )
    bar_minutes: Annotated[int, Field(ge=1, le=1440, description="minutes a bar")] = 1
    speed: Annotated[
        float, Field(ge=0, le=1_000_000, description="x real time; 0 = as fast as possible")
    ] = 240.0
    start_price: Annotated[
        Decimal, Field(gt=0, le=MAX_PRICE, description="the walk's first price")
    ] = Decimal("60000")
    volatility: Annotated[
        Decimal, Field(gt=0, le=Decimal("0.5"), description="the walk's volatility a bar")
    ] = Decimal("0.002")
    stop_when_done: Annotated[
        bool, Field(description="stop the service (final checkpoint) once every bar is played")
    ] = False

    @model_validator(mode="after")
    def _file(self) -> Self:
        if self.bar_minutes not in BAR_MINUTES:
            raise ValueError(
                f"bar_minutes: {self.bar_minutes} is not a bar length NautilusTrader takes "
                f"(a step must divide the next unit); use one of {', '.join(map(str, BAR_MINUTES))}"
            )
        if self.source != "file":
            return self
        if self.path is None:
            raise ValueError("path: required when source = 'file'")
        if self.path.suffix.lower() not in (".csv", ".parquet"):
            raise ValueError(f"path: {self.path} must be a .csv or .parquet file")
        if not self.path.is_file():
            raise ValueError(f"path: {self.path} does not exist")
        return self


class StrategySettings(Section):
    name: Annotated[Literal["ema_cross"], Field(description="the bundled strategy")] = "ema_cross"
    fast_period: Annotated[int, Field(ge=2, le=10_000, description="the fast EMA's period")] = 10
    slow_period: Annotated[int, Field(ge=3, le=10_000, description="the slow EMA's period")] = 30
    ladder_orders: Annotated[
        int, Field(ge=0, le=20, description="limit orders rested to add on each cross")
    ] = 0
    ladder_step_pct: Annotated[
        Decimal, Field(gt=0, le=Decimal("0.5"), description="the ladder's step, a fraction")
    ] = Decimal("0.01")
    protective_stop: Annotated[
        bool,
        Field(description="after each entry fill, a reduce-only stop-market order for the "
              "whole position at the stop distance the sizing assumed"),
    ] = True  # fmt: skip

    @model_validator(mode="after")
    def _periods(self) -> Self:
        if self.fast_period >= self.slow_period:
            raise ValueError(
                f"fast_period ({self.fast_period}) must be less than "
                f"slow_period ({self.slow_period})"
            )
        return self


class StrategyEntry(Section):
    """One of the trader's own strategies, by import path, in NautilusTrader's own
    convention (``ImportableStrategyConfig``): the strategy class, its config class and
    the config's fields. ``[[strategies]]`` in the file; none means the bundled EMA cross
    of ``[strategy]``. The class must be importable where the service runs (installed,
    or on ``PYTHONPATH``); the loader imports it in a child process to check it."""

    strategy_path: Annotated[
        str, Field(pattern=IMPORT_PATH, description="the Strategy class: package.module:Class")
    ]
    config_path: Annotated[
        str,
        Field(pattern=IMPORT_PATH, description="its StrategyConfig class: package.module:Class"),
    ]
    config: Annotated[
        dict[str, JsonValue], Field(description="the config class's fields, as a table")
    ] = {}
    max_notional_per_order: Annotated[
        Decimal | None,
        Field(gt=0, le=MAX_MONEY, description="the node denies this strategy's orders opening more "
              "notional than this (beside risk.max_notional_per_order)"),
    ] = None  # fmt: skip
    max_leverage: Annotated[
        Decimal | None,
        Field(gt=0, le=125, description="the node denies this strategy's orders whose fill "
              "would take its open notional above this multiple of the account's equity"),
    ] = None  # fmt: skip
    capital: Annotated[
        Decimal | None,
        Field(gt=0, le=MAX_MONEY, description="the capital this strategy trades with, out of the "
              "account's: its equity, drawdown, daily loss and return are of it; none: an "
              "even share of what the other entries leave of account.starting_balance"),
    ] = None  # fmt: skip


class SizingSettings(Section):
    method: Annotated[SizingMethod, Field(description="fixed_fractional | kelly | atr")] = (
        SizingMethod.FIXED_FRACTIONAL
    )
    stop_loss_pct: Annotated[
        Decimal,
        Field(gt=0, le=Decimal("0.5"), description="fixed_fractional: the stop distance, "
              "a fraction of price"),
    ] = Decimal("0.02")  # fmt: skip
    win_rate: Annotated[
        Decimal, Field(gt=0, le=Decimal("0.99"), description="kelly: the win rate")
    ] = Decimal("0.55")
    payoff_ratio: Annotated[
        Decimal, Field(gt=0, le=1000, description="kelly: average win / average loss")
    ] = Decimal("1.5")
    kelly_fraction: Annotated[
        Decimal, Field(gt=0, le=1, description="kelly: the fraction of f* used")
    ] = Decimal("0.5")
    atr_period: Annotated[int, Field(ge=2, le=1000, description="atr: the ATR's period")] = 14
    atr_multiplier: Annotated[
        Decimal, Field(gt=0, le=20, description="atr: stop distance = this x ATR")
    ] = Decimal("2")

    @model_validator(mode="after")
    def _edge(self) -> Self:
        if self.method is SizingMethod.KELLY:
            edge = self.win_rate - (1 - self.win_rate) / self.payoff_ratio
            if edge <= 0:
                raise ValueError(
                    f"kelly with win_rate {self.win_rate} and payoff_ratio "
                    f"{self.payoff_ratio} has no edge (f* = {edge:.4f}); it would never trade"
                )
        return self


class RiskLimits(Section):
    risk_per_trade: Annotated[
        Decimal, Field(gt=0, le=Decimal("0.1"), description="equity risked a trade, a fraction")
    ] = Decimal("0.01")
    max_leverage: Annotated[
        Decimal, Field(gt=0, le=20, description="the position's notional / equity, at most")
    ] = Decimal("3")
    max_drawdown_pct: Annotated[
        Decimal, Field(gt=0, le=100, description="breaker: drawdown from the equity peak, %")
    ] = Decimal("20")
    daily_loss_limit_pct: Annotated[
        Decimal, Field(gt=0, le=100, description="breaker: loss from the UTC day's start, %")
    ] = Decimal("5")
    max_notional_per_order: Annotated[
        Decimal | None,
        Field(
            gt=0,
            le=MAX_MONEY,
            description="the node denies any order whose opening part is above this "
            "notional (quote currency), whichever strategy sent it; none: no such limit",
        ),
    ] = None
    leverage_limit: Annotated[
        Decimal | None,
        Field(
            gt=0,
            le=125,
            description="the node denies any order whose fill would take the open notional "
            "of all positions above this multiple of equity, whichever strategy sent it "
            "(max_leverage only caps the bundled strategy's sizing); none: no such limit",
        ),
    ] = None


class BreakerSettings(Section):
    """Circuit breakers beyond the risk limits; any one trips a halt and a critical alert."""

    max_consecutive_rejects: Annotated[
        int, Field(ge=1, le=10_000, description="order rejects in a row")
    ] = 5
    max_errors: Annotated[
        int, Field(ge=1, le=100_000, description="errors within error_window_s")
    ] = 20
    error_window_s: Annotated[
        float, Field(gt=0, le=DAY_S, description="the error rate's window")
    ] = 60.0
    realert_step_pct: Annotated[
        Decimal,
        Field(gt=0, le=100, description="after a trip, alert again each time the loss deepens "
              "this many points"),
    ] = Decimal("5")  # fmt: skip
    data_stale_alert_bars: Annotated[
        int, Field(ge=1, le=100_000, description="no bar for this many bar intervals: alert")
    ] = 3
    data_stale_halt_bars: Annotated[
        int, Field(ge=1, le=100_000, description="no bar for this many bar intervals: halt")
    ] = 10
    halt_mode: Annotated[
        HaltMode,
        Field(description="what a breaker's or a fatal error's halt does: cancel (every "
              "order) | reduce (keep reduce-only stops, only reducing orders) | flatten "
              "(cancel, then close every position at market)"),
    ] = HaltMode.CANCEL  # fmt: skip

    @model_validator(mode="after")
    def _stale(self) -> Self:
        if self.data_stale_halt_bars <= self.data_stale_alert_bars:
            raise ValueError(
                f"data_stale_halt_bars ({self.data_stale_halt_bars}) must be more than "
                f"data_stale_alert_bars ({self.data_stale_alert_bars})"
            )
        return self


class TelegramSettings(Section):
    """Where alerts go, and who may command. The token, the chat ids and the user ids come
    from the environment (``TELEGRAM_BOT_TOKEN``, ``TELEGRAM_CHAT_IDS``,
    ``TELEGRAM_USER_IDS``): without a token Telegram is off and alerts stay in the outbox
    and the log. A command counts only from a listed user in a listed chat (a group's
    other members are refused), addressed to this bot, sent after the service started;
    the two that move money (``/halt flatten``, ``/resume``) wait for ``/confirm``."""

    api_base: Annotated[
        str, Field(pattern=HTTP_URL, description="the Bot API server, an http(s) URL")
    ] = "https://api.telegram.org"
    commands: Annotated[bool, Field(description="/status /positions /halt /resume ...")] = True
    pump_interval_s: Annotated[float, Field(gt=0, le=3600, description="delivery rounds")] = 1.0
    poll_timeout_s: Annotated[int, Field(ge=0, le=50, description="long polling")] = 20
    request_timeout_s: Annotated[float, Field(gt=0, le=600, description="one request, at most")] = (
        10.0
    )
    backoff_max_s: Annotated[float, Field(gt=0, le=3600, description="while Telegram fails")] = 60.0
    chat_ids: Annotated[
        tuple[int, ...], Field(description="from TELEGRAM_CHAT_IDS; never from the file")
    ] = ()
    user_ids: Annotated[
        tuple[int, ...],
        Field(description="from TELEGRAM_USER_IDS: who may command, in those chats; "
              "unset: the private chats' own users only; never from the file"),
    ] = ()  # fmt: skip
    max_update_age_s: Annotated[
        int,
        Field(ge=0, le=86_400, description="a command sent longer ago than this before "
              "the service started (queued while it was down) is dropped"),
    ] = 0  # fmt: skip
    confirm_s: Annotated[
        int, Field(ge=5, le=600, description="/halt flatten and /resume wait this long "
                   "for /confirm")
    ] = 60  # fmt: skip


class BinanceSettings(Section):
    """Binance endpoints; unset uses the adapter's URL for the environment. Keys are never
    here: the Nautilus Binance factories read them from the environment."""

    account_type: Annotated[Literal["usdt_futures"], Field(description="USDT-M futures")] = (
        "usdt_futures"
    )
    base_url_http: Annotated[str | None, Field(pattern=HTTP_URL, description="REST")] = None
    base_url_ws: Annotated[str | None, Field(pattern=WS_URL, description="market streams")] = None
    base_url_ws_stream: Annotated[
        str | None, Field(pattern=WS_URL, description="the user data stream")
    ] = None


class MetricsSettings(Section):
    """The Prometheus ``/metrics`` endpoint and the ``/healthz`` and ``/readyz`` probes, on
    one HTTP port. Off by default: a port is opened only when asked for, and on loopback
    unless another address is set on purpose (the numbers are not secret, but an
    exporter on every interface is nobody's default)."""

    enabled: Annotated[bool, Field(description="serve /metrics, /healthz, /readyz")] = False
    host: Annotated[
        IPvAnyAddress, Field(description="the address to listen on (loopback by default)")
    ] = IPv4Address("127.0.0.1")
    port: Annotated[int, Field(ge=1, le=65535, description="the port to listen on")] = 9477
    checkpoint_stale_s: Annotated[
        float | None,
        Field(gt=0, le=DAY_S, description="/readyz: no checkpoint for this long is not ready "
              "(default: 2 checkpoint intervals + 30 s)"),
    ] = None  # fmt: skip


class ReadinessSettings(Section):
    """The go-live verdict's thresholds (``paper-node report readiness``); each default
    is argued in docs/readiness.md."""

    registered: Annotated[
        str | None,
        Field(
            pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
            description="the registry entry this session is judged against (unset: the "
            "entry a dashboard launch ran)",
        ),
    ] = None
    check_interval_s: Annotated[
        float,
        Field(ge=0, le=DAY_S, description="judge every this often: metrics, an alert on a "
              "verdict change (0: never)"),
    ] = 600.0  # fmt: skip

    confidence: Annotated[
        float, Field(gt=0.5, lt=1, description="PSR(0) and the MinTRL confidence level")
    ] = 0.95
    min_round_trips: Annotated[
        int, Field(ge=1, description="round trips a paper session needs before a verdict")
    ] = 30
    min_dsr: Annotated[
        float, Field(gt=0, lt=1, description="the backtest's deflated Sharpe ratio, at least")
    ] = 0.95
    cone_sigmas: Annotated[
        float, Field(gt=0, description="the bootstrap cone's half-width, standard deviations")
    ] = 2.0
    drawdown_percentile: Annotated[
        float, Field(gt=50, lt=100, description="paper max drawdown within this percentile")
    ] = 95.0
    bootstrap_samples: Annotated[
        int, Field(ge=100, le=100_000, description="bootstrap paths for the cone and drawdown")
    ] = 2000
    bootstrap_seed: Annotated[int, Field(ge=0, description="the bootstrap's seed")] = 0
    test_alpha: Annotated[
        float, Field(gt=0, lt=0.5, description="the two-sample test's significance level")
    ] = 0.05
    max_effect: Annotated[
        float,
        Field(gt=0, le=1, description="largest rank-biserial effect, paper worse than backtest"),
    ] = 0.3
    slippage_tolerance_bps: Annotated[
        float, Field(ge=0, description="median slippage above the backtest's assumption, bps")
    ] = 2.0
    max_reject_rate: Annotated[
        float, Field(ge=0, le=1, description="rejected or denied orders per order sent")
    ] = 0.02
    max_cost_ratio: Annotated[
        float, Field(gt=0, description="fees and funding paid over the backtest's assumption")
    ] = 1.5
    max_restarts: Annotated[
        int, Field(ge=0, description="node restarts (crashes, redeploys) a session may have")
    ] = 5
    max_gaps: Annotated[int, Field(ge=0, description="market-data gaps a session may have")] = 0
    max_halts: Annotated[
        int, Field(ge=0, description="halts by a breaker or an error a session may have")
    ] = 0
    max_unprotected_s: Annotated[
        float,
        Field(ge=0, description="longest an open position may be seen without its stop, s"),
    ] = 60.0
    min_returns_correlation: Annotated[
        float,
        Field(ge=-1, le=1, description="paper vs backtest daily returns, Pearson, at least"),
    ] = 0.8
    max_annual_dtw: Annotated[
        float, Field(ge=0, description="paper vs backtest annualized returns DTW, at most")
    ] = 0.2
    min_match_rate: Annotated[
        float, Field(ge=0, le=1, description="paper fills matched in the backtest, at least")
    ] = 0.9
    max_fill_price_bps: Annotated[
        float, Field(ge=0, description="matched fills' median price difference, bps, at most")
    ] = 5.0


class SupervisionSettings(Section):
    strategy: Annotated[RestartStrategy, Field(description="one_for_one | rest_for_one")] = (
        RestartStrategy.ONE_FOR_ONE
    )
    max_restarts: Annotated[
        int, Field(ge=0, le=1000, description="restarts tolerated within period_s")
    ] = 5
    period_s: Annotated[
        float, Field(gt=0, le=DAY_S, description="the restart intensity's window")
    ] = 60.0
    backoff_initial_s: Annotated[
        float, Field(ge=0, le=3600, description="the first restart's delay")
    ] = 0.5
    backoff_max_s: Annotated[
        float, Field(ge=0, le=3600, description="the longest restart delay")
    ] = 10.0
    escalation: Annotated[Escalation, Field(description="halt_and_stop | halt_and_continue")] = (
        Escalation.HALT_AND_STOP
    )


class Config(Section):
    """The whole file. Rules across sections (and the environment) are the loader's."""

    service: ServiceSettings = ServiceSettings()
    instrument: InstrumentSettings = InstrumentSettings()
    account: AccountSettings = field(default_factory=AccountSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    simulation: SimulationSettings = SimulationSettings()
    strategy: StrategySettings = field(default_factory=StrategySettings)
    strategies: tuple[StrategyEntry, ...] = ()
    instruments: tuple[InstrumentSpec, ...] = ()
    sizing: SizingSettings = field(default_factory=SizingSettings)
    risk: RiskLimits = field(default_factory=RiskLimits)
    breakers: BreakerSettings = BreakerSettings()
    telegram: TelegramSettings = TelegramSettings()
    binance: BinanceSettings = field(default_factory=BinanceSettings)
    supervisor: SupervisionSettings = SupervisionSettings()
    metrics: MetricsSettings = MetricsSettings()
    readiness: ReadinessSettings = ReadinessSettings()


class RecordedSettings(BaseModel):
    """What a run records of its config (``runs.settings``), for a parity report to
    replay the session with: the settings without the chat ids (they come from the
    environment and stay there), the replay file by absolute path, and that file's
    SHA-256 so a report can tell when the bars are no longer the ones played."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    config: Config
    replay_sha256: str | None = None
    recording: Path | None = None  # a binance session's market data, by absolute path


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """What the node child is built from: the config's sections it needs, and its start."""

    trader_id: str = "PAPER-001"
    mode: Mode = Mode.REPLAY
    instrument_id: str = "BTCUSDT-PERP.BINANCE"
    account: AccountSettings = field(default_factory=AccountSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    simulation: SimulationSettings = field(default_factory=SimulationSettings)
    strategy: StrategySettings = field(default_factory=StrategySettings)
    strategies: tuple[StrategyEntry, ...] = ()  # the trader's own; none: the bundled one
    instruments: tuple[InstrumentSpec, ...] = ()  # [[instruments]]: definitions, replay data
    sizing: SizingSettings = field(default_factory=SizingSettings)
    risk: RiskLimits = field(default_factory=RiskLimits)
    breakers: BreakerSettings = field(default_factory=BreakerSettings)
    binance: BinanceSettings = field(default_factory=BinanceSettings)
    log_level: str = "WARNING"
    cpus: tuple[int, ...] = ()  # the node child's own CPUs ([service] node_cpus); none: any
    purge_interval_mins: int = 10
    purge_buffer_mins: int = 60
    start_cursor: int = 0
    restore: Snapshot | None = None  # state to rebuild before the first bar
    start_halted: str | None = None  # the gate's halt reason: applied before the first bar
    start_halt_mode: HaltMode = HaltMode.CANCEL  # and how it was made
    start_halted_strategies: tuple[tuple[str, str], ...] = ()  # (strategy id, reason)
    lock_path: Path | None = None  # held by the child while it trades (one node per trader)
    account_lock_path: Path | None = None  # binance-testnet: and one node per venue account
    recording_path: Path | None = None  # where a binance mode records its market data

    def capitals(self) -> tuple[Decimal, ...]:
        """Each strategy's capital, in the order the node builds them: a stated one, or an
        even share of what the stated ones leave of the starting balance (the bundled
        strategy alone: all of it)."""
        balance = self.account.starting_balance
        entries = self.strategies
        if not entries:
            return (balance,)
        stated = [e.capital for e in entries if e.capital is not None]
        unstated = len(entries) - len(stated)
        share = (balance - sum(stated, Decimal(0))) / unstated if unstated else Decimal(0)
        return tuple(e.capital if e.capital is not None else share for e in entries)

    @property
    def instrument_ids(self) -> tuple[str, ...]:
        """Every instrument the node trades: ``instrument.id`` first, then each one a
        strategy names (its config's ``instrument_id``), in order, once."""
        return traded_instruments(self.instrument_id, self.strategies)

    def spec(self, instrument_id: str) -> InstrumentSpec | None:
        return next((s for s in self.instruments if s.id == instrument_id), None)

    @classmethod
    def of(cls, config: Config) -> NodeSettings:
        service = config.service
        return cls(
            trader_id=service.trader_id,
            mode=service.mode,
            instrument_id=config.instrument.id,
            account=config.account,
            replay=config.replay,
            simulation=config.simulation,
            strategy=config.strategy,
            strategies=config.strategies,
            instruments=config.instruments,
            sizing=config.sizing,
            risk=config.risk,
            breakers=config.breakers,
            binance=config.binance,
            log_level=service.node_log_level,
            cpus=service.node_cpus,
            purge_interval_mins=service.node_purge_interval_mins,
            purge_buffer_mins=service.node_purge_buffer_mins,
            recording_path=recording_path(config),
        )


def traded_instruments(primary: str, entries: tuple[StrategyEntry, ...]) -> tuple[str, ...]:
    """``primary`` and the ``instrument_id`` each entry's config names (NautilusTrader's
    convention for a strategy's instrument), in order, each once."""
    ids = [primary]
    for entry in entries:
        named = entry.config.get("instrument_id")
        if isinstance(named, str) and named not in ids:
            ids.append(named)
    return tuple(ids)


def recording_path(config: Config) -> Path | None:
    """A binance session's market data recording: ``recordings/<trader>`` beside the
    database (a replay's bars are its file or its seed already)."""
    service = config.service
    if service.mode is Mode.REPLAY or not service.record_market_data:
        return None
    return service.db_path.parent / "recordings" / service.trader_id
