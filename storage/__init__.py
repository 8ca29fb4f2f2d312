"""SQLite persistence: checkpoints, the event log, the alert outbox, the heartbeat."""

from storage.codec import snapshot_from_json, to_json
from storage.errors import SchemaError, StorageError
from storage.schema import SCHEMA_VERSION, migrate
from storage.status import PositionRow, StatusReport, read_status
from storage.store import RunInfo, Store

__all__ = [
    "SCHEMA_VERSION",
    "PositionRow",
    "RunInfo",
    "SchemaError",
    "StatusReport",
    "StorageError",
    "Store",
    "migrate",
    "read_status",
    "snapshot_from_json",
    "to_json",
]
