"""How fast the stores take candles. Prints `name: value unit` lines, medians of 3 runs:

- `embedded_candles_per_s`: `SqliteStore.upsert_candles` in batches of 1,000 (the flow's shape),
  each batch one committed transaction;
- `ilp_buffer_rows_per_s`: a frame of 1,000,000 candles serialized into ILP buffers by the
  questdb client's DataFrame path (protocol 2, binary doubles, what QuestDB 9 negotiates), no
  server; `ilp_buffer_v1_rows_per_s` the same in protocol 1 (text, what QuestDB 8 gets);
- `ilp_candles_to_buffer_per_s`: the store's whole write path short of the network, from
  `Candle` structs to the frame (`db.ilp.candles_dataframe`) to the buffer;
- `questdb_candles_per_s`, when `CANDLEGRAPH_QUESTDB_URL` and `CANDLEGRAPH_QUESTDB_PG_URL` name a
  server: `QuestDBStore.upsert_candles` end to end in batches of 100,000, each returning once
  QuestDB has applied it (tables under a fresh prefix, dropped afterwards).

    python bench/store_write.py [--candles N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from questdb import Sender

from db.ilp import SYMBOLS, candles_dataframe
from db.sqlite import SqliteStore
from market.messages import Candle

SYMBOL_NAMES = ("BTC-USDT", "ETH-USDT", "SOL-USDT", "BNB-USDT", "XRP-USDT")
T0 = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
CHUNK = 100_000  # rows per ILP buffer, as an auto-flush by rows would cut them


def synthetic_candles(count: int) -> list[Candle]:
    """`count` closed 1-second candles over five symbols, distinct keys, varied prices."""
    candles = []
    for i in range(count):
        price = 100.0 + (i % 977) * 0.01
        candles.append(Candle(
            "sim", SYMBOL_NAMES[i % 5], "1s", T0 + (i // 5) * 10**9, price, price + 0.5,
            price - 0.5, price + 0.25, 1.0 + (i % 13), 1 + i % 50, price + 0.1, True,
        ))
    return candles


def median_rate(rows: int, run: Callable[[], None], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def embedded_rate(candles: list[Candle]) -> float:
    def run() -> None:
        with tempfile.TemporaryDirectory() as directory:
            store = SqliteStore(Path(directory) / "bench.sqlite")
            for i in range(0, len(candles), 1000):
                store.upsert_candles(candles[i:i + 1000])
            store.close()

    return median_rate(len(candles), run)


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
    args = parser.parse_args()
    candles = synthetic_candles(args.candles)
    print(f"embedded_candles_per_s: {embedded_rate(candles[:200_000]):,.0f} candles/s")
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
