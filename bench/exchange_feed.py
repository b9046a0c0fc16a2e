"""Throughput of the exchange feed and of the candle backfill, against the fake Binance.

- `feed_max_trades_per_s`: the highest trade rate one `candlegraph feed` process (one asyncio
  thread: one core) keeps up with, from the fake exchange's websocket (one message per trade,
  as Binance sends them) through ccxt into JetStream. Rates go up in steps; at each, the fake
  makes trades for `--seconds`, and the feed keeps up when every trade is published within
  2 s of the last one made and the lag (publish ack seen on NATS minus the trade's exchange
  time) stays under 1 s at the 99th percentile. `feed_cpu_us_per_trade` is the feed
  process's CPU time per trade at that rate, `feed_lag_p99_ms` its lag.
- `backfill_candles_per_s`: `CandleBackfill` over `--candles` 1m candles (one market, default
  indicators, a fresh SQLite store), with the time split between ccxt (`backfill_ccxt_s`:
  the request and ccxt's parsing; `backfill_ccxt_parse_s` of it re-parses the same pages
  with ccxt's `parse_ohlcvs` alone), our conversion (`backfill_convert_s`) and the store
  with the indicators (`backfill_store_s`). ccxt's rate limiter is off here: it would only
  add its 20 ms per page.

The fake exchange, the feed and nats-server run in processes of their own.

    python bench/exchange_feed.py [--rates 5000,10000,20000,30000,40000] [--seconds 8]
                                  [--candles 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import nats
from nats.aio.msg import Msg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the fake exchange is a test double, kept under tests/

from db.sqlite import SqliteStore  # noqa: E402
from flows.candle_backfill import BackfillRequest, CandleBackfill  # noqa: E402
from flows.exchanges import open_exchange  # noqa: E402
from market.indicators import DEFAULT_INDICATORS  # noqa: E402
from market.messages import decode_trades  # noqa: E402
from server.processes import free_port, nats_server_binary, wait_for_port  # noqa: E402
from tests.fake_binance import ccxt_config_for, kline_rows  # noqa: E402

T0_MS = 1_672_531_200_000  # 2023-01-01T00:00:00Z


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def feed_run(
    control: str, nats_url: str, feed_pid: int, rate: int, seconds: float
) -> tuple[bool, float, float]:
    """One rate: (kept up, lag p99 in ms, feed CPU µs per trade)."""
    nc = await nats.connect(nats_url)
    lags: list[float] = []
    received = 0

    async def seen(msg: Msg) -> None:
        nonlocal received
        now_ms = time.time_ns() / 1e6
        trades, _ = decode_trades(msg.data, now_ns=time.time_ns())
        received += len(trades)
        lags.append(now_ms - trades[-1].ts / 1e6)

    await nc.subscribe("trades.binance.>", cb=seen)
    cpu = cpu_s(feed_pid)
    async with httpx.AsyncClient(timeout=seconds + 30) as client:
        answer = await client.post(f"{control}/run", params={
            "symbol": "BTCUSDT", "rate": rate, "seconds": seconds,
        })
    made = answer.json()["made"]
    done = time.monotonic()
    while received < made and time.monotonic() - done < 2.0:
        await asyncio.sleep(0.02)
    used = cpu_s(feed_pid) - cpu
    await nc.close()
    tail = lags[len(lags) // 2:] or [float("inf")]
    p99 = statistics.quantiles(tail, n=100)[98] if len(tail) > 1 else tail[0]
    return received >= made and p99 < 1000.0, p99, used / max(made, 1) * 1e6


def feed_benchmark(rates: list[int], seconds: float) -> None:
    with tempfile.TemporaryDirectory() as directory:
        nats_port, fake_port = free_port(), free_port()
        nats_url = f"nats://127.0.0.1:{nats_port}"
        control = f"http://127.0.0.1:{fake_port}/_control"
        server = subprocess.Popen(
            [nats_server_binary(), "-a", "127.0.0.1", "-p", str(nats_port), "-js", "-sd",
             str(Path(directory) / "js")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        fake = subprocess.Popen([sys.executable, "-m", "tests.fake_binance", str(fake_port)],
                                cwd=ROOT)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")},
            "CANDLEGRAPH_NATS_URL": nats_url, "CANDLEGRAPH_DATA_DIR": directory,
            "CANDLEGRAPH_EXCHANGE": "binance", "CANDLEGRAPH_EXCHANGE_SYMBOLS": "BTC/USDT",
            "CANDLEGRAPH_EXCHANGE_CONFIG": json.dumps(ccxt_config_for(fake_port)),
            "CANDLEGRAPH_FEED_METRICS_PORT": "0", "CANDLEGRAPH_LOG_LEVEL": "WARNING",
        }
        feed = None
        try:
            wait_for_port("127.0.0.1", nats_port, timeout_s=10, proc=server)
            wait_for_port("127.0.0.1", fake_port, timeout_s=10, proc=fake)
            feed = subprocess.Popen([sys.executable, "-m", "server.cli", "feed"], env=env)
            deadline = time.monotonic() + 60
            while not httpx.get(f"{control}/subscribers").json()["subscribers"]:
                if time.monotonic() > deadline or feed.poll() is not None:
                    raise RuntimeError("the feed did not subscribe")
                time.sleep(0.05)
            asyncio.run(feed_run(control, nats_url, feed.pid, 1000, 2.0))  # warm up
            best = 0
            for rate in rates:
                kept_up, p99, cpu_us = asyncio.run(
                    feed_run(control, nats_url, feed.pid, rate, seconds)
                )
                print(f"feed_at_{rate}_per_s: {'kept up' if kept_up else 'fell behind'},"
                      f" lag p99 {p99:,.0f} ms, {cpu_us:.1f} µs CPU per trade", flush=True)
                if not kept_up:
                    break
                best, best_p99, best_cpu = rate, p99, cpu_us
            print(f"feed_max_trades_per_s: {best:,} trades/s")
            if best:
                print(f"feed_lag_p99_ms: {best_p99:,.0f} ms")
                print(f"feed_cpu_us_per_trade: {best_cpu:.1f} µs")
        finally:
            for proc in (feed, fake, server):
                if proc is not None:
                    proc.terminate()
                    proc.wait(timeout=20)


async def backfill_benchmark(candles: int) -> None:
    port = free_port()
    fake = subprocess.Popen([sys.executable, "-m", "tests.fake_binance", str(port)], cwd=ROOT)
    try:
        wait_for_port("127.0.0.1", port, timeout_s=10, proc=fake)
        async with httpx.AsyncClient(timeout=60) as client:
            await client.post(f"http://127.0.0.1:{port}/_control/klines", params={
                "symbol": "BTCUSDT", "interval": "1m", "start": T0_MS, "count": candles,
            })
        with tempfile.TemporaryDirectory() as directory:
            store = SqliteStore(Path(directory) / "bench.sqlite")
            exchange = open_exchange(
                "binance", {**ccxt_config_for(port), "enableRateLimit": False}, streaming=False
            )

            class Quiet:
                def begin(self, what: str, total: int) -> None: ...
                def advance(self, candles: int) -> None: ...
                def end(self) -> None: ...

            job = CandleBackfill(exchange, store, DEFAULT_INDICATORS, progress=Quiet(),
                                 stop=asyncio.Event())
            started = time.perf_counter()
            report = await job.run(BackfillRequest(
                "binance", ("BTC-USDT",), ("1m",), T0_MS * 10**6,
                (T0_MS + candles * 60_000) * 10**6,
            ))
            elapsed = time.perf_counter() - started
            # ccxt's parsing alone, on the same pages as they come off the wire.
            market = exchange.market("BTC/USDT")
            rows = kline_rows(T0_MS, candles)
            pages = [json.loads(json.dumps(rows[i:i + 1000])) for i in range(0, candles, 1000)]
            parse_started = time.perf_counter()
            for page in pages:
                exchange.parse_ohlcvs(page, market, "1m", None, None)
            parse_s = time.perf_counter() - parse_started
            await exchange.close()
            store.close()
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    print(f"backfill_candles_per_s: {report.candles / elapsed:,.0f} candles/s"
          f" ({report.candles:,} candles, {report.requests} requests, {elapsed:.1f} s)")
    print(f"backfill_ccxt_s: {report.fetch_s:.2f} s")
    print(f"backfill_ccxt_parse_s: {parse_s:.2f} s")
    print(f"backfill_convert_s: {report.convert_s:.2f} s")
    print(f"backfill_store_s: {report.store_s:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="5000,10000,15000,20000,25000,30000,40000,50000")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--candles", type=int, default=200_000)
    parser.add_argument("--only", choices=["feed", "backfill"])
    args = parser.parse_args()
    if args.only != "backfill":
        feed_benchmark([int(r) for r in args.rates.split(",")], args.seconds)
    if args.only != "feed":
        asyncio.run(backfill_benchmark(args.candles))


if __name__ == "__main__":
    main()
