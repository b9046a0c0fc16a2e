"""Crash recovery: a flow SIGKILLed mid-stream and restarted stores exactly what an
uninterrupted flow stores, candles and indicators alike: nothing lost, nothing doubled.

The interrupted run reads the stream while it is being published; it is killed once it has
stored candles and acked messages beyond the position of Bytewax's last committed snapshot
(so the restart must re-read them without counting them twice), restarted on the same data
directory, and runs to the end. Then the
durable consumer is deleted and an uninterrupted run reads the whole stream into a fresh data
directory. Both stores must hold the same candles and indicator values, to the last bit.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from functools import partial
from pathlib import Path

from nats.aio.client import Client
from nats.js import JetStreamContext

from market.messages import Candle, Trade
from tests.conditions import eventually
from tests.flows.flow_runs import (
    S,
    Snapshot,
    acked,
    messages,
    ordered_trades,
    publish,
    snapshot_position,
    start_flow,
    start_member,
    stored,
)
from tests.servers import NatsServer

LATENESS_NS = 5 * S


def trade_count(candle: Candle) -> int:
    """A candle's number of trades: known for every candle built from trades."""
    assert candle.trades is not None
    return candle.trades


def candle_count(data_dir: Path) -> int:
    path = data_dir / "candlegraph.sqlite"
    if not path.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM candles").fetchone()[0])
    except sqlite3.Error:
        return 0


async def test_a_flow_killed_mid_stream_and_restarted_stores_what_an_uninterrupted_one_does(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    t0 = (time.time_ns() - 3600 * S) // (3600 * S) * (3600 * S)
    trades = ordered_trades(symbols=20, per_second=50, seconds=200, t0=t0)  # 200,000 trades
    batches = messages(trades)
    js = nc.jetstream()
    settings = {"snapshot_interval_s": "1"}

    crashed = tmp_path / "crashed"
    flow = start_member(nats_server.url, crashed, **settings)
    chunks = [batches[i:i + 100] for i in range(0, len(batches), 100)]

    async def publish_as_acked() -> None:
        # Each chunk once the flow has acked the one before: the stream keeps flowing up to
        # the kill (and waits through it), and acks keep passing the last snapshot.
        sent = 0
        for chunk in chunks:
            await publish(js, chunk)
            sent += len(chunk)
            await eventually(partial(acked, js, sent), timeout_s=60, what="the chunk acked")

    publisher = asyncio.create_task(publish_as_acked())
    try:

        async def acked_past_snapshot() -> bool:
            position = snapshot_position(crashed)
            if position is None or candle_count(crashed) == 0:
                return False
            info = await js.consumer_info("TRADES", "candles")
            return info.ack_floor.stream_seq > position + 50

        await eventually(
            acked_past_snapshot, timeout_s=30,
            what="stored candles, and messages acked after the last committed snapshot",
        )
        assert not publisher.done(), "the flow must be killed while trades still arrive"
        flow.kill()
        flow.wait(timeout=10)
        flow = start_member(nats_server.url, crashed, **settings)
        await publisher
        await eventually(lambda: acked(js, len(batches)), timeout_s=60, what="every message acked")
        info = await js.consumer_info("TRADES", "candles")
        assert (info.config.opt_start_seq or 0) > 1, "the restart resumed from a snapshot"
    finally:
        publisher.cancel()
        flow.terminate()
        flow.wait(timeout=30)

    expected, got = await against_uninterrupted(
        js, nats_server, tmp_path, crashed, trades, len(batches), settings
    )
    assert len(expected[0]) > 3900 and len(expected[1]) > 50_000  # every timeframe, indicators
    assert sum(trade_count(c) for k, c in expected[0].items() if k[1] == "1s") > 190_000
    assert got[0] == expected[0]
    assert got[1] == expected[1]


async def test_a_flow_killed_before_its_first_snapshot_reads_again_from_its_first_position(
    nc: Client, nats_server: NatsServer, tmp_path: Path
) -> None:
    """Forming candles' messages are acked before any snapshot exists; a crash then must not
    lose their trades: the restart reads again from where the flow first started."""
    t0 = (time.time_ns() - 3600 * S) // (3600 * S) * (3600 * S)
    trades = ordered_trades(symbols=4, per_second=10, seconds=90, t0=t0)
    batches = messages(trades)
    half = len(batches) // 2
    js = nc.jetstream()
    settings = {"snapshot_interval_s": "3600"}  # no snapshot before the kill

    crashed = tmp_path / "crashed"
    flow = start_member(nats_server.url, crashed, **settings)
    try:
        await publish(js, batches[:half])
        await eventually(lambda: acked(js, half), timeout_s=30, what="the first half acked")
        assert snapshot_position(crashed) is None
        flow.kill()
        flow.wait(timeout=10)
        flow = start_member(nats_server.url, crashed, **settings)
        await publish(js, batches[half:])
        await eventually(lambda: acked(js, len(batches)), timeout_s=30, what="every message acked")
    finally:
        flow.terminate()
        flow.wait(timeout=30)

    expected, got = await against_uninterrupted(
        js, nats_server, tmp_path, crashed, trades, len(batches), settings
    )
    assert sum(trade_count(c) for k, c in expected[0].items() if k[1] == "1s") > 3000
    assert got == expected


async def against_uninterrupted(
    js: JetStreamContext, nats_server: NatsServer, tmp_path: Path, crashed: Path,
    trades: list[Trade], messages: int, settings: dict[str, str],
) -> tuple[Snapshot, Snapshot]:
    """Run an uninterrupted flow over the whole stream into a fresh data directory; return
    what it stored and what the crashed one stored, for the candles both have made final."""
    await js.delete_consumer("TRADES", "candles")
    whole = tmp_path / "uninterrupted"
    flow = start_flow(nats_server.url, whole, **settings)
    try:
        await eventually(lambda: acked(js, messages), timeout_s=60, what="every message acked")
    finally:
        flow.terminate()
        flow.wait(timeout=30)
    markets = sorted({t.symbol for t in trades})
    final_before = max(t.ts for t in trades) - LATENESS_NS
    return (stored(whole / "candlegraph.sqlite", markets, final_before),
            stored(crashed / "candlegraph.sqlite", markets, final_before))
