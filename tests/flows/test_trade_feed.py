"""The exchange feed in this process, against the fake Binance and a real NATS server."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import TypedDict, Unpack

import msgspec
import nats.js.errors
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from flows.exchange_feed import run_exchange_feed
from flows.exchanges import open_exchange
from flows.feed_publisher import (
    CURSOR_BUCKET,
    FeedPublisher,
    Taken,
    TradeBuffer,
    cursor_key,
    open_cursors,
)
from flows.feed_stats import FeedStats
from flows.trade_feed import FeedOptions, MarketFeed
from market.exchange_data import TradeConverter
from market.messages import DeadLetter, Trade, decode_trades
from market.trade_cursor import TradeCursor
from tests.conditions import eventually
from tests.fake_binance import FakeBinance
from tests.servers import NatsServer


class FeedOverrides(TypedDict, total=False):
    """The FeedOptions fields a test sets."""

    stall_s: float
    backoff_s: float
    backoff_max_s: float


@dataclass
class Feed:
    fake: FakeBinance
    stats: FeedStats
    trades: list[Trade] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    task: asyncio.Task | None = None

    def ids(self) -> list[int]:
        return [int(t.trade_id) for t in self.trades]


async def _until(predicate: Callable[[], object], what: str, timeout_s: float = 15) -> None:
    async def check() -> bool:
        return bool(predicate())

    await eventually(check, timeout_s=timeout_s, what=what)


@pytest.fixture
async def feed(nc: Client, nats_server: NatsServer) -> AsyncIterator[Callable[..., Feed]]:
    """Starts the feed for BTC/USDT of a fresh fake exchange, with no stored cursor."""
    js = nc.jetstream()
    kv = await open_cursors(js)
    with contextlib.suppress(nats.js.errors.KeyNotFoundError):
        await kv.purge(cursor_key("binance", "BTC-USDT"))
    fake = FakeBinance().start()
    stop = asyncio.Event()
    started: list[Feed] = []

    def start(**options: Unpack[FeedOverrides]) -> Feed:
        running = Feed(fake, FeedStats("binance", interval_s=3600))

        async def on_trades(msg: Msg) -> None:
            running.trades += decode_trades(msg.data, now_ns=time.time_ns())[0]

        async def on_letter(msg: Msg) -> None:
            running.letters.append(msgspec.json.decode(msg.data, type=DeadLetter))

        async def run() -> None:
            await nc.subscribe("trades.binance.>", cb=on_trades)
            await nc.subscribe("deadletter.trades", cb=on_letter)
            await run_exchange_feed(
                nats_server.url, "binance", ["BTC/USDT"], config=fake.ccxt_config(),
                options=replace(FeedOptions(backoff_s=0.05, backoff_max_s=0.2), **options),
                stats=running.stats, stop=stop, gather_s=0.002,
            )

        running.task = asyncio.create_task(run())
        started.append(running)
        return running

    yield start
    stop.set()
    for running in started:
        assert running.task is not None
        await asyncio.wait_for(running.task, timeout=15)
    fake.stop()


async def subscribed(fake: FakeBinance) -> None:
    await _until(lambda: any(s.streams for s in list(fake._sockets)), "the feed to subscribe")


async def test_a_rate_limited_exchange_slows_the_feed_and_does_not_stop_it(
    feed: Callable[..., Feed],
) -> None:
    running = feed(backoff_s=0.2, backoff_max_s=0.4)
    fake = running.fake
    fake.fail_next(3)  # the first requests, loading the markets, are refused for rate
    await subscribed(fake)
    made = fake.trades("BTCUSDT", [(100.0 + i, 1.0, False) for i in range(5)])
    await _until(lambda: len(running.trades) == 5, "the trades after the rate limit")
    info = fake.requests_to("/exchangeInfo")
    assert [r.status for r in info] == [429, 429, 429, 200]
    waits = [b.at - a.at for a, b in itertools.pairwise(info)]
    assert all(wait >= 0.1 for wait in waits), waits  # backed off: at least half of 0.2 s
    assert running.stats.counts["rate_limited"] == 3
    assert running.ids() == [t.agg_id for t in made]
    assert running.task is not None and not running.task.done()


async def test_a_malformed_exchange_trade_is_dead_lettered_and_the_feed_goes_on(
    feed: Callable[..., Feed],
) -> None:
    running = feed()
    fake = running.fake
    await subscribed(fake)
    good = fake.trade("BTCUSDT", 100.0)
    bad_price = {**good.agg_event(fake.clock_ms()), "a": 2, "p": "-5.00"}
    no_id = {**good.agg_event(fake.clock_ms()), "a": None}
    fake.send_raw(bad_price)
    fake.send_raw(no_id)
    after = fake.trade("BTCUSDT", 101.0, ts_ms=good.ts_ms + 1)
    await _until(lambda: len(running.letters) == 2 and len(running.trades) == 2,
                 "two dead letters and two trades")
    assert sorted(letter.reason for letter in running.letters) == ["bad_price", "missing_field"]
    assert {letter.subject for letter in running.letters} == {"trades.binance.BTC-USDT"}
    assert '"p":"-5.00"' in next(x.payload for x in running.letters if x.reason == "bad_price")
    assert [t.price for t in running.trades] == [100.0, 101.0]
    assert running.ids() == [good.agg_id, after.agg_id]


async def test_a_stalled_stream_is_reconnected_and_its_gap_filled_over_rest(
    feed: Callable[..., Feed],
) -> None:
    running = feed(stall_s=0.5)
    fake = running.fake
    await subscribed(fake)
    first = fake.trade("BTCUSDT", 100.0)
    await _until(lambda: len(running.trades) == 1, "the first trade")
    fake.withhold()  # the socket stays open, but nothing comes through it
    missed = fake.trades("BTCUSDT", [(100.5, 1.0, True)] * 4)
    await _until(lambda: len(running.trades) == 5, "the missed trades, over REST")
    fake.withhold(False)
    later = fake.trade("BTCUSDT", 102.0)
    await _until(lambda: len(running.trades) == 6, "the stream again")
    assert running.ids() == [first.agg_id, *(t.agg_id for t in missed), later.agg_id]
    assert running.stats.counts["reconnects"] >= 1
    assert running.stats.counts["gap_trades"] >= 4


async def test_a_full_buffer_holds_a_market_back_until_it_is_taken() -> None:
    buffer = TradeBuffer(capacity=3)
    trade = Trade("binance", "BTC-USDT", 1, 1.0, 1.0, "buy", "1")
    cursor = TradeCursor().state()
    await buffer.put(Taken("BTC-USDT", [trade, trade], cursor))
    waiting = asyncio.create_task(buffer.put(Taken("BTC-USDT", [trade, trade], cursor)))
    for _ in range(10):  # yields enough for the put to run to its wait, and on if it could
        await asyncio.sleep(0)
    assert not waiting.done() and buffer.size == 2  # held back: 4 would exceed 3
    taken = await buffer.take(0)
    await asyncio.wait_for(waiting, timeout=1)
    assert [len(t.trades) for t in taken] == [2] and buffer.size == 2


async def test_a_publish_retried_after_a_lost_ack_is_stored_once(nc: Client) -> None:
    js = nc.jetstream()
    publisher = FeedPublisher(js, await open_cursors(js), TradeBuffer(10),
                              FeedStats("retry", interval_s=3600), exchange="retry",
                              gather_s=0)
    trades = [Trade("retry", "BTC-USDT", 10**18 + i, 1.0, 1.0, "buy", str(i)) for i in (1, 2)]
    taken = Taken("BTC-USDT", trades, TradeCursor().state())
    await publisher.publish([taken])
    await publisher.publish([taken])  # as after an ack that never arrived
    info = await js.stream_info("TRADES")
    assert info.state.messages == 1
    entry = await (await js.key_value(CURSOR_BUCKET)).get(cursor_key("retry", "BTC-USDT"))
    assert entry.value is not None


async def test_a_stopping_publisher_publishes_what_is_buffered_then_returns(nc: Client) -> None:
    js = nc.jetstream()
    buffer = TradeBuffer(100)
    publisher = FeedPublisher(js, await open_cursors(js), buffer,
                              FeedStats("drain", interval_s=3600), exchange="drain",
                              gather_s=0.05)
    for i in range(3):
        trade = Trade("drain", "BTC-USDT", 10**18 + i, 1.0, 1.0, "buy", str(i))
        await buffer.put(Taken("BTC-USDT", [trade], TradeCursor().state()))
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(publisher.run(stop), timeout=5)
    assert buffer.empty() and publisher.stats.counts["trades"] == 3


async def test_an_exchange_without_a_stream_is_polled_over_rest(nc: Client) -> None:
    fake = FakeBinance().start()
    exchange = open_exchange("binance", fake.ccxt_config(), streaming=False)  # REST only
    js = nc.jetstream()
    buffer = TradeBuffer(1000)
    stats = FeedStats("binance", interval_s=3600)
    publisher = FeedPublisher(js, await open_cursors(js), buffer, stats, exchange="binance",
                              gather_s=0)
    feed = MarketFeed(exchange, TradeConverter("binance", "BTC/USDT", max_future_ns=60 * 10**9),
                      TradeCursor(), buffer, publisher, stats, FeedOptions(poll_s=0.05))
    first = fake.trades("BTCUSDT", [(100.0, 1.0, False)] * 3)
    task = asyncio.create_task(feed.run())
    try:
        await _until(lambda: buffer.size == 3, "the trades made before, on the first poll")
        later = fake.trades("BTCUSDT", [(101.0, 2.0, True)] * 2)
        await _until(lambda: buffer.size == 5, "the trades made since, on later polls")
        taken = [t.trade_id for item in await buffer.take(0) for t in item.trades]
        assert taken == [str(t.agg_id) for t in [*first, *later]]
        assert fake._sockets == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await exchange.close()
        fake.stop()
