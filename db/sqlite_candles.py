"""The embedded store's candles (`db.candle_store.CandleStore`), a part of `SqliteStore`.

Candles written a batch at a time (the live flow's) are rows of `candle_rows`; history
(`upsert_candle_columns`: an import, a backfill) is blocks of records in `candle_blocks`
(`db.candle_blocks`). A write whose times reach into a block of its series is merged into the
blocks: the blocks and rows in its span are read, merged, deleted and written again as
blocks. Reads take a series' rows and blocks in one snapshot and merge them.

Besides those, the table `series` keeps each series' extent (first and latest candle start,
latest close), updated in the same transaction as the candles. It answers `symbols`,
`symbol_summaries` and `latest_candles` without scanning candles, and bounds resampling.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import polars as pl

from db.candle_blocks import (
    ROW_COLUMNS,
    block_records,
    column_records,
    in_range,
    merge,
    record_candles,
    resampled,
    row_records,
    stored_blocks,
)
from db.candle_store import SymbolSummary, frame_columns
from db.columns import series_extents
from db.series import (
    SeriesExtent,
    bucket_closed,
    bucket_vwap,
    resample_steps,
    resample_window,
    source_range,
    summaries,
)
from db.sqlite_connection import MAX_TS, bounds, insert_blocks
from db.sqlite_series_ids import Key, SqliteSeriesIds, reaching_blocks
from db.sqlite_tables import BACKFILL_SERIES, NULLABLE_CANDLES
from market.candle_columns import CandleColumns
from market.messages import Candle

_COLUMNS = f"exchange, symbol, timeframe, {ROW_COLUMNS}"
_KEY = "exchange = ? AND symbol = ? AND timeframe = ?"

# Rows go in as multi-row VALUES lists (`insert_blocks`): `INSERT ... VALUES (...), (...) ON
# CONFLICT` applies the rows in order, as executemany does, with one statement per block.
_UPSERT_CANDLE = (f"INSERT INTO candle_rows ({_COLUMNS})", 12, """
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

