"""The emulator checks signed requests the way Binance documents it.

Binance signs ``totalParams``, the query string followed by the form body, and accepts the
signature in either. Clients differ (Nautilus signs the query, ccxt sends a signed form body),
so the emulator must accept every documented layout and nothing else.
"""

from __future__ import annotations

import hashlib
import hmac

import pytest

from tests.binance_emulator.auth import Authenticator
from tests.binance_emulator.errors import ApiError
from tests.binance_emulator.faults import Faults
from tests.binance_emulator.rest import FORM, parse_params

KEY, SECRET = "key", "secret"
NOW = 1_700_000_000_000


def sign(total_params: str) -> str:
    return hmac.new(SECRET.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def check(query: str, body: str = "", *, key: str = KEY) -> None:
    auth = Authenticator(KEY, SECRET, Faults(), lambda: NOW)
    auth.check(key, "SIGNED", parse_params(query, body, FORM), query, body)


ORDER = f"symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.010&timestamp={NOW}"


def test_signature_and_parameters_in_the_query_string():
    check(f"{ORDER}&signature={sign(ORDER)}")


def test_signature_and_parameters_in_the_form_body():
    check("", f"{ORDER}&signature={sign(ORDER)}")


def test_parameters_split_between_query_and_body():
    query, body = "symbol=BTCUSDT&side=BUY", f"type=MARKET&quantity=0.010&timestamp={NOW}"
    check(query, f"{body}&signature={sign(query + body)}")
    check(f"{query}&signature={sign(query + body)}", body)


@pytest.mark.parametrize(
    ("query", "body"),
    [
        (f"{ORDER}&signature={sign(ORDER + 'x')}", ""),
        ("", f"{ORDER.replace('0.010', '0.020')}&signature={sign(ORDER)}"),
        ("symbol=BTCUSDT", f"{ORDER.removeprefix('symbol=BTCUSDT&')}&signature={sign(ORDER)}"),
    ],
    ids=["wrong-signature", "body-changed", "split-without-the-separator-signed-as-one"],
)
def test_a_signature_over_anything_else_is_refused(query, body):
    with pytest.raises(ApiError) as refused:
        check(query, body)
    assert (refused.value.status, refused.value.code) == (400, -1022)


def test_a_wrong_key_is_refused_before_the_signature_is_looked_at():
    with pytest.raises(ApiError) as refused:
        check(f"{ORDER}&signature=0", key="other")
    assert refused.value.code == -2015
