"""What a store does with candles: `CandleStore`, and the candle columns of its frames.

Implemented by `db.sqlite_candles` and `db.questdb_candles` (parts of `db.sqlite.SqliteStore`
and `db.questdb.QuestDBStore`). Timestamps are integer nanoseconds since the epoch, UTC, a
candle's `ts` the start of its bucket. Writes are upserts on (exchange, symbol, timeframe, ts),
so replays and corrections never duplicate rows. Failures raise `db.store.StoreError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol

import polars as pl

from market.candle_columns import CandleColumns
from market.messages import Candle


class SymbolSummary(NamedTuple):
    """A market with stored candles: its first and latest candle start, and its last price.

    `last_price` is the close of the stored candle that ends last, across timeframes (a finer
    one on a tie): the flow stores closed candles, and that one holds the latest trade.
    """

    exchange: str
    symbol: str
    first_ns: int
    last_ns: int
    last_price: float



class CandleStore(Protocol):
    def upsert_candles(self, candles: Sequence[Candle]) -> None:
        """Insert or replace candles keyed by (exchange, symbol, timeframe, ts), durably.

        Returns only once the rows are committed (the flow acks its input after this);
        raises `StoreError` otherwise.
        """
        ...

    def upsert_candle_columns(self, columns: CandleColumns) -> None:
        """`upsert_candles` of candles held as columns, without a `Candle` per row."""
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
        from_start: bool = False,
    ) -> list[Candle]:
        """Candles with start_ns <= ts < end_ns, oldest first.

        The newest `limit` of them, or with `from_start` the oldest `limit` (for paging forward).
        """
        ...

    def candles_frame(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        start_ns: int | None = None,
        end_ns: int | None = None,
        *,
        limit: int | None = None,
        from_start: bool = False,
        columns: Sequence[str] | None = None,
    ) -> pl.DataFrame:
        """Candles with start_ns <= ts < end_ns as columns (`CANDLE_SCHEMA`), oldest first.

        All of them, or the newest `limit` (with `from_start`, the oldest), as in `candles`.
        Columns cost no Python object per candle: the path for backtests and chart series.
        `columns` reads only those (and `ts`), in schema order (`frame_columns`).
        """
        ...

    def resample(
        self,
        exchange: str,
        symbol: str,
        source_timeframe: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
        from_start: bool = False,
    ) -> list[Candle]:
        """Candles of `timeframe` built from the stored `source_timeframe` (which divides it).

        Buckets align to the epoch in UTC like stored ones. open/close are the first/last
        source candle's, high/low the extremes, volume and trades the sums, vwap the
        volume-weighted mean of the source vwaps. A bucket is `closed` when all its source
        candles are closed and the bucket's end is not after the latest source candle's end.
        Selection and order as in `candles`.
        """
        ...

    def latest_candles(self, timeframe: str, exchange: str | None = None) -> list[Candle]:
        """The latest candle of `timeframe` per (exchange, symbol), sorted by exchange, symbol."""
        ...

    def symbols(self) -> list[tuple[str, str]]:
        """Every (exchange, symbol) with stored candles, sorted."""
        ...

    def symbol_summaries(self) -> list[SymbolSummary]:
        """Every market with stored candles, sorted by exchange, symbol."""
        ...

    # Known gaps: ranges the source has no candles for (table `known_gaps`) ----------------
    def known_gaps(self, exchange: str, symbol: str, timeframe: str) -> list[tuple[int, int]]:
        """Ranges [start_ns, end_ns) of a series that its source has no candles for (an
        exchange outage, a market without trades), oldest first, as `add_known_gaps` stored
        them (they may overlap)."""
        ...

    def add_known_gaps(
        self, exchange: str, symbol: str, timeframe: str, gaps: Sequence[tuple[int, int]]
    ) -> None:
        """Remember ranges [start_ns, end_ns) without candles at the source, durably; a range
        with the start of a stored one replaces it."""
        ...


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


def frame_columns(columns: Sequence[str] | None) -> dict[str, pl.DataType]:
    """The `CANDLE_SCHEMA` columns a frame read returns: `ts` and those asked for (all for
    None), in schema order. Unknown names raise ValueError, so SQL only ever names these."""
    if columns is None:
        return CANDLE_SCHEMA
    unknown = set(columns) - CANDLE_SCHEMA.keys()
    if unknown:
        raise ValueError(f"no candle column {', '.join(sorted(unknown))}")
    return {name: dtype for name, dtype in CANDLE_SCHEMA.items()
            if name == "ts" or name in columns}
