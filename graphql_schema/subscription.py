"""Subscriptions: live candles from NATS, forming and closed, corrections included.

With `since`, closed candles are first replayed from the store, then the stream goes live with
no gap and no duplicate at the seam: the live subscription starts before the store is read
(so an update published during the read waits in the subscriber's mailbox), and a live update
is skipped when the replay already gave that bucket with at least as many trades. A candle's
`trades` count is its version: an amendment by a late trade always adds one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Annotated

import strawberry

from graphql_schema.arguments import check_market, check_timeframe
from graphql_schema.context import Context
from graphql_schema.errors import BadArgument, NotFound
from graphql_schema.types import Candle, to_ns

#: How many of the newest replayed buckets are remembered to drop stale live updates: only
#: buckets still open to amendment can have an update in flight at the seam.
SEAM_BUCKETS = 64


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Every update of one candle series as it happens.")
    async def candles(
        self,
        info: strawberry.Info[Context, None],
        exchange: str,
        symbol: str,
        timeframe: str,
        since: Annotated[
            datetime | None,
            strawberry.argument(
                description="First replay the stored (closed) candles with ts >= since, then "
                "go live with no gap and no duplicate. At most the server's candle cap."
            ),
        ] = None,
    ) -> AsyncIterator[Candle]:
        # A coroutine that returns the stream, rather than a generator: bad arguments are
        # then refused before the subscription starts (a websocket `error` message).
        context = info.context
        check_market(exchange, symbol)
        check_timeframe(timeframe, context.limits)
        if (exchange, symbol) not in await asyncio.to_thread(context.store.symbols):
            raise NotFound(f"no market {exchange}:{symbol}; the symbols query lists them")
        since_ns = to_ns(since) if since is not None else None
        return _stream(context, exchange, symbol, timeframe, since_ns)


async def _stream(
    context: Context, exchange: str, symbol: str, timeframe: str, since_ns: int | None
) -> AsyncGenerator[Candle, None]:
    async with context.feed.subscribe(exchange, symbol, timeframe) as live:
        replayed: dict[int, int] = {}
        if since_ns is not None:
            cap = context.limits.max_candles
            rows = await asyncio.to_thread(
                context.store.candles, exchange, symbol, timeframe,
                start_ns=since_ns, limit=cap + 1,
            )
            if len(rows) > cap:
                raise BadArgument(
                    "since",
                    f"more than {cap} candles since then; read them with the candles query "
                    "and subscribe from the last one",
                )
            for row in rows:
                yield Candle.of(row)
            replayed = {row.ts: _version(row.trades) for row in rows[-SEAM_BUCKETS:]}
        async for candle in live:
            if _version(candle.trades) <= replayed.get(candle.ts, -1):
                continue
            yield Candle.of(candle)


def _version(trades: int | None) -> int:
    """A candle's version at the seam: its trade count. A stored candle without one (from an
    exchange's history) is older than any the flow publishes for its bucket."""
    return -1 if trades is None else trades
