"""Live candles from NATS for GraphQL subscriptions.

Each subscription holds its own NATS subscription, with a one-slot buffer that keeps only
the newest candle: a slow client skips intermediate updates of a forming candle instead of
growing memory or blocking the connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from flows.subjects import candles_subject
from market.messages import Candle, decode_candle

log = logging.getLogger(__name__)


class NatsCandleFeed:
    def __init__(self, nc: Client) -> None:
        self._nc = nc

    async def candles(self, exchange: str, symbol: str, timeframe: str) -> AsyncIterator[Candle]:
        latest: dict[int, Candle] = {}
        ready = asyncio.Event()

        async def on_message(msg: Msg) -> None:
            try:
                candle = decode_candle(msg.data)
            except msgspec.DecodeError:
                log.warning("undecodable candle on %s", msg.subject)
                return
            # Conflate per bucket: a newer update of the same candle replaces an unsent one.
            latest.pop(candle.ts, None)
            latest[candle.ts] = candle
            ready.set()

        sub = await self._nc.subscribe(
            candles_subject(exchange, symbol, timeframe), cb=on_message
        )
        try:
            while True:
                await ready.wait()
                ready.clear()
                while latest:
                    ts = next(iter(latest))
                    yield latest.pop(ts)
        finally:
            await sub.unsubscribe()
