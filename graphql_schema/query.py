"""Queries over stored candles and indicators.

Store reads and pandas-ta run in worker threads (`asyncio.to_thread`), never on the event loop,
except small reads of the embedded store (`graphql_schema.reads`).
A read that comes back empty for a market with no stored candles at all is NOT_FOUND (as a
subscription to it is); a known market with nothing in the range gives an empty result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated

import polars as pl
import strawberry
from strawberry.scalars import JSON
from strawberry.types.nodes import SelectedField, Selection

from graphql_schema.arguments import (
    check_exchange,
    check_indicator_names,
    check_known_market,
    check_limit,
    check_market,
    check_range,
    check_timeframe,
)
from graphql_schema.columns import FloatColumn, NullableFloatColumn, NullableIntColumn
from graphql_schema.context import Context
from graphql_schema.cursors import encode_cursor
from graphql_schema.errors import BadArgument
from graphql_schema.reads import read_store
from graphql_schema.selection import DEFAULT_LIMIT, CandleSelection, Page
from graphql_schema.types import (
    NS_PER_MS,
    Candle,
    CandlePage,
    CandleSeries,
    IndicatorSeries,
    NamedSeries,
    PageInfo,
    Symbol,
    to_datetime,
    to_ms,
)
from market import ta
from market.messages import Candle as CoreCandle

Info = strawberry.Info[Context, None]

_RANGE = "Candles with start <= ts < end (bucket starts; a time without a zone is UTC)"
_TIMEFRAME = strawberry.argument(
    description="A stored timeframe, or a multiple of one (2h, 3m), resampled from the widest "
    "stored timeframe that divides it."
)
_LIMIT = strawberry.argument(
    description=f"At most this many candles (default {DEFAULT_LIMIT}, at most the server's "
    "max_candles)."
)
_AFTER = strawberry.argument(
    description="A cursor (pageInfo.endCursor): the oldest `limit` candles after it."
)
_BEFORE = strawberry.argument(
    description="A cursor (pageInfo.startCursor): the newest `limit` candles before it."
)
_FROM_START = strawberry.argument(
    description="Without a cursor: the oldest `limit` candles of the range, not the newest "
    "(to page forwards from the start)."
)


@strawberry.type
class Query:
    @strawberry.field(description="Every market with stored candles, by exchange and symbol.")
    async def symbols(self, info: Info) -> list[Symbol]:
        rows = await asyncio.to_thread(info.context.store.symbol_summaries)
        return [
            Symbol(
                exchange=row.exchange, symbol=row.symbol, first_ts=to_datetime(row.first_ns),
                last_ts=to_datetime(row.last_ns), last_price=row.last_price,
            )
            for row in rows
        ]

    @strawberry.field(
        description=f"{_RANGE}: the newest `limit` of them, or the page `after` or `before` a "
        "cursor; oldest first. candlesPage gives the cursors."
    )
    async def candles(
        self,
        info: Info,
        exchange: str,
        symbol: str,
        timeframe: Annotated[str, _TIMEFRAME],
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Annotated[int | None, _LIMIT] = None,
        after: Annotated[str | None, _AFTER] = None,
        before: Annotated[str | None, _BEFORE] = None,
        from_start: Annotated[bool, _FROM_START] = False,
    ) -> list[Candle]:
        selection = CandleSelection.parse(
            info.context.limits, exchange=exchange, symbol=symbol, timeframe=timeframe,
            start=start, end=end, limit=limit, after=after, before=before,
            from_start=from_start,
        )
        store = info.context.store

        def read() -> list[Candle]:
            return [Candle.of(row) for row in selection.read(store)]

        nodes = await read_store(store, read, rows=selection.cost)
        if not nodes:
            await check_known_market(store, exchange, symbol)
        return nodes

    @strawberry.field(
        description="The candles query as a page: the candles and cursors to page on with."
    )
    async def candles_page(
        self,
        info: Info,
        exchange: str,
        symbol: str,
        timeframe: Annotated[str, _TIMEFRAME],
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Annotated[int | None, _LIMIT] = None,
        after: Annotated[str | None, _AFTER] = None,
        before: Annotated[str | None, _BEFORE] = None,
        from_start: Annotated[bool, _FROM_START] = False,
    ) -> CandlePage:
        selection = CandleSelection.parse(
            info.context.limits, exchange=exchange, symbol=symbol, timeframe=timeframe,
            start=start, end=end, limit=limit, after=after, before=before,
            from_start=from_start,
        )
        store = info.context.store

        def read() -> tuple[list[Candle], PageInfo]:
            page = selection.page(store)
            return [Candle.of(row) for row in page.candles], _page_info(page)

        nodes, page_info = await read_store(store, read, rows=selection.cost)
        if not nodes:
            await check_known_market(store, exchange, symbol)
        return CandlePage(nodes=nodes, page_info=page_info)

    @strawberry.field(
        description="The candles query as columns, for charts: fast at 10,000+ candles."
    )
    async def candle_series(
        self,
        info: Info,
        exchange: str,
        symbol: str,
        timeframe: Annotated[str, _TIMEFRAME],
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Annotated[int | None, _LIMIT] = None,
        after: Annotated[str | None, _AFTER] = None,
        before: Annotated[str | None, _BEFORE] = None,
        from_start: Annotated[bool, _FROM_START] = False,
    ) -> CandleSeries:
        selection = CandleSelection.parse(
            info.context.limits, exchange=exchange, symbol=symbol, timeframe=timeframe,
            start=start, end=end, limit=limit, after=after, before=before,
            from_start=from_start,
        )
        store = info.context.store
        columns = _selected_columns(info)
        series = await read_store(
            store, lambda: _series(selection, selection.page_frame(store, columns)),
            rows=selection.cost,
        )
        if not series.ts:
            await check_known_market(store, exchange, symbol)
        return series

    @strawberry.field(description="The latest stored candle of every market, by exchange, symbol.")
    async def latest_candles(
        self,
        info: Info,
        timeframe: Annotated[str, strawberry.argument(description="A stored timeframe.")],
        exchange: Annotated[
            str | None, strawberry.argument(description="Only this exchange's markets.")
        ] = None,
    ) -> list[Candle]:
        check_timeframe(timeframe, info.context.limits)
        if exchange is not None:
            check_exchange(exchange)
        store = info.context.store
        rows = await asyncio.to_thread(store.latest_candles, timeframe, exchange)
        return [Candle.of(row) for row in rows]

    @strawberry.field(
        description=f"Stored indicators (computed by the flow as candles close). {_RANGE}: the "
        "newest `limit` timestamps, oldest first."
    )
    async def indicators(
        self,
        info: Info,
        exchange: str,
        symbol: str,
        timeframe: Annotated[str, strawberry.argument(description="A stored timeframe.")],
        names: Annotated[
            list[str] | None,
            strawberry.argument(
                description="Storage names such as sma_20 or macd_12_26_9.hist; all by default."
            ),
        ] = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Annotated[int | None, _LIMIT] = None,
    ) -> IndicatorSeries:
        limits = info.context.limits
        check_market(exchange, symbol)
        check_timeframe(timeframe, limits)
        if names is not None:
            check_indicator_names(names)
        limit = min(DEFAULT_LIMIT, limits.max_candles) if limit is None else limit
        check_limit(limit, limits)
        start_ns, end_ns = check_range(start, end)
        store = info.context.store

        def read() -> pl.DataFrame | list[str]:
            if names is not None:
                # Columns of an empty read are the stored names: refuse a name not among them.
                stored = store.indicators(exchange, symbol, timeframe, None, limit=0).columns[1:]
                if not set(names) <= set(stored):
                    return stored
            return store.indicators(
                exchange, symbol, timeframe, names, start_ns=start_ns, end_ns=end_ns, limit=limit
            )

        frame = await asyncio.to_thread(read)
        if isinstance(frame, list):
            await check_known_market(store, exchange, symbol)
            missing = next(n for n in names or () if n not in frame)
            raise BadArgument(
                "names",
                f"no stored indicator {missing!r} for {exchange}:{symbol} {timeframe}; "
                f"stored: {', '.join(frame) or 'none'}",
            )
        if frame.height == 0:
            await check_known_market(store, exchange, symbol)
        return _indicator_series(exchange, symbol, timeframe, frame)

    @strawberry.field(
        description="Any pandas-ta indicator computed now over stored candles, with warm-up "
        f"candles read before the range. {_RANGE}: the newest `limit` candles, oldest first."
    )
    async def indicator(
        self,
        info: Info,
        exchange: str,
        symbol: str,
        timeframe: Annotated[str, _TIMEFRAME],
        name: Annotated[
            str, strawberry.argument(description="A pandas-ta function: sma, macd, bbands...")
        ],
        params: Annotated[
            JSON | None,
            strawberry.argument(
                description='Its keyword parameters, e.g. {"length": 20}; pandas-ta\'s '
                "defaults for the rest."
            ),
        ] = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: Annotated[int | None, _LIMIT] = None,
    ) -> IndicatorSeries:
        selection = CandleSelection.parse(
            info.context.limits, exchange=exchange, symbol=symbol, timeframe=timeframe,
            start=start, end=end, limit=limit,
        )
        if len(name) > 64:
            raise BadArgument("name", "expected a pandas-ta indicator name")
        store = info.context.store

        def compute() -> IndicatorSeries:
            try:
                call = ta.prepare(name, params)
            except ta.TaError as error:
                raise _ta_argument(error) from None
            candles = selection.read(store)
            if not candles:
                return _indicator_series(exchange, symbol, timeframe, pl.DataFrame())
            warmup = selection.read_before(store, candles[0].ts, call.warmup)
            rows = warmup + candles
            try:
                outputs = ta.compute(call, [c.ts for c in rows], _candle_columns(rows))
            except ta.TaError as error:
                raise _ta_argument(error) from None
            return IndicatorSeries(
                exchange=exchange, symbol=symbol, timeframe=timeframe,
                ts=FloatColumn.of([to_ms(c.ts) for c in candles]),
                series=[
                    NamedSeries(
                        name=output,
                        values=NullableFloatColumn.of(values[len(warmup):].tolist()),
                    )
                    for output, values in outputs
                ],
            )

        series = await asyncio.to_thread(compute)
        if not series.ts:
            await check_known_market(store, exchange, symbol)
        return series


def _page_info(page: Page[list[CoreCandle]] | Page[pl.DataFrame]) -> PageInfo:
    first, last = page.first_ts, page.last_ts
    return PageInfo(
        start_cursor=encode_cursor(first) if first is not None else None,
        end_cursor=encode_cursor(last) if last is not None else None,
        has_previous_page=page.has_previous,
        has_next_page=page.has_next,
    )


#: CandleSeries fields read from the store's columns (`ts` always is).
_SERIES_COLUMNS = frozenset({"open", "high", "low", "close", "volume", "trades", "vwap"})


def _selected_columns(info: Info) -> list[str]:
    """The columns the query selects: each costs a Python object per candle to read, so a
    chart that asks for OHLC only reads no volume, trades or vwap."""
    names: set[str] = set()

    def visit(selections: Sequence[Selection]) -> None:
        for selected in selections:
            if isinstance(selected, SelectedField):
                names.add(selected.name)
            else:  # a fragment: its own selections
                visit(selected.selections)

    for field in info.selected_fields:
        visit(field.selections)
    return sorted(names & _SERIES_COLUMNS)


def _series(selection: CandleSelection, page: Page[pl.DataFrame]) -> CandleSeries:
    """The page's columns; those not read (not selected) are empty, and never sent."""
    frame = page.candles

    def floats(name: str) -> FloatColumn:
        return FloatColumn.of_series(frame[name]) if name in frame.columns else FloatColumn()

    return CandleSeries(
        exchange=selection.exchange,
        symbol=selection.symbol,
        timeframe=selection.timeframe,
        ts=FloatColumn.of_series((frame["ts"] // NS_PER_MS).cast(pl.Float64)),
        open=floats("open"),
        high=floats("high"),
        low=floats("low"),
        close=floats("close"),
        volume=floats("volume"),
        trades=(
            NullableIntColumn.of_series(frame["trades"]) if "trades" in frame.columns
            else NullableIntColumn()
        ),
        vwap=(
            NullableFloatColumn.of_series(frame["vwap"]) if "vwap" in frame.columns
            else NullableFloatColumn()
        ),
        page_info=_page_info(page),
    )


def _indicator_series(
    exchange: str, symbol: str, timeframe: str, frame: pl.DataFrame
) -> IndicatorSeries:
    ts = frame["ts"] if "ts" in frame.columns else pl.Series("ts", [], dtype=pl.Int64)
    return IndicatorSeries(
        exchange=exchange,
        symbol=symbol,
        timeframe=timeframe,
        ts=FloatColumn.of((ts // 1_000_000).cast(pl.Float64).to_list()),
        series=[
            NamedSeries(name=name, values=NullableFloatColumn.of(frame[name].to_list()))
            for name in frame.columns
            if name != "ts"
        ],
    )


def _candle_columns(rows: Sequence[CoreCandle]) -> dict[str, list[float]]:
    return {
        "open": [c.open for c in rows],
        "high": [c.high for c in rows],
        "low": [c.low for c in rows],
        "close": [c.close for c in rows],
        "volume": [c.volume for c in rows],
    }


def _ta_argument(error: ta.TaError) -> BadArgument:
    if isinstance(error, ta.UnknownIndicator):
        return BadArgument("name", str(error))
    param = getattr(error, "param", "")
    return BadArgument(f"params.{param}" if param else "params", str(error))
