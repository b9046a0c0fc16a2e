"""Live candle subscriptions over real websockets, fed by candles published on a real NATS.

Each test streams its own symbol, so they cannot see each other's candles; after each, every
subscription must be gone from the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from nats.aio.client import Client
from websockets import Subprotocol

from db.sqlite import SqliteStore
from market.messages import Candle, encode
from tests.conditions import eventually
from tests.graphql.clients import LEGACY_WS, TRANSPORT_WS, GraphQLWs, errors_of, metric
from tests.graphql.live import S, closed_candle, iso, serve
from tests.servers import LiveApi, NatsServer

T0 = 1_700_000_040 * S  # 2023-11-14T22:14:00Z
FIELDS = "ts close volume trades closed"
SYMBOLS = ["SOL-USDT", "ADA-USDT", "DOT-USDT", "AVAX-USDT", "LINK-USDT"]
CAP = 500


def subscription(symbol: str, *, since: str | None = None, timeframe: str = "1s") -> str:
    since_arg = f', since: "{since}"' if since else ""
    return (f'subscription {{ candles(exchange: "sim", symbol: "{symbol}", '
            f'timeframe: "{timeframe}"{since_arg}) {{ {FIELDS} }} }}')


def forming(symbol: str, ts_ns: int, trades: int) -> Candle:
    return Candle("sim", symbol, "1s", ts_ns, 100.0, 101.0, 99.0, 100.0 + trades,
                  float(trades), trades, 100.0, False)


@pytest.fixture(scope="module")
def monitored_nats() -> Iterator[NatsServer]:
    server = NatsServer(monitor=True)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, monitored_nats: NatsServer
) -> Iterator[LiveApi]:
    stored = [closed_candle(symbol, T0 + i * S, trades=i + 1)
              for symbol in SYMBOLS for i in range(10)]
    stored += [closed_candle("XRP-USDT", T0 + i * S) for i in range(CAP + 1)]
    # A small send buffer: a client that stops reading backs the server up within kilobytes.
    server = serve(tmp_path_factory.mktemp("live"), monitored_nats.url, stored,
                   send_buffer=4096, max_candles=CAP, subscription_buffer=256)
    yield server
    server.stop()


@pytest.fixture
def nats_url(monitored_nats: NatsServer) -> str:
    """`nc` (tests/conftest.py) connects to this module's server."""
    return monitored_nats.url


@pytest.fixture(autouse=True)
async def every_subscription_ends(live: LiveApi) -> AsyncIterator[None]:
    yield
    await eventually(lambda: _open_is(live, 0), timeout_s=10, what="subscriptions to end")


async def _open_is(live: LiveApi, count: int) -> bool:
    return await metric(live.url, "candlegraph_subscriptions_open") == count


async def until_open(live: LiveApi, count: int) -> None:
    """Until the server holds `count` live subscriptions: from then on, publishes reach them."""
    await eventually(lambda: _open_is(live, count), what=f"{count} open subscriptions")


async def publish(nc: Client, *candles: Candle) -> None:
    for candle in candles:
        await nc.publish(f"candles.sim.{candle.symbol}.{candle.timeframe}", encode(candle))
    await nc.flush()


async def test_graphql_transport_ws_subscription_receives_live_candles(
    live: LiveApi, nc: Client
) -> None:
    client = await GraphQLWs.connect(live.ws_url, protocol=TRANSPORT_WS)
    await client.subscribe(subscription("SOL-USDT"))
    await until_open(live, 1)
    await publish(nc, forming("SOL-USDT", T0 + 60 * S, trades=7))
    message = await client.receive()
    await client.close()
    assert message == {
        "id": "1", "type": "next",
        "payload": {"data": {"candles": {
            "ts": "2023-11-14T22:15:00+00:00", "close": 107.0, "volume": 7.0, "trades": 7,
            "closed": False,
        }}},
    }


