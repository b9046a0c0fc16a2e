"""`candlegraph up` as a user runs it: candles within 15 s, live subscriptions, a backtest run
by its worker, clean stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from websockets import Subprotocol

from market.timeframes import parse_timeframes
from server.processes import free_port
from tests.conditions import wait_until
from tests.flows.files.layouts import binance_trades, sample_trades, write
from tests.market.batch_reference import batch_candles

QUERY = ('{ candles(exchange: "sim", symbol: "BTC-USDT", timeframe: "1s", limit: 5) '
         "{ ts open high low close volume trades vwap closed } }")


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def command_of(parent: int, subcommand: str) -> int | None:
    """The pid of the child of `parent` running `candlegraph <subcommand>`, if there is one."""
    for pid in children(parent):
        with contextlib.suppress(OSError):
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if len(args) >= 2 and args[-2] == subcommand.encode():
                return pid
    return None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; it only waits for its parent to read its status.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1][0] != "Z"


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CANDLEGRAPH_")}


@contextlib.contextmanager
def running_up(tmp_path: Path, *flags: str) -> Iterator[subprocess.Popen]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "up", "--data-dir", str(tmp_path / "data"),
         "--port", str(port), *flags],
        env=clean_env(),
    )
    proc.port = port  # type: ignore[attr-defined]  # the port rides along on the process
    try:
        yield proc
    finally:
        if proc.poll() is None:  # stopped as a user stops it, and killed if that fails
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def system(tmp_path: Path) -> Iterator[subprocess.Popen]:
    with running_up(tmp_path) as proc:
        yield proc


def graphql(port: int, query: str, **variables: object) -> dict[str, Any]:
    body = httpx.post(f"http://127.0.0.1:{port}/graphql",
                      json={"query": query, "variables": variables}).json()
    assert "errors" not in body, body
    return dict(body["data"])


def candles(port: int) -> list[dict[str, Any]]:
    try:
        body = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": QUERY}).json()
    except httpx.HTTPError:
        return []
    return (body.get("data") or {}).get("candles") or []


async def test_up_serves_candles_streams_live_ones_and_stops_cleanly(
    system: subprocess.Popen,
) -> None:
    port = system.port  # type: ignore[attr-defined]  # set by the fixture
    started = time.monotonic()
    rows = wait_until(lambda: candles(port), timeout_s=15, what="candles from `up`")
    print(f"first candle served {time.monotonic() - started:.1f} s after start")
    assert {"ts", "open", "high", "low", "close", "volume", "trades", "vwap", "closed"} <= set(
        rows[0]
    )
    assert all(r["low"] <= r["open"] <= r["high"] and r["trades"] > 0 for r in rows)

    async with websockets.connect(
        f"ws://127.0.0.1:{port}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        query = ('subscription { candles(exchange: "sim", symbol: "ETH-USDT", timeframe: "1s") '
                 "{ symbol close closed } }")
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": query}}))
        message = json.loads(await ws.recv())
    assert message["payload"]["data"]["candles"]["symbol"] == "ETH-USDT"

    # `up` runs a backtest worker: a backtest over the candles so far runs to the end.
    run = """mutation($start: DateTime!, $end: DateTime!) { runBacktest(input: {exchange: "sim",
        symbol: "BTC-USDT", timeframe: "1s", strategy: "ema_cross", start: $start, end: $end,
        params: {fast: 2, slow: 3}}) { id } }"""
    id = graphql(port, run, start=min(r["ts"] for r in rows), end="2100-01-01T00:00:00Z")[
        "runBacktest"]["id"]
    done = wait_until(
        lambda: (b := graphql(port, "query($id: ID!) { backtest(id: $id) { status attempt } }",
                              id=id)["backtest"])["status"] in {"SUCCEEDED", "FAILED"} and b,
        timeout_s=60, what="the backtest to end",
    )
    assert done == {"status": "SUCCEEDED", "attempt": 1}

    # A child that dies is started again: the flow, SIGKILLed, comes back and candles go on.
    flow = command_of(system.pid, "flow")
    assert flow is not None
    newest = max(r["ts"] for r in candles(port))
    os.kill(flow, signal.SIGKILL)
    wait_until(lambda: command_of(system.pid, "flow") not in (None, flow), timeout_s=15,
               what="`up` starting the flow again")
    wait_until(lambda: max((r["ts"] for r in candles(port)), default="") > newest,
               timeout_s=30, what="newer candles from the restarted flow")

    worker = command_of(system.pid, "worker")
    assert worker is not None
    assert len(children(system.pid)) == 5  # nats-server, flow, simulator, server, worker
    assert len(children(worker)) >= 2  # its two backtest processes (and multiprocessing's own)
    tree = children(system.pid) + children(worker)
    stopping = time.monotonic()
    system.send_signal(signal.SIGINT)
    assert system.wait(timeout=10) == 0
    assert time.monotonic() - stopping < 10
    assert [pid for pid in tree if alive(pid)] == []


def test_up_without_a_feed_shows_a_replayed_file_as_the_flow_builds_it(tmp_path: Path) -> None:
    """The README's replay: into a flow no live source feeds, whose event time the file's
    trades then drive (with the simulator's trades of today, those of 2024 would be late)."""
    trades = sample_trades(1500)  # about 10 minutes of 2024
    path = write(tmp_path / "BTCUSDT-trades-2024-03-01.csv", binance_trades(trades), "zip")
    # The flow closes a series' last candle only once event time has moved past it.
    batch = {ts: c for (_, tf, ts), c in batch_candles(trades, parse_timeframes("1m"), 0).items()}
    expected = {ts: c for ts, c in batch.items() if ts != max(batch)}
    nats_port = free_port()
    with running_up(tmp_path, "--no-feed", "--nats-port", str(nats_port)) as system:
        port = system.port  # type: ignore[attr-defined]  # set by running_up
        wait_until(lambda: command_of(system.pid, "serve") and _serving(port), timeout_s=30,
                   what="the server of `up --no-feed`")
        assert command_of(system.pid, "simulate") is None
        replay = subprocess.run(
            [sys.executable, "-m", "server.cli", "import", str(path), "--exchange", "binance",
             "--symbol", "BTC-USDT", "--replay", "--nats-url", f"nats://127.0.0.1:{nats_port}",
             "--data-dir", str(tmp_path / "replay")],
            env=clean_env(), capture_output=True, text=True, timeout=60,
        )
        assert replay.returncode == 0, replay.stderr
        query = """{ candles(exchange: "binance", symbol: "BTC-USDT", timeframe: "1m",
            limit: 100) { ts open high low close volume trades closed } }"""

        def closed() -> dict[int, dict[str, Any]]:
            body = httpx.post(f"http://127.0.0.1:{port}/graphql", json={"query": query}).json()
            rows = (body.get("data") or {}).get("candles") or []
            return {_ns(r["ts"]): r for r in rows if r["closed"]}

        stored = wait_until(lambda: len(closed()) >= len(expected) and closed(), timeout_s=60,
                            what="the replay's closed 1m candles")
        assert {ts: (r["open"], r["high"], r["low"], r["close"], r["volume"], r["trades"])
                for ts, r in stored.items() if ts in expected} == {
            ts: (c.open, c.high, c.low, c.close, c.volume, c.trades)
            for ts, c in expected.items()}
        symbols = graphql(port, "{ symbols { exchange symbol } }")["symbols"]
        assert symbols == [{"exchange": "binance", "symbol": "BTC-USDT"}]
        system.send_signal(signal.SIGINT)
        assert system.wait(timeout=15) == 0


def _serving(port: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200
    return False


def _ns(iso: str) -> int:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return int(when.timestamp()) * 10**9
