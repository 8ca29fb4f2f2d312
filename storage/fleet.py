"""The traders a database holds, and what their latest run recorded of its config.

``status --all`` and ``metrics targets`` find a host's traders from its state root
alone (no config at hand): each database under it, each trader in its ``runs``, and from
the latest run's recorded settings the heartbeat interval (when a heartbeat is stale) and
the metrics endpoint (where Prometheus scrapes it). Read-only, as every status reader.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from storage.errors import StorageError
from storage.status import open_readonly

DEFAULT_HEARTBEAT_S = 5.0  # protocol's ServiceSettings default, for a run that recorded none


@dataclass(frozen=True, slots=True)
class RecordedTrader:
    """A trader of a database, as its latest run recorded it."""

    trader_id: str
    mode: str
    heartbeat_interval_s: float
    metrics: tuple[str, int] | None  # (host, port) when the run served /metrics


def _section(settings: object, name: str) -> dict[str, object]:
    if isinstance(settings, dict):
        config = settings.get("config")
        if isinstance(config, dict):
            section = config.get(name)
            if isinstance(section, dict):
                return {str(k): v for k, v in section.items()}
    return {}


def _recorded(trader_id: str, mode: str, text: str | None) -> RecordedTrader:
    """A run's recorded settings (``protocol.RecordedSettings``), read leniently: a run of
    an older schema may lack a section, and the defaults stand in."""
    try:
        settings: object = json.loads(text) if text else {}
    except ValueError:
        settings = {}
    service, metrics = _section(settings, "service"), _section(settings, "metrics")
    beat = service.get("heartbeat_interval_s")
    interval = float(beat) if isinstance(beat, int | float) and beat > 0 else DEFAULT_HEARTBEAT_S
    host, port = metrics.get("host", "127.0.0.1"), metrics.get("port", 9477)
    served = metrics.get("enabled") is True and isinstance(port, int)
    endpoint = (str(host), int(port)) if served and isinstance(port, int) else None
    return RecordedTrader(trader_id, mode, interval, endpoint)


def recorded_traders(path: Path) -> list[RecordedTrader]:
    """Every trader with a run in the database at ``path``, by trader id."""
    conn = open_readonly(path)
    try:
        rows = conn.execute(
            "SELECT trader_id, mode, settings FROM runs WHERE id IN "
            "(SELECT max(id) FROM runs GROUP BY trader_id) ORDER BY trader_id"
        ).fetchall()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the runs of {path}: {exc}") from exc
    finally:
        conn.close()
    return [_recorded(str(r["trader_id"]), str(r["mode"]), r["settings"]) for r in rows]
