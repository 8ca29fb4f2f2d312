"""Compare a venue's reconciled state with the last checkpoint (testnet restarts)."""

from __future__ import annotations

from protocol import Snapshot


def compare_with_checkpoint(checkpoint: Snapshot, venue: Snapshot) -> list[str]:
    """Human-readable differences in positions, resting orders and balance."""
    differences: list[str] = []

    def positions(s: Snapshot) -> dict[str, tuple[str, str]]:
        return {p.instrument_id: (p.side, str(p.quantity.normalize())) for p in s.positions}

    before, after = positions(checkpoint), positions(venue)
    for instrument in sorted(before.keys() | after.keys()):
        was, now = before.get(instrument, ("FLAT", "0")), after.get(instrument, ("FLAT", "0"))
        if was != now:
            differences.append(
                f"position {instrument}: checkpoint {was[0]} {was[1]}, venue {now[0]} {now[1]}"
            )
    orders_before = {o.client_order_id for o in checkpoint.open_orders}
    orders_after = {o.client_order_id for o in venue.open_orders}
    if gone := sorted(orders_before - orders_after):
        differences.append(f"open orders no longer at the venue: {', '.join(gone)}")
    if new := sorted(orders_after - orders_before):
        differences.append(f"open orders at the venue not in the checkpoint: {', '.join(new)}")
    if checkpoint.balance != venue.balance:
        differences.append(
            f"balance: checkpoint {checkpoint.balance} {checkpoint.currency}, "
            f"venue {venue.balance} {venue.currency}"
        )
    return differences
