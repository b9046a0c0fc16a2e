"""`candlegraph feed`: an exchange's live trades through ccxt, published on NATS.

One `MarketFeed` per market reads the exchange's websocket trade stream (ccxt.pro's
`watch_trades`) or, where the exchange has none in ccxt, polls REST `fetch_trades`. Each market
keeps the last trade it has taken (`market.trade_cursor`), so the stream and REST can overlap
without a trade being taken twice.

- **Reconnects**: a dropped socket, a stream silent for `stall_s`, or an exchange error
  (rate limits, 429 and 418 included) closes the market's socket and starts again after an
  exponential backoff with jitter (`market.backoff`); the first good read resets it.
- **Gaps**: at start-up and after every reconnect, the market first fetches over REST every
  trade after its cursor, page by page, until it has caught up; then it reads the stream.
  The stream itself is checked too: a jump in Binance's consecutive trade ids, a read that
  filled ccxt's trade cache (trades may have been pushed out), or, for exchanges without
  consecutive ids, the first read after connecting, sends the market to REST again first.
  At start-up the cursor is the last published trade, read from the key-value bucket
  (`flows.feed_publisher`), so a restarted feed loses nothing; on a first start it begins
  with the stream.
- **Bad trades** (`market.exchange_data`) go to `deadletter.trades` with their reason; the
  market goes on.

Binance is the one special case: its stream is `@aggTrade` and REST `aggTrades`, whose ids
are one consecutive sequence per market (ccxt's default pairs `@trade` with `aggTrades`,
whose ids differ), and REST pages go by `fromId`. Other exchanges page by time from the
cursor's millisecond.

The markets share one ccxt rate limiter (ccxt's per-instance token bucket, handed to each
market's instance), so together they stay within the exchange's request rate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ccxt

from flows.exchanges import TRADES_CACHE, streams_trades
from flows.feed_publisher import FeedPublisher, Taken, TradeBuffer
from flows.feed_stats import FeedStats
from flows.subjects import trades_subject
from market.backoff import Backoff
from market.exchange_data import TradeConverter
from market.messages import DeadLetter, Rejected, Trade
from market.trade_cursor import TradeCursor

log = logging.getLogger(__name__)

#: Per exchange: extra `watch_trades` params, and whether REST pages go by trade id.
_STREAM_PARAMS: dict[str, dict[str, Any]] = {"binance": {"name": "aggTrade"}}
_PAGES_BY_ID = {"binance"}

#: Trades asked for per REST page (Binance's most).
PAGE_LIMIT = 1000
#: How often a quiet stream's cache is looked at, in seconds.
PEEK_S = 0.5
#: How long a woken stream waits for more of a burst before taking the cached trades.
GATHER_S = 0.002
#: Bad trades remembered per market, so one seen on the stream and over REST is reported once.
_REPORTED = 1000


class StalledStream(Exception):
    """No trade arrived on the stream for the allowed time."""


@dataclass(frozen=True, slots=True)
class FeedOptions:
    """How each market reads: stall timeout, reconnect backoff, REST polling interval."""

    stall_s: float = 30.0
    backoff_s: float = 1.0
    backoff_max_s: float = 60.0
    poll_s: float = 1.0
    max_future_ns: int = 60 * 1_000_000_000


class MarketFeed:
    """One market of one exchange; see the module docstring."""

    def __init__(
        self,
        exchange: Any,
        converter: TradeConverter,
        cursor: TradeCursor,
        buffer: TradeBuffer,
        publisher: FeedPublisher,
        stats: FeedStats,
        options: FeedOptions,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.exchange = exchange
        self.converter = converter
        self.cursor = cursor
        self.buffer = buffer
        self.publisher = publisher
        self.stats = stats
        self.options = options
        self._clock_ns = clock_ns
        self._stream_params = dict(_STREAM_PARAMS.get(exchange.id, {}))
        self._pages_by_id = exchange.id in _PAGES_BY_ID
        self._backoff = Backoff(options.backoff_s, options.backoff_max_s)
        self._reported: dict[str, None] = {}

    @property
    def symbol(self) -> str:
        return self.converter.symbol

    @property
    def subject(self) -> str:
        return trades_subject(self.converter.exchange, self.converter.symbol)

    async def run(self) -> None:
        """Read the market until cancelled, reconnecting after failures."""
        streaming = streams_trades(self.exchange)
        while True:
            try:
                await self.catch_up()
                if streaming:
                    await self._stream()
                else:
                    await self._poll()
            except Exception as error:
                if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
                    self.stats.rate_limited()
                self.stats.reconnected(self.symbol)
                delay = self._backoff.next_delay()
                expected = isinstance(error, ccxt.BaseError | StalledStream | TimeoutError)
                log.log(
                    logging.WARNING if expected else logging.ERROR,
                    "%s: %s: %s; reconnecting in %.2f s", self.subject,
                    type(error).__name__, error, delay, exc_info=not expected,
                )
                await self._disconnect()
                await asyncio.sleep(delay)

    async def catch_up(self) -> int:
        """Fetch over REST, page by page, every trade after the cursor; return how many were
        new. Nothing to do before the first trade (an empty cursor)."""
        if self.cursor.empty:
            return 0
        total = 0
        while True:
            raw = await self._fetch_after_cursor()
            fresh = await self._take(raw)
            total += len(fresh)
            if len(raw) < PAGE_LIMIT or not fresh:
                break
        self._backoff.reset()
        if total:
            self.stats.gap_filled(self.symbol, total)
            log.info("%s: %d trades fetched over REST to fill a gap", self.subject, total)
        return total

    async def _fetch_after_cursor(self) -> list[dict[str, Any]]:
        market = self.converter.ccxt_symbol
        if self._pages_by_id and self.cursor.number is not None:
            page = await self.exchange.fetch_trades(
                market, None, PAGE_LIMIT, {"fromId": self.cursor.number + 1}
            )
        else:
            page = await self.exchange.fetch_trades(
                market, self.cursor.ts // 1_000_000, PAGE_LIMIT
            )
        # ccxt sorts a page by time, then by id as a string: "10" before "9" within a
        # millisecond. Numeric ids go back into their numeric order.
        return sorted(page, key=_page_order)

    async def _stream(self) -> None:
        """Read the stream: trades are taken from ccxt's cache, `watch_trades` only wakes us.

        ccxt.pro resolves a pending `watch_trades` when a message arrives, and caches every
        trade. A message that arrives while no call is pending resolves nothing: its trades
        wait in the cache until the next message. So each wake-up (a resolved call, or
        `PEEK_S` of quiet) takes every trade cached after the newest one handled, `GATHER_S`
        later, so that a busy stream is read in bursts rather than a call per message.
        """
        loop = asyncio.get_running_loop()
        watching: asyncio.Future[Any] | None = self._watch()
        last: dict[str, Any] | None = None
        first_read = True
        deadline = loop.time() + self.options.stall_s
        try:
            while True:
                if watching is None:
                    watching = self._watch()
                await asyncio.wait({watching}, timeout=PEEK_S)
                if watching.done():
                    watching.result()  # raises what ended the connection
                    watching = None
                    await asyncio.sleep(GATHER_S)
                fresh = self._cached_after(last)
                if fresh:
                    last = fresh[-1]
                    deadline = loop.time() + self.options.stall_s
                    await self._read(fresh, first_read)
                    first_read = False
                elif loop.time() > deadline:
                    raise StalledStream(f"no trade for {self.options.stall_s:g} s")
        finally:
            if watching is not None:
                watching.cancel()

    def _watch(self) -> asyncio.Future[Any]:
        market = self.converter.ccxt_symbol
        return asyncio.ensure_future(
            self.exchange.watch_trades(market, params=dict(self._stream_params))
        )

    def _cached_after(self, last: dict[str, Any] | None) -> list[dict[str, Any]]:
        """The trades ccxt has cached after `last` (the newest one handled), oldest first;
        all it holds when `last` is not among them (none handled yet, or pushed out)."""
        cache = (getattr(self.exchange, "trades", None) or {}).get(self.converter.ccxt_symbol)
        if not cache:
            return []
        end = len(cache)
        i = end - 1
        while i >= 0 and cache[i] is not last:
            i -= 1
        return [cache[j] for j in range(i + 1, end)]

    async def _read(self, raw: list[dict[str, Any]], first_read: bool) -> None:
        self._backoff.reset()
        await self._take(raw, check_gap=True, first_read=first_read)

    async def _poll(self) -> None:
        market = self.converter.ccxt_symbol
        while True:
            if self.cursor.empty:
                await self._take(await self.exchange.fetch_trades(market, None, PAGE_LIMIT))
            else:
                await self.catch_up()
            self._backoff.reset()
            await asyncio.sleep(self.options.poll_s)

    def _gap_before(self, trade: Trade, read: int, first_read: bool) -> bool:
        """Whether trades between the cursor and `trade`, the first new one of a stream read
        of `read` trades, may be missing from the stream."""
        if self.cursor.empty:
            return False
        if read >= TRADES_CACHE:
            return True  # the cache was full: older trades may have been pushed out
        number = self.cursor.number
        if number is not None and trade.trade_id.isdecimal():
            return int(trade.trade_id) > number + 1
        return first_read

    async def _take(
        self, raw: list[dict[str, Any]], *, check_gap: bool = False, first_read: bool = False
    ) -> list[Trade]:
        """Convert, dead-letter the bad ones, admit the new ones and buffer them. For a read
        of the stream (`check_gap`), first fill over REST a gap before its first new trade."""
        trades, rejected = self.converter.convert(raw, now_ns=self._clock_ns())
        for bad in rejected:
            # The stream and REST may both show the same bad trade: report it once.
            if bad.payload not in self._reported:
                self._reported[bad.payload] = None
                if len(self._reported) > _REPORTED:
                    del self._reported[next(iter(self._reported))]
                await self.publisher.dead_letter(self._letter(bad))
        if check_gap:
            first_new = next((t for t in trades if self.cursor.is_new(t)), None)
            if first_new is not None and self._gap_before(first_new, len(raw), first_read):
                await self.catch_up()
        fresh = self.cursor.admit(trades)
        if fresh:
            await self.buffer.put(Taken(self.symbol, fresh, self.cursor.state()))
        return fresh

    def _letter(self, rejected: Rejected) -> DeadLetter:
        return DeadLetter.of(rejected, self.subject)

    async def _disconnect(self) -> None:
        close = getattr(self.exchange, "close_ws_clients", None)
        if close is not None:
            with contextlib.suppress(Exception):
                await close()


def _page_order(trade: dict[str, Any]) -> tuple[int, int]:
    stamp = trade.get("timestamp")
    trade_id = str(trade.get("id"))
    return (
        stamp if type(stamp) is int else 0,
        int(trade_id) if trade_id.isdecimal() else 0,
    )
