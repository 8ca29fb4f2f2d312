"""What a person watching a session reads besides its status: the equity peaks of the
latest checkpoint, which the drawdown of a progress line is measured from (the node's own
peaks, the ones its breakers judge, not a reader's sampling of the equity)."""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import NamedTuple

from storage.errors import StorageError
from storage.status import open_readonly


class Peaks(NamedTuple):
    account: Decimal | None
    strategies: dict[str, Decimal]


def _decimal(value: object) -> Decimal | None:
    try:
        return None if value is None else Decimal(str(value))
    except InvalidOperation:
        return None


def equity_peaks(path: Path, trader_id: str) -> Peaks:
    """The account's and each strategy's equity peak as last checkpointed (none yet: None
    and an empty map)."""
    conn = open_readonly(path)
    try:
        row = conn.execute(
            "SELECT snapshot FROM checkpoints WHERE trader_id = ? ORDER BY id DESC LIMIT 1",
            [trader_id],
        ).fetchone()
    except sqlite3.Error as exc:
        raise StorageError(f"cannot read the checkpoints of {path}: {exc}") from exc
    finally:
        conn.close()
    if row is None:
        return Peaks(None, {})
    snapshot: object = json.loads(row["snapshot"])
    if not isinstance(snapshot, dict):
        return Peaks(None, {})
    views = snapshot.get("strategies")
    strategies = {}
    for view in views if isinstance(views, list) else []:
        peak = _decimal(view.get("equity_peak")) if isinstance(view, dict) else None
        if peak is not None and isinstance(view, dict):
            strategies[str(view.get("strategy_id"))] = peak
    return Peaks(_decimal(snapshot.get("equity_peak")), strategies)
