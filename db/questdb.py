"""The production store: QuestDB, written over ILP/HTTP and read over the PostgreSQL wire.

`QuestDBStore` is assembled from one part per interface of `db.store.Store`:
`db.questdb_candles`, `db.questdb_indicators` and `db.questdb_backtests`, all on the sender,
pool and write path of `db.questdb_connection`. Tables are created at start if missing
(`db.questdb_tables`), all `WAL` with `DEDUP UPSERT KEYS`, so replays and corrections are
idempotent; a table created before one of its later columns gets it then. QuestDB's TIMESTAMP
is microseconds (8.0 has no nanosecond type): candle and indicator times are whole seconds,
and the nanosecond times of backtests are kept in LONG columns, exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from db.questdb_backtests import QuestDBBacktests
from db.questdb_candles import QuestDBCandles
from db.questdb_indicators import QuestDBIndicators
from db.questdb_tables import ADDED_COLUMNS, TABLES


class QuestDBStore(QuestDBCandles, QuestDBIndicators, QuestDBBacktests):
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
        super().__init__(
            http_url, pg_url, table_prefix=table_prefix, auto_flush_rows=auto_flush_rows,
            auto_flush_interval_ms=auto_flush_interval_ms, retry_timeout_ms=retry_timeout_ms,
            apply_timeout_s=apply_timeout_s, pool_size=pool_size, clock=clock,
        )
        try:
            for name, ddl in TABLES.items():
                self._execute(ddl.format(t=self._t[name]))
            for name, columns in ADDED_COLUMNS.items():
                for column in columns:
                    self._execute(f"ALTER TABLE {self._t[name]} ADD COLUMN IF NOT EXISTS {column}")
        except BaseException:
            self.close()
            raise

    def ping(self) -> None:
        self._query("SELECT 1", ())

    def close(self) -> None:
        self._close_connection()
