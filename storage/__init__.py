"""SQLite persistence: checkpoints, the event log, the alert outbox, the heartbeat."""

from storage.appdb import AppDatabase
from storage.codec import snapshot_from_json, to_json
from storage.control import Command, CommandStatus, ControlChannel, ControlRequest
from storage.errors import SchemaError, StorageError
from storage.jobs import Job
from storage.lock import AlreadyRunning, InstanceLock, lock_path
from storage.presets import PresetBody, PresetValue
from storage.queries import AlertRow, ControlRow, EquityPoint
from storage.registry import AlreadyRegistered, read_registry, register
from storage.schema import SCHEMA_VERSION, migrate
from storage.session import SessionRecord, read_session
from storage.status import (
    EventRow,
    PositionRow,
    StatusReport,
    StrategyRow,
    read_events,
    read_status,
)
from storage.store import GateRow, OutboxRow, RunInfo, Store, Swept, retention_bound

__all__ = [
    "SCHEMA_VERSION",
    "AlertRow",
    "AlreadyRegistered",
    "AlreadyRunning",
    "AppDatabase",
    "Command",
    "CommandStatus",
    "ControlChannel",
    "ControlRequest",
    "ControlRow",
    "EquityPoint",
    "EventRow",
    "GateRow",
    "InstanceLock",
    "Job",
    "OutboxRow",
    "PositionRow",
    "PresetBody",
    "PresetValue",
    "RunInfo",
    "SchemaError",
    "SessionRecord",
    "StatusReport",
    "StorageError",
    "Store",
    "StrategyRow",
    "Swept",
    "lock_path",
    "migrate",
    "read_events",
    "read_registry",
    "read_session",
    "read_status",
    "register",
    "retention_bound",
    "snapshot_from_json",
    "to_json",
]
