"""The production store: QuestDB, written over ILP/HTTP and read over the PostgreSQL wire.

Writes go through one `questdb.Sender` (ILP over HTTP) per store, fed by the client's DataFrame
path, with auto-flush by rows and interval and the client's retry with backoff
(`retry_timeout`). Each write call flushes before it returns: ILP/HTTP answers once the rows
are committed to the table's write-ahead log, so a returned call is durable, and any failure
raises `StoreError` (the flow then does not ack). WAL tables apply commits asynchronously, so a
write call also waits until `wal_tables()` shows its tables applied: a read after a write sees
it, as the contract requires. A table whose apply failed (suspended) raises `StoreError`; an
apply still running after `apply_timeout_s` is logged and the call returns, since the rows are
already durable. A call larger than `auto_flush_rows` is sent in several commits.

Reads go through a `psycopg_pool.ConnectionPool`, always with bound parameters; the only
values formatted into SQL are table names (from a validated prefix), SAMPLE BY widths (from a
parsed `Timeframe`) and LIMIT counts (Python ints), none of them text from a caller.

Tables are created at start if missing, all `WAL` with `DEDUP UPSERT KEYS`, so replays and
corrections are idempotent. QuestDB's TIMESTAMP is microseconds (8.0 has no nanosecond type):
candle and indicator times are whole seconds, and nanosecond times of backtests (created,
trade entry/exit, equity points) are kept in LONG columns, exact.

Backtest results are replaced without DELETE (QuestDB has none): each `put_backtest_results`
writes its rows under a new generation number, then records that generation in
`backtest_results`; reads follow the latest generation recorded there.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd
import polars as pl
import psycopg
import psycopg_pool
from psycopg.types.numeric import Int8
from questdb import QuestDBError, TimestampNanos

from db.columns import IndicatorTable
from db.ilp import (
    SYMBOLS,
    candles_dataframe,
    gaps_dataframe,
    indicators_dataframe,
    pg_url_for,
    results_dataframes,
    sender_for,
)
from db.questdb_tables import TABLES
from db.rows import BACKTEST_COLUMNS, backtest_record, indicator_frame
from db.series import (
    SeriesExtent,
    bucket_closed,
    bucket_vwap,
    resample_steps,
    resample_window,
    source_range,
    summaries,
)
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
from market.timeframes import Timeframe

log = logging.getLogger(__name__)

_PREFIX = re.compile(r"^[a-z0-9_]{0,32}$")

_MIN_US = -(2**62) // 1000
_MAX_US = 2**62 // 1000

_CANDLE_COLUMNS = (
    "exchange, symbol, timeframe, cast(ts AS LONG) * 1000 AS ts_ns, open, high, low, close,"
    " volume, trades, vwap, closed"
)


class QuestDBStore:
    """`Store` over a QuestDB server. Safe to share between threads of one process.

    `http_url` is where ILP over HTTP goes (`http://[user:password@]host:9000`), `pg_url` a
    libpq URL for the PostgreSQL wire (`postgresql://user:password@host:8812/qdb`); without
    one, the PostgreSQL wire is taken to be on the same host (see `db.ilp.pg_url_for`).
    `table_prefix` keeps several stores apart in one server (the tests use a fresh one each).
    """

    #: Reads cross the network: never on an event loop.
    local_reads = False

    def __init__(
        self,
        http_url: str,
        pg_url: str = "",
        *,
        table_prefix: str = "",
        auto_flush_rows: int = 75_000,
        auto_flush_interval_ms: int = 1000,
        retry_timeout_ms: int = 10_000,
        apply_timeout_s: float = 30.0,
        pool_size: int = 4,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not _PREFIX.match(table_prefix):
            raise StoreError(f"table_prefix must match {_PREFIX.pattern}, got {table_prefix!r}")
        self._t = {name: table_prefix + name for name in TABLES}
        self._http_url = http_url
        pg_url = pg_url or pg_url_for(http_url)
        self._apply_timeout_s = apply_timeout_s
        self._clock = clock
        self._last_gen_us = 0
        self._write_lock = threading.Lock()
        try:
            self._sender = sender_for(
                http_url,
                auto_flush_rows=auto_flush_rows,
                auto_flush_interval=auto_flush_interval_ms,
                retry_timeout=retry_timeout_ms,
            )
            self._sender.establish()
        except QuestDBError as error:
            raise StoreError(f"cannot open ILP/HTTP sender to {http_url}: {error}") from error
        self._pool = psycopg_pool.ConnectionPool(
            pg_url, min_size=1, max_size=pool_size, kwargs={"autocommit": True}, open=False,
            name="candlegraph-questdb",
        )
        try:
            self._pool.open(wait=True, timeout=10.0)
        except psycopg_pool.PoolTimeout as error:
            self._sender.close(flush=False)
            raise StoreError(f"cannot reach QuestDB over the PostgreSQL wire: {error}") from error
        try:
            for name, ddl in TABLES.items():
                self._execute(ddl.format(t=self._t[name]))
        except BaseException:
            self.close()
            raise

    # Candles -------------------------------------------------------------------------------
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
            (exchange, symbol, timeframe, *_us_bounds(start_ns, end_ns)),
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
            (exchange, symbol, timeframe, *_us_bounds(start_ns, end_ns)),
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
            (*key, *_us_bounds(lo, hi)),
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

    # Indicators ----------------------------------------------------------------------------
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
        params = (*key, *_us_bounds(start_ns, end_ns), *names)
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

    # Backtests -----------------------------------------------------------------------------
    def put_backtest(self, record: BacktestRecord) -> None:
        symbols = {
            "id": record.id, "kind": record.kind, "status": record.status,
            "strategy": record.strategy, "exchange": record.exchange, "symbol": record.symbol,
            "timeframe": record.timeframe, "sweep_id": record.sweep_id,
        }
        columns = {
            "start_ns": record.start_ns, "end_ns": record.end_ns,
            "created_ns": record.created_ns, "started_ns": record.started_ns,
            "finished_ns": record.finished_ns, "progress": float(record.progress),
            "error": record.error, "spec_json": record.spec_json,
            "metrics_json": record.metrics_json,
        }
        with self._write_lock:
            try:
                self._sender.row(
                    self._t["backtests"], symbols=symbols, columns=columns,
                    at=TimestampNanos(record.created_ns),
                )
                self._sender.flush()
            except QuestDBError as error:
                raise StoreError(
                    f"writing backtest {record.id} to {self._http_url}: {error}"
                ) from error
            self._await_applied(["backtests"])

    def put_backtest_results(self, id: str, trades: pl.DataFrame, equity: pl.DataFrame) -> None:
        with self._write_lock:
            gen_us = self._last_gen_us = max(self._clock() // 1000, self._last_gen_us + 1)
            frames = results_dataframes(id, gen_us, trades, equity)
            marker = {"backtest_results": frames.pop("backtest_results")}
            what = f"writing the results of backtest {id}"
            # The rows first, the generation marker once they are applied: readers follow the
            # marker, so they never see half of a generation.
            self._send_locked(what, frames)
            self._send_locked(what, marker)

    def backtest(self, id: str) -> BacktestRecord | None:
        rows = self._query(
            f"SELECT {', '.join(BACKTEST_COLUMNS)} FROM {self._t['backtests']} WHERE id = %s",
            (id,),
        )
        return backtest_record(rows[-1]) if rows else None

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
        if limit <= 0:
            return []
        filters = {
            "status = %s": status, "strategy = %s": strategy, "exchange = %s": exchange,
            "symbol = %s": symbol, "sweep_id = %s": sweep_id,
            "created_ns < %s": None if created_before_ns is None else Int8(created_before_ns),
        }
        given = {clause: value for clause, value in filters.items() if value is not None}
        where = f"WHERE {' AND '.join(given)}" if given else ""
        rows = self._query(
            f"SELECT {', '.join(BACKTEST_COLUMNS)} FROM {self._t['backtests']} {where}"
            f" ORDER BY created_ns DESC, id LIMIT {int(limit)}",
            list(given.values()),
        )
        return [backtest_record(row) for row in rows]

    def backtest_trades(self, id: str, *, offset: int = 0, limit: int = 100) -> pl.DataFrame:
        gen = self._results_gen(id)
        rows: list[tuple] = []
        if gen is not None and limit > 0:
            lo = max(int(offset), 0)
            rows = self._query(
                f"SELECT {', '.join(BACKTEST_TRADE_SCHEMA)} FROM (SELECT * FROM"
                f" {self._t['backtest_trades']} WHERE id = %s AND ts = cast(%s AS TIMESTAMP)"
                f" ORDER BY exit_ts, position_id, seq LIMIT {lo}, {lo + int(limit)})",
                (id, Int8(gen)),
            )
        return pl.DataFrame(rows, schema=BACKTEST_TRADE_SCHEMA, orient="row")

    def backtest_equity(self, id: str) -> pl.DataFrame:
        gen = self._results_gen(id)
        rows: list[tuple] = []
        if gen is not None:
            rows = self._query(
                f"SELECT at_ns, equity, position FROM {self._t['backtest_equity']}"
                " WHERE id = %s AND ts = cast(%s AS TIMESTAMP) ORDER BY at_ns",
                (id, Int8(gen)),
            )
        return pl.DataFrame(rows, schema=BACKTEST_EQUITY_SCHEMA, orient="row")

    def _results_gen(self, id: str) -> int | None:
        rows = self._query(
            f"SELECT gen FROM {self._t['backtest_results']} WHERE id = %s"
            " LATEST ON ts PARTITION BY id",
            (id,),
        )
        return rows[0][0] if rows else None

    # Lifecycle -----------------------------------------------------------------------------
    def ping(self) -> None:
        self._query("SELECT 1", ())

    def close(self) -> None:
        # Nothing is left unflushed (every write call flushes), so a failing close loses nothing.
        with self._write_lock, contextlib.suppress(QuestDBError):
            self._sender.close(flush=False)
        self._pool.close()

    def drop_tables(self) -> None:
        """Drop this store's tables (for tests and teardown of a prefixed store)."""
        for table in self._t.values():
            self._execute(f"DROP TABLE IF EXISTS {table}")

    # Plumbing ------------------------------------------------------------------------------
    def _send(self, what: str, frames: dict[str, pd.DataFrame]) -> None:
        with self._write_lock:
            self._send_locked(what, frames)

    def _send_locked(self, what: str, frames: dict[str, pd.DataFrame]) -> None:
        """Serialize each table's frame, flush, and wait until QuestDB has applied them."""
        try:
            for name, frame in frames.items():
                self._sender.dataframe(
                    frame, table_name=self._t[name], symbols=SYMBOLS[name], at="ts"
                )
            self._sender.flush()
        except (QuestDBError, TypeError, ValueError) as error:
            # The client's own errors, and a frame it cannot serialize.
            raise StoreError(f"{what} to QuestDB at {self._http_url}: {error}") from error
        self._await_applied(list(frames))

    def _await_applied(self, names: list[str]) -> None:
        """Wait until QuestDB has applied every WAL commit made so far to these tables."""
        tables = {self._t[name] for name in names}
        deadline = time.monotonic() + self._apply_timeout_s
        target: dict[str, int] = {}
        pause = 0.002
        while True:
            rows = self._query(
                "SELECT name, suspended, writerTxn, sequencerTxn FROM wal_tables()", ()
            )
            pending = []
            for name, suspended, writer_txn, sequencer_txn in rows:
                if name not in tables:
                    continue
                if suspended:
                    raise StoreError(
                        f"QuestDB table {name} is suspended (WAL apply failed); see its server"
                        " log, then ALTER TABLE ... RESUME WAL"
                    )
                target.setdefault(name, sequencer_txn)
                if writer_txn < target[name]:
                    pending.append(name)
            if not pending:
                return
            if time.monotonic() > deadline:
                # The rows are durable (committed to the WAL); only their visibility lags.
                # Failing here would stop the flow, which would then write them again.
                log.warning(
                    "QuestDB has not applied the WAL of %s within %s s: the rows are"
                    " committed and will be readable once it has",
                    sorted(pending), self._apply_timeout_s,
                )
                return
            time.sleep(pause)  # polling the server; the wait is on its WAL apply job
            pause = min(pause * 2, 0.05)

    def _execute(self, sql: str) -> None:
        self._query(sql, (), fetch=False)

    def _query(self, sql: str, params: Sequence[Any], *, fetch: bool = True) -> list[tuple]:
        try:
            with self._pool.connection() as conn:
                # Binary results: doubles come back bit for bit, and need no text parsing.
                cursor = conn.execute(sql, params, binary=True)
                return cursor.fetchall() if fetch else []
        except (psycopg.Error, psycopg_pool.PoolTimeout) as error:
            first_line = " ".join(sql.split())[:120]
            raise StoreError(f"QuestDB query failed ({first_line}...): {error}") from error


def _us_bounds(start_ns: int | None, end_ns: int | None) -> tuple[Int8, Int8]:
    """[start_ns, end_ns) as QuestDB microseconds: start rounds up, end rounds up, so the
    microsecond range holds exactly the same whole-microsecond timestamps. Bound as int8 so
    the server sees one type whatever the value."""
    lo = _MIN_US if start_ns is None else -(-start_ns // 1000)
    hi = _MAX_US if end_ns is None else -(-end_ns // 1000)
    return Int8(lo), Int8(hi)
