"""The candle subscription through `schema.subscribe`, with a feed of our own making."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from graphql_schema.context import Context, Limits
from graphql_schema.schema import build_schema
from market.messages import Candle
from server.fanout import Mailbox

S = 1_000_000_000
T0 = 1_700_000_040 * S


class Store:
    def symbols(self) -> list[tuple[str, str]]:
        return [("sim", "SOL-USDT")]

    def candles(self, *args: Any, **kwargs: Any) -> list[Candle]:
        return []


class Feed:
    """Hands every subscriber a mailbox the test fills, like the fan-out does."""

    def __init__(self, failing: bool = False) -> None:
        self.mailboxes: list[Mailbox] = []
        self.failing = failing

    @asynccontextmanager
    async def subscribe(
        self, exchange: str, symbol: str, timeframe: str
    ) -> AsyncIterator[AsyncIterator[Candle]]:
        mailbox = Mailbox(16)
        self.mailboxes.append(mailbox)
        yield self._broken() if self.failing else mailbox

    async def _broken(self) -> AsyncIterator[Candle]:
        raise RuntimeError("secret detail of a bug")
        yield  # an async generator


@pytest.fixture
def context_of() -> Iterator[Any]:
    def make(feed: Feed) -> Context:
        return Context(store=Store(), feed=feed, limits=Limits(timeframes=("1s",)))  # type: ignore[arg-type]  # test doubles of the context's protocols
    yield make


def query(fields: str) -> str:
    return ('subscription { candles(exchange: "sim", symbol: "SOL-USDT", timeframe: "1s") '
            f"{{ {fields} }} }}")


async def test_subscribers_with_one_document_share_each_event_execution(context_of: Any) -> None:
    schema, feed = build_schema(), Feed()
    streams = [await schema.subscribe(query("ts close"), context_value=context_of(feed)),
               await schema.subscribe(query("ts close"), context_value=context_of(feed)),
               await schema.subscribe(query("ts volume"), context_value=context_of(feed))]
    # Each stream subscribes on its first read; then one candle reaches every mailbox.
    reads = [asyncio.ensure_future(anext(stream)) for stream in streams]
    async with asyncio.timeout(5):
        while len(feed.mailboxes) < len(streams):
            await asyncio.sleep(0)
    candle = Candle("sim", "SOL-USDT", "1s", T0, 1.0, 2.0, 0.5, 1.5, 3.0, 4, 1.2, False)
    for mailbox in feed.mailboxes:
        mailbox.put(candle)
    first, second, other = await asyncio.gather(*reads)
    for stream in streams:
        await stream.aclose()
    assert first.data == second.data == {"candles": {"ts": "2023-11-14T22:14:00+00:00",
                                                     "close": 1.5}}
    assert first.data is second.data  # executed once
    assert other.data == {"candles": {"ts": "2023-11-14T22:14:00+00:00", "volume": 3.0}}


async def test_a_bug_in_a_live_stream_reaches_the_client_masked(context_of: Any) -> None:
    schema = build_schema()
    stream = await schema.subscribe(query("ts"), context_value=context_of(Feed(failing=True)))
    result = await anext(stream)
    await stream.aclose()
    assert result.errors is not None
    [error] = result.errors
    assert error.message == "Internal error; it has been logged."
    assert error.extensions == {"code": "INTERNAL"}
    assert "secret" not in str(error.formatted)
