"""Where a Binance session connects, and which endpoints each Binance mode accepts.

The supervisor's process never imports NautilusTrader (467 MB), so the adapter's own URLs
for an environment are written out here, as ``nautilus_trader.adapters.binance.common.urls``
1.231 has them for USD-M futures (``tests/test_binance_account.py`` checks them against
it):

- ``binance-testnet`` is the adapter's ``TESTNET`` environment. Its REST is
  ``https://demo-fapi.binance.com`` - Binance's demo trading, where the keys come from -
  its market streams and its futures user data stream (``<base>/ws?listenKey=...``, after
  ``POST /fapi/v1/listenKey`` on the REST host, for HMAC keys) are on
  ``wss://stream.binancefuture.com``, and an Ed25519 key logs on to the WS API at
  ``wss://testnet.binancefuture.com/ws-fapi/v1`` instead. The execution client takes
  ``base_url_ws`` for its WS API when it is set, so an override of the market streams is
  the Ed25519 WS API's too.
- ``binance-sandbox`` is the adapter's ``LIVE`` environment, public data only: REST
  ``https://fapi.binance.com`` and the routed market streams
  ``wss://fstream.binance.com/market`` (``/public`` for book data); no user stream.

The rules: ``binance-testnet`` sends its keys and its orders, so every endpoint must be a
host of Binance's futures testnet or demo trading, or loopback (the emulator in the tests),
never the mainnet; ``binance-sandbox`` reads public data and may use any host. Plain text
(``http://``, ``ws://``) only on loopback in both.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from protocol import BinanceSettings, Mode

TESTNET_REST = "https://demo-fapi.binance.com"
TESTNET_STREAMS = "wss://stream.binancefuture.com"
TESTNET_WS_API = "wss://testnet.binancefuture.com/ws-fapi/v1"
LIVE_REST = "https://fapi.binance.com"
LIVE_MARKET_STREAMS = "wss://fstream.binance.com/market"
LIVE_PUBLIC_STREAMS = "wss://fstream.binance.com/public"

# Hosts of Binance's USD-M futures testnet and demo trading: what NautilusTrader's TESTNET
# and DEMO environments use, and the testnet's stream host in Binance's documentation.
TESTNET_HOSTS = frozenset(
    {
        "demo-fapi.binance.com",
        "demo-fstream.binance.com",
        "testnet.binancefuture.com",
        "stream.binancefuture.com",
        "fstream.binancefuture.com",
    }
)
PLAIN_TEXT = frozenset({"http", "ws"})
ROUTE_SUFFIXES = (
    "/market/ws",
    "/market/stream",
    "/public/ws",
    "/public/stream",
    "/private/ws",
    "/private/stream",
    "/market",
    "/public",
    "/private",
    "/ws",
    "/stream",
)
URL_FIELDS = ("base_url_http", "base_url_ws", "base_url_ws_stream")

# The Ed25519 key's algorithm identifier (OID 1.3.101.112) inside a PKCS#8 key.
_ED25519_OID = bytes([0x06, 0x03, 0x2B, 0x65, 0x70])


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host.lower().rstrip(".") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(url: str) -> str:
    """``scheme://host[:port]``: a URL named in a problem without its path or query (or
    any user info, which the URL of a venue should not hold anyway)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def url_problems(mode: Mode, binance: BinanceSettings) -> list[str]:
    """Every endpoint the mode would refuse, in the loader's words."""
    if mode not in (Mode.BINANCE_TESTNET, Mode.BINANCE_SANDBOX):
        return []
    problems: list[str] = []
    for name in URL_FIELDS:
        url = getattr(binance, name)
        if not isinstance(url, str):
            continue
        parts = urlsplit(url)
        host = parts.hostname
        loopback = is_loopback(host)
        if parts.scheme.lower() in PLAIN_TEXT and not loopback:
            secure = "https" if parts.scheme.lower() == "http" else "wss"
            problems.append(
                f"binance.{name}: {_origin(url)} is plain text, which only a loopback "
                f"endpoint may be ({secure}:// elsewhere)"
            )
        if mode is Mode.BINANCE_TESTNET and not loopback and (host or "") not in TESTNET_HOSTS:
            problems.append(
                f"binance.{name}: binance-testnet connects only to Binance's "
                f"futures testnet ({', '.join(sorted(TESTNET_HOSTS))}) or to loopback, "
                f"not to {_origin(url)}"
            )
    return problems


def is_ed25519(secret: str) -> bool:
    """Whether the adapter takes ``secret`` for an Ed25519 key (a PKCS#8 key, PEM or
    base64): it then logs on to the WS API rather than asking REST for a listen key."""
    body = "".join(line for line in secret.splitlines() if not line.startswith("-----"))
    try:
        return _ED25519_OID in base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        return False


@dataclass(frozen=True, slots=True)
class Endpoints:
    rest: str
    market_streams: str
    user_stream: str

    def lines(self) -> list[str]:
        return [
            f"REST: {self.rest}",
            f"market streams: {self.market_streams}",
            f"user data stream: {self.user_stream}",
        ]


def _routed(url: str, route: str) -> str:
    """The adapter's routing of a LIVE USD-M stream override (``get_usdm_ws_route_base_url``):
    on an ``fstream`` host of Binance the route replaces the path; elsewhere it is kept."""
    host = urlsplit(url).hostname or ""
    if not (host.startswith("fstream") and host.endswith((".binance.com", ".binance.us"))):
        return url
    base = url.rstrip("/")
    for suffix in ROUTE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return f"{base}/{route}"


def user_stream_url(base: str) -> str:
    """The adapter's futures user stream URL (``get_futures_user_stream_url``), its listen
    key left out: ``/ws`` is added to a base without a path (or ``/private``)."""
    base = base.rstrip("/")
    path = (base.partition("://")[2] or base).partition("/")[2]
    if path in ("", "private"):
        base += "/ws"
    return f"{base}?listenKey=..."


def endpoints(mode: Mode, binance: BinanceSettings, api_secret: str = "") -> Endpoints | None:
    """The endpoints a session of ``mode`` uses (``None``: a replay uses none)."""
    if mode is Mode.BINANCE_SANDBOX:
        if binance.base_url_ws is None:
            streams = f"{LIVE_MARKET_STREAMS} (book data: {LIVE_PUBLIC_STREAMS})"
        else:
            market = _routed(binance.base_url_ws, "market")
            public = _routed(binance.base_url_ws, "public")
            streams = market if market == public else f"{market} (book data: {public})"
        return Endpoints(
            binance.base_url_http or LIVE_REST,
            streams,
            "none (the sandbox fills the orders; no keys)",
        )
    if mode is not Mode.BINANCE_TESTNET:
        return None
    if is_ed25519(api_secret):
        user = f"{binance.base_url_ws or TESTNET_WS_API} (the WS API: an Ed25519 key logs on)"
    else:
        stream = user_stream_url(binance.base_url_ws_stream or TESTNET_STREAMS)
        user = f"{stream} (the key from POST /fapi/v1/listenKey)"
    return Endpoints(
        binance.base_url_http or TESTNET_REST, binance.base_url_ws or TESTNET_STREAMS, user
    )
