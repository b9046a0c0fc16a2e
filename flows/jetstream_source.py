"""Bytewax source: a durable JetStream pull consumer on the TRADES stream.

Messages are emitted raw (subject, payload, reply subject). They are not acked here: the reply
subject travels with the data, and the sink acks it once what the message produced is stored.
A JetStream ack is a publish to the reply subject, so any process can ack, and a message not
acked within `ack_wait` is delivered again (duplicates are then dropped by trade id).
Setting the `stop` event ends the input gracefully.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from datetime import UTC, datetime, timedelta

import msgspec
import nats.errors
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from flows.nats_bridge import NatsBridge
from flows.streams import ensure_streams
from flows.subjects import TRADES_STREAM, TRADES_SUBJECTS


class RawMessage(msgspec.Struct, frozen=True):
    subject: str
    data: bytes
    reply: str


class JetStreamSource(FixedPartitionedSource[RawMessage, None]):
    """One partition reading the durable consumer `durable` on stream TRADES."""

    def __init__(
        self,
        nats_url: str,
        *,
        durable: str = "candles",
        fetch_batch: int = 512,
        max_buffered: int = 20_000,
        ack_wait_s: float = 60.0,
        stop: threading.Event | None = None,
    ) -> None:
        self._nats_url = nats_url
        self._stop = stop or threading.Event()
        self._durable = durable
        self._fetch_batch = fetch_batch
        self._max_buffered = max_buffered
        self._ack_wait_s = ack_wait_s

    def list_parts(self) -> list[str]:
        return [TRADES_STREAM]

    def build_part(
        self, step_id: str, for_part: str, resume_state: None
    ) -> _JetStreamPartition:
        return _JetStreamPartition(
            NatsBridge(self._nats_url, name=f"candlegraph-{step_id}"),
            durable=self._durable,
            fetch_batch=self._fetch_batch,
            max_buffered=self._max_buffered,
            ack_wait_s=self._ack_wait_s,
            stop=self._stop,
        )


class _JetStreamPartition(StatefulSourcePartition[RawMessage, None]):
    def __init__(
        self,
        bridge: NatsBridge,
        *,
        durable: str,
        fetch_batch: int,
        max_buffered: int,
        ack_wait_s: float,
        stop: threading.Event,
    ) -> None:
        self._bridge = bridge
        self._stop = stop
        self._buffer: deque[RawMessage] = deque()
        self._fetch_batch = fetch_batch
        self._max_buffered = max_buffered
        config = ConsumerConfig(
            durable_name=durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=ack_wait_s,
            max_ack_pending=max(max_buffered * 2, 1000),
            max_waiting=16,
        )

        async def subscribe() -> object:
            await ensure_streams(bridge.js)
            return await bridge.js.pull_subscribe(
                TRADES_SUBJECTS, durable=durable, stream=TRADES_STREAM, config=config
            )

        self._sub = bridge.call(subscribe)
        bridge.spawn(self._fetch_forever)

    async def _fetch_forever(self) -> None:
        # A fetching task on the bridge loop keeps network reads overlapping Bytewax's work.
        while True:
            if len(self._buffer) >= self._max_buffered:
                await asyncio.sleep(0.002)
                continue
            try:
                msgs = await self._sub.fetch(self._fetch_batch, timeout=0.5)  # type: ignore[attr-defined]
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.ConnectionClosedError, asyncio.CancelledError):
                return
            self._buffer.extend(RawMessage(m.subject, m.data, m.reply) for m in msgs)

    def next_batch(self) -> list[RawMessage]:
        buffer = self._buffer
        if self._stop.is_set() and not buffer:
            # Ending the input lets Bytewax drain, write and ack what is in flight, then exit.
            raise StopIteration
        n = min(len(buffer), self._fetch_batch * 4)
        return [buffer.popleft() for _ in range(n)]

    def next_awake(self) -> datetime | None:
        if self._buffer:
            return None
        return datetime.now(UTC) + timedelta(milliseconds=5)

    def snapshot(self) -> None:
        return None

    def close(self) -> None:
        self._bridge.close()
