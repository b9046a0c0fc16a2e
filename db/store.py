"""The store interface that the flow, the API and the backtests share.

Two implementations pass one contract test suite: `db.sqlite.SqliteStore` (embedded, the
default) and, for production, QuestDB. Timestamps are integer nanoseconds since the epoch, UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import polars as pl

from market.messages import Candle


class StoreError(Exception):
    """A store could not be reached, or refused a read or write."""


class Store(Protocol):
    def upsert_candles(self, candles: Sequence[Candle]) -> None:
        """Insert or replace candles keyed by (exchange, symbol, timeframe, ts), atomically."""
        ...

    def candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
    ) -> list[Candle]:
        """The newest `limit` candles with start_ns <= ts < end_ns, oldest first."""
        ...

    def candles_frame(
        self, exchange: str, symbol: str, timeframe: str, start_ns: int, end_ns: int
    ) -> pl.DataFrame:
        """All candles with start_ns <= ts < end_ns as columns, oldest first."""
        ...

    def symbols(self) -> list[tuple[str, str]]:
        """Every (exchange, symbol) with stored candles, sorted."""
        ...

    def ping(self) -> None:
        """Raise `StoreError` unless the store answers a trivial read."""
        ...

    def close(self) -> None: ...


CANDLE_SCHEMA: dict[str, pl.DataType] = {
    "ts": pl.Int64(),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
    "trades": pl.Int64(),
    "vwap": pl.Float64(),
}
