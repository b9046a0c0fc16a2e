"""The embedded store: SQLite in WAL mode, one file under the data directory.

WAL lets the flow process write while server processes read. Each write call is one
transaction, committed before it returns, with `synchronous=NORMAL`: a committed batch survives
a crash of the process (the guarantee acks rely on), though not a power cut. A thread of the
writing process copies the WAL into the file (`db.sqlite_checkpoint`), so commits do not wait
for that.

Besides the data tables, `series` keeps each series' extent (first and latest candle start,
latest close), updated in the same transaction as the candles. It answers `symbols`,
`symbol_summaries` and `latest_candles` without scanning candles, and bounds resampling.
A store file written before `series` existed is back-filled once when opened, and one whose
`candles.trades` and `vwap` are NOT NULL (from before exchange candles, which carry neither)
has that table rebuilt once with them nullable.

Indicator values are one row per (series, ts) holding a JSON object of every name (see
`db.sqlite_tables`); a write merges its names into the stored object with `json_patch`, so
writing some names keeps the others. A store file with the earlier one-row-per-value
`indicators` table is migrated once when opened, in one transaction.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import polars as pl

from db.columns import IndicatorTable, candle_fields, series_extents
from db.indicator_json import json_objects
from db.rows import (
    BACKTEST_COLUMNS,
    IndicatorObject,
    backtest_record,
    backtest_row,
    indicator_object_frame,
    indicator_objects,
    indicator_values,
)
from db.series import (
    SeriesExtent,
    bucket_closed,
    bucket_vwap,
    resample_steps,
    resample_window,
    source_range,
    summaries,
)
from db.sqlite_checkpoint import FALLBACK_PAGES, Checkpointer
from db.sqlite_tables import BACKFILL_SERIES, INDICATORS_VIEW, NULLABLE_CANDLES, SCHEMA
from db.store import (
    BACKTEST_EQUITY_SCHEMA,
    BACKTEST_TRADE_SCHEMA,
    BacktestRecord,
    IndicatorPoint,
    IndicatorValues,
    StoreError,
    SymbolSummary,
    frame_columns,
)
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

# RFC 7396 merge: names in the write replace or add, a null removes, the others stay.
_UPSERT_INDICATOR_VALUES = ("INSERT INTO indicator_values (series, ts, values_json)", 3, """
ON CONFLICT (series, ts) DO UPDATE SET values_json = json_patch(values_json, excluded.values_json)
""")

_SERIES_ID = "SELECT id FROM series_ids WHERE exchange = ? AND symbol = ? AND timeframe = ?"

#: Old-layout rows migrated per step, so a large file needs no more memory than this.
_MIGRATE_CHUNK = 100_000

_TRADE_COLUMNS = ", ".join(BACKTEST_TRADE_SCHEMA)
_EQUITY_COLUMNS = ", ".join(BACKTEST_EQUITY_SCHEMA)

_MIN_TS = -(2**63)
_MAX_TS = 2**63 - 1


class SqliteStore:
    """`Store` over one SQLite file. Safe to share between threads of one process.

    `checkpoint_interval_s`: the least time between two background checkpoints; None leaves
    them to SQLite, inside the commits.
    """

    #: Reads come from a local file; in WAL mode no writer blocks them.
    local_reads = True

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 10.0,
        checkpoint_interval_s: float | None = 0.5,
    ) -> None:
        self.path = path
        self._timeout = busy_timeout_s
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._checkpoint_interval_s = checkpoint_interval_s
        self._checkpointer: Checkpointer | None = None  # started by the first write
        # Committed facts only (ids are never reassigned), so they hold across processes.
        self._series_ids: dict[tuple[str, str, str], int] = {}
        self._stored_names: set[tuple[str, str, str, tuple[str, ...]]] = set()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with self._write_lock:
                conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA}")
                if conn.execute("SELECT NOT EXISTS (SELECT 1 FROM series)").fetchone()[0]:
                    conn.execute(BACKFILL_SERIES)
                required = conn.execute(
                    "SELECT count(*) FROM pragma_table_info('candles')"
                    " WHERE name IN ('trades', 'vwap') AND \"notnull\""
                )
                if required.fetchone()[0]:
                    for statement in NULLABLE_CANDLES:
                        conn.execute(statement)
                layout = conn.execute("SELECT type FROM sqlite_master WHERE name = 'indicators'")
                if layout.fetchone() == ("table",):
                    self._migrate_indicators(conn)
                conn.execute(INDICATORS_VIEW)
                conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"creating the tables of the SQLite store {path}: {error}") from error

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
                conn.execute("PRAGMA synchronous=NORMAL")
                if self._checkpoint_interval_s is not None:
                    conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
            except sqlite3.Error as error:
                raise StoreError(f"cannot open SQLite store at {self.path}: {error}") from error
            self._local.conn = conn
        return conn

    # Candles -------------------------------------------------------------------------------
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
            _insert_blocks(conn, _UPSERT_CANDLE, rows)
            conn.executemany(_UPSERT_SERIES, series)

    def upsert_candle_columns(self, columns: CandleColumns) -> None:
        """`upsert_candles` of candles held as columns (an import's), without a `Candle`
        per row."""
        if not len(columns):
            return
        with self._transaction(f"writing {len(columns)} candles", bulk=True) as conn:
            _insert_fields(conn, _UPSERT_CANDLE, candle_fields(columns))
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
        lo, hi = _bounds(start_ns, end_ns)
        rows = self._read(sql, (exchange, symbol, timeframe, lo, hi, max(limit, 0)))
        if not from_start:
            rows.reverse()
        return [Candle(*row[:11], bool(row[11])) for row in rows]

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
        lo, hi = _bounds(start_ns, end_ns)
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
        return [Candle(*row[:11], bool(row[11])) for row in rows]

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

    # Indicators ----------------------------------------------------------------------------
    def upsert_indicators(self, points: Sequence[IndicatorPoint]) -> None:
        self.upsert_indicator_values(indicator_values(points))

    def upsert_indicator_values(self, rows: Sequence[IndicatorValues]) -> None:
        if not rows:
            return
        objects = indicator_objects(rows)
        with self._transaction(f"writing the indicator values of {len(rows)} candles") as conn:
            ids, names = self._write_indicator_objects(conn, objects)
        self._series_ids.update(ids)
        self._stored_names.update(names)

    def upsert_indicator_table(self, table: IndicatorTable) -> None:
        """Write a table's rows (see `IndicatorTable`) as `upsert_indicator_values` writes
        rows, encoded all at once (`db.indicator_json`)."""
        if not len(table.ts):
            return
        key = (table.exchange, table.symbol, table.timeframe)
        texts = json_objects(table.names, table.values, table.replace)
        names = (*key, table.written_names())
        what = f"writing the indicator values of {len(texts)} candles"
        with self._transaction(what, bulk=True) as conn:
            ids = self._resolve_series_ids(conn, [key])
            fields = [[ids[key]] * len(texts), table.ts.tolist(), texts]
            _insert_fields(conn, _UPSERT_INDICATOR_VALUES, fields)
            if names not in self._stored_names:
                conn.executemany(
                    "INSERT OR IGNORE INTO indicator_names VALUES (?, ?, ?, ?)",
                    [(*key, name) for name in names[3]],
                )
        self._series_ids.update(ids)
        self._stored_names.add(names)

    def _write_indicator_objects(
        self, conn: sqlite3.Connection, objects: Sequence[IndicatorObject]
    ) -> tuple[dict[tuple[str, str, str], int], set[tuple[str, str, str, tuple[str, ...]]]]:
        """Upsert the objects in the open transaction; return the series ids and name sets it
        wrote, for the caller to remember once committed."""
        ids = self._resolve_series_ids(conn, {o[:3] for o in objects})
        _insert_blocks(
            conn, _UPSERT_INDICATOR_VALUES, [(ids[o[:3]], o.ts, o.values_json) for o in objects]
        )
        names = {(*o[:3], o.names) for o in objects}.difference(self._stored_names)
        if names:
            conn.executemany(
                "INSERT OR IGNORE INTO indicator_names VALUES (?, ?, ?, ?)",
                sorted({(e, s, tf, name) for e, s, tf, some in names for name in some}),
            )
        return ids, names

    def _resolve_series_ids(
        self, conn: sqlite3.Connection, keys: Iterable[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], int]:
        """The id of each (exchange, symbol, timeframe), adding the new ones in the open
        transaction."""
        ids = {}
        for key in keys:
            id = self._series_ids.get(key)
            if id is None:
                conn.execute(
                    "INSERT INTO series_ids (exchange, symbol, timeframe) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING",
                    key,
                )
                id = conn.execute(_SERIES_ID, key).fetchone()[0]
            ids[key] = id
        return ids

    def _migrate_indicators(self, conn: sqlite3.Connection) -> None:
        """Move the rows of the earlier `indicators` table (one per value) into
        `indicator_values`, then drop it. Python writes the JSON: SQLite's own rendering of a
        REAL keeps 15 digits, not every bit."""
        old = conn.execute(
            "SELECT exchange, symbol, timeframe, ts, name, value FROM indicators"
            " ORDER BY exchange, symbol, timeframe, ts, name"
        )
        # A (series, ts) cut by a chunk boundary is written twice; the upsert merges it.
        while chunk := old.fetchmany(_MIGRATE_CHUNK):
            self._write_indicator_objects(conn, indicator_objects(indicator_values(chunk)))
        conn.execute("DROP TABLE indicators")

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
        key = (exchange, symbol, timeframe)
        lo, hi = _bounds(start_ns, end_ns)
        sql = f"SELECT ts, values_json FROM indicator_values WHERE series = ({_SERIES_ID})"
        sql += " AND ts >= ? AND ts < ?"
        params: tuple[object, ...] = (*key, lo, hi)
        if names is None:
            rows = self._read(
                "SELECT name FROM indicator_names"
                " WHERE exchange = ? AND symbol = ? AND timeframe = ? ORDER BY name",
                key,
            )
            names = [row[0] for row in rows]
        else:
            # Only the timestamps where some of the names has a value.
            names = list(names)
            sql += (
                " AND EXISTS (SELECT 1 FROM json_each(values_json)"
                f" WHERE key IN ({', '.join('?' * len(names))}) AND type != 'null')"
            )
            params += tuple(names)
        rows = self._read(f"{sql} ORDER BY ts DESC LIMIT ?", (*params, max(limit, 0)))
        rows.reverse()
        return indicator_object_frame(rows, names)

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

    # Backtests -----------------------------------------------------------------------------
    def put_backtest(self, record: BacktestRecord) -> None:
        marks = ", ".join("?" * len(BACKTEST_COLUMNS))
        sql = f"INSERT OR REPLACE INTO backtests ({', '.join(BACKTEST_COLUMNS)}) VALUES ({marks})"
        self._write(f"writing backtest {record.id}", (sql, [backtest_row(record)]))

    def put_backtest_results(self, id: str, trades: pl.DataFrame, equity: pl.DataFrame) -> None:
        trade_rows = [
            (id, seq, *row)
            for seq, row in enumerate(trades.select(list(BACKTEST_TRADE_SCHEMA)).iter_rows())
        ]
        equity_rows = [
            (id, *row) for row in equity.select(list(BACKTEST_EQUITY_SCHEMA)).iter_rows()
        ]
        trade_marks = ", ".join("?" * (len(BACKTEST_TRADE_SCHEMA) + 2))
        equity_marks = ", ".join("?" * (len(BACKTEST_EQUITY_SCHEMA) + 1))
        self._write(
            f"writing the results of backtest {id}",
            ("DELETE FROM backtest_trades WHERE id = ?", [(id,)]),
            ("DELETE FROM backtest_equity WHERE id = ?", [(id,)]),
            (
                f"INSERT INTO backtest_trades (id, seq, {_TRADE_COLUMNS}) VALUES ({trade_marks})",
                trade_rows,
            ),
            (
                f"INSERT OR REPLACE INTO backtest_equity (id, {_EQUITY_COLUMNS})"
                f" VALUES ({equity_marks})",
                equity_rows,
            ),
        )

    def backtest(self, id: str) -> BacktestRecord | None:
        sql = f"SELECT {', '.join(BACKTEST_COLUMNS)} FROM backtests WHERE id = ?"
        rows = self._read(sql, (id,))
        return backtest_record(rows[0]) if rows else None

    def backtests(
        self,
        *,
        status: str | None = None,
        strategy: str | None = None,
        exchange: str | None = None,
        symbol: str | None = None,
        sweep_id: str | None = None,
        created_before_ns: int | None = None,
        limit: int = 100,
    ) -> list[BacktestRecord]:
        sql = (
            f"SELECT {', '.join(BACKTEST_COLUMNS)} FROM backtests"
            " WHERE (:status IS NULL OR status = :status)"
            " AND (:strategy IS NULL OR strategy = :strategy)"
            " AND (:exchange IS NULL OR exchange = :exchange)"
            " AND (:symbol IS NULL OR symbol = :symbol)"
            " AND (:sweep_id IS NULL OR sweep_id = :sweep_id)"
            " AND (:before IS NULL OR created_ns < :before)"
            " ORDER BY created_ns DESC, id LIMIT :limit"
        )
        params = dict(
            status=status, strategy=strategy, exchange=exchange, symbol=symbol,
            sweep_id=sweep_id, before=created_before_ns, limit=max(limit, 0),
        )
        return [backtest_record(row) for row in self._read(sql, params)]

    def backtest_trades(self, id: str, *, offset: int = 0, limit: int = 100) -> pl.DataFrame:
        rows = self._read(
            f"SELECT {_TRADE_COLUMNS} FROM backtest_trades WHERE id = ?"
            " ORDER BY exit_ts, position_id, seq LIMIT ? OFFSET ?",
            (id, max(limit, 0), max(offset, 0)),
        )
        return pl.DataFrame(rows, schema=BACKTEST_TRADE_SCHEMA, orient="row")

    def backtest_equity(self, id: str) -> pl.DataFrame:
        rows = self._read(
            f"SELECT {_EQUITY_COLUMNS} FROM backtest_equity WHERE id = ? ORDER BY ts", (id,)
        )
        return pl.DataFrame(rows, schema=BACKTEST_EQUITY_SCHEMA, orient="row")

    # Lifecycle -----------------------------------------------------------------------------
    def ping(self) -> None:
        self._read("SELECT 1", ())

    def close(self) -> None:
        with self._write_lock:
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _write(self, what: str, *statements: tuple[str, Sequence[Sequence[object]]]) -> None:
        """Run each (sql, rows) with executemany in one transaction, committed on return."""
        with self._transaction(what) as conn:
            for sql, rows in statements:
                conn.executemany(sql, rows)

    @contextmanager
    def _transaction(self, what: str, *, bulk: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed when the block ends, rolled back if it raises.
        `bulk` (history's large writes) gives the connection a larger page cache first."""
        conn = self._connection()
        if bulk and not getattr(self._local, "bulk", False):
            conn.execute(f"PRAGMA cache_size=-{_BULK_CACHE_KIB}")
            self._local.bulk = True
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(error, sqlite3.Error):
                    raise StoreError(f"{what} to {self.path}: {error}") from error
                raise
            self._checkpoint_soon()

    def _checkpoint_soon(self) -> None:
        """Tell the checkpointer a commit is in the WAL, starting it first if need be."""
        if self._checkpoint_interval_s is None:
            return
        if self._checkpointer is None:
            checkpointer = Checkpointer(
                self.path, interval_s=self._checkpoint_interval_s, busy_timeout_s=self._timeout
            )
            # A store dropped without `close()` ends its thread, too.
            weakref.finalize(self, checkpointer.stop, wait=False)
            self._checkpointer = checkpointer
        self._checkpointer.due()

    def _read(self, sql: str, params: Sequence[object] | Mapping[str, object]) -> list[tuple]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"reading from {self.path}: {error}") from error


