"""How fast the web client paints: 10,000 candles after navigation, and live updates after
their publish on NATS.

Starts a NATS server and `candlegraph serve` in their own processes (bench/served.py) over a
store holding 10,000 one-minute candles of `bench BTC-USDT` (a seeded random walk) and a
minute of its one-second candles, then drives Debian's chromium with Playwright:

- `web_first_paint_10k_ms`: from navigation start to the client's `candlegraph:candles-painted`
  mark (set in the second frame after the chart got the candles), with the page asking for the
  newest 10,000 candles: the median of `--loads` first visits (each in a new browser context,
  so nothing is cached), min and max printed too. Target: <= 1,000 ms. The visit just after the
  server started is printed apart (`..._server_start_ms`): its backtest worker is importing
  its engine then, which takes a core for a few seconds.
- `web_live_update_p99_ms`: from just before a candle update's publish on
  `candles.bench.BTC-USDT.1s` to the first animation frame after the page applied it, over
  `--updates` updates (default 1,000; p50 and max printed too). Updates go out as the flow
  publishes them with `CANDLEGRAPH_FORMING_INTERVAL_MS` at `--interval-ms` (default 50: a
  forming update every interval, the closed candle when the second ends); the flow's default
  of 250 would make 1,000 updates take four minutes. Each update carries its sequence number
  in `trades`; the page keeps a trace of what it painted when (`candlegraph.market.trace`),
  both times on this machine's wall clock. Target: <= 100 ms.
- `web_live_delivered`: the share of updates the page painted (the server may merge updates
  of one candle for a client that falls behind).

    python bench/web_client.py [--loads N] [--updates N] [--interval-ms MS]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import nats
import numpy as np
from playwright.async_api import Browser, Page, ViewportSize, async_playwright
from served import served

from db.sqlite import SqliteStore
from market.messages import Candle, encode

S = 1_000_000_000
MINUTE = 60 * S
BARS = 10_000
SUBJECT = "candles.bench.BTC-USDT.1s"
PAINT_ROUTE = "#/market?exchange=bench&symbol=BTC-USDT&timeframe=1m&bars=10000"
LIVE_ROUTE = "#/market?exchange=bench&symbol=BTC-USDT&timeframe=1s&bars=500"
WARMUP_UPDATES = 20
VIEWPORT: ViewportSize = {"width": 1400, "height": 860}
CHROMIUM = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")


def walk(count: int, timeframe: str, step_ns: int, end_ns: int, seed: int) -> list[Candle]:
    rng = np.random.default_rng(seed)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.003, count))), 2)
    opens = np.concatenate([[100.0], closes[:-1]])
    start = end_ns - count * step_ns
    return [
        Candle("bench", "BTC-USDT", timeframe, start + i * step_ns, float(o),
               float(max(o, c) + 0.05), float(min(o, c) - 0.05), float(c),
               float(1 + i % 7), 3, float(c), True)
        for i, (o, c) in enumerate(zip(opens, closes, strict=True))
    ]


def chromium() -> str:
    for candidate in CHROMIUM:
        found = candidate if Path(candidate).is_file() else shutil.which(candidate)
        if found:
            return found
    raise SystemExit("no chromium found: apt-get install chromium")


async def first_paint_ms(browser: Browser, url: str) -> float:
    """One first visit: a new browser context, so nothing is cached."""
    context = await browser.new_context(viewport=VIEWPORT)
    try:
        page = await context.new_page()
        await page.goto(url)
        handle = await page.wait_for_function(
            """() => {
                const [mark] = performance.getEntriesByName('candlegraph:candles-painted');
                return mark && {at: mark.startTime, count: mark.detail.count};
            }""", timeout=30_000)
        mark = await handle.json_value()
    finally:
        await context.close()
    if mark["count"] != BARS:
        raise RuntimeError(f"the page painted {mark['count']} candles, not {BARS}")
    return float(mark["at"])


def update(seq: int, bucket: int, closed: bool) -> Candle:
    price = 100.0 + (seq % 50) / 10
    return Candle("bench", "BTC-USDT", "1s", bucket, 100.0, 106.0, 99.0, price, float(seq), seq,
                  100.2, closed)


async def live_latencies(
    page: Page, url: str, nats_url: str, *, updates: int, interval_s: float
) -> tuple[list[float], float]:
    await page.goto(url)
    await page.wait_for_function(
        "() => document.querySelector('#live-status')?.dataset.state === 'live'",
        timeout=30_000)
    nc = await nats.connect(nats_url)
    published: dict[int, float] = {}
    try:
        total = WARMUP_UPDATES + updates
        started = time.perf_counter()
        bucket = time.time_ns() // S * S
        for seq in range(1, total + 1):
            await asyncio.sleep(max(0.0, started + seq * interval_s - time.perf_counter()))
            now = time.time_ns() // S * S
            if now > bucket:  # the second ended: its candle closes, the next one forms
                payload = encode(update(seq, bucket, closed=True))
                bucket = now
            else:
                payload = encode(update(seq, bucket, closed=False))
            published[seq] = time.time() * 1000
            await nc.publish(SUBJECT, payload)
            await nc.flush()
        await page.wait_for_function(
            "n => candlegraph.market.trace.some(r => r.trades === n && r.paintedAt)",
            arg=total, timeout=10_000)
    finally:
        await nc.drain()
    trace = await page.evaluate("() => candlegraph.market.trace")
    painted = {r["trades"]: r["paintedAt"] for r in trace if r["paintedAt"] is not None}
    counted = [seq for seq in published if seq > WARMUP_UPDATES]
    latencies = [painted[seq] - published[seq] for seq in counted if seq in painted]
    return latencies, len(latencies) / len(counted)


async def run(args: argparse.Namespace, port: int, nats_url: str) -> None:
    base = f"http://127.0.0.1:{port}/"
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium(), headless=True)
        try:
            first = await first_paint_ms(browser, base + PAINT_ROUTE)
            paints = [await first_paint_ms(browser, base + PAINT_ROUTE) for _ in range(args.loads)]
            print(f"web_first_paint_10k_server_start_ms: {first:.0f} ms")
            print(f"web_first_paint_10k_ms: {statistics.median(paints):.0f} ms")
            print(f"web_first_paint_10k_min_ms: {min(paints):.0f} ms")
            print(f"web_first_paint_10k_max_ms: {max(paints):.0f} ms")
            page = await browser.new_page(viewport=VIEWPORT)
            latencies, delivered = await live_latencies(
                page, base + LIVE_ROUTE, nats_url, updates=args.updates,
                interval_s=args.interval_ms / 1000)
        finally:
            await browser.close()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    print(f"web_live_update_p50_ms: {statistics.median(latencies):.1f} ms")
    print(f"web_live_update_p99_ms: {cuts[98]:.1f} ms")
    print(f"web_live_update_max_ms: {max(latencies):.1f} ms")
    print(f"web_live_delivered: {delivered:.3f} of {args.updates} updates")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5, help="page loads for the first paint")
    parser.add_argument("--updates", type=int, default=1000, help="live updates measured")
    parser.add_argument("--interval-ms", type=float, default=50.0,
                        help="time between two updates (the flow's forming interval)")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="web-bench-"))
    now = time.time_ns()
    store = SqliteStore(data_dir / "candlegraph.sqlite")
    store.upsert_candles(walk(BARS, "1m", MINUTE, now // MINUTE * MINUTE, seed=5))
    store.upsert_candles(walk(60, "1s", S, now // S * S - S, seed=6))
    store.close()
    try:
        with served(data_dir, log_level="WARNING", backtest_workers="1") as server:
            asyncio.run(run(args, server.port, server.nats_url))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
