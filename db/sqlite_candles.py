"""The embedded store's candles (`db.candle_store.CandleStore`), a part of `SqliteStore`.

Besides `candles`, the table `series` keeps each series' extent (first and latest candle start,
latest close), updated in the same transaction as the candles. It answers `symbols`,
`symbol_summaries` and `latest_candles` without scanning candles, and bounds resampling.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import polars as pl

from db.candle_store import SymbolSummary, frame_columns
from db.columns import candle_fields, series_extents
from db.series import (
    SeriesExtent,
    bucket_closed,
    bucket_vwap,
    resample_steps,
    resample_window,
    source_range,
    summaries,
)
from db.sqlite_connection import SqliteConnection, bounds, insert_blocks, insert_fields
from db.sqlite_tables import BACKFILL_SERIES, NULLABLE_CANDLES
from market.candle_columns import CandleColumns
from market.messages import Candle

_COLUMNS = "exchange, symbol, timeframe, ts, open, high, low, close, volume, trades, vwap, closed"

# Rows go in as multi-row VALUES lists (`_RowBlocks`): `INSERT ... VALUES (...), (...) ON
# CONFLICT` applies the rows in order, as executemany does, with one statement per block.
_UPSERT_CANDLE = (f"INSERT INTO candles ({_COLUMNS})", 12, """
ON CONFLICT (exchange, symbol, timeframe, ts) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, trades = excluded.trades, vwap = excluded.vwap,
    closed = excluded.closed
""")

# Every right-hand side reads the row as it was before the update.
_UPSERT_SERIES = """
INSERT INTO series (exchange, symbol, timeframe, first_ns, last_ns, last_close)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (exchange, symbol, timeframe) DO UPDATE SET
    first_ns = min(first_ns, excluded.first_ns),
    last_ns = max(last_ns, excluded.last_ns),
    last_close = CASE WHEN excluded.last_ns >= last_ns THEN excluded.last_close
                      ELSE last_close END
