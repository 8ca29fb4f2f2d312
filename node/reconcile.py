"""A venue's book after a restart (binance-testnet): whose it is, and how it compares.

On the testnet the venue is the truth: NautilusTrader's reconciliation brings the open
orders and positions back from it when the node starts. It gives each a strategy only
through ``external_order_claims`` - one strategy per instrument, named in its config,
which only the bundled EMA cross did - and everything else comes back as ``EXTERNAL``:
a trader's ``[[strategies]]`` entry saw itself flat and could enter again (twice the
exposure in one-way mode), and a halt, a flatten and its own views skipped what it held.

``Owners`` decides instead, for every strategy alike:

- an order the venue still has belongs to the strategy whose order id tag its client
  order id carries (``O-<date>-<time>-<trader tag>-<strategy tag>-<n>``, NautilusTrader's
  generator; the trader's tag must be this node's), else to the strategy the last
  checkpoint had it under; else it is no strategy's (``EXTERNAL``: an order placed by
  hand, or by another trader on the same account);
- a position (reconciliation opens it with a synthetic fill, which carries no tag)
  belongs to the strategy that trades its instrument - the loader allows one strategy
  per instrument on the testnet, where the account nets a symbol into one position -
  else to the checkpoint's owner of that instrument's position.

``compare_with_checkpoint`` then reports what differs from the last checkpoint, owners
included. (No NautilusTrader here: the supervisor imports this package;
``node.claims`` applies the rules inside the node.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from protocol import Snapshot

EXTERNAL = "EXTERNAL"  # NautilusTrader's strategy id for what no strategy claims


class Owners:
    """Who a reconciled order or position belongs to (see the module's rules)."""

    def __init__(
        self,
        trader_id: str,
        tags: Mapping[str, str],
        instruments: Mapping[str, str],
        checkpoint: Snapshot | None = None,
    ) -> None:
        """``tags``: each strategy's id by its order id tag; ``instruments``: the strategy
        trading each instrument; ``checkpoint``: the last one (its owners are used only
        where they are strategies of this node)."""
        self._trader_tag = tag_of(trader_id)
        self._tags = dict(tags)
        self._instruments = dict(instruments)
        known = set(tags.values())
        self._orders: dict[str, str] = {}
        self._positions: dict[str, str] = {}
        if checkpoint is not None:
            for order in checkpoint.open_orders:
                if order.strategy_id in known:
                    self._orders[order.client_order_id] = order.strategy_id
            for position in checkpoint.positions:
                if position.strategy_id in known:
                    self._positions[position.instrument_id] = position.strategy_id

    def tagged(self, client_order_id: str) -> str | None:
        """The strategy of this node whose order id tag ``client_order_id`` carries."""
        parts = client_order_id.split("-")
        if len(parts) < 6 or parts[0] != "O" or not parts[-1].isdigit():
            return None  # not NautilusTrader's hyphenated form (UUIDs, a venue's own ids)
        if parts[-3] != self._trader_tag:
            return None
        return self._tags.get(parts[-2])

    def order(self, client_order_id: str | None) -> str | None:
        """The owner of an order the venue has open; None: no strategy's."""
        if not client_order_id:
            return None
        return self.tagged(client_order_id) or self._orders.get(client_order_id)

    def position(self, instrument_id: str) -> str | None:
        """The owner of the position the venue holds on ``instrument_id``."""
        return self._instruments.get(instrument_id) or self._positions.get(instrument_id)


def compare_with_checkpoint(checkpoint: Snapshot, venue: Snapshot) -> list[str]:
    """Human-readable differences in positions, resting orders, their owners and balance.
    A checkpoint of a single-strategy service names no owner: only what it names is
    compared."""
    differences: list[str] = []

    def positions(s: Snapshot) -> dict[str, tuple[str, str, str]]:
        return {
            p.instrument_id: (p.side, str(p.quantity.normalize()), p.strategy_id)
            for p in s.positions
        }

    before, after = positions(checkpoint), positions(venue)
    for instrument in sorted(before.keys() | after.keys()):
        flat = ("FLAT", "0", "")
        was, now = before.get(instrument, flat), after.get(instrument, flat)
        if was[:2] != now[:2]:
            differences.append(
                f"position {instrument}: checkpoint {was[0]} {was[1]}, venue {now[0]} {now[1]}"
            )
        elif was[2] and was[2] != now[2]:
            differences.append(
                f"position {instrument}: the checkpoint's is {was[2]}'s, the venue's "
                f"reconciled as {now[2]}'s"
            )
    orders_before = {o.client_order_id: o.strategy_id for o in checkpoint.open_orders}
    orders_after = {o.client_order_id: o.strategy_id for o in venue.open_orders}
    if gone := sorted(orders_before.keys() - orders_after.keys()):
        differences.append(f"open orders no longer at the venue: {', '.join(gone)}")
    if new := sorted(orders_after.keys() - orders_before.keys()):
        differences.append(f"open orders at the venue not in the checkpoint: {', '.join(new)}")
    differences.extend(
        f"order {order_id}: the checkpoint's is {orders_before[order_id]}'s, the venue's "
        f"reconciled as {orders_after[order_id]}'s"
        for order_id in sorted(orders_before.keys() & orders_after.keys())
        if orders_before[order_id] and orders_before[order_id] != orders_after[order_id]
    )
    if checkpoint.balance != venue.balance:
        differences.append(
            f"balance: checkpoint {checkpoint.balance} {checkpoint.currency}, "
            f"venue {venue.balance} {venue.currency}"
        )
    return differences


def owners_for(
    trader_id: str, strategies: Sequence[tuple[str, str]], checkpoint: Snapshot | None
) -> Owners:
    """``strategies``: each strategy's id and the instrument it trades (the loader allows
    one strategy per instrument on the testnet; were there two, the first keeps it)."""
    tags = {tag_of(sid): sid for sid, _ in strategies}
    instruments: dict[str, str] = {}
    for sid, instrument_id in strategies:
        instruments.setdefault(instrument_id, sid)
    return Owners(trader_id, tags, instruments, checkpoint)


def tag_of(identifier: str) -> str:
    """A trader's or a strategy's tag in its order ids, as NautilusTrader's
    ``TraderId.get_tag`` and ``StrategyId.get_tag`` take it: after the last hyphen."""
    return identifier.rsplit("-", 1)[-1]
