"""Binance's request authentication: API key, HMAC-SHA256 signature and the recvWindow.

Clients differ in how they build a signed request (what goes in the query string, what in the
body, how the signature is encoded); checking them the way Binance does is what makes a
client that passes here likely to pass there, and makes key and clock faults testable.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final
from urllib.parse import unquote_plus

from .clock import Clock
from .errors import MSG_BAD_KEY, MSG_BAD_TIMESTAMP, ApiError, mandatory
from .faults import Faults
from .rest import Params, Security

MAX_RECV_WINDOW_MS: Final = 60_000


class Authenticator:
    def __init__(self, api_key: str, api_secret: str, faults: Faults, clock: Clock) -> None:
        self._api_key = api_key
        self._api_secret = api_secret
        self._faults = faults
        self._clock = clock

    def check(
        self, key: str, security: Security, params: Params, raw_query: str, body: str
    ) -> None:
        """Raise the error Binance would answer, if any. ``key`` is the X-MBX-APIKEY header."""
        if security == "NONE":
            return
        if not key:
            raise ApiError(401, -2014, "API-key format invalid.")
        if self._faults.invalid_key or not hmac.compare_digest(key, self._api_key):
            raise ApiError(401, -2015, MSG_BAD_KEY)
        if security == "USER_STREAM":
            return
        if "timestamp" not in params:
            raise mandatory("timestamp")
        if not params.get("signature"):
            raise mandatory("signature")
        # Binance signs totalParams: the query string followed by the request body, as sent,
        # each without the signature (which may be in either: ccxt puts it in the form body).
        signed = _unsigned(raw_query) + _unsigned(body)
        expected = hmac.new(self._api_secret.encode(), signed.encode(), hashlib.sha256).hexdigest()
        supplied = unquote_plus(params["signature"]).lower()
        if not hmac.compare_digest(expected, supplied):
            raise ApiError(400, -1022, "Signature for this request is not valid.")
        try:
            timestamp = int(params["timestamp"])
            recv_window = int(params.get("recvWindow", "5000"))
        except ValueError:
            raise ApiError(
                400, -1100, "Illegal characters found in parameter 'timestamp'."
            ) from None
        if recv_window > MAX_RECV_WINDOW_MS or recv_window <= 0:
            raise ApiError(400, -1130, "Data sent for parameter 'recvWindow' is not valid.")
        if self._faults.take_timestamp_error():
            raise ApiError(400, -1021, MSG_BAD_TIMESTAMP)
        now = self._clock()
        if timestamp > now + 1000:
            raise ApiError(
                400, -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if now - timestamp > recv_window:
            raise ApiError(400, -1021, MSG_BAD_TIMESTAMP)


def _unsigned(params: str) -> str:
    """``params`` (``a=1&b=2&signature=..``) as it was signed: without the signature."""
    return "&".join(part for part in params.split("&") if not part.startswith("signature="))
