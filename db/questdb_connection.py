"""The production store's plumbing: the ILP/HTTP sender, the PostgreSQL pool, and the
wait for QuestDB to apply what was written.

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
parsed `Timeframe`) and LIMIT counts (Python ints), none of them text from a caller. The parts
of `db.questdb.QuestDBStore` (`db.questdb_candles`, `db.questdb_indicators`,
`db.questdb_backtests`) build on this class.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import psycopg
import psycopg_pool
from psycopg.types.numeric import Int8
from questdb import QuestDBError

from db.ilp import SYMBOLS, pg_url_for, sender_for
from db.questdb_tables import TABLES
from db.store import StoreError

log = logging.getLogger(__name__)

_PREFIX = re.compile(r"^[a-z0-9_]{0,32}$")

_MIN_US = -(2**62) // 1000
_MAX_US = 2**62 // 1000


class QuestDBConnection:
    """A sender and a pool to one QuestDB server, for the tables under `table_prefix`.
    Safe to share between threads of one process."""

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
    ) -> None:
        if not _PREFIX.match(table_prefix):
            raise StoreError(f"table_prefix must match {_PREFIX.pattern}, got {table_prefix!r}")
        self._t = {name: table_prefix + name for name in TABLES}
        self._http_url = http_url
        pg_url = pg_url or pg_url_for(http_url)
        self._apply_timeout_s = apply_timeout_s
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

    def _close_connection(self) -> None:
        # Nothing is left unflushed (every write call flushes), so a failing close loses nothing.
        with self._write_lock, contextlib.suppress(QuestDBError):
            self._sender.close(flush=False)
        self._pool.close()

    def drop_tables(self) -> None:
        """Drop this store's tables (for tests and teardown of a prefixed store)."""
        for table in self._t.values():
            self._execute(f"DROP TABLE IF EXISTS {table}")

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


def us_bounds(start_ns: int | None, end_ns: int | None) -> tuple[Int8, Int8]:
    """[start_ns, end_ns) as QuestDB microseconds: start rounds up, end rounds up, so the
    microsecond range holds exactly the same whole-microsecond timestamps. Bound as int8 so
    the server sees one type whatever the value."""
    lo = _MIN_US if start_ns is None else -(-start_ns // 1000)
    hi = _MAX_US if end_ns is None else -(-end_ns // 1000)
    return Int8(lo), Int8(hi)
