"""The production store's indicator values (`db.indicator_store.IndicatorStore`), a part of
`QuestDBStore`: one row per value, deduplicated on (ts, exchange, symbol, timeframe, name).
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
from psycopg.types.numeric import Int8

from db.columns import IndicatorTable
from db.ilp import indicators_dataframe
from db.indicator_store import IndicatorPoint, IndicatorValues
from db.questdb_connection import QuestDBConnection, us_bounds
from db.rows import indicator_frame


class QuestDBIndicators(QuestDBConnection):
    """`IndicatorStore` over the `indicators` table."""

    def upsert_indicators(self, points: Sequence[IndicatorPoint]) -> None:
        if not points:
            return
        self._send(
            f"writing {len(points)} indicator values",
            {"indicators": indicators_dataframe(points)},
        )

    def upsert_indicator_values(self, rows: Sequence[IndicatorValues]) -> None:
        self.upsert_indicators([
            IndicatorPoint(exchange, symbol, timeframe, ts, name, value)
            for exchange, symbol, timeframe, ts, values in rows
            for name, value in values.items()
        ])

    def upsert_indicator_table(self, table: IndicatorTable) -> None:
        self.upsert_indicator_values(table.rows())

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
        table = self._t["indicators"]
        key = (exchange, symbol, timeframe)
        series = "exchange = %s AND symbol = %s AND timeframe = %s"
        if names is None:
            rows = self._query(
                f"SELECT name FROM {table} WHERE {series} LATEST ON ts PARTITION BY name", key
            )
            names = sorted(row[0] for row in rows)
        names = list(names)
        if not names or limit <= 0:
            return indicator_frame([], names)
        where = (
            f"{series} AND ts >= cast(%s AS TIMESTAMP) AND ts < cast(%s AS TIMESTAMP)"
            f" AND name IN ({', '.join(['%s'] * len(names))})"
        )
        params = (*key, *us_bounds(start_ns, end_ns), *names)
        stamps = self._query(
            f"SELECT ts_us FROM (SELECT DISTINCT cast(ts AS LONG) AS ts_us FROM {table}"
            f" WHERE {where}) ORDER BY ts_us DESC LIMIT {int(limit)}",
            params,
        )
        if not stamps:
            return indicator_frame([], names)
        rows = self._query(
            f"SELECT cast(ts AS LONG) * 1000 AS ts_ns, name, value FROM {table}"
            f" WHERE {where} AND ts >= cast(%s AS TIMESTAMP)",
            (*params, Int8(stamps[-1][0])),
        )
        return indicator_frame(rows, names)
