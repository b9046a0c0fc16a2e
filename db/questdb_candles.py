"""The production store's candles (`db.candle_store.CandleStore`), a part of `QuestDBStore`.

Candles are a WAL table deduplicated on (ts, exchange, symbol, timeframe); QuestDB's TIMESTAMP
is microseconds, and candle times are whole seconds. Latest candles use `LATEST ON`;
timeframes that are not stored use `SAMPLE BY ... ALIGN TO CALENDAR`.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from db.candle_store import SymbolSummary, frame_columns
from db.ilp import candles_dataframe, gaps_dataframe
from db.questdb_connection import QuestDBConnection, us_bounds
from db.series import (
    SeriesExtent,
    bucket_closed,
    bucket_vwap,
    resample_steps,
    resample_window,
    source_range,
    summaries,
)
from db.store import StoreError
from market.candle_columns import CandleColumns
from market.messages import Candle
from market.timeframes import Timeframe

_CANDLE_COLUMNS = (
    "exchange, symbol, timeframe, cast(ts AS LONG) * 1000 AS ts_ns, open, high, low, close,"
    " volume, trades, vwap, closed"
)


class QuestDBCandles(QuestDBConnection):
    """`CandleStore` over the `candles` table."""

    def upsert_candles(self, candles: Sequence[Candle]) -> None:
        if not candles:
            return
        self._send(f"writing {len(candles)} candles", {"candles": candles_dataframe(candles)})

    def upsert_candle_columns(self, columns: CandleColumns) -> None:
        self.upsert_candles(columns.to_candles())

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
        if limit <= 0:
            return []
        order = "ASC" if from_start else "DESC"
        # Ordering happens in a subquery that selects `ts` itself: QuestDB scans the designated
        # timestamp in that order, and the outer projection keeps it.
        rows = self._query(
            f"SELECT {_CANDLE_COLUMNS} FROM (SELECT * FROM {self._t['candles']}"
            " WHERE exchange = %s AND symbol = %s AND timeframe = %s"
            " AND ts >= cast(%s AS TIMESTAMP) AND ts < cast(%s AS TIMESTAMP)"
            f" ORDER BY ts {order} LIMIT {int(limit)})",
            (exchange, symbol, timeframe, *us_bounds(start_ns, end_ns)),
        )
        if not from_start:
            rows.reverse()
        return [Candle(*row) for row in rows]

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
        schema = frame_columns(columns)
        if limit is not None and limit <= 0:
            return pl.DataFrame(schema=schema)
        order = "ASC" if from_start or limit is None else "DESC"
        tail = "" if limit is None else f" LIMIT {int(limit)}"
        values = "".join(f", {name}" for name in schema if name != "ts")
        rows = self._query(
            f"SELECT cast(ts AS LONG) * 1000 AS ts_ns{values}"
            f" FROM (SELECT * FROM {self._t['candles']}"
            " WHERE exchange = %s AND symbol = %s AND timeframe = %s"
            " AND ts >= cast(%s AS TIMESTAMP) AND ts < cast(%s AS TIMESTAMP)"
            f" ORDER BY ts {order}{tail})",
            (exchange, symbol, timeframe, *us_bounds(start_ns, end_ns)),
        )
        if order == "DESC":
            rows.reverse()
        return pl.DataFrame(rows, schema=schema, orient="row")

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
        source_step, step = resample_steps(source_timeframe, timeframe)
        width = Timeframe.parse(timeframe).name  # count + s/m/h/d: QuestDB's units too
        key = (exchange, symbol, source_timeframe)
        extent = self._extent(*key)
        if extent is None or limit <= 0:
            return []
        first_ns, last_ns = extent
        lo, hi = source_range(start_ns, end_ns, step)
        window = resample_window(lo, hi, first_ns, last_ns, step, limit, from_start)
        buckets = self._sampled(key, width, window, limit, from_start)
        if len(buckets) < limit and window != (lo, hi):
            buckets = self._sampled(key, width, (lo, hi), limit, from_start)
        source_end = last_ns + source_step
        candles = []
        for (
            bucket_us, open_, high, low, close, volume, trades, notional, forming, rows,
            trades_known, vwap_known,
        ) in buckets:
            bucket = bucket_us * 1000
            if bucket % step:
                raise StoreError(
                    f"QuestDB returned a {timeframe} bucket at {bucket} ns, not aligned to the"
                    " epoch; expected SAMPLE BY ... ALIGN TO CALENDAR buckets to be"
                )
            # A bucket's trade count and VWAP are known only when every source candle's is.
            candles.append(Candle(
                exchange, symbol, timeframe, bucket, open_, high, low, close, volume,
                trades if trades_known == rows else None,
                bucket_vwap(notional if vwap_known == rows else None, volume, close),
                bucket_closed(bucket, step, forming == 0, source_end),
            ))
        return candles

    def _sampled(
        self,
        key: tuple[str, str, str],
        width: str,
        window: tuple[int, int],
        limit: int,
        from_start: bool,
    ) -> list[tuple]:
        # SAMPLE BY aligned to the calendar with no offset or time zone floors each timestamp
        # to a multiple of the width since the epoch for s/m/h/d widths: our buckets.
        order = "ASC" if from_start else "DESC"
        lo, hi = window
        rows = self._query(
            f"""
            SELECT cast(ts AS LONG) AS ts_us, open, high, low, close, volume, trades, notional,
                   forming, source_rows, trades_known, vwap_known
            FROM (
                SELECT * FROM (
                    SELECT ts, first(open) AS open, max(high) AS high, min(low) AS low,
                           last(close) AS close, sum(volume) AS volume, sum(trades) AS trades,
                           sum(vwap * volume) AS notional,
                           sum(CASE WHEN closed THEN 0 ELSE 1 END) AS forming,
                           count() AS source_rows, count(trades) AS trades_known,
                           count(vwap) AS vwap_known
                    FROM {self._t['candles']}
                    WHERE exchange = %s AND symbol = %s AND timeframe = %s
                      AND ts >= cast(%s AS TIMESTAMP) AND ts < cast(%s AS TIMESTAMP)
                    SAMPLE BY {width} ALIGN TO CALENDAR WITH OFFSET '00:00'
                ) ORDER BY ts {order} LIMIT {int(limit)}
            )
            """,
            (*key, *us_bounds(lo, hi)),
        )
        return rows if from_start else rows[::-1]

    def _extent(self, exchange: str, symbol: str, timeframe: str) -> tuple[int, int] | None:
        """First and latest candle start of one series, or None when it has no candles."""
        where = "WHERE exchange = %s AND symbol = %s AND timeframe = %s"
        found = []
        for order in ("ASC", "DESC"):
            rows = self._query(
                "SELECT cast(ts AS LONG) * 1000 AS ts_ns FROM"
                f" (SELECT ts FROM {self._t['candles']} {where} ORDER BY ts {order} LIMIT 1)",
                (exchange, symbol, timeframe),
            )
            if not rows:
                return None
            found.append(rows[0][0])
        return found[0], found[1]

    def latest_candles(self, timeframe: str, exchange: str | None = None) -> list[Candle]:
        where, params = "WHERE timeframe = %s", [timeframe]
        if exchange is not None:
            where, params = where + " AND exchange = %s", [*params, exchange]
        rows = self._query(
            f"SELECT {_CANDLE_COLUMNS} FROM (SELECT * FROM {self._t['candles']} {where}"
            " LATEST ON ts PARTITION BY exchange, symbol)",
            params,
        )
        return sorted((Candle(*row) for row in rows), key=lambda c: (c.exchange, c.symbol))

    def symbols(self) -> list[tuple[str, str]]:
        rows = self._query(
            f"SELECT exchange, symbol FROM {self._t['candles']}"
            " LATEST ON ts PARTITION BY exchange, symbol",
            (),
        )
        return sorted((row[0], row[1]) for row in rows)

    def symbol_summaries(self) -> list[SymbolSummary]:
        table = self._t["candles"]
        firsts = {
            (row[0], row[1], row[2]): row[3]
            for row in self._query(
                "SELECT exchange, symbol, timeframe, cast(first_ts AS LONG) * 1000 AS first_ns"
                f" FROM (SELECT exchange, symbol, timeframe, min(ts) AS first_ts FROM {table})",
                (),
            )
        }
        latest = self._query(
            "SELECT exchange, symbol, timeframe, cast(ts AS LONG) * 1000 AS ts_ns, close FROM"
            f" (SELECT * FROM {table} LATEST ON ts PARTITION BY exchange, symbol, timeframe)",
            (),
        )
        # A series written between the two reads has no first yet: its latest is its first.
        return summaries(
            SeriesExtent(e, s, tf, firsts.get((e, s, tf), last), last, close)
            for e, s, tf, last, close in latest
        )

    # Known gaps ----------------------------------------------------------------------------
    def known_gaps(self, exchange: str, symbol: str, timeframe: str) -> list[tuple[int, int]]:
        rows = self._query(
            "SELECT cast(ts AS LONG) * 1000 AS start_ns, end_ns"
            f" FROM {self._t['known_gaps']}"
            " WHERE exchange = %s AND symbol = %s AND timeframe = %s ORDER BY ts",
            (exchange, symbol, timeframe),
        )
        return [(row[0], row[1]) for row in rows]

    def add_known_gaps(
        self, exchange: str, symbol: str, timeframe: str, gaps: Sequence[tuple[int, int]]
    ) -> None:
        if not gaps:
            return
        self._send(
            f"writing {len(gaps)} known gaps",
            {"known_gaps": gaps_dataframe(exchange, symbol, timeframe, gaps)},
        )