"""


class SqliteCandles(SqliteConnection):
    """`CandleStore` over the `candles` and `series` tables."""

    def _migrate_candles(self, conn: sqlite3.Connection) -> None:
        """Bring a file from before `series`, or with NOT NULL `trades` and `vwap` (from
        before exchange candles, which carry neither), up to date, in the open transaction."""
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM series)").fetchone()[0]:
            conn.execute(BACKFILL_SERIES)
        required = conn.execute(
            "SELECT count(*) FROM pragma_table_info('candles')"
            " WHERE name IN ('trades', 'vwap') AND \"notnull\""
        )
        if required.fetchone()[0]:
            for statement in NULLABLE_CANDLES:
                conn.execute(statement)

    def upsert_candles(self, candles: Sequence[Candle]) -> None:
        if not candles:
            return
        rows = [
            (c.exchange, c.symbol, c.timeframe, c.ts, c.open, c.high, c.low, c.close,
             c.volume, c.trades, c.vwap, int(c.closed))
            for c in candles
        ]
        extents: dict[tuple[str, str, str], list] = {}
        for c in candles:
            key = (c.exchange, c.symbol, c.timeframe)
            extent = extents.get(key)
            if extent is None:
                extents[key] = [c.ts, c.ts, c.close]
            else:
                if c.ts < extent[0]:
                    extent[0] = c.ts
                if c.ts >= extent[1]:
                    extent[1], extent[2] = c.ts, c.close
        series = [(*key, first, last, close) for key, (first, last, close) in extents.items()]
        with self._transaction(f"writing {len(rows)} candles") as conn:
            insert_blocks(conn, _UPSERT_CANDLE, rows)
            conn.executemany(_UPSERT_SERIES, series)

    def upsert_candle_columns(self, columns: CandleColumns) -> None:
        """`upsert_candles` of candles held as columns (an import's), without a `Candle`
        per row."""
        if not len(columns):
            return
        with self._transaction(f"writing {len(columns)} candles", bulk=True) as conn:
            insert_fields(conn, _UPSERT_CANDLE, candle_fields(columns))
            conn.executemany(_UPSERT_SERIES, series_extents(columns))

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
        order = "ASC" if from_start else "DESC"
        sql = (
            f"SELECT {_COLUMNS} FROM candles WHERE exchange = ? AND symbol = ? AND timeframe = ?"
            f" AND ts >= ? AND ts < ? ORDER BY ts {order} LIMIT ?"
        )
        lo, hi = bounds(start_ns, end_ns)
        rows = self._read(sql, (exchange, symbol, timeframe, lo, hi, max(limit, 0)))
        if not from_start:
            rows.reverse()
        return [
            Candle(ex, sym, tf, ts, o, hi, lo, c, v, n, vw, bool(closed))
            for ex, sym, tf, ts, o, hi, lo, c, v, n, vw, closed in rows
        ]

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
        descending = limit is not None and not from_start
        sql = (
            f"SELECT {', '.join(schema)} FROM candles"
            " WHERE exchange = ? AND symbol = ? AND timeframe = ? AND ts >= ? AND ts < ?"
            f" ORDER BY ts {'DESC' if descending else 'ASC'} LIMIT ?"
        )
        lo, hi = bounds(start_ns, end_ns)
        count = -1 if limit is None else max(limit, 0)
        rows = self._read(sql, (exchange, symbol, timeframe, lo, hi, count))
        if descending:
            rows.reverse()
        # Columns straight from the rows: one list per column, no object per candle.
        values = zip(*rows, strict=True) if rows else [()] * len(schema)
        return pl.DataFrame(
            [pl.Series(name, column, dtype=dtype)
             for (name, dtype), column in zip(schema.items(), values, strict=True)]
        )

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
        found = self._read(
            "SELECT first_ns, last_ns FROM series"
            " WHERE exchange = ? AND symbol = ? AND timeframe = ?",
            (exchange, symbol, source_timeframe),
        )
        if not found or limit <= 0:
            return []
        first_ns, last_ns = found[0]
        lo, hi = source_range(start_ns, end_ns, step)
        window = resample_window(lo, hi, first_ns, last_ns, step, limit, from_start)
        key = (exchange, symbol, source_timeframe)
        buckets = self._resampled(key, step, window, limit, from_start)
        if len(buckets) < limit and window != (lo, hi):
            buckets = self._resampled(key, step, (lo, hi), limit, from_start)
        source_end = last_ns + source_step
        candles = [
            Candle(exchange, symbol, timeframe, bucket, open_, high, low, close, volume, trades,
                   bucket_vwap(notional, volume, close),
                   bucket_closed(bucket, step, bool(all_closed), source_end))
            for bucket, open_, high, low, close, volume, trades, notional, all_closed in buckets
        ]
        return candles

    def _resampled(
        self,
        key: tuple[str, str, str],
        step: int,
        window: tuple[int, int],
        limit: int,
        from_start: bool,
    ) -> list[tuple]:
        # Extremes and sums per bucket in one pass; open and close are then looked up by the
        # primary key at each bucket's first and last source candle. A bucket's trade count
        # and VWAP are known only when every source candle's is.
        order = "ASC" if from_start else "DESC"
        sql = f"""
            WITH b AS (
                SELECT ts - ts % :step AS bucket, min(ts) AS first_ts, max(ts) AS last_ts,
                       max(high) AS high, min(low) AS low, sum(volume) AS volume,
                       CASE WHEN count(trades) = count(*) THEN sum(trades) END AS trades,
                       CASE WHEN count(vwap) = count(*) THEN sum(vwap * volume) END AS notional,
                       min(closed) AS all_closed
                FROM candles
                WHERE exchange = :exchange AND symbol = :symbol AND timeframe = :timeframe
                  AND ts >= :lo AND ts < :hi
                GROUP BY bucket ORDER BY bucket {order} LIMIT :limit
            )
            SELECT b.bucket, o.open, b.high, b.low, c.close, b.volume, b.trades, b.notional,
                   b.all_closed
            FROM b
            JOIN candles AS o ON o.exchange = :exchange AND o.symbol = :symbol
                             AND o.timeframe = :timeframe AND o.ts = b.first_ts
            JOIN candles AS c ON c.exchange = :exchange AND c.symbol = :symbol
                             AND c.timeframe = :timeframe AND c.ts = b.last_ts
            ORDER BY b.bucket
        """
        exchange, symbol, timeframe = key
        lo, hi = window
        return self._read(sql, dict(
            step=step, exchange=exchange, symbol=symbol, timeframe=timeframe, lo=lo, hi=hi,
            limit=limit,
        ))

    def latest_candles(self, timeframe: str, exchange: str | None = None) -> list[Candle]:
        # CROSS JOIN keeps `series` as the outer loop: one primary-key lookup per market.
        sql = (
            f"SELECT {', '.join('c.' + c for c in _COLUMNS.split(', '))} FROM series AS s"
            " CROSS JOIN candles AS c ON c.exchange = s.exchange AND c.symbol = s.symbol"
            " AND c.timeframe = s.timeframe AND c.ts = s.last_ns"
            " WHERE s.timeframe = :timeframe AND (:exchange IS NULL OR s.exchange = :exchange)"
            " ORDER BY s.exchange, s.symbol"
        )
        rows = self._read(sql, {"timeframe": timeframe, "exchange": exchange})
        return [
            Candle(ex, sym, tf, ts, o, hi, lo, c, v, n, vw, bool(closed))
            for ex, sym, tf, ts, o, hi, lo, c, v, n, vw, closed in rows
        ]

    def symbols(self) -> list[tuple[str, str]]:
        rows = self._read(
            "SELECT DISTINCT exchange, symbol FROM series ORDER BY exchange, symbol", ()
        )
        return [(row[0], row[1]) for row in rows]

    def symbol_summaries(self) -> list[SymbolSummary]:
        rows = self._read(
            "SELECT exchange, symbol, timeframe, first_ns, last_ns, last_close FROM series", ()
        )
        return summaries(SeriesExtent(*row) for row in rows)

    # Known gaps ----------------------------------------------------------------------------
    def known_gaps(self, exchange: str, symbol: str, timeframe: str) -> list[tuple[int, int]]:
        rows = self._read(
            "SELECT start_ns, end_ns FROM known_gaps"
            " WHERE exchange = ? AND symbol = ? AND timeframe = ? ORDER BY start_ns",
            (exchange, symbol, timeframe),
        )
        return [(row[0], row[1]) for row in rows]

    def add_known_gaps(
        self, exchange: str, symbol: str, timeframe: str, gaps: Sequence[tuple[int, int]]
    ) -> None:
        if not gaps:
            return
        self._write(
            f"writing {len(gaps)} known gaps",
            ("INSERT OR REPLACE INTO known_gaps VALUES (?, ?, ?, ?, ?)",
             [(exchange, symbol, timeframe, start, end) for start, end in gaps]),
        )