async def test_legacy_graphql_ws_subscription_receives_live_candles(
    live: LiveApi, nc: Client
) -> None:
    client = await GraphQLWs.connect(live.ws_url, protocol=LEGACY_WS)
    await client.subscribe(subscription("SOL-USDT"), id="7")
    await until_open(live, 1)
    await publish(nc, closed_candle("SOL-USDT", T0 + 61 * S, trades=3))
    message = await client.receive()
    await client.close()
    assert message["type"] == "data" and message["id"] == "7"
    assert message["payload"]["data"]["candles"]["closed"] is True
    assert message["payload"]["data"]["candles"]["trades"] == 3


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
@pytest.mark.parametrize(
    ("arguments", "code", "argument"),
    [
        ('symbol: "SOL-USDT", timeframe: "7s"', "BAD_USER_INPUT", "timeframe"),
        ('symbol: "SOL-USDT", timeframe: "2h"', "BAD_USER_INPUT", "timeframe"),
        ('symbol: "sol/usdt", timeframe: "1s"', "BAD_USER_INPUT", "symbol"),
        ('symbol: "DOGE-USDT", timeframe: "1s"', "NOT_FOUND", None),
    ],
)
async def test_an_unknown_symbol_or_timeframe_is_an_error_not_a_silent_stream(
    live: LiveApi, protocol: Subprotocol, arguments: str, code: str, argument: str | None
) -> None:
    client = await GraphQLWs.connect(live.ws_url, protocol=protocol)
    await client.subscribe(f'subscription {{ candles(exchange: "sim", {arguments}) {{ ts }} }}')
    message = await client.receive()
    await client.close()
    assert message["type"] == "error"
    [error] = errors_of(message)
    assert error["extensions"]["code"] == code
    assert error["extensions"].get("argument") == argument
    assert "Traceback" not in str(message)


async def test_a_stalled_subscriber_gets_the_latest_candle_and_never_holds_up_a_fast_one(
    live: LiveApi, nc: Client
) -> None:
    symbol = "ADA-USDT"
    stalled = await GraphQLWs.connect(live.ws_url, stalled=True)
    await stalled.subscribe(subscription(symbol))
    await until_open(live, 1)

    # Closed candles of new buckets until the stalled client's socket is full and candles
    # wait in its mailbox, while the server could send dozens of them per millisecond.
    backlog: list[Candle] = []
    while await metric(live.url, "candlegraph_fanout_pending") < 60:
        burst = [closed_candle(symbol, T0 + (100 + len(backlog) + i) * S) for i in range(50)]
        backlog += burst
        await publish(nc, *burst)
        assert len(backlog) < 2000, "the stalled client's sends never backed up"
    conflated_before = await metric(live.url, "candlegraph_fanout_conflated_total")

    fast = await GraphQLWs.connect(live.ws_url)
    await fast.subscribe(subscription(symbol))
    await until_open(live, 2)
    bucket = T0 + 10_000 * S
    fast_seen = []
    for trades in range(1, 21):  # 20 updates of one forming candle, each awaited by `fast`
        await publish(nc, forming(symbol, bucket, trades))
        fast_seen.append((await fast.candle())["trades"])
    await fast.close()

    stalled_seen = [await stalled.candle() for _ in range(len(backlog) + 1)]
    await stalled.close()
    assert fast_seen == list(range(1, 21))
    assert [c["trades"] for c in stalled_seen[:-1]] == [1] * len(backlog)
    assert [c["ts"] for c in stalled_seen[:-1]] == [iso(c.ts) for c in backlog]
    assert stalled_seen[-1] == {
        "ts": iso(bucket), "close": 120.0, "volume": 20.0, "trades": 20, "closed": False
    }
    conflated = await metric(live.url, "candlegraph_fanout_conflated_total")
    assert conflated - conflated_before == 19


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_the_shared_nats_subscription_is_dropped_when_the_last_client_leaves(
    live: LiveApi, monitored_nats: NatsServer, protocol: Subprotocol
) -> None:
    subject = "candles.sim.DOT-USDT.1s"
    first = await GraphQLWs.connect(live.ws_url, protocol=protocol)
    second = await GraphQLWs.connect(live.ws_url, protocol=protocol)
    await first.subscribe(subscription("DOT-USDT"))
    await second.subscribe(subscription("DOT-USDT"))
    await until_open(live, 2)
    assert monitored_nats.subscriptions().count(subject) == 1
    assert await metric(live.url, "candlegraph_fanout_subjects") == 1

    first.drop()  # gone without a close frame
    await until_open(live, 1)
    assert monitored_nats.subscriptions().count(subject) == 1

    await second.close()
    await until_open(live, 0)
    assert await metric(live.url, "candlegraph_fanout_subjects") == 0
    await eventually(lambda: _not_subscribed(monitored_nats, subject), what="UNSUB at NATS")


