"""What a store does with indicator values: `IndicatorStore`, and the rows it writes.

Implemented by `db.sqlite_indicators` and `db.questdb_indicators`. Values are keyed by
(exchange, symbol, timeframe, ts, name) and upserted on that key; `ts` is the start of the
candle at whose close the value holds. Failures raise `db.store.StoreError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, NamedTuple, Protocol

import polars as pl

if TYPE_CHECKING:  # db.columns imports this module
    from db.columns import IndicatorTable


class IndicatorPoint(NamedTuple):
    """One indicator value at the close of one candle.

    `name` is e.g. `sma_20` or `macd_12_26_9.hist`.
    """

    exchange: str
    symbol: str
    timeframe: str
    ts: int
    name: str
    value: float


class IndicatorValues(NamedTuple):
    """The indicator values at the close of one candle, by name (`{"sma_20": 101.25}`): what
    the flow has per final candle, written without a row object per value."""

    exchange: str
    symbol: str
    timeframe: str
    ts: int
    values: Mapping[str, float]



class IndicatorStore(Protocol):
    def upsert_indicators(self, points: Sequence[IndicatorPoint]) -> None:
        """Insert or replace values keyed by (exchange, symbol, timeframe, ts, name), durably."""
        ...

    def upsert_indicator_values(self, rows: Sequence[IndicatorValues]) -> None:
        """`upsert_indicators` of every value of every row."""
        ...

    def upsert_indicator_table(self, table: IndicatorTable) -> None:
        """Write a table's rows as `IndicatorTable` describes, durably."""
        ...

    def indicators(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        names: Sequence[str] | None = None,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
    ) -> pl.DataFrame:
        """The newest `limit` timestamps in range, oldest first, one row per ts.

        Columns: `ts` (Int64) then one Float64 column per name (all stored names when `names` is
        None, sorted), null where that name has no value at that ts.
        """
        ...
