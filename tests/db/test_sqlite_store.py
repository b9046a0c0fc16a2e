"""The embedded store: upserts, range reads, a writer and reader in separate processes, its
checkpoint thread, and its indicator layout (one JSON object per series and ts) with the
migration from the old one."""

from __future__ import annotations

import gc
import math
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

import msgspec
import pytest

import db.sqlite_connection
import db.sqlite_indicators
from db.indicator_store import IndicatorPoint
from db.sqlite import SqliteStore
from db.store import StoreError
from market.messages import Candle
from tests.conditions import wait_until

S = 1_000_000_000


def candle(ts: int, close: float, *, symbol: str = "BTC-USDT", closed: bool = True) -> Candle:
    return Candle("sim", symbol, "1m", ts, 1.0, 2.0, 0.5, close, 3.0, 4, 1.5, closed)


def test_upsert_replaces_a_candle_with_the_same_key(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candles([candle(0, 1.0), candle(60 * S, 1.0)])
    store.upsert_candles([candle(0, 9.0)])
    assert [c.close for c in store.candles("sim", "BTC-USDT", "1m")] == [9.0, 1.0]


def test_a_batch_of_many_blocks_keeps_every_row_and_the_last_of_a_repeated_key(
    tmp_path: Path,
) -> None:
    # Enough rows for multi-row blocks, plus a remainder; key 5 repeats across blocks.
    count = max(2 * db.sqlite_connection._BLOCK_ROWS, db.sqlite_connection._BLOCK_MIN_ROWS) + 7
    batch = [candle(i * 60 * S, float(i)) for i in range(count)]
    batch.append(candle(5 * 60 * S, -1.0))
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candles(batch)
    closes = [c.close for c in store.candles("sim", "BTC-USDT", "1m", limit=10 * count)]
    assert closes == [-1.0 if i == 5 else float(i) for i in range(count)]


def test_range_and_limit_take_the_newest_oldest_first(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candles([candle(i * 60 * S, float(i)) for i in range(10)])
    got = store.candles("sim", "BTC-USDT", "1m", start_ns=2 * 60 * S, end_ns=8 * 60 * S, limit=3)
    assert [c.close for c in got] == [5.0, 6.0, 7.0]
    frame = store.candles_frame("sim", "BTC-USDT", "1m", 0, 3 * 60 * S)
    assert frame["close"].to_list() == [0.0, 1.0, 2.0]
    assert store.candles("sim", "ETH-USDT", "1m") == []


def test_symbols_lists_each_market_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candles([candle(0, 1.0), candle(60 * S, 1.0), candle(0, 1.0, symbol="ETH-USDT")])
    assert store.symbols() == [("sim", "BTC-USDT"), ("sim", "ETH-USDT")]


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from db.sqlite import SqliteStore
    from market.messages import Candle
    store = SqliteStore(Path(sys.argv[1]))
    for batch in range(200):
        store.upsert_candles([
            Candle("sim", "BTC-USDT", "1s", (batch * 50 + i) * 10**9, 1.0, 2.0, 0.5, 1.5,
                   3.0, 4, 1.5, True)
            for i in range(50)
        ])
""")


def test_a_reader_sees_whole_batches_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    reader = SqliteStore(path)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)])
    counts = []
    while writer.poll() is None:
        counts.append(len(reader.candles("sim", "BTC-USDT", "1s", limit=100_000)))
    assert writer.wait() == 0
    counts.append(len(reader.candles("sim", "BTC-USDT", "1s", limit=100_000)))
    assert counts[-1] == 10_000
    assert all(n % 50 == 0 for n in counts)  # never half a transaction
    assert counts == sorted(counts)


def test_a_store_file_from_before_the_series_table_is_back_filled_on_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the schema of the walking skeleton
        conn.executescript("""
            CREATE TABLE candles (exchange TEXT NOT NULL, symbol TEXT NOT NULL,
                timeframe TEXT NOT NULL, ts INTEGER NOT NULL, open REAL NOT NULL,
                high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
                volume REAL NOT NULL, trades INTEGER NOT NULL, vwap REAL NOT NULL,
                closed INTEGER NOT NULL, PRIMARY KEY (exchange, symbol, timeframe, ts))
                WITHOUT ROWID;
            CREATE TABLE symbols (exchange TEXT NOT NULL, symbol TEXT NOT NULL,
                PRIMARY KEY (exchange, symbol)) WITHOUT ROWID;
        """)
        conn.executemany(
            "INSERT INTO candles VALUES (?, ?, ?, ?, 1.0, 2.0, 0.5, ?, 3.0, 4, 1.5, 1)",
            [("sim", "BTC-USDT", "1m", i * 60 * S, float(i)) for i in range(3)],
        )
    store = SqliteStore(path)
    assert store.symbols() == [("sim", "BTC-USDT")]
    assert [c.close for c in store.latest_candles("1m")] == [2.0]
    assert store.symbol_summaries()[0][2:] == (0, 120 * S, 2.0)


def test_a_store_file_with_required_trade_counts_takes_candles_without_them_after_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite"
    old_rows = [Candle("sim", "BTC-USDT", "1m", i * 60 * S, 1.0, 2.0, 0.5, float(i), 3.0, 4,
                       1.5, True) for i in range(3)]
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:  # the candles table before exchange candles
        conn.executescript("""
            DROP VIEW candles;
            DROP TABLE candle_rows;
            CREATE TABLE candles (exchange TEXT NOT NULL, symbol TEXT NOT NULL,
                timeframe TEXT NOT NULL, ts INTEGER NOT NULL, open REAL NOT NULL,
                high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
                volume REAL NOT NULL, trades INTEGER NOT NULL, vwap REAL NOT NULL,
                closed INTEGER NOT NULL, PRIMARY KEY (exchange, symbol, timeframe, ts))
                WITHOUT ROWID;
        """)
        conn.executemany(
            "INSERT INTO candles VALUES (?, ?, ?, ?, 1.0, 2.0, 0.5, ?, 3.0, 4, 1.5, 1)",
            [("sim", "BTC-USDT", "1m", c.ts, c.close) for c in old_rows],
        )
    store = SqliteStore(path)
    no_count = Candle("sim", "BTC-USDT", "1m", 3 * 60 * S, 1.0, 2.0, 0.5, 3.0, 3.0, None, None,
                      True)
    store.upsert_candles([no_count])
    assert store.candles("sim", "BTC-USDT", "1m") == [*old_rows, no_count]
    store.close()
    # A second open finds the table already migrated and leaves it as it is.
    assert SqliteStore(path).candles("sim", "BTC-USDT", "1m") == [*old_rows, no_count]


def test_a_thread_copies_commits_into_the_database_file_and_ends_on_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpointed.sqlite"
    store = SqliteStore(path, checkpoint_interval_s=0.01)
    store.upsert_candles([candle(i * 60 * S, float(i)) for i in range(100)])

    def candles_in_the_file_alone() -> int:  # as if the WAL were lost
        copy = tmp_path / "copy.sqlite"
        shutil.copyfile(path, copy)
        try:
            with closing(sqlite3.connect(copy)) as conn:
                return conn.execute("SELECT count(*) FROM candles").fetchone()[0]
        except sqlite3.DatabaseError:  # copied in the middle of a checkpoint
            return 0
        finally:
            for leftover in tmp_path.glob("copy.sqlite*"):
                leftover.unlink()

    wait_until(lambda: candles_in_the_file_alone() == 100, what="candles in the database file")
    store.close()
    assert [t for t in threading.enumerate() if t.name == "checkpoint checkpointed.sqlite"] == []


def test_closing_removes_the_wal_of_connections_made_by_threads_that_ended(
    tmp_path: Path,
) -> None:
    path = tmp_path / "threads.sqlite"
    store = SqliteStore(path)
    gc.disable()  # a connection left open is freed by the garbage collector only
    try:
        writer = threading.Thread(target=store.upsert_candles, args=([candle(0, 1.0)],))
        writer.start()
        writer.join()
        store.candles("sim", "BTC-USDT", "1m")  # this thread's connection, too
        store.close()
        assert not path.with_name(path.name + "-wal").exists()
    finally:
        gc.enable()
    assert SqliteStore(path).candles("sim", "BTC-USDT", "1m") == [candle(0, 1.0)]


def test_a_store_dropped_without_closing_ends_its_checkpoint_thread(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "dropped.sqlite", checkpoint_interval_s=0.01)
    store.upsert_candles([candle(0, 1.0)])

    def threads() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "checkpoint dropped.sqlite"]

    assert len(threads()) == 1
    del store
    wait_until(lambda: threads() == [], what="the checkpoint thread to end")


# Indicators ---------------------------------------------------------------------------------

M = 60 * S
ODD = [0.1, 0.30000000000000004, 5e-324, 1.7976931348623157e308, -0.0, 1 / 3, 2.5e-9]


def point(ts: int, name: str, value: float, *, symbol: str = "BTC-USDT") -> IndicatorPoint:
    return IndicatorPoint("sim", symbol, "1m", ts, name, value)


def bits(values: Sequence[float | None]) -> list[str | None]:
    return [None if v is None else v.hex() for v in values]


def test_points_in_any_order_are_grouped_into_their_series_and_ts(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_indicators([
        point(M, "b", 2.0), point(0, "a", 1.0, symbol="ETH-USDT"), point(0, "a", 3.0),
        point(M, "a", 4.0), point(0, "b", 5.0), point(0, "a", 6.0),  # the later 0/a wins
    ])
    assert store.indicators("sim", "BTC-USDT", "1m").rows() == [(0, 6.0, 5.0), (M, 4.0, 2.0)]
    assert store.indicators("sim", "ETH-USDT", "1m").rows() == [(0, 1.0)]


def test_values_round_trip_to_the_bit(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_indicators([point(i * M, "x", v) for i, v in enumerate(ODD)])
    store.upsert_indicators([point(i * M, "y", 1.0) for i in range(len(ODD))])  # merged in
    assert bits(store.indicators("sim", "BTC-USDT", "1m")["x"].to_list()) == bits(ODD)


def test_non_finite_values_are_stored_as_no_value(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_indicators([point(0, "a", 1.0), point(0, "b", 2.0), point(M, "a", 3.0)])
    store.upsert_indicators([point(0, "a", math.nan), point(M, "a", math.inf),
                             point(2 * M, "a", -math.inf)])
    assert store.indicators("sim", "BTC-USDT", "1m").rows() == [
        (0, None, 2.0), (M, None, None), (2 * M, None, None)
    ]
    # Timestamps are picked by the names that have a value there.
    assert store.indicators("sim", "BTC-USDT", "1m", ["a"]).height == 0
    assert store.indicators("sim", "BTC-USDT", "1m", ["a", "b"])["ts"].to_list() == [0]


def test_stores_sharing_a_file_agree_on_series_even_after_a_failed_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite"
    first, second = SqliteStore(path), SqliteStore(path)
    with sqlite3.connect(path) as conn:  # makes one write fail inside its transaction
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON indicator_names WHEN NEW.name = 'boom'"
            " BEGIN SELECT RAISE(ABORT, 'refused'); END"
        )
    with pytest.raises(StoreError, match="refused"):
        first.upsert_indicators([point(0, "boom", 1.0, symbol="AAA-USDT")])
    second.upsert_indicators([point(0, "b", 2.0, symbol="BBB-USDT")])
    first.upsert_indicators([point(0, "a", 1.0, symbol="AAA-USDT")])
    second.upsert_indicators([point(M, "a", 3.0, symbol="AAA-USDT")])
    assert first.indicators("sim", "BBB-USDT", "1m").rows() == [(0, 2.0)]
    assert first.indicators("sim", "AAA-USDT", "1m").rows() == [(0, 1.0), (M, 3.0)]
    assert second.indicators("sim", "AAA-USDT", "1m").rows() == [(0, 1.0), (M, 3.0)]


def test_an_indicator_file_of_one_row_per_value_is_migrated_on_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as conn:  # the layout before indicator_values
        conn.executescript("""
            CREATE TABLE indicators (exchange TEXT NOT NULL, symbol TEXT NOT NULL,
                timeframe TEXT NOT NULL, ts INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
                PRIMARY KEY (exchange, symbol, timeframe, ts, name)) WITHOUT ROWID;
            CREATE TABLE indicator_names (exchange TEXT NOT NULL, symbol TEXT NOT NULL,
                timeframe TEXT NOT NULL, name TEXT NOT NULL,
                PRIMARY KEY (exchange, symbol, timeframe, name)) WITHOUT ROWID;
        """)
        rows: list[tuple[str, str, str, int, str, float | None]] = [
            ("sim", "BTC-USDT", "1m", i * M, "x", v) for i, v in enumerate(ODD)
        ]
        rows += [("sim", "BTC-USDT", "1m", i * M, "y", float(i)) for i in range(len(ODD))]
        rows += [("sim", "BTC-USDT", "1m", 0, "z", None), ("sim", "ETH-USDT", "1h", 0, "x", 9.0)]
        conn.executemany("INSERT INTO indicators VALUES (?, ?, ?, ?, ?, ?)", rows)
        conn.executemany(
            "INSERT INTO indicator_names VALUES (?, ?, ?, ?)",
            sorted({(*row[:3], row[4]) for row in rows}),
        )
        # As the old table holds them: SQLite keeps -0.0 as an integer 0, so it reads 0.0.
        stored = [row[0] for row in conn.execute(
            "SELECT value FROM indicators WHERE symbol = 'BTC-USDT' AND name = 'x' ORDER BY ts"
        )]
    # A ts cut across two chunks, too.
    monkeypatch.setattr(db.sqlite_indicators, "_MIGRATE_CHUNK", 4)
    store = SqliteStore(path)
    frame = store.indicators("sim", "BTC-USDT", "1m")
    assert frame.columns == ["ts", "x", "y", "z"]
    assert frame["ts"].to_list() == [i * M for i in range(len(ODD))]
    assert bits(frame["x"].to_list()) == bits(stored)
    assert frame["y"].to_list() == [float(i) for i in range(len(ODD))]
    assert frame["z"].to_list() == [None] * len(ODD)
    assert store.indicators("sim", "ETH-USDT", "1h").rows() == [(0, 9.0)]
    store.close()
    reopened = SqliteStore(path)  # nothing left to migrate; the old shape stays readable
    reopened.upsert_indicators([point(0, "y", 7.0)])
    with sqlite3.connect(path) as conn:
        kinds = dict(conn.execute("SELECT name, type FROM sqlite_master").fetchall())
        long = conn.execute(
            "SELECT ts, name, value FROM indicators WHERE symbol = 'BTC-USDT' AND ts = 0"
            " ORDER BY name"
        ).fetchall()
    assert kinds["indicators"] == "view"
    assert long == [(0, "x", 0.1), (0, "y", 7.0)]


def test_a_backtests_table_from_before_attempts_gains_them_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:  # the backtests table before attempts
        conn.executescript("""
            CREATE TABLE backtests (id TEXT PRIMARY KEY, kind TEXT NOT NULL,
                status TEXT NOT NULL, strategy TEXT NOT NULL, exchange TEXT NOT NULL,
                symbol TEXT NOT NULL, timeframe TEXT NOT NULL, start_ns INTEGER NOT NULL,
                end_ns INTEGER NOT NULL, created_ns INTEGER NOT NULL, started_ns INTEGER,
                finished_ns INTEGER, progress REAL NOT NULL, error TEXT,
                spec_json TEXT NOT NULL, metrics_json TEXT, sweep_id TEXT);
            INSERT INTO backtests VALUES ('old', 'backtest', 'SUCCEEDED', 'ema_cross', 'sim',
                'BTC-USDT', '1m', 0, 60, 5, 6, 7, 1.0, NULL, '{}', '{}', NULL);
        """)
    store = SqliteStore(path)
    old = store.backtest("old")
    assert old is not None and (old.status, old.attempt, old.worker) == ("SUCCEEDED", 0, None)
    store.put_backtest(msgspec.structs.replace(old, id="new", attempt=2, worker="w:1"))
    assert store.backtest("new") == msgspec.structs.replace(old, id="new", attempt=2, worker="w:1")
    store.close()
