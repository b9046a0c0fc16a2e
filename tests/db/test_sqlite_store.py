"""The embedded store: upserts, range reads, and a writer and reader in separate processes."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

from db.sqlite import SqliteStore
from market.messages import Candle

S = 1_000_000_000


def candle(ts: int, close: float, *, symbol: str = "BTC-USDT", closed: bool = True) -> Candle:
    return Candle("sim", symbol, "1m", ts, 1.0, 2.0, 0.5, close, 3.0, 4, 1.5, closed)


def test_upsert_replaces_a_candle_with_the_same_key(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite")
    store.upsert_candles([candle(0, 1.0), candle(60 * S, 1.0)])
    store.upsert_candles([candle(0, 9.0)])
    assert [c.close for c in store.candles("sim", "BTC-USDT", "1m")] == [9.0, 1.0]


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
