"""The failures a test can switch on, and the counters that spend them.

A client's error handling is only tested if the venue misbehaves on cue: rate limits, a revoked
key, clock skew, slow replies and order rejects. The state lives here; the parts that answer
requests (:mod:`.auth`, :mod:`.limits`, the order handler, the server) ask it whether to fail.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .errors import ApiError


@dataclass(slots=True)
class Faults:
    rate_limited: int = 0
    """The next this many REST requests get HTTP 429 -1003."""
    invalid_key: bool = False
    """Every keyed request gets HTTP 401 -2015."""
    timestamp_errors: int = 0
    """The next this many signed requests get -1021."""
    slow_s: float = 0.0
    """Every REST reply waits this long."""
    rejects: int = 0
    """The next this many order placements get ``reject_code``."""
    reject_code: int = -2019
    reject_msg: str = "Margin is insufficient."
    market_paused: bool = False
    """The market publishes nothing (connections stay open): a stalled feed."""
    history_down: bool = False
    """The history endpoints (aggTrades, klines, fundingRate) answer HTTP 503 -1001: a venue
    that streams but cannot serve its past."""
    history_failures: int = 0
    """The next this many history requests fail so, then they answer again."""

    def reset(self) -> None:
        """Back to no faults (in place: the parts that consult it keep this instance)."""
        clean = Faults()
        for f in fields(self):
            setattr(self, f.name, getattr(clean, f.name))

    def take_rate_limit(self) -> bool:
        if self.rate_limited > 0:
            self.rate_limited -= 1
            return True
        return False

    def take_timestamp_error(self) -> bool:
        if self.timestamp_errors > 0:
            self.timestamp_errors -= 1
            return True
        return False

    def take_history_failure(self) -> ApiError | None:
        if self.history_down or self.history_failures > 0:
            self.history_failures = max(0, self.history_failures - 1)
            return ApiError(503, -1001, "Internal error; unable to process your request.")
        return None

    def take_reject(self) -> ApiError | None:
        if self.rejects > 0:
            self.rejects -= 1
            return ApiError(400, self.reject_code, self.reject_msg)
        return None
