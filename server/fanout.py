"""Live candles from NATS, fanned out to every subscriber of a series in this process.

Each subject in use (`candles.<exchange>.<symbol>.<timeframe>`) has one NATS subscription,
shared by all of its subscribers and dropped when the last one leaves. A message is decoded
once and put into each subscriber's mailbox without waiting, so a slow websocket never holds
up the others.

A mailbox keeps the latest version of each bucket (keyed by the candle's `ts`), in arrival
order: a newer update of a bucket not yet sent replaces the older one in place (conflation),
and a closed candle or a correction is never dropped for a newer bucket. It holds at most
`capacity` buckets; a subscriber that falls further behind than that is ended with
`SlowConsumer` rather than silently losing closed candles (it can resume with `since`).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import Counter, Gauge

from flows.subjects import candles_subject
from graphql_schema.errors import SlowConsumer
from market.messages import Candle, decode_candle

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FanoutMetrics:
    """Where the fan-out reports; see `server.metrics.Metrics`."""

    subscriptions: Gauge
    subjects: Gauge
    pending: Gauge
    fanned_out: Counter
    conflated: Counter


class Mailbox:
    """One subscriber's pending candles: the latest version per bucket, at most `capacity`."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._pending: OrderedDict[int, Candle] = OrderedDict()
        self._wakeup = asyncio.Event()
        self._overflowed = False

    def put(self, candle: Candle) -> bool:
        """Queue `candle`; True if it replaced an unsent version of its bucket."""
        if self._overflowed:
            return False
        replaced = candle.ts in self._pending
        if not replaced and len(self._pending) >= self._capacity:
            self._overflowed = True
            self._pending.clear()
        else:
            self._pending[candle.ts] = candle  # an existing key keeps its place
        self._wakeup.set()
        return replaced

    def __len__(self) -> int:
        return len(self._pending)

    def __aiter__(self) -> Mailbox:
        return self

    async def __anext__(self) -> Candle:
        while not self._pending:
            if self._overflowed:
                raise SlowConsumer(
                    f"this subscriber fell more than {self._capacity} candles behind; "
                    "resubscribe with `since` to resume without a gap"
                )
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._pending.popitem(last=False)[1]


@dataclass(slots=True)
class _Topic:
    subject: str
    mailboxes: set[Mailbox] = field(default_factory=set)
    opened: asyncio.Task[Subscription] | None = None


class CandleFanout:
    """The `CandleFeed` of the server: one NATS subscription per subject in use."""

    def __init__(
        self, nc: Client, *, capacity: int = 256, metrics: FanoutMetrics | None = None
    ) -> None:
        self._nc = nc
        self._capacity = capacity
        self._metrics = metrics
        self._topics: dict[str, _Topic] = {}
        self._closing: set[asyncio.Task[None]] = set()
        if metrics is not None:
            metrics.pending.set_function(self.pending)

    def subscribers(self) -> dict[str, int]:
        """Subject -> number of subscribers, for every NATS subscription held."""
        return {subject: len(topic.mailboxes) for subject, topic in self._topics.items()}

    def pending(self) -> int:
        """Candles waiting in mailboxes: the backlog of subscribers slower than the feed."""
        return sum(len(box) for topic in self._topics.values() for box in topic.mailboxes)

    @asynccontextmanager
    async def subscribe(
        self, exchange: str, symbol: str, timeframe: str
    ) -> AsyncIterator[AsyncIterator[Candle]]:
        subject = candles_subject(exchange, symbol, timeframe)
        mailbox = Mailbox(self._capacity)
        # Bookkeeping is synchronous, so a cancellation at any await leaves it consistent.
        topic = self._topics.get(subject)
        if topic is None:
            topic = self._topics[subject] = _Topic(subject)
            topic.opened = asyncio.create_task(self._open(topic))
        topic.mailboxes.add(mailbox)
        try:
            # Shielded: a subscriber that gives up waiting must not cancel the others' open.
            assert topic.opened is not None
            await asyncio.shield(topic.opened)
            self._report(+1)
            try:
                yield mailbox
            finally:
                self._report(-1)
        finally:
            self._leave(topic, mailbox)

    async def close(self) -> None:
        """Wait for subscriptions being dropped (call before draining the connection)."""
        while self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _open(self, topic: _Topic) -> Subscription:
        sub = await self._nc.subscribe(topic.subject, cb=partial(self._deliver, topic))
        # Once the server has the subscription, every later publish reaches the mailboxes:
        # `since` reads the store only after this.
        await self._nc.flush()
        return sub

    def _leave(self, topic: _Topic, mailbox: Mailbox) -> None:
        topic.mailboxes.discard(mailbox)
        if topic.mailboxes or self._topics.get(topic.subject) is not topic:
            return
        del self._topics[topic.subject]
        self._report(0)
        task = asyncio.create_task(self._drop(topic))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _drop(self, topic: _Topic) -> None:
        assert topic.opened is not None
        try:
            sub = await topic.opened
        except Exception:
            return  # never opened: nothing to drop
        try:
            await sub.unsubscribe()
        except Exception as error:
            # The connection is closing or gone; the server drops its subscriptions then.
            log.warning("could not unsubscribe from %s: %s", topic.subject, error)

    async def _deliver(self, topic: _Topic, msg: Msg) -> None:
        if not topic.mailboxes:
            return  # being dropped
        try:
            candle = decode_candle(msg.data)
        except msgspec.DecodeError as error:
            log.warning("undecodable candle on %s: %s", msg.subject, error)
            return
        conflated = 0
        for mailbox in topic.mailboxes:
            conflated += mailbox.put(candle)
        if self._metrics is not None:
            self._metrics.fanned_out.inc(len(topic.mailboxes))
            if conflated:
                self._metrics.conflated.inc(conflated)

    def _report(self, change: int) -> None:
        if self._metrics is None:
            return
        if change:
            self._metrics.subscriptions.inc(change)
        self._metrics.subjects.set(len(self._topics))
