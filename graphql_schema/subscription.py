"""Subscriptions: live candles from NATS, forming and closed, corrections included."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import strawberry

from graphql_schema.arguments import check_market, check_timeframe
from graphql_schema.context import Context
from graphql_schema.types import Candle


@strawberry.type
class Subscription:
    @strawberry.subscription(description="Every update of one candle series as it happens.")
    async def candles(
        self, info: strawberry.Info[Context, None], exchange: str, symbol: str, timeframe: str
    ) -> AsyncGenerator[Candle, None]:
        check_market(exchange, symbol)
        check_timeframe(timeframe, info.context.limits)
        async for candle in info.context.feed.candles(exchange, symbol, timeframe):
            yield Candle.of(candle)
