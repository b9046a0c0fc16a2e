"""Hostile input and faults: no message can stop the flow, and neither can NATS restarting.

- A message nested two thousand levels deep, and a trade whose symbol alone is 900 kB, are
  dead-lettered (bounded letters, always publishable) while the valid trades around them
  give exact candles, and the flow process keeps running.
- nats-server is SIGKILLed and started again, several times, while the flow publishes and
  acks; the same flow process stays up and stores exactly the batch aggregation of every
  trade the publisher got a JetStream ack for.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import time
from collections.abc import Sequence
from pathlib import Path

import msgspec
import nats
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from db.sqlite import SqliteStore
from flows.streams import ensure_streams
from market.messages import MAX_DEAD_LETTER_BYTES, Candle, DeadLetter, Trade, encode
from market.timeframes import STANDARD_TIMEFRAMES, Timeframe, parse_timeframes
from tests.conditions import eventually, wait_until
from tests.flows.flow_runs import S, start_member
from tests.market.batch_reference import batch_candles
from tests.servers import NatsServer

DAY = Timeframe.parse("1d").ns

LATENESS_NS = 5 * S


def final_candles(
    trades: list[Trade], timeframes: Sequence[Timeframe]
) -> dict[tuple[str, str, int], Candle]:
    """The batch aggregation's candles that end before the trades' own watermark."""
    final_before = max(t.ts for t in trades) - LATENESS_NS
    return {
        key: candle for key, candle in batch_candles(trades, timeframes, LATENESS_NS).items()
        if candle.ts + Timeframe.parse(candle.timeframe).ns <= final_before
    }


def stored_candles(
    path: Path, exchange: str, keys: set[tuple[str, str, int]]
) -> dict[tuple[str, str, int], Candle]:
    """The stored candles with these keys (the store may hold later ones too)."""
    if not path.exists():
        return {}
    store = SqliteStore(path)
    try:
        out = {}
        for symbol, timeframe in {(k[0], k[1]) for k in keys}:
            for c in store.candles(exchange, symbol, timeframe, limit=1_000_000):
                if (symbol, timeframe, c.ts) in keys:
                    out[(symbol, timeframe, c.ts)] = c
        return out
    finally:
        store.close()


async def _true(value: bool) -> bool:
    return value


async def test_a_poison_message_and_an_oversized_dead_letter_never_stop_the_flow(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    t0 = (time.time_ns() - 600 * S) // (60 * S) * (60 * S)
    trades = [
        Trade("fault", "BTC-USDT", t0 + i * 250_000_000, 100.0 + (i * 7919 % 13) * 0.25,
              0.001 * (i % 17 + 1), "buy" if i % 2 else "sell", str(i + 1))
        for i in range(800)
    ]
    letters: list[tuple[int, DeadLetter]] = []

    async def on_letter(msg: Msg) -> None:
        letters.append((len(msg.data), msgspec.json.decode(msg.data, type=DeadLetter)))

    await nc.subscribe("deadletter.trades", cb=on_letter)
    js = nc.jetstream()
    nested = b"[" * 2000 + b"]" * 2000
    huge = Trade("fault", "A" * 900_000, t0, 1.0, 1.0, "buy", "x")
    await js.publish("trades.fault.BTC-USDT", nested)
    await js.publish("trades.fault.BTC-USDT", encode([huge]))
    half = len(trades) // 2
    await js.publish("trades.fault.BTC-USDT", encode(trades[:half]))
    await js.publish("trades.x.Y", nested)  # a subject that names no valid market
    await js.publish("trades.fault.BTC-USDT", encode(trades[half:]))

    flow = start_member(nats_server.url, tmp_path, timeframes="1s,1m")
    try:
        expected = final_candles(trades, parse_timeframes("1s,1m"))
        path = tmp_path / "candlegraph.sqlite"
        wait_until(lambda: len(stored_candles(path, "fault", set(expected))) == len(expected),
                   timeout_s=30, what="the valid trades' candles")
        assert stored_candles(path, "fault", set(expected)) == expected
        await eventually(lambda: _true(len(letters) == 3), what="three dead letters")
        by_reason = sorted((letter.reason, letter.subject) for _, letter in letters)
        assert by_reason == [("bad_symbol", "trades.fault.BTC-USDT"),
                             ("undecodable", "trades.fault.BTC-USDT"),
                             ("undecodable", "trades.x.Y")]
        for size, letter in letters:
            assert size < MAX_DEAD_LETTER_BYTES
            original = nested if letter.reason == "undecodable" else encode(huge)
            assert letter.payload_bytes == len(original)
            assert letter.payload_sha256 == hashlib.sha256(original).hexdigest()
            assert original.decode().startswith(letter.payload)
        assert flow.poll() is None, "the flow process is still running"
    finally:
        flow.terminate()
        assert flow.wait(timeout=30) == 0


async def publish_until_acked(js: JetStreamContext, subject: str, data: bytes, msg_id: str,
                              ) -> None:
    """Publish with a message id (the stream drops a repeat) until JetStream acks it, for
    30 seconds at most (the server may be restarting)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            await js.publish(subject, data, timeout=1.0, headers={"Nats-Msg-Id": msg_id})
            return
        except (nats.errors.Error, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)  # a pause between attempts, not a wait on a result


