"""A file replayed with `candlegraph import --replay` through NATS into the flow gives,
bit for bit, the candles its import stores."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from nats.aio.client import Client

from market.timeframes import parse_timeframes
from tests.conditions import wait_until
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
        env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
        replay = subprocess.run(
            [sys.executable, "-m", "server.cli", "import", str(path), "--exchange", "binance",
             "--symbol", "BTC-USDT", "--replay", "--speed", "max",
             "--nats-url", nats_server.url, "--data-dir", str(tmp_path / "replay")],
            env=env, capture_output=True, text=True, timeout=120,
        )
        assert replay.returncode == 0, replay.stderr
        assert "replayed 3,000 trades" in replay.stdout

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
