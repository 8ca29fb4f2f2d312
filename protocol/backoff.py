"""Exponential backoff delays from tenacity's wait strategy, for code that schedules
its own retries (a timer message, a node's next poll) instead of blocking in a retry
loop. Here, at the bottom, so the actors, the supervisor and the node child share one."""

from __future__ import annotations

import tenacity


def exponential_delay(attempt: int, initial_s: float, maximum_s: float) -> float:
    """``initial_s * 2 ** (attempt - 1)``, capped at ``maximum_s``; ``attempt`` is 1-based."""
    wait = tenacity.wait_exponential(multiplier=initial_s, max=maximum_s)
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return float(wait(state))
