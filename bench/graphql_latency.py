"""GraphQL latency and throughput: 10,000 candles as objects and as columns, and small queries.

Prints `name: value unit` lines:

- `candles_objects_10k_ms`, `candle_series_10k_ms`: server-side median of `schema.execute`
  for the newest 10,000 of 10,000 one-minute candles, over the SQLite store (the read included,
  JSON encoding of the response not). `..._graphql_ms`: the same with the store's answer
  prepared in memory, i.e. what the GraphQL layer adds. `store_candles_10k_ms`: the store read
  alone.
- `small_query_rps`: requests per second for one candle over HTTP with keep-alive, against one
  `candlegraph serve` process (uvicorn) on loopback, 16 connections, from `wrk` when it is on the
  PATH, else from a small asyncio HTTP/1.1 client in this process.
- then whatever `bench/fanout_latency.py` prints (`fanout_p99_ms`), when it exists.

    python bench/graphql_latency.py [--runs 30] [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import polars as pl
from served import served
from timing import median_ms

from db.sqlite import SqliteStore
from graphql_schema.context import Context, Limits
from graphql_schema.schema import build_schema
from market.messages import Candle

MINUTE_NS = 60 * 10**9
START_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
CANDLES = 10_000
MARKET = 'exchange: "sim", symbol: "BTC-USDT", timeframe: "1m"'
FIELDS = "ts open high low close volume trades vwap closed"
OBJECTS = f"{{ candles({MARKET}, limit: {CANDLES}) {{ {FIELDS} }} }}"
SERIES = f"{{ candleSeries({MARKET}, limit: {CANDLES}) {{ ts open high low close volume }} }}"
SMALL = f"{{ candles({MARKET}, limit: 1) {{ ts open high low close volume }} }}"
HERE = Path(__file__).parent
WARMUP_S = 5


def candles(count: int) -> list[Candle]:
    """A deterministic one-minute walk (no randomness needed: only the shape matters)."""
    return [
        Candle("sim", "BTC-USDT", "1m", START_NS + i * MINUTE_NS, 100.0 + i % 50,
               101.0 + i % 50, 99.0 + i % 50, 100.5 + i % 50, 1.25 + i % 7, 1 + i % 30,
               100.25 + i % 50, True)
        for i in range(count)
    ]


class _MemoryReader:
    """The store's answer to the benchmark's reads, prepared: times the GraphQL layer alone."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._rows = store.candles("sim", "BTC-USDT", "1m", limit=CANDLES + 1)
        self._frame = store.candles_frame("sim", "BTC-USDT", "1m", limit=CANDLES + 1)

    def candles(self, *args: Any, limit: int = 1000, from_start: bool = False,
                **kwargs: Any) -> list[Candle]:
        return self._rows[-limit:]

    def candles_frame(self, *args: Any, limit: int | None = None, from_start: bool = False,
                      **kwargs: Any) -> pl.DataFrame:
        return self._frame if limit is None else self._frame.tail(limit)

    def symbols(self) -> list[tuple[str, str]]:
        return self._store.symbols()


class _NoFeed:
    def subscribe(self, *args: Any) -> Any:
        raise RuntimeError("the benchmark runs no subscriptions")


async def execute_median_ms(query: str, store: Any, runs: int) -> float:
    schema = build_schema()
    context = Context(store=store, feed=_NoFeed(), limits=Limits(timeframes=("1m",),
                                                                  max_candles=CANDLES))
    times = []
    for _ in range(runs + 2):
        started = time.perf_counter()
        result = await schema.execute(query, context_value=context)
        times.append((time.perf_counter() - started) * 1000)
        if result.errors:
            raise RuntimeError(f"benchmark query failed: {result.errors}")
    return statistics.median(times[2:])


