"""The fan-out on its own: mailboxes, and shared NATS subscriptions on a real NATS server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import nats
import pytest
from nats.aio.client import Client

from graphql_schema.errors import SlowConsumer
from market.messages import Candle, encode
from server.fanout import CandleFanout, Mailbox
from tests.graphql.live import S, closed_candle
from tests.servers import NatsServer

T0 = 1_700_000_040 * S
SUBJECT = "candles.sim.SOL-USDT.1s"


def update(ts_s: int, trades: int) -> Candle:
    return closed_candle("SOL-USDT", T0 + ts_s * S, trades)


@pytest.fixture(scope="module")
def monitored_nats() -> Iterator[NatsServer]:
    server = NatsServer(monitor=True)
    yield server
    server.stop()


@pytest.fixture
async def server_nc(monitored_nats: NatsServer) -> AsyncIterator[Client]:
    client = await nats.connect(monitored_nats.url, name="candlegraph-server")
    yield client
    await client.drain()


@pytest.fixture
def nats_url(monitored_nats: NatsServer) -> str:
    """`nc` (tests/conftest.py), the publisher, connects to this module's server."""
    return monitored_nats.url


async def drain(mailbox: Mailbox) -> list[Candle]:
    return [await anext(mailbox) for _ in range(len(mailbox))]


async def test_a_mailbox_keeps_the_latest_version_of_each_bucket_in_arrival_order() -> None:
    mailbox = Mailbox(capacity=10)
    replaced = [mailbox.put(update(1, 1)), mailbox.put(update(2, 1)), mailbox.put(update(1, 2)),
                mailbox.put(update(3, 1)), mailbox.put(update(2, 5))]
    assert replaced == [False, False, True, False, True]
    assert [(c.ts, c.trades) for c in await drain(mailbox)] == [
        (T0 + 1 * S, 2), (T0 + 2 * S, 5), (T0 + 3 * S, 1)
    ]


async def test_a_full_mailbox_ends_its_reader_instead_of_losing_candles() -> None:
    mailbox = Mailbox(capacity=2)
    mailbox.put(update(1, 1))
    mailbox.put(update(2, 1))
    mailbox.put(update(2, 2))  # a newer version of a pending bucket still fits
    assert len(mailbox) == 2
    mailbox.put(update(3, 1))  # a third bucket does not
    assert len(mailbox) == 0  # what it held is released at once
    with pytest.raises(SlowConsumer, match="fell more than 2 candles behind"):
        await anext(mailbox)


async def test_subscribers_of_one_subject_share_one_nats_subscription(
    server_nc: Client, nc: Client, monitored_nats: NatsServer
) -> None:
    fanout = CandleFanout(server_nc)
    async with fanout.subscribe("sim", "SOL-USDT", "1s") as first, \
            fanout.subscribe("sim", "SOL-USDT", "1s") as second:
        assert fanout.subscribers() == {SUBJECT: 2}
        assert monitored_nats.subscriptions().count(SUBJECT) == 1
        await nc.publish(SUBJECT, encode(update(1, 7)))
        async with asyncio.timeout(5):
            assert (await anext(first)).trades == 7
            assert (await anext(second)).trades == 7
    assert fanout.subscribers() == {}
    await fanout.close()
    assert SUBJECT not in monitored_nats.subscriptions()


async def test_a_subscriber_that_gives_up_while_subscribing_leaves_nothing_behind(
    server_nc: Client, monitored_nats: NatsServer
) -> None:
    fanout = CandleFanout(server_nc)
    entered = asyncio.Event()

    async def subscriber() -> None:
        async with fanout.subscribe("sim", "SOL-USDT", "1s"):
            entered.set()
            await asyncio.Event().wait()

    task = asyncio.create_task(subscriber())
    # One step of the loop, not a wait: the test needs the subscriber caught mid-subscribe,
    # registered and still waiting for NATS, which any longer wait would let it finish.
    await asyncio.sleep(0)
    assert fanout.subscribers() == {SUBJECT: 1}
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert not entered.is_set()
    assert fanout.subscribers() == {}
    await fanout.close()
    assert SUBJECT not in monitored_nats.subscriptions()


async def test_a_subscriber_too_far_behind_is_ended_while_others_get_every_update(
    server_nc: Client, nc: Client
) -> None:
    fanout = CandleFanout(server_nc, capacity=3)
    async with fanout.subscribe("sim", "SOL-USDT", "1s") as reader, \
            fanout.subscribe("sim", "SOL-USDT", "1s") as idle:
        seen = []
        for second in range(5):
            await nc.publish(SUBJECT, encode(update(second, 1)))
            async with asyncio.timeout(5):
                seen.append((await anext(reader)).ts)
        # Each message reached both mailboxes before `reader` woke up with it.
        with pytest.raises(SlowConsumer):
            await anext(idle)
    assert seen == [T0 + i * S for i in range(5)]
    await fanout.close()
