"""The embedded store: SQLite in WAL mode, one file under the data directory.

WAL lets the flow process write while server processes read. `SqliteStore` is assembled from
one part per interface of `db.store.Store`: `db.sqlite_candles` (candles: rows written live,
blocks of history; and the `series` extents), `db.sqlite_indicators` (indicator values: a
JSON object per candle written live, blocks of history) and `db.sqlite_backtests` (records,
trades, equity curves), all on the connections and write transactions of
`db.sqlite_connection`. Opening a file creates its tables (`db.sqlite_tables`) and brings a
file of an earlier layout up to date, in one transaction: the earlier `candles` table renamed
`candle_rows`, `series` back-filled, its `trades` and `vwap` made nullable, the
one-row-per-value `indicators` table migrated, the `candles` and `indicators` views
redefined, the later columns of `backtests` added.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from db.sqlite_backtests import SqliteBacktests
from db.sqlite_candles import SqliteCandles
from db.sqlite_indicators import SqliteIndicators
from db.sqlite_tables import CANDLES_VIEW, INDICATORS_VIEW, SCHEMA
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
                conn.execute("BEGIN IMMEDIATE")
                if _kind(conn, "candles") == "table":
                    conn.execute("ALTER TABLE candles RENAME TO candle_rows")
                for statement in SCHEMA.split(";"):  # executescript would commit first
                    conn.execute(statement)
                self._migrate_candles(conn)
                if _kind(conn, "indicators") == "table":
                    self._migrate_indicators(conn)
                self._migrate_backtests(conn)
                for name, definition in (("candles", CANDLES_VIEW),
                                         ("indicators", INDICATORS_VIEW)):
                    view = conn.execute(
                        "SELECT sql FROM sqlite_master WHERE type = 'view' AND name = ?", (name,)
                    ).fetchone()
                    if view is None or view[0] != definition.strip():
                        conn.execute(f"DROP VIEW IF EXISTS {name}")
                        conn.execute(definition)
                conn.execute("COMMIT")
        except sqlite3.Error as error:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"creating the tables of the SQLite store {path}: {error}") from error

    def ping(self) -> None:
        self._read("SELECT 1", ())

    def close(self) -> None:
        self._close_connection()


def _kind(conn: sqlite3.Connection, name: str) -> str | None:
    """Whether `name` is a table or a view of the open file (None: neither)."""
    found = conn.execute("SELECT type FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return None if found is None else str(found[0])
