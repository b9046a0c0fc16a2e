"""Strawberry output types and the conversions from the core's messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import strawberry

from market.messages import Candle as CoreCandle

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_datetime(ts_ns: int) -> datetime:
    """Nanoseconds since the epoch → an aware UTC datetime (microsecond precision)."""
    return EPOCH + timedelta(microseconds=ts_ns // 1000)


def to_ns(value: datetime) -> int:
    """An ISO-8601 datetime argument → nanoseconds since the epoch; naive means UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - EPOCH) // _US * 1000


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
    trades: int
    vwap: float
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
