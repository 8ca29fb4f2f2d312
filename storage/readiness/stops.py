"""Whether a strategy's open positions were protected by a stop for their whole life,
judged from the session's checkpoints.

The ledger records fills, not the orders resting beside a position; a checkpoint's
snapshot holds both: the open positions and the open orders (a stop as
``STOP_MARKET``/``STOP_LIMIT`` with its trigger, ``reduce_only``). A checkpoint where a
strategy held a position is *protected* when reduce-only stop orders of that strategy,
on the same instrument and the closing side, rest for at least the position's quantity
(what is left of them unfilled). The resolution is the checkpoint interval, and only
the checkpoints retention kept are judged: a gap shorter than the interval between two
checkpoints is not seen.

The criterion applies only to a strategy that ever placed a stop (one resting in any
checkpoint): a strategy without stops by design is not judged on them.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from decimal import Decimal

from protocol import OrderView, PositionView, Snapshot
from storage.codec import snapshot_from_json

CLOSING_SIDE = {"LONG": "SELL", "SHORT": "BUY"}
NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class StopCoverage:
    """One strategy's checkpoints with an open position, and how many had their stop."""

    placed_stops: bool  # a stop of this strategy rested in some checkpoint
    open_checkpoints: int  # checkpoints where it held a position
    protected: int  # of those, the ones with a covering reduce-only stop
    longest_unprotected_s: float  # from the first checkpoint seeing it bare to the next
    # checkpoint seeing it covered or flat (or the last one)

    @property
    def share(self) -> float | None:
        return None if not self.open_checkpoints else self.protected / self.open_checkpoints


def _is_stop(order: OrderView) -> bool:
    return order.order_type.startswith("STOP")


def _mine(owner: str, strategy_id: str, alone: bool) -> bool:
    """A single-strategy service's rows name no strategy (``""``)."""
    return owner == strategy_id or (alone and owner == "")


def covered(position: PositionView, orders: list[OrderView]) -> bool:
    """Reduce-only stops on the closing side rest for the position's whole quantity."""
    side = CLOSING_SIDE.get(position.side)
    resting = sum(
        (
            o.quantity - o.filled_qty
            for o in orders
            if _is_stop(o)
            and o.reduce_only
            and o.side == side
            and o.instrument_id == position.instrument_id
        ),
        Decimal(0),
    )
    return resting >= abs(position.quantity)


def coverage(snapshots: list[Snapshot], strategy_id: str, alone: bool) -> StopCoverage:
    """``snapshots`` in time order; ``alone``: the session runs only this strategy."""
    placed = False
    open_count = protected = 0
    longest = 0
    bare_since: int | None = None
    last_ns = 0
    for snap in snapshots:
        orders = [o for o in snap.open_orders if _mine(o.strategy_id, strategy_id, alone)]
        placed = placed or any(_is_stop(o) for o in orders)
        held = [
            p
            for p in snap.positions
            if _mine(p.strategy_id, strategy_id, alone) and p.quantity != 0
        ]
        last_ns = snap.taken_at_ns
        if not held:
            ok = True
        else:
            open_count += 1
            ok = all(covered(p, orders) for p in held)
            protected += ok
        if ok and bare_since is not None:
            longest = max(longest, snap.taken_at_ns - bare_since)
            bare_since = None
        elif not ok and bare_since is None:
            bare_since = snap.taken_at_ns
    if bare_since is not None:
        longest = max(longest, last_ns - bare_since)
    return StopCoverage(placed, open_count, protected, longest / NS)


def read_snapshots(conn: sqlite3.Connection, trader: str, first_run: int) -> list[Snapshot]:
    """The session's checkpoints that retention kept, oldest first; one that no longer
    decodes is skipped."""
    rows = conn.execute(
        "SELECT snapshot FROM checkpoints WHERE trader_id = ? AND run_id >= ? ORDER BY id",
        [trader, first_run],
    ).fetchall()
    out: list[Snapshot] = []
    for row in rows:
        try:
            out.append(snapshot_from_json(str(row["snapshot"])))
        except ValueError:
            continue
    return out
