"""The session's recording, given a catch-up's trades and quotes in batches.

NautilusTrader's ``StreamingFeatherWriter`` (the node's ``StreamingConfig``) serializes
every object it receives on its own - an Arrow batch of one, about 0.3 ms a trade here -
which is nothing on a live feed but was 70 % of a catch-up's time: a catch-up of 54,000
trades played 1,700 a second. While the catch-up plays, this stands in for the writer
on the message bus: trades and quotes are gathered and written a batch at a time, to
the writer's own streams; everything else goes to the writer as before. The recording
holds the same rows either way (the parity backtest orders them by time).
"""

from __future__ import annotations

from nautilus_trader.common.component import MessageBus
from nautilus_trader.model.data import QuoteTick, TradeTick
from nautilus_trader.persistence.funcs import class_to_filename
from nautilus_trader.persistence.writer import StreamingFeatherWriter
from nautilus_trader.serialization.arrow.serializer import ArrowSerializer

BATCH = 2_000  # objects of one kind gathered before a write
BATCHED: tuple[type, ...] = (TradeTick, QuoteTick)


class BatchedRecording:
    """Installed for a catch-up, ``close``d after it (the writer is subscribed again)."""

    def __init__(self, msgbus: MessageBus, writer: StreamingFeatherWriter | None) -> None:
        self._msgbus = msgbus
        self._writer = writer
        self._gathered: dict[type, list[object]] = {}
        if writer is not None:
            msgbus.unsubscribe(topic="*", handler=writer.write)
            msgbus.subscribe(topic="*", handler=self._take)

    def _take(self, obj: object) -> None:
        writer = self._writer
        if writer is None:
            return
        kind = type(obj)
        if kind not in BATCHED:
            writer.write(obj)
            return
        gathered = self._gathered.setdefault(kind, [])
        gathered.append(obj)
        if len(gathered) >= BATCH:
            self.flush()

    def flush(self) -> None:
        writer = self._writer
        if writer is None:
            return
        gathered, self._gathered = self._gathered, {}
        for kind, objects in gathered.items():
            by_instrument: dict[str, list[TradeTick | QuoteTick]] = {}
            for obj in objects:
                if isinstance(obj, TradeTick | QuoteTick):
                    by_instrument.setdefault(obj.instrument_id.value, []).append(obj)
            for instrument_id, ticks in by_instrument.items():
                self._write(writer, kind, instrument_id, ticks)
        writer.check_flush()

    @staticmethod
    def _write(
        writer: StreamingFeatherWriter,
        kind: type,
        instrument_id: str,
        ticks: list[TradeTick | QuoteTick],
    ) -> None:
        """One batch to the instrument's stream; the writer's own way (one by one) while
        it has none yet - its first object opens it."""
        table = class_to_filename(kind)
        key = (table, instrument_id)
        stream = writer._instrument_writers.get(key)
        if stream is None:
            writer.write(ticks[0])
            stream = writer._instrument_writers.get(key)
            ticks = ticks[1:]
            if stream is None or not ticks:
                for tick in ticks:
                    writer.write(tick)
                return
        batch = ArrowSerializer.serialize_batch(ticks, data_cls=kind)
        stream.write_table(batch)
        writer._file_sizes[key] = writer._file_sizes.get(key, 0) + batch.nbytes

    def close(self) -> None:
        writer = self._writer
        if writer is None:
            return
        self.flush()
        self._msgbus.unsubscribe(topic="*", handler=self._take)
        self._msgbus.subscribe(topic="*", handler=writer.write)
        self._writer = None
