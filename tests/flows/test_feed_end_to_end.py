"""`candlegraph feed` and `candlegraph flow` as processes: fake Binance in, exact candles out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from db.sqlite import SqliteStore
from market.messages import Candle, Trade
from market.timeframes import parse_timeframes
from tests.conditions import wait_until
from tests.fake_binance import FakeBinance, MadeTrade
from tests.flows.flow_runs import start_flow
from tests.market.batch_reference import batch_candles
from tests.servers import NatsServer

LATENESS_S = 20
HOUR_MS = 3_600_000


def start_feed(nats_url: str, data_dir: Path, fake: FakeBinance) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    env.update(
        CANDLEGRAPH_NATS_URL=nats_url, CANDLEGRAPH_DATA_DIR=str(data_dir),
        CANDLEGRAPH_LOG_LEVEL="WARNING", CANDLEGRAPH_EXCHANGE="binance",
        CANDLEGRAPH_EXCHANGE_SYMBOLS="BTC/USDT",
        CANDLEGRAPH_EXCHANGE_CONFIG=json.dumps(fake.ccxt_config()),
        CANDLEGRAPH_FEED_BACKOFF_S="0.05", CANDLEGRAPH_FEED_BACKOFF_MAX_S="0.5",
        CANDLEGRAPH_FEED_METRICS_PORT="0",
    )
    return subprocess.Popen([sys.executable, "-m", "server.cli", "feed"], env=env)


def as_trade(made: MadeTrade) -> Trade:
    return Trade("binance", "BTC-USDT", made.ts_ms * 1_000_000, float(made.price),
                 float(made.qty), "sell" if made.buyer_maker else "buy", str(made.agg_id))


def subscribers(fake: FakeBinance) -> int:
    return sum(1 for s in list(fake._sockets) if s.streams)


def test_a_feed_that_loses_its_socket_twice_and_is_killed_once_stores_exactly_the_batch_candles(
    tmp_path: Path,
) -> None:
    nats = NatsServer(tmp_path / "nats")
    # Exchange time an hour behind the clock, so a closing trade can end every candle.
    fake = FakeBinance(clock_ms=lambda: time.time_ns() // 1_000_000 - HOUR_MS).start()
    data = tmp_path / "data"
    flow = start_flow(nats.url, data, timeframes="1s,1m", allowed_lateness_s=str(LATENESS_S),
                      flow_recovery="false")
    feed = start_feed(nats.url, data, fake)
    try:
        wait_until(lambda: subscribers(fake), timeout_s=30, what="the feed to subscribe")
        running = fake.run("BTCUSDT", rate=300, seconds=6)
        made = fake.made["BTCUSDT"]
        for dropped_at in (300, 600):
            wait_until(lambda: len(made) >= dropped_at and subscribers(fake),  # noqa: B023
                       timeout_s=20, what=f"{dropped_at} trades on a live socket")
            fake.drop_sockets()
        wait_until(lambda: len(made) >= 900 and subscribers(fake), timeout_s=20,
                   what="900 trades on a live socket")
        feed.send_signal(signal.SIGKILL)
        feed.wait(timeout=10)
        killed_after, asked_before = len(made), len(fake.requests)
        feed = start_feed(nats.url, data, fake)
        running.result(timeout=30)
        last = made[-1]
        # A trade two minutes later closes every 1s and 1m candle of the run.
        closing = fake.trade("BTCUSDT", 100.0, ts_ms=last.ts_ms + 120_000)
        trades = [as_trade(t) for t in made if t is not closing]
        expected = batch_candles(trades, parse_timeframes("1s,1m"), LATENESS_S * 10**9)
        store = SqliteStore(data / "candlegraph.sqlite")

        def stored() -> dict[tuple[str, str, int], Candle]:
            return {
                ("BTC-USDT", c.timeframe, c.ts): c
                for tf in ("1s", "1m")
                for c in store.candles("binance", "BTC-USDT", tf, end_ns=closing.ts_ms * 10**6
                                       - closing.ts_ms * 10**6 % (60 * 10**9), limit=100_000)
            }

        wait_until(lambda: stored() == expected, timeout_s=60,
                   what="the stored candles to equal the batch aggregation")
        assert sum(c.trades or 0 for c in stored().values() if c.timeframe == "1m") == len(trades)
        # The restarted feed resumed from its stored cursor, over REST.
        resumed = [r for r in fake.requests[asked_before:] if r.path.endswith("/aggTrades")]
        assert resumed and int(resumed[0].query["fromId"]) <= killed_after
        store.close()
    finally:
        for proc in (feed, flow):
            proc.send_signal(signal.SIGTERM)
        for proc in (feed, flow):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        fake.stop()
        nats.stop()
