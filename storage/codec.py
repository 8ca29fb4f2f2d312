"""Messages to JSON and snapshots back, Decimal kept exact as strings (msgspec).

msgspec encodes the frozen dataclasses directly, which keeps a checkpoint with
10k orders well inside its write budget; decoding validates the types on the way
back, so a damaged row fails loudly instead of restoring nonsense.
"""

from __future__ import annotations

import msgspec

from protocol import Snapshot

_encoder = msgspec.json.Encoder(decimal_format="string")
_snapshot = msgspec.json.Decoder(Snapshot)


def to_json(value: object) -> str:
    """A message dataclass (or a dict of them) as compact JSON with exact decimals."""
    return _encoder.encode(value).decode()


def snapshot_from_json(text: str) -> Snapshot:
    try:
        return _snapshot.decode(text)
    except msgspec.ValidationError as exc:
        raise ValueError(f"checkpoint snapshot does not decode: {exc}") from exc