#: Rows per multi-row INSERT. Binding a block in one statement costs about two thirds of what
#: executemany's statement per row does, in large writes of a few series (an import: 20,000
#: candles of one market, `bench/store_write.py`); every block has this size, so each table
#: needs one prepared block statement, and the rows left over go through executemany.
_BLOCK_ROWS = 256
#: The page cache of a connection that writes history (`_transaction(bulk=True)`), in KiB:
#: SQLite's default of 2 MiB spills pages to the write-ahead log in the middle of an import's
#: writes, which then cost about a quarter more.
_BULK_CACHE_KIB = 64 * 1024
#: Writes smaller than this go row by row: in the flow's shape (a few hundred rows over a
#: hundred series per commit) the blocks measured about 30 % slower.
_BLOCK_MIN_ROWS = 4096

_block_sql: dict[tuple[str, int, str], tuple[str, str]] = {}


def _statements(statement: tuple[str, int, str]) -> tuple[str, str]:
    """`head VALUES (...) tail` for a block of `_BLOCK_ROWS` rows, and for one row."""
    sqls = _block_sql.get(statement)
    if sqls is None:
        head, width, tail = statement
        marks = "(" + ", ".join("?" * width) + ")"
        sqls = _block_sql[statement] = (
            f"{head} VALUES {', '.join([marks] * _BLOCK_ROWS)}{tail}",
            f"{head} VALUES {marks}{tail}",
        )
    return sqls


