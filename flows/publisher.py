"""Publishing trades to JetStream: one message per symbol holding a JSON array of its trades."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable

from nats.js import JetStreamContext

from flows.nats_events import connect, finish
from flows.simulator import TradeSimulator
from flows.streams import ensure_streams
from flows.subjects import trades_subject
from market.messages import Trade, encode

log = logging.getLogger(__name__)


async def publish_trades(js: JetStreamContext, trades: Iterable[Trade]) -> int:
    """Publish trades grouped by symbol, one message per symbol, awaiting each ack."""
    groups: dict[tuple[str, str], list[Trade]] = {}
    for trade in trades:
        groups.setdefault((trade.exchange, trade.symbol), []).append(trade)
    acks = [
        js.publish(trades_subject(exchange, symbol), encode(batch))
        for (exchange, symbol), batch in groups.items()
    ]
    await asyncio.gather(*acks)
    return len(acks)


async def run_simulator(
    nats_url: str,
    simulator: TradeSimulator,
    *,
    rate: float,
    stop: asyncio.Event,
    tick_s: float = 0.05,
    clock_ns: Callable[[], int] = time.time_ns,
) -> int:
    """Publish about `rate` trades per second until `stop` is set; return how many were sent."""
    nc = await connect(nats_url, name="candlegraph-simulator", max_reconnect_attempts=-1)
    js = nc.jetstream()
    await ensure_streams(js)
    sent = 0
    owed = 0.0
    tick_ns = int(tick_s * 1e9)
    next_tick = clock_ns()
    try:
        while not stop.is_set():
            start = next_tick
            next_tick += tick_ns
            owed += rate * tick_s
            count = int(owed)
            owed -= count
            batch = [
                trade
                for symbol, n in simulator.split(count).items()
                for trade in simulator.trades(symbol, n, start, start + tick_ns)
            ]
            await publish_trades(js, batch)
            sent += len(batch)
            # Pace by the clock, so a slow tick is caught up rather than drifting.
            delay = (next_tick - clock_ns()) / 1e9
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
    finally:
        await finish(nc)
    log.info("simulator stopped after %d trades", sent)
    return sent
