"""The store-and-publish sink against a real NATS server and SQLite store: the order of
effects (store, publish, ack), with publishing overlapping the flow's next batch."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from db.indicator_store import IndicatorValues
from db.sqlite import SqliteStore
from flows.outputs import FlowOutput
from flows.sink import StoreAndPublishSink
from market.messages import Candle, decode_candle
from tests.conditions import eventually
from tests.servers import NatsServer

T0 = 1_767_225_600 * 10**9


def candle(ts: int, closed: bool = True) -> Candle:
    return Candle("sink", "BTC-USDT", "1s", ts, 1.0, 2.0, 0.5, 1.5, 3.0, 4, 1.25, closed)


def output(i: int, reply: str) -> FlowOutput:
    closed = candle(T0 + i * 10**9)
    values = IndicatorValues("sink", "BTC-USDT", "1s", closed.ts, {"sma_2": float(i)})
    return FlowOutput([closed], [closed, candle(closed.ts + 10**9, closed=False)], [], [reply],
                      [values], {"messages": 1})


async def test_batches_are_stored_then_published_in_order_then_acked(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    seen: list[str] = []

    async def record(msg: Msg) -> None:
        if msg.subject.startswith("candles.sink."):
            c = decode_candle(msg.data)
            seen.append(f"candle {c.ts} {c.closed}")
        elif msg.subject.startswith("acks."):
            seen.append(f"ack {msg.subject} {msg.data.decode()}")

    # One subscription: nats-py runs each subscription's callbacks in a task of its own, so
    # two would see candles and acks in the order those tasks run, not the order they came.
    await nc.subscribe(">", cb=record)
    await nc.flush()
    path = tmp_path / "sink.sqlite"
    sink = StoreAndPublishSink(nats_server.url, lambda: SqliteStore(path))
    partition = await asyncio.to_thread(sink.build, "store_and_publish", 0, 1)
    for i in range(3):
        await asyncio.to_thread(partition.write_batch, [output(i, f"acks.{i}")])
    await asyncio.to_thread(partition.close)  # waits for the last batch's publishing

    async def all_seen() -> bool:
        return len(seen) == 9

    await eventually(all_seen, what="9 messages")
    expected = []
    for i in range(3):
        ts = T0 + i * 10**9
        expected += [f"candle {ts} True", f"candle {ts + 10**9} False", f"ack acks.{i} +ACK"]
    assert seen == expected
    store = SqliteStore(path)
    try:
        assert [c.ts for c in store.candles("sink", "BTC-USDT", "1s", from_start=True)] == [
            T0, T0 + 10**9, T0 + 2 * 10**9
        ]
        assert store.indicators("sink", "BTC-USDT", "1s")["sma_2"].to_list() == [0.0, 1.0, 2.0]
    finally:
        store.close()


async def test_a_batch_that_could_not_be_published_stops_the_next_one(
    nats_server: NatsServer, tmp_path: Path
) -> None:
    sink = StoreAndPublishSink(nats_server.url, lambda: SqliteStore(tmp_path / "s.sqlite"))
    partition = await asyncio.to_thread(sink.build, "store_and_publish", 0, 1)
    bridge = partition._bridge
    await asyncio.to_thread(bridge.call, bridge.nc.close)
    await asyncio.to_thread(partition.write_batch, [output(0, "acks.0")])  # publishes later
    with pytest.raises(Exception, match="closed"):
        await asyncio.to_thread(partition.write_batch, [output(1, "acks.1")])
    await asyncio.to_thread(partition.close)
