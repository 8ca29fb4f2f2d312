"""The dashboard's access rules (``sessions.access``), asked directly."""

from __future__ import annotations

from sessions.access import (
    HOSTS_ENV,
    TOKEN_ENV,
    allowed_hosts,
    bind_refusal,
    host_refusal,
    is_loopback,
    token_matches,
)

TOKEN = "a-long-enough-dashboard-token"


def test_only_loopback_addresses_are_served_without_a_token() -> None:
    for address in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"):
        assert is_loopback(address) and bind_refusal(address, "") is None, address
    for address in (None, "", "0.0.0.0", "::", "192.168.1.20", "dashboard.example.org"):
        assert not is_loopback(address), address
        refusal = bind_refusal(address, "")
        assert refusal is not None and f"without a login: set {TOKEN_ENV}" in refusal
        assert bind_refusal(address, TOKEN) is None  # with a login: any address
    short = bind_refusal("127.0.0.1", "hunter2")
    assert short is not None and f"{TOKEN_ENV} is 7 characters: use at least 16" in short
    assert "hunter2" not in short


def test_the_token_is_compared_whole() -> None:
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN[:-1], TOKEN) and not token_matches(TOKEN + "x", TOKEN)
    assert not token_matches("", "")  # no token configured: nothing matches


def test_a_host_that_is_not_loopback_or_listed_is_refused() -> None:
    """DNS rebinding: a page of evil.example whose name resolves to 127.0.0.1 sends
    ``Host: evil.example:8501``."""
    hosts = allowed_hosts({})
    for host in ("127.0.0.1:8501", "localhost:8501", "[::1]:8501", "LOCALHOST", None):
        assert host_refusal(host, hosts) is None, host
    refusal = host_refusal("evil.example:8501", hosts)
    assert refusal is not None and "'evil.example'" in refusal and HOSTS_ENV in refusal
    proxied = allowed_hosts({HOSTS_ENV: " Paper.Example.org , "})
    assert host_refusal("paper.example.org", proxied) is None
    assert host_refusal("paper.example.org:443", proxied) is None
