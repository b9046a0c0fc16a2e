"""The real-market commands as a user runs them, against the fake Binance: `candlegraph up
--exchange`, and `candlegraph backfill` stopped with Ctrl-C and run again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from db.sqlite import SqliteStore
from server.processes import free_port
from tests.conditions import wait_until
from tests.fake_binance import FakeBinance, kline_rows

T0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@pytest.fixture
def fake() -> Iterator[FakeBinance]:
    fake = FakeBinance().start()
    yield fake
    fake.stop()


def environment(fake: FakeBinance, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}
    env["CANDLEGRAPH_EXCHANGE_CONFIG"] = json.dumps(fake.ccxt_config())
    env.update({f"CANDLEGRAPH_{k.upper()}": v for k, v in settings.items()})
    return env


def post(port: int, query: str) -> dict[str, Any]:
    try:
        return httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}).json()
    except httpx.HTTPError:
        return {}


def test_up_with_an_exchange_serves_its_candles_instead_of_the_simulators(
    fake: FakeBinance, tmp_path: Path
) -> None:
    port, metrics = free_port(), free_port()
    up = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "up", "--data-dir", str(tmp_path / "data"),
         "--port", str(port), "--exchange", "binance", "--symbols", "BTC/USDT"],
        env=environment(fake, feed_metrics_port=str(metrics), timeframes="1s,1m",
                        log_level="WARNING"),
    )
    try:
        wait_until(lambda: any(s.streams for s in list(fake._sockets)), timeout_s=30,
                   what="the feed to subscribe")
        making = fake.run("BTCUSDT", rate=50, seconds=4)
        query = ('{ symbols { exchange symbol } candles(exchange: "binance", symbol: "BTC-USDT",'
                 ' timeframe: "1s") { trades } }')
        body = wait_until(lambda: (post(port, query).get("data") or {}).get("candles") and
                          post(port, query), timeout_s=30, what="binance candles from `up`")
        assert body["data"]["symbols"] == [{"exchange": "binance", "symbol": "BTC-USDT"}]
        assert all(c["trades"] > 0 for c in body["data"]["candles"])
        text = httpx.get(f"http://127.0.0.1:{metrics}/metrics").text
        assert 'candlegraph_feed_lag_seconds{exchange="binance",symbol="BTC-USDT"}' in text
        assert 'candlegraph_feed_trades_total{exchange="binance",symbol="BTC-USDT"}' in text
        making.result(timeout=30)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=15) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_backfill_stopped_with_ctrl_c_goes_on_where_it_stopped_when_run_again(
    fake: FakeBinance, tmp_path: Path
) -> None:
    fake.set_klines("BTCUSDT", "1m", kline_rows(T0_MS, 20_000))
    fake.set_klines("BTCUSDT", "1h", kline_rows(T0_MS, 334, "1h"))
    command = [sys.executable, "-m", "server.cli", "backfill", "--data-dir", str(tmp_path),
               "--exchange", "binance", "--symbols", "BTC/USDT", "--timeframe", "1m,1h",
               "--since", "2024-01-01", "--until", "2024-01-14T21:20"]
    env = environment(fake, indicators="sma:20")
    first = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: len(fake.requests_to("/klines")) >= 3, timeout_s=30,
               what="three pages fetched")
    first.send_signal(signal.SIGINT)
    _, log = first.communicate(timeout=30)
    assert first.returncode == 0, log
    assert "stopping after the page in hand" in log
    interrupted = len(fake.requests_to("/klines"))
    assert interrupted < 21
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "candles to fetch" in again.stderr  # plain progress lines, not a terminal bar
    asked = [(r.query["interval"], int(r.query["startTime"])) for r in fake.requests_to("/klines")]
    assert len(asked) == len(set(asked)) == 21  # 20 pages of 1m and one of 1h, each once
    store = SqliteStore(tmp_path / "candlegraph.sqlite")
    assert len(store.candles("binance", "BTC-USDT", "1m", limit=100_000)) == 20_000
    assert len(store.candles("binance", "BTC-USDT", "1h", limit=1000)) == 333
    assert store.indicators("binance", "BTC-USDT", "1m", ["sma_20"], limit=100_000).height == 19_981
    store.close()
