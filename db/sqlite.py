"""The embedded store: SQLite in WAL mode, one file under the data directory.

WAL lets the flow process write while server processes read. Writes commit in one
transaction per batch with `synchronous=NORMAL`: a committed batch survives a crash of the
process (the guarantee acks rely on), though not a power cut.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from db.store import CANDLE_SCHEMA, StoreError
from market.messages import Candle

_SCHEMA = """
CREATE TABLE IF NOT EXISTS candles (
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    ts INTEGER NOT NULL,
    open REAL NOT NULL,
    high REAL NOT NULL,
    low REAL NOT NULL,
    close REAL NOT NULL,
    volume REAL NOT NULL,
    trades INTEGER NOT NULL,
    vwap REAL NOT NULL,
    closed INTEGER NOT NULL,
    PRIMARY KEY (exchange, symbol, timeframe, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS symbols (
    exchange TEXT NOT NULL,
    symbol TEXT NOT NULL,
    PRIMARY KEY (exchange, symbol)
) WITHOUT ROWID;
"""

_UPSERT = """
INSERT INTO candles (exchange, symbol, timeframe, ts, open, high, low, close, volume, trades,
                     vwap, closed)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (exchange, symbol, timeframe, ts) DO UPDATE SET
    open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
    volume = excluded.volume, trades = excluded.trades, vwap = excluded.vwap,
    closed = excluded.closed
"""

_COLUMNS = "exchange, symbol, timeframe, ts, open, high, low, close, volume, trades, vwap, closed"


class SqliteStore:
    """`Store` over one SQLite file. Safe to share between threads of one process."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 10.0) -> None:
        self.path = path
        self._timeout = busy_timeout_s
        self._local = threading.local()
        self._write_lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._connection()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(_SCHEMA)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None)
            except sqlite3.Error as error:
                raise StoreError(f"cannot open SQLite store at {self.path}: {error}") from error
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def upsert_candles(self, candles: Sequence[Candle]) -> None:
        if not candles:
            return
        rows = [
            (c.exchange, c.symbol, c.timeframe, c.ts, c.open, c.high, c.low, c.close,
             c.volume, c.trades, c.vwap, int(c.closed))
            for c in candles
        ]
        names = sorted({(c.exchange, c.symbol) for c in candles})
        conn = self._connection()
        with self._write_lock:
            try:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_UPSERT, rows)
                conn.executemany(
                    "INSERT OR IGNORE INTO symbols (exchange, symbol) VALUES (?, ?)", names
                )
                conn.execute("COMMIT")
            except sqlite3.Error as error:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise StoreError(f"writing {len(rows)} candles to {self.path}: {error}") from error

    def candles(
        self,
        exchange: str,
        symbol: str,
        timeframe: str,
        *,
        start_ns: int | None = None,
        end_ns: int | None = None,
        limit: int = 1000,
    ) -> list[Candle]:
        sql = (
            f"SELECT {_COLUMNS} FROM candles WHERE exchange = ? AND symbol = ? AND timeframe = ?"
            " AND ts >= ? AND ts < ? ORDER BY ts DESC LIMIT ?"
        )
        lo = start_ns if start_ns is not None else -(2**63)
        hi = end_ns if end_ns is not None else 2**63 - 1
        rows = self._read(sql, (exchange, symbol, timeframe, lo, hi, limit))
        return [Candle(*row[:11], bool(row[11])) for row in reversed(rows)]

    def candles_frame(
        self, exchange: str, symbol: str, timeframe: str, start_ns: int, end_ns: int
    ) -> pl.DataFrame:
        sql = (
            "SELECT ts, open, high, low, close, volume, trades, vwap FROM candles"
            " WHERE exchange = ? AND symbol = ? AND timeframe = ? AND ts >= ? AND ts < ?"
            " ORDER BY ts"
        )
        rows = self._read(sql, (exchange, symbol, timeframe, start_ns, end_ns))
        return pl.DataFrame(rows, schema=CANDLE_SCHEMA, orient="row")

    def symbols(self) -> list[tuple[str, str]]:
        rows = self._read("SELECT exchange, symbol FROM symbols ORDER BY exchange, symbol", ())
        return [(row[0], row[1]) for row in rows]

    def ping(self) -> None:
        self._read("SELECT 1", ())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _read(self, sql: str, params: tuple[object, ...]) -> list[tuple]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"reading from {self.path}: {error}") from error
