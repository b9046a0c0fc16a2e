"""The embedded store's backtests (`db.backtest_store.BacktestStore`), a part of
`SqliteStore`.

A compare-and-set (`swap_backtest`) reads and writes in one IMMEDIATE transaction, so no other
writer, in any process, comes between the compare and the set.
"""

from __future__ import annotations

import sqlite3

import polars as pl

from db.backtest_store import BACKTEST_EQUITY_SCHEMA, BACKTEST_TRADE_SCHEMA, BacktestRecord
from db.rows import BACKTEST_COLUMNS, backtest_record, backtest_row
from db.sqlite_connection import SqliteConnection
from db.sqlite_tables import BACKTEST_ADDED_COLUMNS

_TRADE_COLUMNS = ", ".join(BACKTEST_TRADE_SCHEMA)
_EQUITY_COLUMNS = ", ".join(BACKTEST_EQUITY_SCHEMA)
_PUT_BACKTEST = (
    f"INSERT OR REPLACE INTO backtests ({', '.join(BACKTEST_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(BACKTEST_COLUMNS))})"
)
_SELECT_BACKTEST = f"SELECT {', '.join(BACKTEST_COLUMNS)} FROM backtests WHERE id = ?"


class SqliteBacktests(SqliteConnection):
    """`BacktestStore` over the `backtests`, `backtest_trades` and `backtest_equity` tables."""

    def _migrate_backtests(self, conn: sqlite3.Connection) -> None:
        """Give a `backtests` table from before them its later columns, in the open
        transaction."""
        have = {row[1] for row in conn.execute("PRAGMA table_info(backtests)")}
        for name, definition in BACKTEST_ADDED_COLUMNS.items():
            if name not in have:
                conn.execute(f"ALTER TABLE backtests ADD COLUMN {name} {definition}")

    def put_backtest(self, record: BacktestRecord) -> None:
        self._write(f"writing backtest {record.id}", (_PUT_BACKTEST, [backtest_row(record)]))

    def put_backtest_results(self, id: str, trades: pl.DataFrame, equity: pl.DataFrame) -> None:
        with self._transaction(f"writing the results of backtest {id}") as conn:
            _write_results(conn, id, trades, equity)

    def swap_backtest(
        self,
        expected: BacktestRecord,
        record: BacktestRecord,
        *,
        trades: pl.DataFrame | None = None,
        equity: pl.DataFrame | None = None,
    ) -> bool:
        if record.id != expected.id:
            raise ValueError(f"swap_backtest: ids differ ({expected.id!r}, {record.id!r})")
        # One IMMEDIATE transaction: no other writer, in any process, between the read and
        # the write.
        with self._transaction(f"writing backtest {record.id}") as conn:
            found = conn.execute(_SELECT_BACKTEST, (record.id,)).fetchone()
            if found is None or backtest_record(found) != expected:
                return False
            conn.execute(_PUT_BACKTEST, backtest_row(record))
            if trades is not None or equity is not None:
                _write_results(
                    conn, record.id,
                    trades if trades is not None else pl.DataFrame(schema=BACKTEST_TRADE_SCHEMA),
                    equity if equity is not None else pl.DataFrame(schema=BACKTEST_EQUITY_SCHEMA),
                )
        return True

    def backtest(self, id: str) -> BacktestRecord | None:
        rows = self._read(_SELECT_BACKTEST, (id,))
        return backtest_record(rows[0]) if rows else None

    def backtest_counts(self, sweep_id: str) -> dict[str, int]:
        rows = self._read(
            "SELECT status, count(*) FROM backtests WHERE sweep_id = ? GROUP BY status",
            (sweep_id,),
        )
        return {status: count for status, count in rows}

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


def _write_results(
    conn: sqlite3.Connection, id: str, trades: pl.DataFrame, equity: pl.DataFrame
) -> None:
    """Replace the trades and equity curve of backtest `id`, inside the caller's transaction."""
    trade_rows = [
        (id, seq, *row)
        for seq, row in enumerate(trades.select(list(BACKTEST_TRADE_SCHEMA)).iter_rows())
    ]
    equity_rows = [(id, *row) for row in equity.select(list(BACKTEST_EQUITY_SCHEMA)).iter_rows()]
    trade_marks = ", ".join("?" * (len(BACKTEST_TRADE_SCHEMA) + 2))
    equity_marks = ", ".join("?" * (len(BACKTEST_EQUITY_SCHEMA) + 1))
    conn.execute("DELETE FROM backtest_trades WHERE id = ?", (id,))
    conn.execute("DELETE FROM backtest_equity WHERE id = ?", (id,))
    conn.executemany(
        f"INSERT INTO backtest_trades (id, seq, {_TRADE_COLUMNS}) VALUES ({trade_marks})",
        trade_rows,
    )
    conn.executemany(
        f"INSERT OR REPLACE INTO backtest_equity (id, {_EQUITY_COLUMNS}) VALUES ({equity_marks})",
        equity_rows,
    )
