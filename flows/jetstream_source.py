"""Bytewax source: a durable JetStream pull consumer on the TRADES stream, resumable by position.

Messages are emitted raw (subject, payload, reply subject, stream sequence). They are not
acked here: the reply subject travels with the data, and the sink acks it once what the
message produced is stored.

Recovery works by position, not by acks: the partition's snapshot is the stream sequence of
the last message it emitted. When Bytewax resumes from a snapshot, the durable consumer is
re-created to deliver from the next sequence, so the restored aggregator state sees every
later message exactly once, in stream order, whatever was acked before the crash.

Before Bytewax has committed its first snapshot there is no position to resume from, yet
messages behind forming candles may already be acked. So with recovery on, the first start
writes the consumer's position to `start_file`, and a start that finds that file but no
snapshot (a crash before the first commit) reads again from there, as if it were the first
start. Without recovery an existing consumer carries on from its ack floor.

A fetching task on the bridge's event loop keeps network reads overlapping Bytewax's work; it
stops fetching while `max_buffered_bytes` are waiting. Setting `stop` ends the input gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import nats.errors
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from flows.nats_bridge import NatsBridge
from flows.streams import ensure_streams
from flows.subjects import TRADES_STREAM, TRADES_SUBJECTS

log = logging.getLogger(__name__)


class RawMessage(msgspec.Struct, frozen=True):
    """One message as read: `seq` is its stream sequence (0 when it has none, as in tests)."""

    subject: str
    data: bytes
    reply: str
    seq: int = 0


class JetStreamSource(FixedPartitionedSource[RawMessage, int]):
    """One partition reading the durable consumer `durable` on stream TRADES."""

    def __init__(
        self,
        nats_url: str,
        *,
        durable: str = "candles",
        fetch_batch: int = 256,
        max_buffered_bytes: int = 32 * 1024 * 1024,
        batch_bytes: int = 4 * 1024 * 1024,
        ack_wait_s: float = 60.0,
        max_ack_pending: int = 20_000,
        stop: threading.Event | None = None,
        start_file: Path | None = None,
    ) -> None:
        self._nats_url = nats_url
        self._start_file = start_file
        self._stop = stop or threading.Event()
        self._durable = durable
        self._fetch_batch = fetch_batch
        self._max_buffered_bytes = max_buffered_bytes
        self._batch_bytes = batch_bytes
        self._ack_wait_s = ack_wait_s
        self._max_ack_pending = max_ack_pending

    def list_parts(self) -> list[str]:
        return [TRADES_STREAM]

    def build_part(
        self, step_id: str, for_part: str, resume_state: int | None
    ) -> _JetStreamPartition:
        write_start = False
        if resume_state is None and self._start_file is not None:
            if self._start_file.exists():
                resume_state = int(self._start_file.read_text())
                log.info("no snapshot yet: reading %s again from the flow's first position %d",
                         TRADES_STREAM, resume_state)
            else:
                write_start = True
        partition = _JetStreamPartition(
            NatsBridge(self._nats_url, name=f"candlegraph-{step_id}"),
            durable=self._durable,
            resume_after=resume_state,
            config=ConsumerConfig(
                durable_name=self._durable,
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=self._ack_wait_s,
                max_ack_pending=self._max_ack_pending,
                max_waiting=16,
            ),
            fetch_batch=self._fetch_batch,
            max_buffered_bytes=self._max_buffered_bytes,
            batch_bytes=self._batch_bytes,
            stop=self._stop,
        )
        if write_start:
            assert self._start_file is not None
            _write_atomically(self._start_file, str(partition.snapshot()))
        return partition


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)


class _JetStreamPartition(StatefulSourcePartition[RawMessage, int]):
    def __init__(
        self,
        bridge: NatsBridge,
        *,
        durable: str,
        resume_after: int | None,
        config: ConsumerConfig,
        fetch_batch: int,
        max_buffered_bytes: int,
        batch_bytes: int,
        stop: threading.Event,
    ) -> None:
        self._bridge = bridge
        self._stop = stop
        self._buffer: deque[RawMessage] = deque()
        # Two counters, each written by one thread only: buffered = fetched - taken.
        self._fetched_bytes = 0
        self._taken_bytes = 0
        self._fetch_batch = fetch_batch
        self._max_buffered_bytes = max_buffered_bytes
        self._batch_bytes = batch_bytes
        self._position = resume_after or 0
        if resume_after is not None:
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = resume_after + 1

        async def subscribe() -> object:
            await ensure_streams(bridge.js)
            if resume_after is not None:
                last = (await bridge.js.stream_info(TRADES_STREAM)).state.last_seq
                if last < resume_after:
                    log.warning(
                        "stream %s ends at %d, before the snapshot's position %d (was it"
                        " re-created?): reading it from its start",
                        TRADES_STREAM, last, resume_after,
                    )
                    config.deliver_policy = DeliverPolicy.ALL
                    config.opt_start_seq = None
                # Deliver again from the snapshot's position, whatever was acked since.
                with contextlib.suppress(NotFoundError):
                    await bridge.js.delete_consumer(TRADES_STREAM, durable)
            return await bridge.js.pull_subscribe(
                TRADES_SUBJECTS, durable=durable, stream=TRADES_STREAM, config=config
            )

        self._sub = bridge.call(subscribe)
        if resume_after is None:
            # A snapshot taken before the first message must point where the consumer is.
            info = bridge.call(lambda: bridge.js.consumer_info(TRADES_STREAM, durable))
            self._position = info.ack_floor.stream_seq if info.ack_floor else 0
        bridge.spawn(self._fetch_forever)

    async def _fetch_forever(self) -> None:
        average = 1024
        while True:
            room = self._max_buffered_bytes - (self._fetched_bytes - self._taken_bytes)
            if room <= 0:
                await asyncio.sleep(0.002)
                continue
            want = max(1, min(self._fetch_batch, room // average))
            try:
                msgs = await self._sub.fetch(want, timeout=0.5)  # type: ignore[attr-defined]
            except nats.errors.TimeoutError:
                continue
            except (nats.errors.ConnectionClosedError, asyncio.CancelledError):
                return
            raw = [
                RawMessage(m.subject, m.data, m.reply, m.metadata.sequence.stream) for m in msgs
            ]
            size = sum(len(r.data) for r in raw)
            average = max(64, size // max(1, len(raw)))
            self._buffer.extend(raw)
            self._fetched_bytes += size

    def next_batch(self) -> list[RawMessage]:
        buffer = self._buffer
        if self._stop.is_set() and not buffer:
            # Ending the input lets Bytewax drain, write and ack what is in flight, then exit.
            raise StopIteration
        batch: list[RawMessage] = []
        taken = 0
        while buffer and taken < self._batch_bytes:
            message = buffer.popleft()
            taken += len(message.data)
            batch.append(message)
        if batch:
            self._taken_bytes += taken
            self._position = batch[-1].seq
        return batch

    def next_awake(self) -> datetime | None:
        if self._buffer:
            return None
        return datetime.now(UTC) + timedelta(milliseconds=5)

    def snapshot(self) -> int:
        return self._position

    def close(self) -> None:
        # Unsubscribing first: draining a pull subscription would wait for messages that the
        # stopped fetching task will never take.
        with contextlib.suppress(Exception):
            self._bridge.call(self._sub.unsubscribe, timeout=5)  # type: ignore[attr-defined]
        self._bridge.close()
