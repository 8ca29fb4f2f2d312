"""Snapshots to JSON and back, Decimal kept exact as strings."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from decimal import Decimal

from actors.messages import OrderView, PositionView, Snapshot, TradingState

type Json = str | int | float | bool | list[Json] | dict[str, Json] | None


def _plain(value: object) -> Json:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def to_json(value: object) -> str:
    """A message dataclass (or a dict) as compact JSON with exact decimals."""
    return json.dumps(_plain(value), separators=(",", ":"))


def _dec(value: Json) -> Decimal:
    return Decimal(str(value))


def _opt_dec(value: Json) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _obj(value: Json) -> dict[str, Json]:
    if not isinstance(value, dict):
        raise ValueError(f"expected an object, got {type(value).__name__}")
    return value


def _list(value: Json) -> list[Json]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


def _int(value: Json) -> int:
    if not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


def snapshot_from_json(text: str) -> Snapshot:
    data = _obj(json.loads(text))
    return Snapshot(
        taken_at_ns=_int(data["taken_at_ns"]),
        trader_id=str(data["trader_id"]),
        trading_state=TradingState(str(data["trading_state"])),
        currency=str(data["currency"]),
        balance=_dec(data["balance"]),
        equity=_dec(data["equity"]),
        realized_pnl=_dec(data["realized_pnl"]),
        unrealized_pnl=_dec(data["unrealized_pnl"]),
        replay_cursor=_int(data["replay_cursor"]),
        open_orders=tuple(
            OrderView(
                client_order_id=str(o["client_order_id"]),
                instrument_id=str(o["instrument_id"]),
                side=str(o["side"]),
                order_type=str(o["order_type"]),
                quantity=_dec(o["quantity"]),
                filled_qty=_dec(o["filled_qty"]),
                price=_opt_dec(o["price"]),
                status=str(o["status"]),
            )
            for o in map(_obj, _list(data["open_orders"]))
        ),
        positions=tuple(
            PositionView(
                position_id=str(p["position_id"]),
                instrument_id=str(p["instrument_id"]),
                side=str(p["side"]),
                quantity=_dec(p["quantity"]),
                avg_px_open=_dec(p["avg_px_open"]),
                realized_pnl=_dec(p["realized_pnl"]),
                unrealized_pnl=_dec(p["unrealized_pnl"]),
            )
            for p in map(_obj, _list(data["positions"]))
        ),
    )
