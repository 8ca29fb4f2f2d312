"""Who may use the dashboard: its login token, the address it serves, the hosts it answers.

The dashboard halts, resumes and stops sessions and launches new ones (testnet ones
trade with the keys in its environment), so whoever reaches its port controls money.
Three rules, each decided here without Streamlit so a test can ask them directly:

- **a login**: with ``PAPER_DASHBOARD_TOKEN`` set, every browser session shows only a
  login form until that token is typed; the comparison is ``hmac.compare_digest``, so
  its time does not tell how much of a guess was right;
- **loopback unless logged in**: an address that is not loopback (Streamlit's default,
  no ``server.address``, is every interface) is refused without a token, with one line;
- **a Host allowlist**: a browser page from another site can reach a loopback port by
  pointing its own host name at 127.0.0.1 (DNS rebinding); the dashboard answers only
  requests whose ``Host`` is a loopback name or one listed in ``PAPER_DASHBOARD_HOSTS``
  (a reverse proxy's public name).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping

TOKEN_ENV = "PAPER_DASHBOARD_TOKEN"  # noqa: S105 (the name of the variable)
HOSTS_ENV = "PAPER_DASHBOARD_HOSTS"
MIN_TOKEN_CHARS = 16
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(address: str | None) -> bool:
    """Whether serving on ``address`` (``server.address``) reaches this host only;
    None or empty is Streamlit's default, every interface."""
    if not address:
        return False
    if address.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:  # a host name: whatever it resolves to, not known to be loopback
        return False


def token_problem(token: str) -> str | None:
    """Why a configured token is not usable (too short to resist guessing), or None."""
    if token and len(token) < MIN_TOKEN_CHARS:
        return (
            f"{TOKEN_ENV} is {len(token)} characters: use at least {MIN_TOKEN_CHARS} "
            "(e.g. `python3 -c 'import secrets; print(secrets.token_urlsafe(24))'`)"
        )
    return None


def bind_refusal(address: str | None, token: str) -> str | None:
    """The one line the dashboard shows instead of serving, or None to serve."""
    if problem := token_problem(token):
        return f"refusing to serve the dashboard: {problem}"
    if token or is_loopback(address):
        return None
    where = f"address {address}" if address else "every interface (no server.address)"
    return (
        f"refusing to serve the dashboard on {where} without a login: set {TOKEN_ENV}, "
        "or serve on 127.0.0.1 (--server.address 127.0.0.1, as .streamlit/config.toml "
        "does) and reach it through an SSH tunnel"
    )


def token_matches(given: str, token: str) -> bool:
    """Constant-time: a wrong guess takes as long however many characters it got right."""
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def allowed_hosts(env: Mapping[str, str]) -> frozenset[str]:
    """The loopback names and ``PAPER_DASHBOARD_HOSTS`` (comma-separated), lower case."""
    extra = (h.strip().lower() for h in env.get(HOSTS_ENV, "").split(","))
    return frozenset(LOOPBACK_NAMES) | {h for h in extra if h}


def host_name(host_header: str) -> str:
    """``Host: example.org:8501`` -> ``example.org``; ``[::1]:8501`` -> ``::1``."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def host_refusal(host_header: str | None, allowed: frozenset[str]) -> str | None:
    """The one line shown to a request whose ``Host`` is not allowed, or None. No header
    at all is no browser's request (a browser always sends one): let through."""
    if host_header is None or host_name(host_header) in allowed:
        return None
    return (
        f"this dashboard does not answer to host {host_name(host_header)[:80]!r}: "
        f"open it as http://127.0.0.1:<port>, or add the name to {HOSTS_ENV}"
    )