def server_side(data_dir: Path, runs: int) -> None:
    store = SqliteStore(data_dir / "candlegraph.sqlite")
    memory = _MemoryReader(store)
    figures = {
        "candles_objects_10k_ms": (OBJECTS, store),
        "candle_series_10k_ms": (SERIES, store),
        "candles_objects_10k_graphql_ms": (OBJECTS, memory),
        "candle_series_10k_graphql_ms": (SERIES, memory),
    }
    for name, (query, reader) in figures.items():
        print(f"{name}: {asyncio.run(execute_median_ms(query, reader, runs)):.1f} ms", flush=True)
    read = median_ms(lambda: store.candles("sim", "BTC-USDT", "1m", limit=CANDLES), runs)
    print(f"store_candles_10k_ms: {read:.1f} ms", flush=True)
    store.close()


def small_query_rps(
    data_dir: Path, seconds: float, connections: int, *, tool: str
) -> float:
    """Requests/s for the one-candle query against `candlegraph serve` in its own process.

    A first load of `WARMUP_S` is not counted: the server's backtest workers import their
    engine in the background just after start, which takes a core for a few seconds.
    """
    with served(data_dir, timeframes="1m") as server:
        url = f"http://127.0.0.1:{server.port}/graphql"
        body = httpx.post(url, json={"query": SMALL}).json()
        if "errors" in body or len(body["data"]["candles"]) != 1:
            raise RuntimeError(f"the small query failed: {body}")
        if tool == "wrk":
            _wrk(url, WARMUP_S, connections)
            return _wrk(url, seconds, connections)
        asyncio.run(_load(server.port, WARMUP_S, connections))
        return asyncio.run(_load(server.port, seconds, connections))


def _wrk(url: str, seconds: float, connections: int) -> float:
    payload = httpx.Request("POST", url, json={"query": SMALL}).content.decode()
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/json"\n'
            f"wrk.body = {_lua_string(payload)}\n"
        )
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{int(seconds)}s", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    if re.search(r"Non-2xx", out):
        raise RuntimeError(f"wrk saw failed requests:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None:
        raise RuntimeError(f"no Requests/sec in wrk's output:\n{out}")
    return float(match.group(1))


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


async def _load(port: int, seconds: float, connections: int) -> float:
    """Keep-alive HTTP/1.1 POSTs from `connections` connections for `seconds`; requests/s."""
    body = httpx.Request("POST", "http://x/", json={"query": SMALL}).content
    request = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    deadline = time.monotonic() + seconds

    async def connection() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        done = 0
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"request failed: {head[:80]!r}")
            length = re.search(rb"(?i)content-length: (\d+)", head)
            if length is None:
                raise RuntimeError(f"no content-length in {head[:200]!r}")
            await reader.readexactly(int(length.group(1)))
            done += 1
        writer.close()
        return done

    started = time.monotonic()
    counts = await asyncio.gather(*(connection() for _ in range(connections)))
    return sum(counts) / (time.monotonic() - started)


def fanout() -> None:
    """Run `bench/fanout_latency.py`'s `main()` when that benchmark exists."""
    path = HERE / "fanout_latency.py"
    if not path.exists():
        return
    spec = importlib.util.spec_from_file_location("fanout_latency", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    # Registered first, so msgspec can resolve the module's annotations by its name.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if callable(getattr(module, "main", None)):
        # Its own command line: none of ours.
        argv, sys.argv = sys.argv, [str(path)]
        try:
            module.main()
        finally:
            sys.argv = argv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="executions per median")
    parser.add_argument("--seconds", type=float, default=10, help="duration of the HTTP load")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    args, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="candlegraph-bench-") as tmp:
        data_dir = Path(tmp)
        store = SqliteStore(data_dir / "candlegraph.sqlite")
        store.upsert_candles(candles(CANDLES))
        store.close()
        server_side(data_dir, args.runs)
        tool = "wrk" if shutil.which("wrk") else "asyncio client"
        rps = small_query_rps(data_dir, args.seconds, args.connections, tool=tool)
        print(f"small_query_rps: {rps:.0f} req/s", flush=True)
        print(f"# small_query_rps: {tool}, {args.connections} connections, {args.seconds} s "
              f"after {WARMUP_S} s of warm-up", file=sys.stderr)
    fanout()


if __name__ == "__main__":
    main()
