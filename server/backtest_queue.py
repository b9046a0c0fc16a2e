"""The backtest job queue over NATS: `strategies.jobs.JobQueue` on JetStream.

- Jobs go to the work-queue stream `BACKTESTS` (file storage), one message per run on
  `backtests.jobs.<record id>`, with the id as `Nats-Msg-Id`: a job sent twice within the
  stream's duplicate window is stored once. A message leaves the stream when a worker acks it.
- Workers share one durable pull consumer, `workers`, with explicit acks: a job delivered to a
  worker that then goes silent for `ack_wait_s` (no ack, no in-progress ack) is delivered
  again, to whichever worker pulls next. Its delivery count is the run's attempt number.
- Changes of records are announced on core NATS, `backtests.events.<record id>`: fire and
  forget, since the store holds every change and a follower reads it when in doubt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NotFoundError

from db.backtest_store import BacktestRecord
from strategies.jobs import Job, encode_job

log = logging.getLogger(__name__)

STREAM = "BACKTESTS"
JOB_SUBJECTS = "backtests.jobs.*"
CONSUMER = "workers"
#: How long `enqueue` waits for JetStream to confirm a batch of jobs stored.
_ENQUEUE_TIMEOUT_S = 10.0
_RECORD = msgspec.json.Decoder(BacktestRecord)


def job_subject(id: str) -> str:
    return f"backtests.jobs.{id}"


def event_subject(id: str) -> str:
    return f"backtests.events.{id}"


async def ensure_jobs_stream(js: JetStreamContext) -> None:
    """Create the `BACKTESTS` work-queue stream unless it exists (safe to race)."""
    config = StreamConfig(
        name=STREAM,
        subjects=[JOB_SUBJECTS],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
    )
    try:
        await js.stream_info(STREAM)
        return
    except NotFoundError:
        pass
    try:
        await js.add_stream(config)
    except BadRequestError:
        await js.stream_info(STREAM)  # another process created it first


async def ensure_workers_consumer(js: JetStreamContext, *, ack_wait_s: float) -> None:
    """Create the workers' durable consumer, or update its ack wait to `ack_wait_s`: the last
    worker to start sets it for all."""
    await js.add_consumer(STREAM, ConsumerConfig(
        durable_name=CONSUMER,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_deliver=-1,  # the workers give up after their own bound, with the reason
        filter_subject=JOB_SUBJECTS,
    ))


class _Mailbox:
    """The changes of one record received so far (`strategies.jobs.Changes`)."""

    def __init__(self) -> None:
        self._changes: list[BacktestRecord] = []
        self._arrived = asyncio.Event()

    def put(self, record: BacktestRecord) -> None:
        self._changes.append(record)
        self._arrived.set()

    async def next(self, timeout_s: float) -> list[BacktestRecord]:
        if not self._changes:
            try:
                async with asyncio.timeout(timeout_s):
                    await self._arrived.wait()
            except TimeoutError:
                return []
        changes, self._changes = self._changes, []
        self._arrived.clear()
        return changes


class JetStreamQueue:
    """`strategies.jobs.JobQueue` over one NATS connection.

    `start` creates the stream if it can; a NATS server without JetStream leaves the server
    up (queries and live candles need none), and `enqueue` tries again, raising until it works.
    """

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._stream_ready = False

    async def start(self) -> None:
        try:
            await self._ensure_stream()
        except Exception as error:
            log.warning("backtests cannot be queued until JetStream answers: %r", error)

    async def _ensure_stream(self) -> None:
        if not self._stream_ready:
            await ensure_jobs_stream(self._js)
            self._stream_ready = True

    async def enqueue(self, jobs: Sequence[Job]) -> None:
        await self._ensure_stream()
        acks = [
            await self._js.publish_async(
                job_subject(job.id), encode_job(job), headers={"Nats-Msg-Id": job.id}
            )
            for job in jobs
        ]
        # A stream nobody answers for would leave the acks waiting for ever.
        async with asyncio.timeout(_ENQUEUE_TIMEOUT_S):
            await asyncio.gather(*acks)

    async def announce(self, record: BacktestRecord) -> None:
        light = msgspec.structs.replace(record, metrics_json=None)
        await self._nc.publish(event_subject(record.id), msgspec.json.encode(light))

    @asynccontextmanager
    async def follow(self, id: str) -> AsyncIterator[_Mailbox]:
        mailbox = _Mailbox()

        async def received(msg: Msg) -> None:
            with contextlib.suppress(msgspec.DecodeError):  # not a record: nothing to follow
                mailbox.put(_RECORD.decode(msg.data))

        sub = await self._nc.subscribe(event_subject(id), cb=received)
        # The subscription reaches the server before the caller reads the store.
        await self._nc.flush()
        try:
            yield mailbox
        finally:
            with contextlib.suppress(NatsError):  # a closing connection drops it anyway
                await sub.unsubscribe()
