"""Publish-to-receipt latency of live candles fanned out to many websocket subscribers.

Starts a NATS server and `candlegraph serve` in its own process, opens `--subscribers`
graphql-transport-ws clients (default 100) on one series, then publishes a candle update on
its NATS subject `--rate` times a second (default 20) for `--seconds`. Each update carries its
sequence number in `trades`; a client's latency is from just before the publish to its decoded
receipt, both timed in this process. A first `WARMUP_S` is not counted: the server's backtest
workers import their engine just after start, which takes a core for a few seconds.

Prints `fanout_p50_ms`, `fanout_p99_ms` and `fanout_max_ms` (target for p99: <= 25 ms),
`fanout_delivered` (the share of updates every client received; conflation may merge updates
of one bucket for a client that falls behind), and `fanout_graphql_cpu_us`: the CPU the GraphQL
layer spends per delivered update with that many subscribers, measured in this process apart
from sockets and clients (the part of the latency that grows with the subscribers).

    python bench/fanout_latency.py [--subscribers N] [--rate PER_S] [--seconds S]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import httpx
import msgspec
import nats
import uvloop
import websockets
from served import served

from db.sqlite import SqliteStore
from graphql_schema.context import Context, Limits
from graphql_schema.schema import build_schema
from market.messages import Candle, encode
from server.fanout import Mailbox
from server.metrics import Metrics

WARMUP_S = 4.0
SUBJECT = "candles.bench.BTC-USDT.1s"
QUERY = ('subscription { candles(exchange: "bench", symbol: "BTC-USDT", timeframe: "1s") '
         "{ ts close volume trades closed } }")


class _Trades(msgspec.Struct):
    trades: int


class _Data(msgspec.Struct):
    candles: _Trades


class _Payload(msgspec.Struct):
    data: _Data


class _Next(msgspec.Struct):
    type: Literal["next"]
    payload: _Payload


# The clients share a core with the server on a small machine: decode only what is needed.
_decode_next = msgspec.json.Decoder(_Next).decode


def candle(seq: int) -> Candle:
    bucket = time.time_ns() // 1_000_000_000 * 1_000_000_000
    return Candle("bench", "BTC-USDT", "1s", bucket, 100.0, 101.0, 99.0, 100.5, 1.0 + seq,
                  seq, 100.2, False)


async def subscriber(port: int, ready: asyncio.Event, received: dict[int, int]) -> None:
    """One client: records receipt times (perf_counter_ns) by sequence number."""
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/graphql", subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]  # websockets wants its Subprotocol NewType
        compression=None, max_queue=None,
    ) as ws:
        await ws.send(json.dumps({"type": "connection_init"}))
        await ws.recv()
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": QUERY}}))
        ready.set()
        async for text in ws:
            now = time.perf_counter_ns()
            try:
                message = _decode_next(text)
            except msgspec.ValidationError as error:
                raise RuntimeError(f"subscription failed: {text!r}") from error
            received[message.payload.data.candles.trades] = now


async def until_subscribed(port: int, count: int) -> None:
    async with httpx.AsyncClient() as client:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            if f"candlegraph_subscriptions_open {count}.0" in text:
                return
            await asyncio.sleep(0.05)
    raise RuntimeError(f"{count} subscriptions did not open within 30 s")


async def measure(
    port: int, nats_url: str, *, subscribers: int, rate: float, seconds: float
) -> tuple[list[float], float]:
    """Latencies (ms) of every delivery after the warm-up, and the share delivered."""
    received: list[dict[int, int]] = [{} for _ in range(subscribers)]
    readies = [asyncio.Event() for _ in range(subscribers)]
    clients = [asyncio.create_task(subscriber(port, readies[i], received[i]))
               for i in range(subscribers)]
    nc = await nats.connect(nats_url)
    published: dict[int, int] = {}
    try:
        await asyncio.gather(*(ready.wait() for ready in readies))
        await until_subscribed(port, subscribers)
        interval = 1.0 / rate
        total = int((WARMUP_S + seconds) * rate)
        started = time.perf_counter()
        for seq in range(1, total + 1):
            await asyncio.sleep(max(0.0, started + seq * interval - time.perf_counter()))
            payload = encode(candle(seq))
            published[seq] = time.perf_counter_ns()
            await nc.publish(SUBJECT, payload)
            await nc.flush()
        await asyncio.sleep(0.5)  # the last update's deliveries
    finally:
        await nc.drain()
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    counted = [seq for seq in published if seq > WARMUP_S * rate]
    latencies = [(got[seq] - published[seq]) / 1e6
                 for got in received for seq in counted if seq in got]
    return latencies, len(latencies) / (len(counted) * subscribers)


async def graphql_cpu_per_delivery_us(subscribers: int, events: int = 200) -> float:
    """CPU time of the GraphQL layer per delivered update, in this process, no sockets.

    `subscribers` subscriptions through `schema.subscribe` read mailboxes of the fan-out,
    which get each update at once; the figure is the CPU spent until all have it, divided by
    the deliveries. It leaves out the websocket frames and the clients.
    """
    boxes: list[Mailbox] = []

    class Feed:
        @asynccontextmanager
        async def subscribe(self, *series: str) -> AsyncIterator[Mailbox]:
            box = Mailbox(1024)
            boxes.append(box)
            yield box

    class Store:
        def symbols(self) -> list[tuple[str, str]]:
            return [("bench", "BTC-USDT")]

    schema = build_schema(observer=Metrics())
    delivered = 0

    async def one() -> None:
        nonlocal delivered
        context = Context(store=Store(), feed=Feed(), limits=Limits(timeframes=("1s",)))  # type: ignore[arg-type]  # test doubles of the context's protocols
        async for result in await schema.subscribe(QUERY, context_value=context):
            if result.errors:
                raise RuntimeError(f"subscription failed: {result.errors}")
            delivered += 1

    readers = [asyncio.create_task(one()) for _ in range(subscribers)]
    async with asyncio.timeout(30):
        while len(boxes) < subscribers:
            await asyncio.sleep(0)
    started = time.process_time()
    for seq in range(1, events + 1):
        update = candle(seq)
        for box in boxes:
            box.put(update)
        while delivered < seq * subscribers:
            await asyncio.sleep(0)
    spent = time.process_time() - started
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    return spent / (events * subscribers) * 1e6


def main() -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="updates per second")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured duration")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="fanout-bench-"))
    store = SqliteStore(data_dir / "candlegraph.sqlite")
    # The market must be known (stored) before it can be subscribed to.
    store.upsert_candles([Candle("bench", "BTC-USDT", "1s", 0, 1, 1, 1, 1, 1, 1, 1, True)])
    store.close()
    with served(data_dir, log_level="WARNING") as server:
        latencies, delivered = uvloop.run(measure(
            server.port, server.nats_url,
            subscribers=args.subscribers, rate=args.rate, seconds=args.seconds,
        ))
    if not latencies:
        raise RuntimeError("no update reached any subscriber")
    ordered = sorted(latencies)
    figures = {
        "fanout_p50_ms": statistics.median(ordered),
        "fanout_p99_ms": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        "fanout_max_ms": ordered[-1],
    }
    for name, value in figures.items():
        print(f"{name}: {value:.1f} ms", flush=True)
    print(f"fanout_delivered: {delivered * 100:.1f} %", flush=True)
    cpu_us = asyncio.run(graphql_cpu_per_delivery_us(args.subscribers))
    print(f"fanout_graphql_cpu_us: {cpu_us:.1f} us", flush=True)
    return {**figures, "fanout_delivered": delivered, "fanout_graphql_cpu_us": cpu_us}


if __name__ == "__main__":
    main()
