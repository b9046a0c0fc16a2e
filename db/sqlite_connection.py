"""The embedded store's plumbing: per-thread connections, write transactions, checkpoints.

Each write call is one transaction (`BEGIN IMMEDIATE`), committed before it returns, with
`synchronous=NORMAL`: a committed batch survives a crash of the process (the guarantee acks
rely on), though not a power cut. A thread of the writing process copies the WAL into the file
(`db.sqlite_checkpoint`), so commits do not wait for that. The parts of `db.sqlite.SqliteStore`
(`db.sqlite_candles`, `db.sqlite_indicators`, `db.sqlite_backtests`) build on this class.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from db.sqlite_checkpoint import FALLBACK_PAGES, Checkpointer
from db.store import StoreError

MIN_TS = -(2**63)
MAX_TS = 2**63 - 1


class SqliteConnection:
    """Connections to one SQLite file, one per thread, and one writer at a time per process.

    `checkpoint_interval_s`: the least time between two background checkpoints; None leaves
    them to SQLite, inside the commits.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout_s: float = 10.0,
        checkpoint_interval_s: float | None = 0.5,
    ) -> None:
        self.path = path
        self._timeout = busy_timeout_s
        self._local = threading.local()  # whether this thread's transaction is a bulk one
        self._write_lock = threading.Lock()
        self._checkpoint_interval_s = checkpoint_interval_s
        self._checkpointer: Checkpointer | None = None  # started by the first write
        # Each thread's connection, by thread: those of threads that ended are closed here (a
        # connection is freed by the garbage collector only, so it would hold the WAL open).
        self._connections: dict[threading.Thread, sqlite3.Connection] = {}
        self._connections_lock = threading.Lock()
        # Ids of series (`db.sqlite_series_ids`) known to be committed.
        self._series_ids: dict[tuple[str, str, str], int] = {}
        path.parent.mkdir(parents=True, exist_ok=True)

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        this = threading.current_thread()
        conn = self._connections.get(this)
        if conn is None:
            try:
                # Used by this thread only; closed by another once this one has ended.
                conn = sqlite3.connect(self.path, timeout=self._timeout, isolation_level=None,
                                       check_same_thread=False)
                conn.execute("PRAGMA synchronous=NORMAL")
                if self._checkpoint_interval_s is not None:
                    conn.execute(f"PRAGMA wal_autocheckpoint={FALLBACK_PAGES}")
            except sqlite3.Error as error:
                raise StoreError(f"cannot open SQLite store at {self.path}: {error}") from error
            with self._connections_lock:
                self._connections[this] = conn
            self._local.bulk = False  # a new connection has the default page cache
            self._close_connections(this_thread=False)
        return conn

    def _close_connections(self, *, this_thread: bool) -> None:
        """Close the connections of threads that ended, and with `this_thread` this
        thread's."""
        this = threading.current_thread()
        with self._connections_lock:
            for thread in list(self._connections):
                if not thread.is_alive() or (this_thread and thread is this):
                    self._connections.pop(thread).close()

    def _close_connection(self) -> None:
        """Stop the checkpointer; close this thread's connection and those of threads that
        ended (the last connection closed copies the WAL into the file and removes it)."""
        with self._write_lock:
            if self._checkpointer is not None:
                self._checkpointer.stop()
                self._checkpointer = None
        self._close_connections(this_thread=True)

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

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: the reads in the block see the same commits."""
        conn = self._connection()
        try:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as error:
            raise StoreError(f"reading from {self.path}: {error}") from error

    def _read(self, sql: str, params: Sequence[object] | Mapping[str, object]) -> list[tuple]:
        try:
            return self._connection().execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"reading from {self.path}: {error}") from error


def bounds(start_ns: int | None, end_ns: int | None) -> tuple[int, int]:
    """[start_ns, end_ns) with open ends as the widest integers SQLite holds."""
    return (
        MIN_TS if start_ns is None else start_ns,
        MAX_TS if end_ns is None else end_ns,
    )


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


def insert_blocks(
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