async def _not_subscribed(monitored_nats: NatsServer, subject: str) -> bool:
    return subject not in monitored_nats.subscriptions()


async def test_since_replays_stored_candles_then_goes_live_without_duplicates(
    live: LiveApi, nc: Client
) -> None:
    symbol = "AVAX-USDT"  # stored: T0 .. T0+9 s, closed, with trades 1 .. 10
    client = await GraphQLWs.connect(live.ws_url)
    await client.subscribe(subscription(symbol, since="2023-11-14T22:14:05Z"))
    replayed = [await client.candle() for _ in range(5)]
    await until_open(live, 1)
    last = T0 + 9 * S
    await publish(
        nc,
        closed_candle(symbol, last, trades=10),  # the stored candle again: a duplicate
        forming(symbol, last, trades=9),  # a stale update of it
        forming(symbol, last + S, trades=1),  # the next bucket
        closed_candle(symbol, last, trades=11),  # a correction by a late trade
    )
    live_seen = [await client.candle(), await client.candle()]
    await client.close()
    assert [(c["ts"][-14:-6], c["trades"]) for c in replayed] == [
        ("22:14:05", 6), ("22:14:06", 7), ("22:14:07", 8), ("22:14:08", 9), ("22:14:09", 10)
    ]
    # The two may be swapped: the correction replaces any unsent update of its bucket in place.
    assert sorted((c["ts"][-14:-6], c["trades"]) for c in live_seen) == [
        ("22:14:09", 11), ("22:14:10", 1)
    ]


async def test_since_has_no_gap_and_no_duplicate_while_the_flow_keeps_writing(
    live: LiveApi, nc: Client
) -> None:
    # A writer that behaves like the flow: commit a closed candle, then publish it.
    symbol, first, count = "LINK-USDT", T0 + 100 * S, 400
    store = SqliteStore(live.settings.store_path)
    halfway = asyncio.Event()

    async def flow() -> None:
        for i in range(count):
            candle = closed_candle(symbol, first + i * S, trades=1)
            await asyncio.to_thread(store.upsert_candles, [candle])
            await publish(nc, candle)
            if i == count // 4:
                halfway.set()

    writer = asyncio.create_task(flow())
    await halfway.wait()
    client = await GraphQLWs.connect(live.ws_url)
    await client.subscribe(subscription(symbol, since="2023-11-14T22:15:40Z"))
    seen: list[str] = []
    while len(seen) < count:
        seen.append((await client.candle())["ts"])
    await writer
    await client.close()
    store.close()
    assert seen == [iso(first + i * S) for i in range(count)]


async def test_since_further_back_than_the_cap_is_refused(
    live: LiveApi, nc: Client
) -> None:
    client = await GraphQLWs.connect(live.ws_url)
    await client.subscribe(subscription("XRP-USDT", since="2023-11-14T22:14:00Z"))
    message = await client.receive()
    await client.close()
    assert message["type"] == "next"
    [error] = errors_of(message)
    assert error["extensions"] == {"code": "BAD_USER_INPUT", "argument": "since"}