class SqliteCandles(SqliteSeriesIds):
    """`CandleStore` over the `candle_rows`, `candle_blocks` and `series` tables."""

    def _migrate_candles(self, conn: sqlite3.Connection) -> None:
        """Bring a file from before `series`, or with NOT NULL `trades` and `vwap` (from
        before exchange candles, which carry neither), up to date, in the open transaction."""
        if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM series)").fetchone()[0]:
            conn.execute(BACKFILL_SERIES)
        required = conn.execute(
            "SELECT count(*) FROM pragma_table_info('candle_rows')"
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
        extents: dict[Key, list] = {}
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
            ids = self._resolve_series_ids(conn, extents)
            reaching = reaching_blocks(conn, "candle_blocks", [
                (ids[key], first, last) for key, (first, last, _) in extents.items()
            ])
            # Candles in the span of a block are merged into it; the others, even of the same
            # series, stay rows, so a block does not grow with every later live write.
            spans = {
                key: _block_spans(conn, ids[key], first, last)
                for key, (first, last, _) in extents.items() if ids[key] in reaching
            }
            into_blocks: dict[Key, list[tuple]] = {}
            if spans:
                kept = []
                for row in rows:
                    key = row[:3]
                    if key in spans and _inside(spans[key], row[3]):
                        into_blocks.setdefault(key, []).append(row[3:])
                    else:
                        kept.append(row)
                rows = kept
            insert_blocks(conn, _UPSERT_CANDLE, rows)
            for key, inside in into_blocks.items():
                _write_blocks(conn, key, ids[key], row_records(inside))
            conn.executemany(_UPSERT_SERIES, series)
        self._remember_series_ids(ids)

    def upsert_candle_columns(self, columns: CandleColumns) -> None:
        """`upsert_candles` of candles held as columns (history: an import's, a backfill's),
        written as blocks, without a `Candle` per row."""
        if not len(columns):
            return
        width = int(columns.timeframe.max()) + 1
        codes = columns.market * width + columns.timeframe
        with self._transaction(f"writing {len(columns)} candles", bulk=True) as conn:
            keys = {
                code: (*columns.markets[code // width], columns.timeframe_names[code % width])
                for code in np.unique(codes).tolist()
            }
            ids = self._resolve_series_ids(conn, keys.values())
            for code, key in keys.items():
                rows = slice(None) if len(keys) == 1 else np.flatnonzero(codes == code)
                _write_blocks(conn, key, ids[key], column_records(columns, rows))
            conn.executemany(_UPSERT_SERIES, series_extents(columns))
        self._remember_series_ids(ids)

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
        key = (exchange, symbol, timeframe)
        lo, hi = bounds(start_ns, end_ns)
        rows, records = self._read_series(key, lo, hi, max(limit, 0), from_start, ROW_COLUMNS)
        if records is not None:
            return record_candles(key, records)
        return [
            Candle(exchange, symbol, timeframe, ts, o, hi, lo, c, v, n, vw, bool(closed))
            for ts, o, hi, lo, c, v, n, vw, closed in rows
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
        lo, hi = bounds(start_ns, end_ns)
        count = None if limit is None else max(limit, 0)
        rows, records = self._read_series(
            (exchange, symbol, timeframe), lo, hi, count, from_start, ", ".join(schema)
        )
        if records is None:
            # Columns straight from the rows: one list per column, no object per candle.
            values = zip(*rows, strict=True) if rows else [()] * len(schema)
            return pl.DataFrame(
                [pl.Series(name, column, dtype=dtype)
                 for (name, dtype), column in zip(schema.items(), values, strict=True)]
            )
        series = []
        for name, dtype in schema.items():
            column = pl.Series(name, np.ascontiguousarray(records[name]), dtype=dtype,
                               nan_to_null=name == "vwap")
            series.append(column.set(column < 0, None) if name == "trades" else column)
        return pl.DataFrame(series)

    def _read_series(
        self, key: Key, lo: int, hi: int, limit: int | None, from_start: bool, columns: str
    ) -> tuple[list[tuple], np.ndarray | None]:
        """The series' candles in [lo, hi), oldest first: all, or the newest `limit` (with
        `from_start` the oldest), read in one snapshot. A series with none of them in blocks
        (the live flow's) gives its rows of `columns` and None, without an array; else no rows
        and the candles as records, rows and blocks merged."""
        if limit == 0 or lo >= hi:
            return [], None
        with self._snapshot() as conn:
            parts = self._block_parts(conn, key, lo, hi, limit, from_start or limit is None)
            order = "ASC" if from_start or limit is None else "DESC"
            rows = conn.execute(
                f"SELECT {ROW_COLUMNS if parts else columns} FROM candle_rows"
                f" WHERE {_KEY} AND ts >= ? AND ts < ? ORDER BY ts {order} LIMIT ?",
                (*key, lo, hi, -1 if limit is None else limit),
            ).fetchall()
        if not parts:
            if order == "DESC":
                rows.reverse()
            return rows, None
        records = merge([row_records(rows), *parts])
        if limit is not None:
            records = records[:limit] if from_start else records[max(len(records) - limit, 0):]
        return [], records

    def _block_parts(
        self, conn: sqlite3.Connection, key: Key, lo: int, hi: int, limit: int | None,
        forward: bool,
    ) -> list[np.ndarray]:
        """The series' candles in [lo, hi) held in blocks, a part per block, oldest first if
        `forward`, else latest first: as many blocks as give `limit` candles, or all."""
        id = self._series_id(conn, key)
        if id is None:
            return []
        parts: list[np.ndarray] = []
        count = 0
        for records in _blocks(conn, id, lo, hi, forward):
            if len(part := in_range(records, lo, hi)):
                parts.append(part)
                count += len(part)
                if limit is not None and count >= limit:
                    break
        return parts

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
            f"SELECT first_ns, last_ns FROM series WHERE {_KEY}",
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
        return [
            Candle(exchange, symbol, timeframe, bucket, open_, high, low, close, volume, trades,
                   bucket_vwap(notional, volume, close),
                   bucket_closed(bucket, step, bool(all_closed), source_end))
            for bucket, open_, high, low, close, volume, trades, notional, all_closed in buckets
        ]

    def _resampled(
        self, key: Key, step: int, window: tuple[int, int], limit: int, from_start: bool
    ) -> list[tuple]:
        """The buckets of `db.candle_blocks.resampled` over the source candles in `window`:
        by SQL where none of them is in a block, else from the merged records."""
        lo, hi = window
        with self._snapshot() as conn:
            parts = self._block_parts(conn, key, lo, hi, None, True)
            if not parts:
                return _resampled_rows(conn, key, step, window, limit, from_start)
            rows = conn.execute(
                f"SELECT {ROW_COLUMNS} FROM candle_rows WHERE {_KEY} AND ts >= ? AND ts < ?",
                (*key, lo, hi),
            ).fetchall()
        return resampled(merge([row_records(rows), *parts]), step, limit, from_start)

    def latest_candles(self, timeframe: str, exchange: str | None = None) -> list[Candle]:
        # `series` is the outer loop of the LEFT JOIN: one primary-key lookup per market. A
        # series whose latest candle is in a block has no row there (NULLs), and is read from
        # its block.
        sql = (
            f"SELECT s.exchange, s.symbol, s.timeframe, s.last_ns,"
            f" {', '.join('c.' + c for c in ROW_COLUMNS.split(', '))} FROM series AS s"
            " LEFT JOIN candle_rows AS c ON c.exchange = s.exchange AND c.symbol = s.symbol"
            " AND c.timeframe = s.timeframe AND c.ts = s.last_ns"
            " WHERE s.timeframe = :timeframe AND (:exchange IS NULL OR s.exchange = :exchange)"
            " ORDER BY s.exchange, s.symbol"
        )
        latest = []
        with self._snapshot() as conn:
            found = conn.execute(sql, {"timeframe": timeframe, "exchange": exchange}).fetchall()
            for ex, sym, tf, last_ns, ts, o, hi, lo, c, v, n, vw, closed in found:
                if ts is not None:
                    latest.append(Candle(ex, sym, tf, ts, o, hi, lo, c, v, n, vw, bool(closed)))
                    continue
                key = (ex, sym, tf)
                parts = self._block_parts(conn, key, last_ns, last_ns + 1, 1, False)
                latest.extend(record_candles(key, parts[0]) if parts else [])
        return latest

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


def _resampled_rows(
    conn: sqlite3.Connection, key: Key, step: int, window: tuple[int, int], limit: int,
    from_start: bool,
) -> list[tuple]:
    """`db.candle_blocks.resampled` by SQL, over rows alone."""
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
            FROM candle_rows
            WHERE exchange = :exchange AND symbol = :symbol AND timeframe = :timeframe
              AND ts >= :lo AND ts < :hi
            GROUP BY bucket ORDER BY bucket {order} LIMIT :limit
        )
        SELECT b.bucket, o.open, b.high, b.low, c.close, b.volume, b.trades, b.notional,
               b.all_closed
        FROM b
        JOIN candle_rows AS o ON o.exchange = :exchange AND o.symbol = :symbol
                         AND o.timeframe = :timeframe AND o.ts = b.first_ts
        JOIN candle_rows AS c ON c.exchange = :exchange AND c.symbol = :symbol
                         AND c.timeframe = :timeframe AND c.ts = b.last_ts
        ORDER BY b.bucket
    """
    exchange, symbol, timeframe = key
    lo, hi = window
    return conn.execute(sql, dict(
        step=step, exchange=exchange, symbol=symbol, timeframe=timeframe, lo=lo, hi=hi,
        limit=limit,
    )).fetchall()


def _block_spans(
    conn: sqlite3.Connection, series: int, lo: int, hi: int
) -> list[tuple[int, int]]:
    """The (first, last) spans of the series' blocks that reach into [lo, hi], oldest first."""
    return [(first, last) for last, first in _blocks_back(conn, series, lo, hi, "first_ts")][::-1]


def _inside(spans: list[tuple[int, int]], ts: int) -> bool:
    """Whether `ts` lies in one of the (first, last) spans, oldest first, that do not overlap."""
    at = bisect.bisect_right(spans, (ts, MAX_TS)) - 1
    return at >= 0 and spans[at][0] <= ts <= spans[at][1]


def _write_blocks(conn: sqlite3.Connection, key: Key, series: int, patch: np.ndarray) -> None:
    """Merge the records `patch` (any order; of the same start, the later wins) into the
    series' candles in the open transaction: the blocks it reaches into and the rows in
    their joint span are read, merged, deleted, and written again as blocks."""
    patch = merge([patch])
    lo, hi = int(patch["ts"][0]), int(patch["ts"][-1])
    stored: list[np.ndarray] = []
    starts: list[int] = []
    for records in _blocks(conn, series, lo, hi + 1, False):
        stored.append(records)
        starts.append(int(records["ts"][0]))
        lo, hi = min(lo, int(records["ts"][0])), max(hi, int(records["ts"][-1]))
    span = (*key, lo, hi)
    rows = conn.execute(
        f"SELECT {ROW_COLUMNS} FROM candle_rows WHERE {_KEY} AND ts >= ? AND ts <= ?", span
    ).fetchall()
    if rows:
        stored.append(row_records(rows))
        conn.execute(f"DELETE FROM candle_rows WHERE {_KEY} AND ts >= ? AND ts <= ?", span)
    conn.executemany(
        "DELETE FROM candle_blocks WHERE series = ? AND first_ts = ?",
        [(series, first) for first in starts],
    )
    conn.executemany(
        "INSERT INTO candle_blocks (series, first_ts, last_ts, records) VALUES (?, ?, ?, ?)",
        [(series, *block) for block in stored_blocks(merge([*stored, patch]))],
    )


def _blocks(
    conn: sqlite3.Connection, series: int, lo: int, hi: int, forward: bool
) -> Iterator[np.ndarray]:
    """The records of the series' blocks that reach into [lo, hi): oldest first if
    `forward`, else latest first."""
    if not forward:
        for _, data in _blocks_back(conn, series, lo, hi - 1, "records"):
            yield block_records(data)
        return
    # From the latest block starting at or before lo (it may end before lo) onwards.
    cursor = conn.execute(
        "SELECT last_ts, records FROM candle_blocks WHERE series = :series"
        " AND first_ts >= coalesce((SELECT max(first_ts) FROM candle_blocks"
        " WHERE series = :series AND first_ts <= :lo), :lo)"
        " AND first_ts < :hi ORDER BY first_ts",
        {"series": series, "lo": lo, "hi": hi},
    )
    try:
        for last, data in cursor:  # read as far as it is needed
            if last >= lo:
                yield block_records(data)
    finally:
        cursor.close()


def _blocks_back(
    conn: sqlite3.Connection, series: int, lo: int, hi: int, column: str
) -> Iterator[tuple[int, Any]]:
    """(last ts, `column`) of the series' blocks that reach into [lo, hi], latest first, read
    as far as they are needed."""
    cursor = conn.execute(
        f"SELECT last_ts, {column} FROM candle_blocks WHERE series = ? AND first_ts <= ?"
        " ORDER BY first_ts DESC",
        (series, hi),
    )
    try:
        for last, value in cursor:
            if last < lo:
                return
            yield last, value
    finally:
        cursor.close()