def second_of_trades(t0: int, second: int, symbols: int = 8, per_second: int = 20,
                     ) -> list[tuple[str, list[Trade]]]:
    """One message per market for one second of event time, ids unique across seconds."""
    out = []
    for m in range(symbols):
        trades = []
        for j in range(per_second):
            n = second * per_second + j
            price = 100.0 * (m + 1) + ((n * 7919 + m * 104729) % 2003 - 1001) / 100.0
            trades.append(Trade("rec", f"M{m:02d}-USDT", t0 + second * S + j * (S // per_second)
                                + m, price, 0.001 * (n % 13 + 1), "buy" if n % 2 else "sell",
                                str(n + 1)))
        out.append((f"trades.rec.M{m:02d}-USDT", trades))
    return out


async def test_nats_killed_and_restarted_under_load_never_stops_the_flow_or_loses_a_trade(
    tmp_path: Path,
) -> None:
    server = NatsServer(tmp_path / "nats")
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    js = nc.jetstream()
    await ensure_streams(js)
    reports: list[dict] = []

    async def on_stats(msg: Msg) -> None:
        reports.append(msgspec.json.decode(msg.data))

    await nc.subscribe("stats.flow.*", cb=on_stats)
    # Event time runs far faster than the clock here (a second of trades every few ms), so
    # it starts a day back: trades that overtook the clock would be dead-lettered as
    # `future_timestamp` (rightly) and their candles never stored.
    t0 = (time.time_ns() - DAY) // DAY * DAY
    published: list[Trade] = []
    enough = asyncio.Event()

    async def publish_until_enough() -> None:
        """Trades in event-time order, each message published until acked, nonstop until
        the restarts are done: the flow is busy storing, publishing and acking throughout."""
        second = 0
        while not enough.is_set():
            if t0 + (second + 1) * S > time.time_ns():
                raise AssertionError("the publisher's event time overtook the clock")
            for subject, trades in second_of_trades(t0, second):
                await publish_until_acked(js, subject, encode(trades), f"{subject}/{second}")
                published.extend(trades)
            second += 1

    async def progress(seen: int) -> None:
        await eventually(lambda: _true(len(reports) > seen + 1), timeout_s=30,
                         what="the flow reporting progress")

    data_dir = tmp_path / "flow"
    flow = start_member(server.url, data_dir, flow_stats_interval_s="0.2")
    publisher = asyncio.create_task(publish_until_enough())
    rng = random.Random(7)
    try:
        for _ in range(5):
            # Wait for the flow to be busy again (reports since the last restart), then kill
            # the server at a random moment of the flow's publishing and acking.
            await progress(len(reports))
            await asyncio.sleep(rng.uniform(0.0, 0.2))  # the moment of the kill, at random
            server.kill()
            server.start()
        await progress(len(reports))
        enough.set()
        await publisher
        expected = final_candles(published, [Timeframe.parse(n) for n in STANDARD_TIMEFRAMES])
        assert len(expected) > 1000
        path = data_dir / "candlegraph.sqlite"
        # Messages the killed server had sent but the flow never got come again only after
        # the consumer's ack wait (60 s, `JetStreamSource`): wait well past it.
        wait_until(lambda: len(stored_candles(path, "rec", set(expected))) == len(expected),
                   timeout_s=150, what="every final candle stored")
        assert stored_candles(path, "rec", set(expected)) == expected
        assert flow.poll() is None, "the flow process survived every restart"
        assert {r["pid"] for r in reports} == {flow.pid}
        assert reports[-1]["counts"].get("nats_retries", 0) > 0, "batches were retried"
    finally:
        enough.set()
        publisher.cancel()
        flow.terminate()
        with contextlib.suppress(Exception):
            assert flow.wait(timeout=30) == 0
        await nc.close()
        server.stop()
