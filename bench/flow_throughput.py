"""Throughput of the candle flow: NATS JetStream to the embedded store, and its pure core.

1,000,000 trades over 100 symbols (a seeded random walk per symbol, integer trade ids) are
spread evenly over `--event-seconds` of event time and published to a fresh JetStream stream
as one message per symbol per second of event time (a JSON array). Then, with every timeframe
(1s to 1d) and the default indicators:

- `flow_trades_per_s`: one `candlegraph flow` worker process, from its first delivered message
  until every message is acked (acks follow the store's commit), so decoding, aggregation,
  indicators, SQLite writes and NATS publishing are all in;
- `aggregator_trades_per_s`: `CandleAggregator.add_batch` alone, in this process, on the
  decoded columns in batches of about 10,000 trades (what the flow hands it);
- `decoder_trades_per_s`: `TradeDecoder.decode` (the compiled parser) alone, the same
  messages; `msgspec_decoder_trades_per_s`: the same through msgspec alone
  (`bench/msgspec_decoder.py`), the baseline the parser must beat;
- `polars_batch_trades_per_s`: polars computing the same OHLCV, count and vwap per symbol and
  bucket for all timeframes, from columns (for reference: a batch engine, no streaming rules).

It also prints what the run produced (`flow_candles_closed`, `flow_indicator_values`).

    python bench/flow_throughput.py [--trades N] [--symbols N] [--event-seconds S]
                                    [--decoder compiled|msgspec]

With `--decoder msgspec` the flow runs without the compiled parser (for the comparison).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import numpy as np
import polars as pl
from msgspec_decoder import MsgspecTradeDecoder

from flows.streams import ensure_streams
from flows.subjects import trades_subject
from market.aggregator import CandleAggregator
from market.json_trades import TradeDecoder
from market.messages import Trade, encode
from market.timeframes import STANDARD_TIMEFRAMES, parse_timeframes
from server.processes import free_port, nats_server_binary, wait_for_port

S = 1_000_000_000
START_NS = 1_767_225_600 * S  # 2026-01-01T00:00:00Z


def make_messages(
    trades: int, symbols: int, seconds: int, seed: int = 1
) -> list[tuple[str, bytes]]:
    """(subject, payload) pairs in publishing order: second by second, symbol by symbol."""
    rng = np.random.default_rng(seed)
    per_symbol = trades // symbols
    names = [f"S{i:03d}-USDT" for i in range(symbols)]
    messages: list[tuple[str, bytes]] = []
    columns = []
    for i in range(symbols):
        steps = rng.normal(0.0, 0.0004, per_symbol)
        price = np.round(100.0 * (i + 1) * np.exp(np.cumsum(steps)), 4)
        size = np.round(rng.lognormal(0.0, 1.0, per_symbol), 6)
        ts = START_NS + np.sort(rng.integers(0, seconds * S, per_symbol))
        columns.append((price.tolist(), size.tolist(), ts.tolist()))
    cursors = [0] * symbols
    for second in range(seconds):
        end_ns = START_NS + (second + 1) * S
        for i, name in enumerate(names):
            price, size, ts = columns[i]
            lo = hi = cursors[i]
            while hi < per_symbol and ts[hi] < end_ns:
                hi += 1
            if hi > lo:
                batch = [
                    Trade("bench", name, ts[j], price[j], size[j], "buy" if j % 2 else "sell",
                          str(j + 1))
                    for j in range(lo, hi)
                ]
                messages.append((trades_subject("bench", name), encode(batch)))
            cursors[i] = hi
    return messages


async def publish(url: str, messages: list[tuple[str, bytes]]) -> None:
    nc = await nats.connect(url, pending_size=128 * 1024)
    js = nc.jetstream()
    await ensure_streams(js)
    for i in range(0, len(messages), 500):
        await asyncio.gather(*(js.publish(s, d) for s, d in messages[i:i + 500]))
    await nc.drain()


async def watch_flow(url: str, total: int, timeout_s: float) -> float:
    """Seconds from the first delivered message until all `total` are acked."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    started = None
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            try:
                info = await js.consumer_info("TRADES", "candles")
            except nats.js.errors.NotFoundError:
                await asyncio.sleep(0.01)
                continue
            if started is None and info.delivered.stream_seq > 0:
                started = time.perf_counter()
            if info.ack_floor.stream_seq >= total and started is not None:
                return time.perf_counter() - started
            await asyncio.sleep(0.01)
        raise TimeoutError(f"the flow did not ack {total} messages in {timeout_s} s")
    finally:
        await nc.drain()


