"""A file replayed with `candlegraph import --replay` through NATS into the flow gives,
bit for bit, the candles its import stores."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from nats.aio.client import Client
from nats.js.errors import NotFoundError

from flows.publisher import publish_trades
from flows.streams import ensure_streams
from flows.subjects import FLOW_CONSUMER, TRADES_STREAM, trades_subject
from market.messages import Trade
from market.timeframes import parse_timeframes
from tests.conditions import eventually, wait_until
from tests.flows.files.layouts import binance_trades, sample_trades, write
from tests.flows.flow_runs import start_flow
from tests.flows.imports import import_files, stored_candles
from tests.servers import NatsServer

TIMEFRAMES = parse_timeframes("1s,1m")


async def test_a_replayed_file_makes_the_flow_store_the_candles_of_its_import(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    trades = sample_trades(3000)  # about 20 minutes
    path = write(tmp_path / "BTCUSDT-trades-2024-03-01.csv", binance_trades(trades), "zip")
    import_files([path], tmp_path / "imported", timeframes=TIMEFRAMES)
    imported = stored_candles(tmp_path / "imported", TIMEFRAMES)
    # The flow closes a series' last candle only once event time has moved past it.
    last = {tf.name: max(ts for name, ts in imported if name == tf.name) for tf in TIMEFRAMES}
    expected = {key: c for key, c in imported.items() if key[1] != last[key[0]]}

    flow = start_flow(nats_server.url, tmp_path / "flow", timeframes="1s,1m")
    try:
        await eventually(lambda: flow_consumer_exists(nc), timeout_s=60,
                         what="the flow's consumer")
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
        replay = subprocess.run(
            [sys.executable, "-m", "server.cli", "import", str(path), "--exchange", "binance",
             "--symbol", "BTC-USDT", "--replay", "--speed", "max",
             "--nats-url", nats_server.url, "--data-dir", str(tmp_path / "replay")],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert replay.returncode == 0, replay.stderr
        assert "replayed 3,000 trades" in replay.stdout
        assert "the flow took every one" in replay.stdout

        def flowed() -> dict:
            if not (tmp_path / "flow" / "candlegraph.sqlite").exists():
                return {}
            return {k: c for k, c in stored_candles(tmp_path / "flow", TIMEFRAMES).items()
                    if k in expected}

        wait_until(lambda: len(flowed()) == len(expected), timeout_s=60,
                   what="the flow to store the replayed candles")
        assert flowed() == expected
    finally:
        flow.send_signal(signal.SIGTERM)
        assert flow.wait(timeout=20) == 0


async def flow_consumer_exists(nc: Client) -> bool:
    with contextlib.suppress(NotFoundError):
        await nc.jetstream().consumer_info(TRADES_STREAM, FLOW_CONSUMER)
        return True
    return False


def replay_cli(path: Path, nats_url: str, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "import", str(path), "--exchange", "binance",
         "--symbol", "BTC-USDT", "--replay", "--nats-url", nats_url, "--data-dir",
         str(data_dir)],
        env=env, capture_output=True, text=True, timeout=120,
    )


async def test_a_replay_into_a_flow_whose_event_time_is_ahead_says_its_trades_were_late(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    """As when a simulator feeds the flow too: its trades of today put the flow's event
    time past the file's, and the replay says what became of its trades, and why."""
    trades = sample_trades(300)  # of 2024
    path = write(tmp_path / "BTCUSDT-trades-2024-03-01.csv", binance_trades(trades), "zip")
    js = nc.jetstream()
    await ensure_streams(js)
    flow = start_flow(nats_server.url, tmp_path / "flow", timeframes="1s,1m")
    try:
        now = Trade("sim", "ETH-USDT", time.time_ns(), 3000.0, 1.0, "buy", str(time.time_ns()))
        await publish_trades(js, [now])
        seq = (await js.get_last_msg(TRADES_STREAM, trades_subject("sim", "ETH-USDT"))).seq

        async def taken() -> bool:
            with contextlib.suppress(NotFoundError):
                info = await js.consumer_info(TRADES_STREAM, FLOW_CONSUMER)
                return (info.ack_floor.stream_seq or 0) >= (seq or 0)
            return False

        await eventually(taken, timeout_s=60, what="the flow taking today's trade")
        replay = replay_cli(path, nats_server.url, tmp_path / "replay")
        assert replay.returncode == 1, replay.stderr
        assert "replayed 300 trades" in replay.stdout
        said = replay.stdout.split("the flow dead-lettered ")[1]
        assert " trades of them (late: " in said and "older than the watermark" in said
        assert "replay into `candlegraph up --no-feed`" in said
    finally:
        flow.send_signal(signal.SIGTERM)
        assert flow.wait(timeout=20) == 0


def test_a_replay_with_no_flow_running_says_its_trades_wait(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats")  # one no flow has ever read
    try:
        path = write(tmp_path / "BTCUSDT-trades-2024-03-01.csv",
                     binance_trades(sample_trades(50)), "zip")
        replay = replay_cli(path, server.url, tmp_path / "replay")
        assert replay.returncode == 0, replay.stderr
        assert "no flow reads this NATS server's trades yet" in replay.stdout
    finally:
        server.stop()
