"""Fixtures shared by the flow tests that run against a real NATS server."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from flows.streams import ensure_streams
from tests.servers import NatsServer


@pytest.fixture
async def nc(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A client on fresh TRADES and DEADLETTER streams (no messages, no consumers)."""
    client = await nats.connect(nats_server.url)
    js = client.jetstream()
    for stream in ("TRADES", "DEADLETTER"):
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(stream)
    await ensure_streams(js)
    yield client
    await client.drain()