def flow_rate(
    messages: list[tuple[str, bytes]], trades: int, decoder: str = "compiled"
) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory(prefix="flow-bench-") as tmp:
        root = Path(tmp)
        port = free_port()
        url = f"nats://127.0.0.1:{port}"
        server = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(port), "-js",
             "-sd", str(root / "nats")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        flow = None
        try:
            wait_for_port("127.0.0.1", port, timeout_s=10, proc=server)
            asyncio.run(publish(url, messages))
            env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
            env.update(CANDLEGRAPH_NATS_URL=url, CANDLEGRAPH_DATA_DIR=str(root / "data"),
                       CANDLEGRAPH_LOG_LEVEL="WARNING")
            command = ["-m", "server.cli", "flow"]
            if decoder == "msgspec":  # one worker, as `flow` starts it, with msgspec decoding
                command = [str(Path(__file__).with_name("msgspec_decoder.py"))]
            flow = subprocess.Popen([sys.executable, *command], env=env)
            seconds = asyncio.run(watch_flow(url, len(messages), timeout_s=600))
            db = sqlite3.connect(root / "data" / "candlegraph.sqlite")
            candles = db.execute("SELECT count(*) FROM candles").fetchone()[0]
            values = db.execute("SELECT count(*) FROM indicators").fetchone()[0]
            return trades / seconds, candles, values
        finally:
            if flow is not None:
                flow.terminate()
                flow.wait(timeout=30)
            server.terminate()
            server.wait(timeout=10)


def core_rates(
    messages: list[tuple[str, bytes]], trades: int
) -> tuple[float, float, float]:
    decoder = TradeDecoder(max_future_ns=10**18)
    keyed = [(("bench", s.split(".")[2]), d) for s, d in messages]
    chunks: list[list[tuple[tuple[str, str], bytes]]] = []
    chunk: list[tuple[tuple[str, str], bytes]] = []
    size = 0
    for item in keyed:
        chunk.append(item)
        size += len(item[1])
        if size >= 1_300_000:  # about 10,000 trades
            chunks.append(chunk)
            chunk, size = [], 0
    chunks.append(chunk)
    decoder.decode(chunks[0], now_ns=START_NS)  # compile and warm up
    started = time.perf_counter()
    batches = [decoder.decode(c, now_ns=START_NS).batch for c in chunks]
    decode_rate = trades / (time.perf_counter() - started)
    baseline = MsgspecTradeDecoder(max_future_ns=10**18)
    started = time.perf_counter()
    plain = [baseline.decode(c, now_ns=START_NS).batch for c in chunks]
    msgspec_rate = trades / (time.perf_counter() - started)
    for fast, slow in zip(batches, plain, strict=True):  # the same columns, to the bit
        for name in ("ts", "price", "size", "side", "ids"):
            assert np.array_equal(getattr(fast, name), getattr(slow, name)), name
    warm = CandleAggregator(parse_timeframes(list(STANDARD_TIMEFRAMES)))
    warm.add_batch(batches[0])
    agg = CandleAggregator(parse_timeframes(list(STANDARD_TIMEFRAMES)))
    started = time.perf_counter()
    for batch in batches:
        agg.add_batch(batch)
    return decode_rate, msgspec_rate, trades / (time.perf_counter() - started)


def polars_rate(messages: list[tuple[str, bytes]], trades: int) -> float:
    batch = TradeDecoder(max_future_ns=10**18).decode(
        [(("bench", s.split(".")[2]), d) for s, d in messages], now_ns=START_NS
    ).batch
    frame = pl.DataFrame({
        "market": batch.key_of, "ts": batch.ts, "price": batch.price, "size": batch.size,
    })
    started = time.perf_counter()
    for tf in parse_timeframes(list(STANDARD_TIMEFRAMES)):
        (
            frame.with_columns((pl.col("ts") - pl.col("ts") % tf.ns).alias("bucket"))
            .group_by("market", "bucket", maintain_order=True)
            .agg(
                pl.col("price").first().alias("open"), pl.col("price").max().alias("high"),
                pl.col("price").min().alias("low"), pl.col("price").last().alias("close"),
                pl.col("size").sum().alias("volume"), pl.len().alias("trades"),
                (pl.col("price") * pl.col("size")).sum().alias("notional"),
            )
        )
    return trades / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trades", type=int, default=1_000_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--event-seconds", type=int, default=60,
                        help="event time the trades span (sets candles per trade)")
    parser.add_argument("--decoder", choices=["compiled", "msgspec"], default="compiled",
                        help="the flow's trade decoder (msgspec: without the compiled parser)")
    args = parser.parse_args()
    messages = make_messages(args.trades, args.symbols, args.event_seconds)
    trades = args.trades // args.symbols * args.symbols
    rate, candles, values = flow_rate(messages, trades, args.decoder)
    decode_rate, msgspec_rate, aggregator_rate = core_rates(messages, trades)
    print(f"flow_trades_per_s: {rate:,.0f} trades/s ({args.decoder} decoder)")
    print(f"aggregator_trades_per_s: {aggregator_rate:,.0f} trades/s")
    print(f"decoder_trades_per_s: {decode_rate:,.0f} trades/s")
    print(f"msgspec_decoder_trades_per_s: {msgspec_rate:,.0f} trades/s")
    print(f"polars_batch_trades_per_s: {polars_rate(messages, trades):,.0f} trades/s")
    print(f"flow_messages: {len(messages)} messages")
    print(f"flow_candles_closed: {candles} candles")
    print(f"flow_indicator_values: {values} values")


if __name__ == "__main__":
    main()
