"""The flow process end to end: trades on JetStream in, exact candles in SQLite and on NATS."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from db.sqlite import SqliteStore
from flows.publisher import publish_trades
from market.messages import Candle, DeadLetter, Trade, decode_candle
from market.timeframes import parse_timeframes
from tests.conditions import eventually, wait_until
from tests.market.batch_reference import batch_candles
from tests.servers import NatsServer

S = 1_000_000_000


async def _true(value: bool) -> bool:
    return value


def start_flow(nats_url: str, data_dir: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    env.update(CANDLEGRAPH_NATS_URL=nats_url, CANDLEGRAPH_DATA_DIR=str(data_dir),
               CANDLEGRAPH_TIMEFRAMES="1s,1m", CANDLEGRAPH_LOG_LEVEL="WARNING")
    return subprocess.Popen([sys.executable, "-m", "server.cli", "flow"], env=env)


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=15)


async def test_published_trades_become_exact_candles_in_the_store_and_on_nats(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    t0 = (time.time_ns() - 600 * S) // (60 * S) * (60 * S)
    trades = [
        Trade("e2e", "BTC-USDT", t0 + i * 250_000_000, 100.0 + (i * 7919 % 13) * 0.25,
              0.001 * (i % 17 + 1), "buy" if i % 2 else "sell", f"t{i}")
        for i in range(800)  # 200 seconds: 1s and 1m candles over four minutes
    ]
    updates: list[Candle] = []
    letters: list[DeadLetter] = []

    async def on_candle(msg: Msg) -> None:
        updates.append(decode_candle(msg.data))

    async def on_letter(msg: Msg) -> None:
        letters.append(msgspec.json.decode(msg.data, type=DeadLetter))

    await nc.subscribe("candles.e2e.>", cb=on_candle)
    await nc.subscribe("deadletter.trades", cb=on_letter)
    js = nc.jetstream()
    for i in range(0, len(trades), 100):
        await publish_trades(js, trades[i:i + 100])
    await js.publish("trades.e2e.BTC-USDT", b'[{"exchange": "e2e"}]')

    flow = start_flow(nats_server.url, tmp_path)
    try:
        store = SqliteStore(tmp_path / "candlegraph.sqlite")
        expected = batch_candles(trades, parse_timeframes("1s,1m"), 5 * S)
        last = {tf: max(ts for (_, name, ts) in expected if name == tf) for tf in ("1s", "1m")}
        closed = {k: c for k, c in expected.items() if k[2] != last[k[1]]}

        def stored() -> dict[tuple[str, str, int], Candle]:
            rows = [*store.candles("e2e", "BTC-USDT", "1s", limit=10_000),
                    *store.candles("e2e", "BTC-USDT", "1m", limit=10_000)]
            return {(c.symbol, c.timeframe, c.ts): c for c in rows}

        wait_until(lambda: len(stored()) == len(closed), timeout_s=30, what="closed candles")
        assert stored() == closed

        await eventually(lambda: _true(len(letters) == 1), what="a dead letter")
        assert (letters[0].reason, letters[0].subject) == ("missing_field", "trades.e2e.BTC-USDT")

        async def all_acked() -> bool:
            info = await js.consumer_info("TRADES", "candles")
            return info.num_ack_pending == 0 and info.num_pending == 0

        await eventually(all_acked, what="every message acked by the durable consumer")

        final_on_nats = {
            (c.symbol, c.timeframe, c.ts): msgspec.structs.replace(c, indicators=None)
            for c in updates
        }
        assert {k: final_on_nats[k] for k in closed} == closed
        with_indicators = [c for c in updates if c.indicators]
        assert with_indicators and all(c.closed for c in with_indicators)
        stored_sma = store.indicators("e2e", "BTC-USDT", "1s", ["sma_20"], limit=10_000)
        assert stored_sma.height > 100
        forming = [c for c in updates if not c.closed]
        assert forming, "forming candles are published too"
    finally:
        assert stop(flow) == 0