def _insert_blocks(
    conn: sqlite3.Connection,
    statement: tuple[str, int, str],
    rows: Sequence[Sequence[object]],
) -> None:
    """Run `head VALUES (...) tail` over `rows`: whole blocks of `_BLOCK_ROWS` rows as one
    multi-row statement each, the rest row by row (all of them, in a small write)."""
    block_sql, row_sql = _statements(statement)
    whole = 0 if len(rows) < _BLOCK_MIN_ROWS else len(rows) - len(rows) % _BLOCK_ROWS
    chain = itertools.chain.from_iterable
    for start in range(0, whole, _BLOCK_ROWS):
        conn.execute(block_sql, list(chain(rows[start:start + _BLOCK_ROWS])))
    if whole < len(rows):
        conn.executemany(row_sql, rows[whole:])


def _insert_fields(
    conn: sqlite3.Connection, statement: tuple[str, int, str], fields: Sequence[list[object]]
) -> None:
    """`_insert_blocks` of the rows whose fields are the lists `fields` (one list per column),
    without a tuple per row: the parameters of every whole block are sliced from one flat
    list."""
    n, width = len(fields[0]), len(fields)
    if n < _BLOCK_MIN_ROWS:
        _insert_blocks(conn, statement, list(zip(*fields, strict=True)))
        return
    block_sql, row_sql = _statements(statement)
    flat: list[object] = [None] * (n * width)
    for column, values in enumerate(fields):
        flat[column::width] = values
    whole = n - n % _BLOCK_ROWS
    step = _BLOCK_ROWS * width
    conn.executemany(block_sql, [flat[i:i + step] for i in range(0, whole * width, step)])
    if whole < n:
        conn.executemany(row_sql, list(zip(*(f[whole:] for f in fields), strict=True)))


def _bounds(start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
    return (
        _MIN_TS if start_ns is None else start_ns,
        _MAX_TS if end_ns is None else end_ns,
    )
