"""Binance's error replies, raised from anywhere in the emulator and answered by the server.

Clients branch on the numeric ``code`` (``-2019`` margin, ``-1021`` timestamp, ``-2015`` key),
so each failure is raised with the status, code and message Binance uses for it.
"""

from __future__ import annotations

from typing import Final

MSG_BAD_KEY: Final = "Invalid API-key, IP, or permissions for action."
MSG_BAD_TIMESTAMP: Final = "Timestamp for this request is outside of the recvWindow."
MSG_UNKNOWN_ORDER: Final = "Unknown order sent."
MSG_POST_ONLY: Final = (
    "Due to the order could not be executed as maker, the Post Only order will be rejected. "
    "The order will not be recorded in the order history"
)


class ApiError(Exception):
    """A Binance error reply: HTTP status plus ``{"code": ..., "msg": ...}``."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"{status} {code} {msg}")
        self.status = status
        self.code = code
        self.msg = msg


def mandatory(name: str) -> ApiError:
    return ApiError(
        400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )
