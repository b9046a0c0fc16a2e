"""From a feed's markets to JetStream: a bounded buffer, batched publishes, durable cursors.

- `TradeBuffer` holds the trades the markets have taken and not yet published, at most
  `capacity` of them: a market that finds it full waits (backpressure; nothing is dropped,
  and a market held up long enough to overflow ccxt's own cache fills that gap over REST).
- `FeedPublisher` takes what has gathered for up to `batch_s` and publishes each market's
  trades as a JSON array on `trades.<exchange>.<symbol>` (several, if one would come near
  the server's payload limit), awaiting JetStream's ack. Each
  message carries a `Nats-Msg-Id` made of its market and first and last trade ids, so a
  publish retried after a lost ack is dropped by the stream's duplicate window; a failed
  publish is retried with backoff until it is acked, never dropped. Once acked, the market's
  cursor (its last published trade) is put in the key-value bucket `CURSOR_BUCKET`, from
  which a restarted feed resumes.
- Rejected exchange trades go to `deadletter.trades` (kept by the `DEADLETTER` stream).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue

from flows.feed_stats import FeedStats
from flows.subjects import DEADLETTER_SUBJECT, trades_subject
from market.backoff import Backoff
from market.messages import DeadLetter, Trade, encode
from market.trade_cursor import CursorState, TradeCursor

log = logging.getLogger(__name__)

#: A generous size of one trade in a message (JSON): messages hold at most half the server's
#: payload limit of them.
_TRADE_BYTES = 200

#: The JetStream key-value bucket of the feeds' cursors, one key per `<exchange>.<symbol>`.
CURSOR_BUCKET = "candlegraph_feed_cursors"

_RETRYABLE = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.OutboundBufferLimitError,
    nats.js.errors.Error,
    OSError,
)


def cursor_key(exchange: str, symbol: str) -> str:
    return f"{exchange}.{symbol}"


async def open_cursors(js: JetStreamContext) -> KeyValue:
    """The cursor bucket, created on first use (one value per key, on disk)."""
    try:
        return await js.key_value(CURSOR_BUCKET)
    except nats.js.errors.BucketNotFoundError:
        return await js.create_key_value(bucket=CURSOR_BUCKET, history=1)


async def load_cursor(kv: KeyValue, exchange: str, symbol: str) -> TradeCursor:
    """The market's last published trade, or an empty cursor (a first start)."""
    try:
        entry = await kv.get(cursor_key(exchange, symbol))
    except nats.js.errors.KeyNotFoundError:
        return TradeCursor()
    try:
        return TradeCursor.decode(entry.value or b"")
    except ValueError as error:
        log.error("the stored cursor of %s:%s is not one (%s); starting from the stream",
                  exchange, symbol, error)
        return TradeCursor()


@dataclass(frozen=True, slots=True)
class Taken:
    """Trades a market took, in order, and its cursor just after the last of them."""

    symbol: str
    trades: list[Trade]
    cursor: CursorState


class TradeBuffer:
    """Trades waiting to be published: at most `capacity` (a larger batch is let into an
    empty buffer, so nothing is ever too big to pass)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"buffer capacity must be >= 1 trade, got {capacity}")
        self.capacity = capacity
        self.size = 0
        self._items: list[Taken] = []
        self._changed = asyncio.Condition()

    async def put(self, taken: Taken) -> None:
        """Add a market's trades, waiting while the buffer is full."""
        async with self._changed:
            await self._changed.wait_for(
                lambda: self.size == 0 or self.size + len(taken.trades) <= self.capacity
            )
            self._items.append(taken)
            self.size += len(taken.trades)
            self._changed.notify_all()

    async def take(self, gather_s: float) -> list[Taken]:
        """Everything buffered, once something is: after the first item, what arrives
        within `gather_s` more (or until the buffer is half full) comes along."""
        async with self._changed:
            await self._changed.wait_for(lambda: bool(self._items))
        if gather_s > 0 and self.size < self.capacity // 2:
            await asyncio.sleep(gather_s)
        async with self._changed:
            items, self._items = self._items, []
            self.size = 0
            self._changed.notify_all()
        return items

    def empty(self) -> bool:
        return not self._items


class FeedPublisher:
    """Publishes what `buffer` holds for one exchange; see the module docstring."""

    def __init__(
        self,
        js: JetStreamContext,
        cursors: KeyValue,
        buffer: TradeBuffer,
        stats: FeedStats,
        *,
        exchange: str,
        gather_s: float,
        retry_base_s: float = 0.05,
        retry_cap_s: float = 5.0,
        publish_timeout_s: float = 5.0,
        max_payload: int = 1_048_576,
    ) -> None:
        self.js = js
        self.cursors = cursors
        self.buffer = buffer
        self.stats = stats
        self.exchange = exchange
        self.gather_s = gather_s
        self._retry = (retry_base_s, retry_cap_s)
        self._timeout = publish_timeout_s
        self._max_payload = max_payload
        self._rng = random.Random()

    async def run(self, stop: asyncio.Event) -> None:
        """Publish until `stop` is set, then what is left in the buffer, and return."""
        while not stop.is_set():
            taking = asyncio.ensure_future(self.buffer.take(self.gather_s))
            stopping = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({taking, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            if taking in done:
                await self.publish(taking.result())
            else:
                # Cancelled while waiting or gathering: nothing was taken out yet.
                taking.cancel()
        while not self.buffer.empty():
            await self.publish(await self.buffer.take(0))

    async def publish(self, items: list[Taken]) -> None:
        """One message per market, each acked, then the markets' cursors stored."""
        by_symbol: dict[str, list[Taken]] = defaultdict(list)
        for item in items:
            by_symbol[item.symbol].append(item)
        await asyncio.gather(*(self._publish_market(s, group) for s, group in by_symbol.items()))
        self.stats.set_buffered(self.buffer.size)
        self.stats.report_if_due()

    async def _publish_market(self, symbol: str, items: list[Taken]) -> None:
        trades = [t for item in items for t in item.trades]
        if not trades:
            return
        subject = trades_subject(self.exchange, symbol)
        for chunk in self._chunks(trades):
            msg_id = (f"{self.exchange}:{symbol}:{chunk[0].trade_id}:{chunk[-1].trade_id}"
                      f":{len(chunk)}")
            payload = encode(chunk)
            await self._until_done(
                f"publishing {len(chunk)} trades on {subject}",
                functools.partial(
                    self.js.publish, subject, payload, timeout=self._timeout,
                    headers={"Nats-Msg-Id": msg_id},
                ),
            )
            self.stats.message_sent()
        self.stats.published(symbol, len(trades), trades[-1].ts)
        cursor = TradeCursor(items[-1].cursor).encode()
        await self._until_done(
            f"storing the cursor of {self.exchange}:{symbol}",
            lambda: self.cursors.put(cursor_key(self.exchange, symbol), cursor),
        )

    def _chunks(self, trades: list[Trade]) -> list[list[Trade]]:
        """The trades in messages well under the server's payload limit."""
        limit = max(1, self._max_payload // 2 // _TRADE_BYTES)
        return [trades[i:i + limit] for i in range(0, len(trades), limit)]

    async def dead_letter(self, letter: DeadLetter) -> None:
        self.stats.dead_lettered(letter.reason)
        log.warning("dead letter %s from %s: %s", letter.reason, letter.subject, letter.detail)
        await self._until_done(
            "publishing a dead letter",
            lambda: self.js.publish(DEADLETTER_SUBJECT, encode(letter), timeout=self._timeout),
        )

    async def _until_done(self, what: str, attempt: Callable[[], Awaitable[object]]) -> None:
        backoff = Backoff(*self._retry, rng=self._rng)
        while True:
            try:
                await attempt()
                return
            except _RETRYABLE as error:
                delay = backoff.next_delay()
                self.stats.publish_retried()
                log.warning("%s failed (%s: %s); retrying in %.2f s", what,
                            type(error).__name__, error, delay)
                await asyncio.sleep(delay)

