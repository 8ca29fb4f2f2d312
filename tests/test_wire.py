"""The snapshot's pipe encoding and the node pipe's ordering of large messages."""

from __future__ import annotations

import multiprocessing
import threading
from dataclasses import replace
from decimal import Decimal as D

from protocol import (
    EncodedSnapshotReply,
    OrderView,
    Pong,
    PositionView,
    Snapshot,
    TradingState,
    decode_snapshot,
    encode_order,
    encode_snapshot,
)
from tests.helpers import snapshot


def _snapshot(orders: int) -> Snapshot:
    """Every field away from its default, so a field the encoding drops shows."""
    return snapshot(
        trading_state=TradingState.HALTED,
        realized_pnl=D("-12.5"),
        open_orders=tuple(
            OrderView(f"O-{i}", "BTCUSDT-PERP.BINANCE", "BUY", "LIMIT", D("0.1"), D(0),
                      None if i % 2 else D("59000.1"), "ACCEPTED")
            for i in range(orders)
        ),
        positions=(
            PositionView("P-1", "BTCUSDT-PERP.BINANCE", "LONG", D("0.1"), D("60000.5"),
                         D("-1.5"), D("12.25")),
        ),
        orders_total=42,
        halt_reason="test",
        replay_total=100,
    )  # fmt: skip


def test_snapshot_round_trips_with_pre_encoded_orders() -> None:
    snap = _snapshot(3)
    raws = [encode_order(view) for view in snap.open_orders]
    data = encode_snapshot(replace(snap, open_orders=()), raws)
    assert decode_snapshot(data) == snap


def test_large_messages_keep_their_order_on_the_node_pipe() -> None:
    from node.host import _Pipe

    parent, child = multiprocessing.Pipe(duplex=True)
    pipe = _Pipe(child)
    big = EncodedSnapshotReply(1, b"x" * (256 * 1024))  # more than a pipe buffer holds
    received: list[object] = []
    reader = threading.Thread(target=lambda: received.extend(parent.recv() for _ in range(4)))
    reader.start()
    pipe.send(Pong("node", 1))
    pipe.send(big)
    pipe.send(Pong("node", 2))  # queued behind the large one
    pipe.send(big)
    pipe.drain(10.0)
    reader.join(10.0)
    assert received == [Pong("node", 1), big, Pong("node", 2), big]


def test_sending_to_a_parent_that_does_not_read_never_blocks_the_loop() -> None:
    """Issue 13, defect 10: small messages used to be written inline on the node's loop,
    which blocks once the OS pipe buffer is full and the parent is slow to read."""
    from node.host import _Pipe

    parent, child = multiprocessing.Pipe(duplex=True)
    pipe = _Pipe(child)
    sent = threading.Event()
    messages = [Pong("node", n) for n in range(20_000)]  # far more than a pipe buffer

    def send_all() -> None:
        for message in messages:
            pipe.send(message)
        sent.set()

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    assert sent.wait(10.0), "send() blocked while nobody read the pipe"
    received: list[object] = []
    reader = threading.Thread(
        target=lambda: received.extend(parent.recv() for _ in range(len(messages)))
    )
    reader.start()
    pipe.drain(30.0)
    reader.join(30.0)
    assert received == messages, "in order, none lost"


def test_a_partly_sent_frame_leaves_the_rest_of_each_piece_in_order() -> None:
    """The node pipe sends a frame's header and pickle as two pieces in one call; the
    kernel may take any number of bytes of them, the header's only part included."""
    from node.host import _header, _unsent

    header, payload = _header(5), b"abcde"
    assert len(header) == 4
    for sent in range(len(header) + len(payload) + 1):
        left = _unsent([header, payload], sent)
        assert b"".join(bytes(p) for p in left) == (header + payload)[sent:]
    assert _unsent([header, payload], 0) == [header, payload]
    assert _header(0x80000000)[:4] == b"\xff\xff\xff\xff"  # the long form for huge frames
