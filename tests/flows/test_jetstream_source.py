"""The JetStream source against a real server: order, positions, flow control, idle pulls."""

from __future__ import annotations

import asyncio

from nats.aio.client import Client

from flows.jetstream_source import (
    JetStreamSource,
    RawMessage,
    _JetStreamPartition,
    _stream_sequence,
)
from tests.conditions import eventually, wait_until
from tests.servers import NatsServer


async def publish(nc: Client, count: int, *, start: int = 0, size: int = 100) -> None:
    js = nc.jetstream()
    for i in range(start, start + count):
        await js.publish(f"trades.t.S{i % 7}-USDT", str(i).encode().ljust(size, b" "))


def build(nats_server: NatsServer, **options: object) -> _JetStreamPartition:
    source = JetStreamSource(nats_server.url, **options)  # type: ignore[arg-type]  # test overrides: each a real keyword
    return source.build_part("read_trades", "TRADES", None)


def take(partition: _JetStreamPartition, count: int) -> list[RawMessage]:
    taken: list[RawMessage] = []

    def more() -> bool:
        taken.extend(partition.next_batch())
        return len(taken) >= count

    wait_until(more, what=f"{count} messages")
    return taken


async def all_in_order(partition: _JetStreamPartition, count: int) -> list[RawMessage]:
    """The next `count` messages, checked to be the stream's first `count` in order."""
    taken = await asyncio.to_thread(take, partition, count)
    assert [m.seq for m in taken] == list(range(1, count + 1))
    return taken


async def delivered_once_full(nc: Client, partition: _JetStreamPartition) -> int:
    """How many messages the consumer has delivered once the partition's buffer is full."""
    await asyncio.to_thread(wait_until, lambda: partition._room() <= 0, what="a full buffer")
    info = await nc.jetstream().consumer_info("TRADES", "candles")
    return info.delivered.stream_seq


async def test_every_message_arrives_once_in_stream_order_with_its_position(
    nc: Client, nats_server: NatsServer
) -> None:
    await publish(nc, 1_000)
    partition = await asyncio.to_thread(build, nats_server, fetch_batch=64)
    try:
        taken = await all_in_order(partition, 1_000)
        assert [int(m.data) for m in taken] == list(range(1_000))
        assert taken[8].subject == "trades.t.S1-USDT" and taken[8].reply.startswith("$JS.ACK.")
        assert partition.snapshot() == 1_000
        assert partition.next_batch() == []
    finally:
        await asyncio.to_thread(partition.close)


async def test_a_full_buffer_stops_pulling_until_messages_are_taken(
    nc: Client, nats_server: NatsServer
) -> None:
    await publish(nc, 300, size=1_000)
    # Room for 10 messages; at most two pulls of 8 are outstanding when it fills.
    partition = await asyncio.to_thread(
        build, nats_server, fetch_batch=8, max_buffered_bytes=10_000
    )
    try:
        assert 10 <= await delivered_once_full(nc, partition) <= 10 + 2 * 8
        await all_in_order(partition, 300)
    finally:
        await asyncio.to_thread(partition.close)


async def test_pulls_that_expire_unfilled_are_renewed(
    nc: Client, nats_server: NatsServer
) -> None:
    partition = await asyncio.to_thread(build, nats_server, fetch_batch=16, pull_expires_s=0.1)
    try:
        # Idle: each pull ends with a 408 after 0.1 s and is asked for again.
        puller = partition._puller
        await asyncio.to_thread(
            wait_until, lambda: puller.expired >= 4 and puller.pulls >= puller.expired + 2,
            what="expired pulls renewed",
        )

        async def waiting() -> bool:
            info = await nc.jetstream().consumer_info("TRADES", "candles")
            return info.num_waiting > 0

        await eventually(waiting, what="a pull waiting at the server")
        await publish(nc, 50)
        await all_in_order(partition, 50)
    finally:
        await asyncio.to_thread(partition.close)


async def test_pulls_are_bounded_in_bytes_so_large_messages_never_flood_the_reader(
    nc: Client, nats_server: NatsServer
) -> None:
    # 120 messages of 600 kB. Pulls of `fetch_batch` (256) messages with no byte bound would
    # bring them all at once: more than the buffer's room, and more than nats-server buffers
    # for one client (64 MiB) before it cuts a slow consumer off.
    await publish(nc, 120, size=600_000)
    partition = await asyncio.to_thread(build, nats_server, max_buffered_bytes=2_000_000)
    try:
        # The room (2 MB) and two pulls of at most max(room, 1 MiB + 4 kB) each.
        assert await delivered_once_full(nc, partition) <= 10
        await all_in_order(partition, 120)
        assert partition._bridge.nc.stats["reconnects"] == 0
    finally:
        await asyncio.to_thread(partition.close)


def test_the_stream_sequence_is_read_from_either_ack_subject_layout() -> None:
    v1 = "$JS.ACK.TRADES.candles.1.4242.17.1767225600123456789.3"
    v2 = "$JS.ACK.hub.ACCHASH.TRADES.candles.1.4242.17.1767225600123456789.3.x1"
    assert _stream_sequence(v1) == _stream_sequence(v2) == 4242
