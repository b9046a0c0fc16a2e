"""Queries over stored candles."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import strawberry

from graphql_schema.arguments import check_limit, check_market, check_timeframe
from graphql_schema.context import Context
from graphql_schema.errors import BadArgument
from graphql_schema.types import Candle, Symbol, to_ns


@strawberry.type
class Query:
    @strawberry.field(description="Every market with stored candles.")
    async def symbols(self, info: strawberry.Info[Context, None]) -> list[Symbol]:
        rows = await asyncio.to_thread(info.context.store.symbols)
        return [Symbol(exchange=exchange, symbol=symbol) for exchange, symbol in rows]

    @strawberry.field(
        description="Candles with start <= ts < end, the newest `limit` of them, newest last."
    )
    async def candles(
        self,
        info: strawberry.Info[Context, None],
        exchange: str,
        symbol: str,
        timeframe: str,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Annotated[
            int | None,
            strawberry.argument(description="At most this many (default 1000, capped by server)."),
        ] = None,
    ) -> list[Candle]:
        limits = info.context.limits
        check_market(exchange, symbol)
        check_timeframe(timeframe, limits)
        limit = min(1000, limits.max_candles) if limit is None else limit
        check_limit(limit, limits)
        start_ns = to_ns(start) if start is not None else None
        end_ns = to_ns(end) if end is not None else None
        if start_ns is not None and end_ns is not None and end_ns <= start_ns:
            raise BadArgument("end", "must be after start")
        rows = await asyncio.to_thread(
            info.context.store.candles,
            exchange, symbol, timeframe, start_ns=start_ns, end_ns=end_ns, limit=limit,
        )
        return [Candle.of(row) for row in rows]
