"""How fast the stores write candles and indicators. Prints `name: value unit`, medians of 3:

- `embedded_candles_per_s`: `SqliteStore.upsert_candles` in batches of 1,000 (the flow's shape),
  each batch one committed transaction;
- `embedded_flow_candles_per_s`: the same closer to what the flow's sink writes: 100 symbols,
  batches of 300 candles in key order, so each commit touches 100 series;
- `embedded_import_candles_per_s`: what `candlegraph import` wrote before it wrote columns:
  one market's 1-minute candles in batches of 20,000 in key order, as `Candle` structs;
  `embedded_import_columns_candles_per_s`: the same candles as columns
  (`SqliteStore.upsert_candle_columns`, what `flows.history.HistoryWriter` writes);
- `embedded_import_indicator_rows_per_s`: the default indicators' 19 values of those
  candles as `db.columns.IndicatorTable`s of 20,000 rows (`upsert_indicator_table`: blocks of
  doubles, `db.indicator_blocks`), what an import writes beside them;
- `embedded_indicator_values_per_s`: `SqliteStore.upsert_indicators` with the default
  indicators' 19 values per closed 1-second candle of 100 symbols, sorted as the flow's sink
  sorts them, in batches of 300 candles (5,700 values, about what the flow's sink writes at a
  time), each batch one committed transaction; opening and closing the store included;
- `ilp_buffer_rows_per_s`: a frame of 1,000,000 candles serialized into ILP buffers by the
  questdb client's DataFrame path (protocol 2, binary doubles, what QuestDB 9 negotiates), no
  server; `ilp_buffer_v1_rows_per_s` the same in protocol 1 (text, what QuestDB 8 gets);
- `ilp_candles_to_buffer_per_s`: the store's whole write path short of the network, from
  `Candle` structs to the frame (`db.ilp.candles_dataframe`) to the buffer;
- `questdb_candles_per_s`, when `CANDLEGRAPH_QUESTDB_URL` and `CANDLEGRAPH_QUESTDB_PG_URL` name a
  server: `QuestDBStore.upsert_candles` end to end in batches of 100,000, each returning once
  QuestDB has applied it (tables under a fresh prefix, dropped afterwards).

    python bench/store_write.py [--candles N] [--indicator-candles N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import msgspec
import numpy as np
import pandas as pd
from questdb import Sender

from db.columns import IndicatorTable
from db.ilp import SYMBOLS, candles_dataframe
from db.indicator_store import IndicatorPoint
from db.sqlite import SqliteStore
from market.candle_columns import CandleColumns
from market.indicators import IndicatorSet
from market.messages import Candle

SYMBOL_NAMES = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT")
FLOW_SYMBOLS = tuple(f"S{i:03d}-USDT" for i in range(100))  # as in bench/flow_throughput.py
T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
CHUNK = 100_000  # rows per ILP buffer, as an auto-flush by rows would cut them


def synthetic_candles(count: int, symbols: Sequence[str] = SYMBOL_NAMES) -> list[Candle]:
    """`count` closed 1-second candles over `symbols` (five by default), distinct keys, varied
    prices, second by second."""
    candles = []
    n = len(symbols)
    for i in range(count):
        price = 100.0 + (i % 977) * 0.01
        candles.append(Candle(
            "sim", symbols[i % n], "1s", T0 + (i // n) * 10**9, price, price + 0.5,
            price - 0.5, price + 0.25, 1.0 + (i % 13), 1 + i % 50, price + 0.1, True,
        ))
    return candles


def synthetic_indicator_points(
    candles: int, symbols: Sequence[str] = FLOW_SYMBOLS
) -> list[IndicatorPoint]:
    """The default indicators' values for `candles` 1-second candles spread over `symbols`,
    second by second, as full-precision doubles (their JSON is as long as real ones)."""
    names = IndicatorSet().keys
    points: list[IndicatorPoint] = []
    for i in range(candles):
        second, s = divmod(i, len(symbols))
        base = 100.0 * (s + 1) + second / 7.0
        points.extend(
            IndicatorPoint("sim", symbols[s], "1s", T0 + second * 10**9, name,
                           base * (1.0 + j / 97.0))
            for j, name in enumerate(names)
        )
    return points


def median_rate(rows: int, run: Callable[[], None], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def embedded_rate(
    candles: list[Candle], per_batch: int = 1000, *, in_key_order: bool = False
) -> float:
    batches = [candles[i:i + per_batch] for i in range(0, len(candles), per_batch)]
    if in_key_order:  # as the flow's sink writes them
        batches = [sorted(b, key=lambda c: (c.exchange, c.symbol, c.timeframe, c.ts))
                   for b in batches]

    def run() -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = SqliteStore(Path(directory) / "bench.sqlite")
            for batch in batches:
                store.upsert_candles(batch)
            store.close()

    return median_rate(len(candles), run)


def embedded_columns_rate(candles: list[Candle], per_batch: int) -> float:
    markets = sorted({(c.exchange, c.symbol) for c in candles})
    names = sorted({c.timeframe for c in candles})
    batches = [CandleColumns.from_candles(candles[i:i + per_batch], markets, names)
               for i in range(0, len(candles), per_batch)]

    def run() -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = SqliteStore(Path(directory) / "bench.sqlite")
            for batch in batches:
                store.upsert_candle_columns(batch)
            store.close()

    return median_rate(len(candles), run)


def embedded_table_rate(candles: int, per_batch: int) -> float:
    """Indicator rows of one market's 1-minute candles, as tables, with full-precision
    doubles about the size of real ones (their JSON is as long)."""
    names = IndicatorSet().keys
    ts = T0 + np.arange(candles, dtype=np.int64) * 60 * 10**9
    base = 100.0 + np.arange(candles) / 7.0
    values = base[:, None] * (1.0 + np.arange(len(names)) / 97.0)[None, :]
    tables = [
        IndicatorTable("sim", "BTC-USDT", "1m", names, ts[i:i + per_batch],
                       values[i:i + per_batch], np.zeros(len(ts[i:i + per_batch]), np.bool_))
        for i in range(0, candles, per_batch)
    ]

    def run() -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = SqliteStore(Path(directory) / "bench.sqlite")
            for table in tables:
                store.upsert_indicator_table(table)
            store.close()

    return median_rate(candles, run)


def embedded_indicator_rate(points: list[IndicatorPoint], per_batch: int) -> float:
    batches = [sorted(points[i:i + per_batch]) for i in range(0, len(points), per_batch)]

    def run() -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = SqliteStore(Path(directory) / "bench.sqlite")
            for batch in batches:
                store.upsert_indicators(batch)
            store.close()

    return median_rate(len(points), run)


def buffer_rate(frame: pd.DataFrame, protocol: int) -> float:
    # A fixed protocol version needs no server: the sender only serializes here.
    sender = Sender.from_conf(f"http::addr=127.0.0.1:9;protocol_version={protocol};auto_flush=off;")
    sender.establish()
    chunks = [frame.iloc[i:i + CHUNK] for i in range(0, len(frame), CHUNK)]
    buffer = sender.new_buffer()

    def run() -> None:
        for chunk in chunks:
            buffer.dataframe(chunk, table_name="candles", symbols=SYMBOLS["candles"], at="ts")
            buffer.clear()

    rate = median_rate(len(frame), run)
    sender.close(flush=False)
    return rate


def candles_to_buffer_rate(candles: list[Candle]) -> float:
    sender = Sender.from_conf("http::addr=127.0.0.1:9;protocol_version=2;auto_flush=off;")
    sender.establish()
    buffer = sender.new_buffer()

    def run() -> None:
        for i in range(0, len(candles), CHUNK):
            frame = candles_dataframe(candles[i:i + CHUNK])
            buffer.dataframe(frame, table_name="candles", symbols=SYMBOLS["candles"], at="ts")
            buffer.clear()

    rate = median_rate(len(candles), run)
    sender.close(flush=False)
    return rate


def questdb_rate(candles: list[Candle], http_url: str, pg_url: str) -> float:
    from db.questdb import QuestDBStore

    def run() -> None:
        store = QuestDBStore(http_url, pg_url, table_prefix=f"bench{uuid.uuid4().hex[:8]}_")
        try:
            for i in range(0, len(candles), CHUNK):
                store.upsert_candles(candles[i:i + CHUNK])
        finally:
            store.drop_tables()
            store.close()

    return median_rate(len(candles), run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candles", type=int, default=1_000_000, help="candles to write")
    parser.add_argument("--indicator-candles", type=int, default=12_000,
                        help="candles whose indicator values to write (19 each)")
    args = parser.parse_args()
    candles = synthetic_candles(args.candles)
    print(f"embedded_candles_per_s: {embedded_rate(candles[:200_000]):,.0f} candles/s")
    flow_candles = synthetic_candles(60_000, FLOW_SYMBOLS)
    rate = embedded_rate(flow_candles, per_batch=300, in_key_order=True)
    print(f"embedded_flow_candles_per_s: {rate:,.0f} candles/s")
    one_market = [
        msgspec.structs.replace(c, timeframe="1m", ts=T0 + i * 60 * 10**9)
        for i, c in enumerate(synthetic_candles(200_000, ("BTC-USDT",)))
    ]
    rate = embedded_rate(one_market, per_batch=20_000, in_key_order=True)
    print(f"embedded_import_candles_per_s: {rate:,.0f} candles/s")
    rate = embedded_columns_rate(one_market, per_batch=20_000)
    print(f"embedded_import_columns_candles_per_s: {rate:,.0f} candles/s")
    rate = embedded_table_rate(len(one_market), per_batch=20_000)
    print(f"embedded_import_indicator_rows_per_s: {rate:,.0f} rows/s")
    points = synthetic_indicator_points(args.indicator_candles)
    rate = embedded_indicator_rate(points, per_batch=300 * len(IndicatorSet().keys))
    print(f"embedded_indicator_values_per_s: {rate:,.0f} values/s")
    frame = candles_dataframe(candles)
    print(f"ilp_buffer_rows_per_s: {buffer_rate(frame, 2):,.0f} rows/s")
    print(f"ilp_buffer_v1_rows_per_s: {buffer_rate(frame, 1):,.0f} rows/s")
    print(f"ilp_candles_to_buffer_per_s: {candles_to_buffer_rate(candles):,.0f} candles/s")
    http_url = os.environ.get("CANDLEGRAPH_QUESTDB_URL")
    pg_url = os.environ.get("CANDLEGRAPH_QUESTDB_PG_URL")
    if http_url and pg_url:
        print(f"questdb_candles_per_s: {questdb_rate(candles, http_url, pg_url):,.0f} candles/s")


if __name__ == "__main__":
    main()
