"""`run_exchange_feed`: every market of one exchange, from ccxt to JetStream, until stopped.

Wires the parts: a NATS connection (the TRADES and DEADLETTER streams, the cursor bucket),
one ccxt instance per market sharing the first one's markets and rate limiter, a
`MarketFeed` per market (`flows.trade_feed`), and one `FeedPublisher` draining their
`TradeBuffer` (`flows.feed_publisher`). On stop, the markets stop reading, what they took is
published, and every connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

import ccxt
import nats
import nats.errors

from flows.exchanges import open_exchange
from flows.feed_publisher import FeedPublisher, TradeBuffer, load_cursor, open_cursors
from flows.feed_stats import FeedStats
from flows.nats_events import connect, finish
from flows.streams import ensure_streams
from flows.trade_feed import FeedOptions, MarketFeed
from market.backoff import Backoff
from market.exchange_data import TradeConverter, canonical_symbol, ccxt_symbol, exchange_name

log = logging.getLogger(__name__)

#: How long a stopping feed keeps publishing what its markets took.
DRAIN_S = 10.0


class FeedError(Exception):
    """The feed cannot start: an unknown market, an unreachable exchange or NATS server."""


async def run_exchange_feed(
    nats_url: str,
    exchange_id: str,
    symbols: Sequence[str],
    *,
    config: dict[str, Any],
    options: FeedOptions,
    stats: FeedStats,
    stop: asyncio.Event,
    buffer_trades: int = 100_000,
    gather_s: float = 0.005,
) -> None:
    """Publish the trades of `symbols` (ccxt's `BTC/USDT` or our `BTC-USDT`) until `stop`."""
    exchange = exchange_name(exchange_id)
    markets = [canonical_symbol(s) for s in symbols]
    if not markets:
        raise FeedError("the feed needs at least one symbol (--symbols BTC/USDT,ETH/USDT)")
    # nats-py retries the first connection too; a stop meanwhile ends the wait.
    connecting = asyncio.ensure_future(connect(
        nats_url, name=f"candlegraph-feed-{exchange}", max_reconnect_attempts=-1
    ))
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not connecting.done():
        connecting.cancel()
        await asyncio.gather(connecting, return_exceptions=True)
        return
    try:
        nc = connecting.result()
    except (OSError, nats.errors.Error) as error:
        raise FeedError(f"cannot reach NATS at {nats_url}: {error}") from error
    instances: list[Any] = []
    try:
        js = nc.jetstream()
        await ensure_streams(js)
        cursors = await open_cursors(js)
        first = open_exchange(exchange, config, streaming=True)
        instances.append(first)
        if not await _load_markets(first, options, stats, stop):
            return
        unknown = [m for m in markets if ccxt_symbol(m) not in first.markets]
        if unknown:
            raise FeedError(
                f"{exchange} has no market {', '.join(ccxt_symbol(m) for m in unknown)}"
            )
        buffer = TradeBuffer(buffer_trades)
        publisher = FeedPublisher(js, cursors, buffer, stats, exchange=exchange,
                                  gather_s=gather_s, max_payload=nc.max_payload)
        feeds = []
        for i, market in enumerate(markets):
            instance = first
            if i:
                instance = open_exchange(exchange, config, streaming=True)
                instance.set_markets(list(first.markets.values()), first.currencies)
                instance.throttler = first.throttler  # one rate limit for the exchange
                instances.append(instance)
            cursor = await load_cursor(cursors, exchange, market)
            converter = TradeConverter(exchange, market, max_future_ns=options.max_future_ns)
            feeds.append(MarketFeed(instance, converter, cursor, buffer, publisher, stats,
                                    options))
        log.info("feed %s: %s, resuming %s", exchange, ", ".join(markets),
                 ", ".join(f"{f.symbol} after {f.cursor.id or 'nothing'}" for f in feeds))
        drained = asyncio.Event()  # set once the markets have stopped taking trades
        publishing = asyncio.create_task(publisher.run(drained), name="feed-publisher")
        reading = [asyncio.create_task(f.run(), name=f"feed-{f.symbol}") for f in feeds]
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({stopping, publishing}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)
        drained.set()
        try:
            # What the markets took is published; what cannot be within the grace period
            # (NATS is away) is fetched again by the next start, from the stored cursors.
            await asyncio.wait_for(publishing, timeout=DRAIN_S)
        except TimeoutError:
            log.warning("feed %s: %d trades not published within %g s of stopping; the next"
                        " start fetches them again", exchange, publisher.buffer.size, DRAIN_S)
        log.info("feed %s stopped after %d trades", exchange, stats.counts["trades"])
    finally:
        for instance in instances:
            with contextlib.suppress(Exception):
                await instance.close()
        await finish(nc)


async def _load_markets(
    exchange: Any, options: FeedOptions, stats: FeedStats, stop: asyncio.Event
) -> bool:
    """Load the exchange's markets, retrying network errors (rate limits included) with
    backoff; False when stopped first. Any other error is a `FeedError`."""
    backoff = Backoff(options.backoff_s, options.backoff_max_s)
    while not stop.is_set():
        try:
            await exchange.load_markets()
            return True
        except ccxt.NetworkError as error:
            if isinstance(error, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
                stats.rate_limited()
            delay = backoff.next_delay()
            log.warning("loading the markets of %s: %s: %s; again in %.2f s", exchange.id,
                        type(error).__name__, error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)
        except ccxt.BaseError as error:
            raise FeedError(f"cannot load the markets of {exchange.id}: {error}") from error
    return False
