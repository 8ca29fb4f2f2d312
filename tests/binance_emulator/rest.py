"""What every REST handler shares: the route record and Binance's parameter rules.

Binance reads parameters from the query string and the form body alike, rejects a parameter
sent twice, and answers a missing or malformed one with a specific code (-1102, -1100, -1121).
The handler modules parse through these helpers so every endpoint fails the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal
from urllib.parse import parse_qsl

from .errors import ApiError, mandatory

type Params = dict[str, str]
type Security = Literal["NONE", "USER_STREAM", "SIGNED"]
"""Binance's endpoint security types: public, API key only, API key and signature."""
type Handler = Callable[[Params], object]
FORM: str = "application/x-www-form-urlencoded"


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    security: Security
    weight: int = 1


def parse_params(raw_query: str, body: str, content_type: str) -> Params:
    params: Params = {}
    pairs = parse_qsl(raw_query, keep_blank_values=True)
    if body and content_type == FORM:
        pairs += parse_qsl(body, keep_blank_values=True)
    for key, value in pairs:
        if key in params:
            raise ApiError(400, -1101, "Duplicate values for a parameter detected.")
        params[key] = value
    return params


def symbol_param(params: Params, symbol: str, *, required: bool = True) -> str | None:
    """The request's ``symbol``, which must be the emulated one; None when optional and absent."""
    given = params.get("symbol")
    if not given:
        if required:
            raise mandatory("symbol")
        return None
    if given.upper() != symbol:
        raise ApiError(400, -1121, "Invalid symbol.")
    return symbol


def decimal_param(params: Params, name: str) -> Decimal:
    raw = params.get(name)
    if not raw:
        raise mandatory(name)
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise ApiError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is "
            "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        ) from None
    if not value.is_finite():
        raise mandatory(name)
    return value


def int_param(params: Params, name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


def bool_param(params: Params, name: str) -> bool:
    return params.get(name, "false").strip().lower() == "true"
