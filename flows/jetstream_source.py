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

A pulling task on the bridge's event loop keeps pull requests outstanding (`_Puller`), so
network reads overlap Bytewax's work; it stops pulling while `max_buffered_bytes` are waiting.
Setting `stop` ends the input gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import nats.errors
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, ConsumerInfo, DeliverPolicy, Header
from nats.js.errors import NotFoundError

from flows.nats_bridge import NatsBridge
from flows.streams import ensure_streams
from flows.subjects import FLOW_CONSUMER, TRADES_STREAM, TRADES_SUBJECTS

log = logging.getLogger(__name__)

_FULL_RECHECK_S = 0.002
_PULL_RETRY_S = 0.5
_PULL_BYTES = 4 * 1024 * 1024
_STATUS = Header.STATUS.value
_DESCRIPTION = Header.DESCRIPTION.value
_PENDING_MESSAGES = "Nats-Pending-Messages"


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
        durable: str = FLOW_CONSUMER,
        fetch_batch: int = 256,
        pull_expires_s: float = 5.0,
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
        self._pull_expires_s = pull_expires_s
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
                filter_subject=TRADES_SUBJECTS,
            ),
            fetch_batch=self._fetch_batch,
            pull_expires_s=self._pull_expires_s,
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
        pull_expires_s: float,
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

        async def open_consumer() -> ConsumerInfo:
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
            try:
                return await bridge.js.consumer_info(TRADES_STREAM, durable)
            except NotFoundError:
                return await bridge.js.add_consumer(TRADES_STREAM, config)

        info = bridge.call(open_consumer)
        if resume_after is None:
            # A snapshot taken before the first message must point where the consumer is.
            self._position = info.ack_floor.stream_seq if info.ack_floor else 0
        self._puller = _Puller(
            bridge.nc, f"$JS.API.CONSUMER.MSG.NEXT.{TRADES_STREAM}.{durable}",
            batch=fetch_batch, expires_s=pull_expires_s, room=self._room, deliver=self._received,
        )
        self._sub = bridge.call(self._puller.subscribe)
        bridge.on_reconnect(self._puller.reconnected)
        bridge.spawn(self._puller.pull_forever)

    def _room(self) -> int:
        return self._max_buffered_bytes - (self._fetched_bytes - self._taken_bytes)

    def _received(self, message: RawMessage) -> None:
        self._buffer.append(message)
        self._fetched_bytes += len(message.data)

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
        # Unsubscribing first: draining the subscription would wait for messages that the
        # stopped pulling task will never take.
        with contextlib.suppress(Exception):
            self._bridge.call(self._sub.unsubscribe, timeout=5)
        self._bridge.close()


class _Puller:
    """Keeps pull requests outstanding on the consumer and hands each message to the partition.

    nats-py's `fetch` waits for each message of a pull in turn (a task and a timeout per
    message) and sends the next pull only when one ends, which cost about 60 µs a message
    here. This sends JetStream's pull requests itself to one inbox whose callback buffers the
    messages, and sends the next pull as soon as at most one pull's worth is owed, so delivery
    never waits on a round trip and at most two pulls are outstanding.

    Each pull asks for `fetch_batch` messages, `expires` after `pull_expires_s`, and at most
    `max_bytes` (`_PULL_BYTES`, less when the partition has less room): the server ends a
    pull at that size, so what it pushes at once stays bounded whatever the message sizes,
    far from nats-server's per-client limit (64 MiB by default) past which it cuts a slow
    consumer off. A full partition stops pulling until `next_batch` makes room.

    `owed` counts messages asked for and not yet delivered. A pull that ends short answers
    with a status and `Nats-Pending-Messages` (what it still owed): 408 when it expired, 409
    when the next message would pass `max_bytes`. A status without that count (409: the
    consumer was deleted, or too many pulls wait) ends everything, so all is asked again,
    as after a reconnect.
    """

    def __init__(
        self,
        nc: Client,
        next_subject: str,
        *,
        batch: int,
        expires_s: float,
        room: Callable[[], int],
        deliver: Callable[[RawMessage], None],
    ) -> None:
        self._nc = nc
        self._next_subject = next_subject
        self._batch = batch
        self._expires_s = expires_s
        self._expires_ns = round(expires_s * 1e9)
        self._room = room  # bytes the partition can still take
        self._deliver = deliver
        self._owed = 0
        self.pulls = 0  # pull requests sent
        self.expired = 0  # pulls that ended unfilled on their expiry (408)
        self._wanted = asyncio.Event()
        self._inbox = ""

    async def subscribe(self) -> Subscription:
        self._inbox = self._nc.new_inbox()
        return await self._nc.subscribe(self._inbox, cb=self._on_message)

    async def pull_forever(self) -> None:
        nc = self._nc
        # A pull must fit the largest message the server accepts, or it could never end full.
        smallest = nc.max_payload + 4096
        while True:
            room = self._room()
            if room <= 0:
                await asyncio.sleep(_FULL_RECHECK_S)  # until `next_batch` makes room
                continue
            if self._owed <= self._batch:
                request = msgspec.json.encode({
                    "batch": self._batch,
                    "max_bytes": max(min(room, _PULL_BYTES), smallest),
                    "expires": self._expires_ns,
                })
                try:
                    await nc.publish(self._next_subject, request, reply=self._inbox)
                except nats.errors.ConnectionClosedError:
                    return
                except (nats.errors.Error, OSError) as error:
                    # A full pending buffer while reconnecting, or a connection that broke as
                    # nats-py wrote to it (it reconnects): the pull is sent again later.
                    log.warning("could not send a pull request (%s): retrying", error)
                    await asyncio.sleep(_PULL_RETRY_S)
                    continue
                self._owed += self._batch
                self.pulls += 1
                continue
            # Woken once deliveries leave at most one pull owed, or a pull ends.
            self._wanted.clear()
            try:
                await asyncio.wait_for(self._wanted.wait(), self._expires_s + 1.0)
            except TimeoutError:
                # Every pull ends within its expiry, filled or answered with a status:
                # these were lost (a reconnect drops them), so ask again.
                log.info("no answer to %d pulled messages: pulling again", self._owed)
                self._owed = 0

    def reconnected(self) -> None:
        """Pulls outstanding before a reconnect may be gone with the old connection (or the
        old server): ask again at once rather than after their expiry."""
        self._owed = 0
        self._wanted.set()

    async def _on_message(self, msg: Msg) -> None:
        headers = msg.headers
        if headers and _STATUS in headers:
            status, pending = headers[_STATUS], headers.get(_PENDING_MESSAGES)
            if pending is not None:
                self._owed = max(self._owed - int(pending), 0)
                self.expired += status == "408"
            else:
                log.info("pulls on %s ended: %s %s", self._next_subject, status,
                         headers.get(_DESCRIPTION, ""))
                self._owed = 0
            self._wanted.set()
            return
        self._owed -= 1
        seq = _stream_sequence(msg.reply)
        self._deliver(RawMessage(msg.subject, msg.data, msg.reply, seq))
        if self._owed <= self._batch:
            self._wanted.set()


def _stream_sequence(reply: str) -> int:
    """The stream sequence in a JetStream ack subject, in either of its two layouts, without
    the rest of `Msg.metadata` (a fifth of the cost per message)."""
    tokens = Msg.Metadata._get_metadata_fields(reply)
    return int(tokens[5] if len(tokens) == 9 else tokens[Msg.Ack.StreamSeq])
