"""SQLite persistence: checkpoints, the event log, the alert outbox, the heartbeat."""

from storage.codec import snapshot_from_json, to_json
from storage.control import Command, CommandStatus, ControlChannel, ControlRequest
from storage.errors import SchemaError, StorageError
from storage.schema import SCHEMA_VERSION, migrate
from storage.status import EventRow, PositionRow, StatusReport, read_events, read_status
from storage.store import OutboxRow, Retention, RunInfo, Store

__all__ = [
    "SCHEMA_VERSION",
    "Command",
    "CommandStatus",
    "ControlChannel",
    "ControlRequest",
    "EventRow",
    "OutboxRow",
    "PositionRow",
    "Retention",
    "RunInfo",
    "SchemaError",
    "StatusReport",
    "StorageError",
    "Store",
    "migrate",
    "read_events",
    "read_status",
    "snapshot_from_json",
    "to_json",
]
