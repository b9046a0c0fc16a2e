"""Strawberry output types and the conversions from the core's messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import strawberry

from market.messages import Candle as CoreCandle

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000
_US = timedelta(microseconds=1)


def to_datetime(ts_ns: int) -> datetime:
    """Nanoseconds since the epoch → an aware UTC datetime (microsecond precision)."""
    seconds, rest = divmod(ts_ns, NS_PER_SECOND)
    if rest == 0:
        # Whole seconds (every candle): the C constructor, twice as fast as the arithmetic.
        return datetime.fromtimestamp(seconds, UTC)
    return EPOCH + timedelta(microseconds=ts_ns // 1000)


def to_ms(ts_ns: int) -> float:
    """Nanoseconds since the epoch → milliseconds as a float, exact for whole milliseconds."""
    return float(ts_ns // NS_PER_MS)


def to_ns(value: datetime) -> int:
    """An ISO-8601 datetime argument → nanoseconds since the epoch; naive means UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _US * 1000


TRADES_DESCRIPTION = (
    "Number of trades in the bucket. Null when the candle was not built from trades but taken "
    "from a source that does not give it (an exchange's candle history): never an estimate."
)
VWAP_DESCRIPTION = (
    "Volume-weighted average price of the bucket's trades (the close when the volume is zero). "
    "Null when the candle was not built from trades but taken from a source that does not give "
    "it (an exchange's candle history): never an estimate."
)


@strawberry.type(description="OHLCV of one time bucket; `ts` is the bucket start (UTC).")
class Candle:
    exchange: str
    symbol: str
    timeframe: str
    ts: datetime
    open: float
    high: float
    low: float
    close: float
    volume: float
    trades: int | None = strawberry.field(description=TRADES_DESCRIPTION)
    vwap: float | None = strawberry.field(description=VWAP_DESCRIPTION)
    closed: bool = strawberry.field(description="False while the candle is still forming.")

    @classmethod
    def of(cls, candle: CoreCandle) -> Candle:
        return cls(
            exchange=candle.exchange,
            symbol=candle.symbol,
            timeframe=candle.timeframe,
            ts=to_datetime(candle.ts),
            open=candle.open,
            high=candle.high,
            low=candle.low,
            close=candle.close,
            volume=candle.volume,
            trades=candle.trades,
            vwap=candle.vwap,
            closed=candle.closed,
        )


@strawberry.type(description="A market with stored candles.")
class Symbol:
    exchange: str
    symbol: str
    first_ts: datetime = strawberry.field(description="Start of its oldest stored candle.")
    last_ts: datetime = strawberry.field(description="Start of its newest stored candle.")
    last_price: float = strawberry.field(description="Close of its newest stored candle.")


@strawberry.type(description="Where a page sits in the selected range, and how to move on.")
class PageInfo:
    start_cursor: str | None = strawberry.field(
        description="Cursor of the oldest candle on the page (null when the page is empty); "
        "pass it as `before` for the page before."
    )
    end_cursor: str | None = strawberry.field(
        description="Cursor of the newest candle on the page (null when the page is empty); "
        "pass it as `after` for the page after."
    )
    has_previous_page: bool = strawberry.field(
        description="Older candles exist in the range before this page."
    )
    has_next_page: bool = strawberry.field(
        description="Newer candles exist in the range after this page."
    )


@strawberry.type(description="One page of candles, oldest first, with cursors to its neighbours.")
class CandlePage:
    nodes: list[Candle]
    page_info: PageInfo


@strawberry.type(
    description="Candles as columns for charts: element i of every list is candle i, oldest "
    "first. `ts` is the bucket start in epoch milliseconds (UTC)."
)
class CandleSeries:
    exchange: str
    symbol: str
    timeframe: str
    ts: list[float]
    open: list[float]
    high: list[float]
    low: list[float]
    close: list[float]
    volume: list[float]
    trades: list[int | None] = strawberry.field(
        description="Trade counts; null for a candle whose source does not give it (see "
        "`Candle.trades`)."
    )
    vwap: list[float | None] = strawberry.field(
        description="VWAPs; null for a candle whose source does not give it (see `Candle.vwap`)."
    )
    page_info: PageInfo


@strawberry.type(description="One output of an indicator; null where it has no value yet.")
class NamedSeries:
    name: str
    values: list[float | None]


@strawberry.type(
    description="Indicator outputs over candles: element i of `ts` and of every series' values "
    "belong together. `ts` is the candle's bucket start in epoch milliseconds (UTC)."
)
class IndicatorSeries:
    exchange: str
    symbol: str
    timeframe: str
    ts: list[float]
    series: list[NamedSeries]
