"""SQLite persistence: checkpoints, the event log, the alert outbox, the heartbeat."""

from storage.appdb import AppDatabase
from storage.codec import snapshot_from_json, to_json
from storage.control import (
    PENDING_TTL_S,
    Command,
    CommandStatus,
    ControlChannel,
    ControlRequest,
)
from storage.errors import NoCheckpoint, NoRun, SchemaError, StorageError
from storage.housekeeping import Pruned, cap_output_log, prune_recordings, recordings_of
from storage.jobs import Job
from storage.lock import AlreadyRunning, InstanceLock, held, lock_path
from storage.played import Played
from storage.presets import PresetBody, PresetValue
from storage.queries import AlertRow, ControlRow, EquityPoint
from storage.registry import AlreadyRegistered, read_registry, register
from storage.schema import SCHEMA_VERSION, migrate
from storage.session import SessionRecord, read_session
from storage.stats import DayRow, Stats, TradeReport, TripRow, read_trade_report, trade_report
from storage.stats_text import (
    DEFAULT_ROWS,
    MAX_DAYS,
    MAX_TRADES,
    balance_text,
    capital_return,
    daily_text,
    percent,
    performance_text,
    profit_text,
    stats_text,
    trades_text,
)
from storage.status import (
    CatchUpRow,
    EventRow,
    PositionRow,
    StatusReport,
    StrategyRow,
    catch_up_text,
    read_catch_ups,
    read_events,
    read_status,
    span,
)
from storage.store import GateRow, OutboxRow, RunInfo, Store, Swept, retention_bound
from storage.trades import Fill, FundingPayment, RoundTrip, TradeBook, round_trips
from storage.wal import BACKSTOP_PAGES, WAL_EVERY_S, WalKeeper

__all__ = [
    "BACKSTOP_PAGES",
    "DEFAULT_ROWS",
    "MAX_DAYS",
    "MAX_TRADES",
    "PENDING_TTL_S",
    "SCHEMA_VERSION",
    "WAL_EVERY_S",
    "AlertRow",
    "AlreadyRegistered",
    "AlreadyRunning",
    "AppDatabase",
    "CatchUpRow",
    "Command",
    "CommandStatus",
    "ControlChannel",
    "ControlRequest",
    "ControlRow",
    "DayRow",
    "EquityPoint",
    "EventRow",
    "Fill",
    "FundingPayment",
    "GateRow",
    "InstanceLock",
    "Job",
    "NoCheckpoint",
    "NoRun",
    "OutboxRow",
    "Played",
    "PositionRow",
    "PresetBody",
    "PresetValue",
    "Pruned",
    "RoundTrip",
    "RunInfo",
    "SchemaError",
    "SessionRecord",
    "Stats",
    "StatusReport",
    "StorageError",
    "Store",
    "StrategyRow",
    "Swept",
    "TradeBook",
    "TradeReport",
    "TripRow",
    "WalKeeper",
    "balance_text",
    "cap_output_log",
    "capital_return",
    "catch_up_text",
    "daily_text",
    "held",
    "lock_path",
    "migrate",
    "percent",
    "performance_text",
    "profit_text",
    "prune_recordings",
    "read_catch_ups",
    "read_events",
    "read_registry",
    "read_session",
    "read_status",
    "read_trade_report",
    "recordings_of",
    "register",
    "retention_bound",
    "round_trips",
    "snapshot_from_json",
    "span",
    "stats_text",
    "to_json",
    "trade_report",
    "trades_text",
]
