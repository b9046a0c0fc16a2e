"""The embedded store: SQLite in WAL mode, one file under the data directory.

WAL lets the flow process write while server processes read. `SqliteStore` is assembled from
one part per interface of `db.store.Store`: `db.sqlite_candles` (candles and the `series`
extents), `db.sqlite_indicators` (indicator values: a JSON object per candle written live,
blocks of history) and `db.sqlite_backtests` (records, trades, equity curves), all on the
connections and write transactions of `db.sqlite_connection`. Opening a file creates its tables
(`db.sqlite_tables`) and brings a file of an earlier layout up to date, in one transaction:
`series` back-filled, `candles.trades` and `vwap` made nullable, the one-row-per-value
`indicators` table migrated, the `indicators` view redefined, the later columns of `backtests`
added.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from db.sqlite_backtests import SqliteBacktests
from db.sqlite_candles import SqliteCandles
from db.sqlite_indicators import SqliteIndicators
from db.sqlite_tables import INDICATORS_VIEW, SCHEMA
from db.store import StoreError


class SqliteStore(SqliteCandles, SqliteIndicators, SqliteBacktests):
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
        super().__init__(
            path, busy_timeout_s=busy_timeout_s, checkpoint_interval_s=checkpoint_interval_s
        )
        conn = self._connection()
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with self._write_lock:
                conn.executescript(f"BEGIN IMMEDIATE; {SCHEMA}")
                self._migrate_candles(conn)
                layout = conn.execute("SELECT type FROM sqlite_master WHERE name = 'indicators'")
                if layout.fetchone() == ("table",):
                    self._migrate_indicators(conn)
                self._migrate_backtests(conn)
                view = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = 'indicators'"
                ).fetchone()
                if view is None or view[0] != INDICATORS_VIEW.strip():
                    conn.execute("DROP VIEW IF EXISTS indicators")
                    conn.execute(INDICATORS_VIEW)
                conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"creating the tables of the SQLite store {path}: {error}") from error

    def ping(self) -> None:
        self._read("SELECT 1", ())

    def close(self) -> None:
        self._close_connection()
